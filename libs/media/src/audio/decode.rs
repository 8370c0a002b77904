//! Decoding to mono f32 samples at the file's own rate. symphonia demuxes every accepted
//! container and decodes PCM, FLAC, MP3 and Vorbis; it has no Opus decoder, so Opus packets go
//! to libopus.

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL, CODEC_TYPE_OPUS};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::sniff::Container;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Not a container or codec Chorus accepts.
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    /// An accepted format whose contents do not decode.
    #[error("audio does not decode: {0}")]
    Corrupt(String),
    #[error("audio is longer than {max_seconds} s")]
    TooLong { max_seconds: u32 },
}

/// A decoded clip: mono samples in [-1, 1] at `sample_rate`.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub container: Container,
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Decoded {
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(self.sample_rate.max(1))
    }
}

/// Opus always decodes at 48 kHz; two channels, so a mono or stereo stream both fit.
const OPUS_RATE: u32 = 48_000;
/// Opus's longest frame: 120 ms at 48 kHz, per channel.
const OPUS_MAX_FRAME: usize = 5_760;

pub fn decode(bytes: Vec<u8>, max_seconds: u32) -> Result<Decoded, AudioError> {
    let container = Container::sniff(&bytes).ok_or_else(|| {
        AudioError::Unsupported(
            "expected WAV, FLAC, MP3, OGG (Vorbis or Opus) or WebM (Opus)".to_owned(),
        )
    })?;
    let mut hint = Hint::new();
    hint.with_extension(container.extension());
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::Unsupported(what) => AudioError::Unsupported(what.to_owned()),
            e => AudioError::Corrupt(e.to_string()),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Corrupt("no audio track".to_owned()))?;
    let (track_id, params) = (track.id, track.codec_params.clone());

    let mut sink = Mono::new(max_seconds);
    let mut packets = 0usize;
    let mut failures = 0usize;
    if params.codec == CODEC_TYPE_OPUS {
        let mut decoder = opus::Decoder::new(OPUS_RATE, opus::Channels::Stereo)
            .map_err(|e| AudioError::Corrupt(format!("opus: {e}")))?;
        let mut frame = vec![0f32; OPUS_MAX_FRAME * 2];
        sink.rate = OPUS_RATE;
        // The encoder's look-ahead, which the stream says to drop.
        sink.skip = params.delay.unwrap_or(0) as usize;
        while let Some(packet) = next_packet(&mut *format, track_id)? {
            packets += 1;
            match decoder.decode_float(&packet.data, &mut frame, false) {
                Ok(n) => sink.push_interleaved(&frame[..n * 2], 2)?,
                Err(_) => failures += 1,
            }
        }
    } else {
        let mut decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| match e {
                SymphoniaError::Unsupported(what) => AudioError::Unsupported(what.to_owned()),
                e => AudioError::Corrupt(e.to_string()),
            })?;
        let mut buffer: Option<SampleBuffer<f32>> = None;
        while let Some(packet) = next_packet(&mut *format, track_id)? {
            packets += 1;
            match decoder.decode(&packet) {
                Ok(decoded) => {
                    let spec = *decoded.spec();
                    sink.rate = spec.rate;
                    let buf = match &mut buffer {
                        Some(b) if b.capacity() >= decoded.capacity() => b,
                        _ => buffer.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
                    };
                    buf.copy_interleaved_ref(decoded);
                    sink.push_interleaved(buf.samples(), spec.channels.count())?;
                }
                Err(SymphoniaError::DecodeError(_)) => failures += 1,
                Err(e) => return Err(AudioError::Corrupt(e.to_string())),
            }
        }
    }
    // A damaged frame here and there is what players skip; a file that is mostly damage, or
    // has no sound at all, is refused.
    if packets == 0 || sink.samples.is_empty() || failures * 10 > packets {
        return Err(AudioError::Corrupt(format!(
            "{failures} of {packets} packets failed to decode"
        )));
    }
    Ok(Decoded {
        container,
        samples: sink.samples,
        sample_rate: sink.rate,
    })
}

/// The next packet of our track; `None` at the end (a truncated file ends early, as players
/// treat it).
fn next_packet(
    format: &mut dyn symphonia::core::formats::FormatReader,
    track_id: u32,
) -> Result<Option<symphonia::core::formats::Packet>, AudioError> {
    loop {
        match format.next_packet() {
            Ok(p) if p.track_id() == track_id => return Ok(Some(p)),
            Ok(_) => continue,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None)
            }
            Err(SymphoniaError::ResetRequired) => return Ok(None),
            Err(e) => return Err(AudioError::Corrupt(e.to_string())),
        }
    }
}

/// Accumulates a downmix, bounded by the longest clip allowed.
struct Mono {
    samples: Vec<f32>,
    rate: u32,
    skip: usize,
    max_seconds: u32,
}

impl Mono {
    fn new(max_seconds: u32) -> Self {
        Self {
            samples: Vec::new(),
            rate: 0,
            skip: 0,
            max_seconds,
        }
    }

    fn push_interleaved(&mut self, frames: &[f32], channels: usize) -> Result<(), AudioError> {
        let channels = channels.max(1);
        let scale = 1.0 / channels as f32;
        for frame in frames.chunks_exact(channels) {
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            self.samples.push(frame.iter().sum::<f32>() * scale);
        }
        if self.samples.len() as u64 > u64::from(self.max_seconds) * u64::from(self.rate.max(1)) {
            return Err(AudioError::TooLong {
                max_seconds: self.max_seconds,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit PCM WAV of a 440 Hz tone.
    fn wav(rate: u32, channels: u16, seconds: f32) -> Vec<u8> {
        let frames = (rate as f32 * seconds) as u32;
        let data_len = frames * u32::from(channels) * 2;
        let mut b = Vec::with_capacity(44 + data_len as usize);
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data_len).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        b.extend_from_slice(&(channels * 2).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data_len.to_le_bytes());
        for i in 0..frames {
            let v = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin();
            for _ in 0..channels {
                b.extend_from_slice(&((v * 16_000.0) as i16).to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn decodes_wav_to_mono_with_its_duration() {
        let d = decode(wav(22_050, 2, 1.5), 10).unwrap();
        assert_eq!(d.container, Container::Wav);
        assert_eq!(d.sample_rate, 22_050);
        assert_eq!(d.duration_ms(), 1_500);
        let peak = d.samples.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((0.45..0.5).contains(&peak), "{peak}");
    }

    #[test]
    fn refuses_what_is_too_long_unknown_or_broken() {
        assert!(matches!(
            decode(wav(8_000, 1, 3.0), 2),
            Err(AudioError::TooLong { max_seconds: 2 })
        ));
        assert!(matches!(
            decode(b"not audio at all".to_vec(), 10),
            Err(AudioError::Unsupported(_))
        ));
        let mut broken = wav(8_000, 1, 1.0);
        broken.truncate(20);
        assert!(matches!(decode(broken, 10), Err(AudioError::Corrupt(_))));
        let mut empty = wav(8_000, 1, 0.0);
        empty.truncate(44);
        assert!(matches!(decode(empty, 10), Err(AudioError::Corrupt(_))));
    }
}
