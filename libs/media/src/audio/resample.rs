//! Any rate to the 16 kHz Whisper was trained on, with rubato's FFT resampler (band-limited, so
//! a 44.1 or 48 kHz recording does not alias into the speech band).

use rubato::{FftFixedIn, Resampler};

pub const WHISPER_RATE: u32 = 16_000;

pub fn to_whisper_rate(samples: &[f32], rate: u32) -> Vec<f32> {
    if rate == WHISPER_RATE || samples.is_empty() {
        return samples.to_vec();
    }
    const CHUNK: usize = 1024;
    let mut resampler = FftFixedIn::<f32>::new(rate as usize, WHISPER_RATE as usize, CHUNK, 2, 1)
        .expect("invariant: both rates are positive");
    let delay = resampler.output_delay();
    let expected = (samples.len() as u64 * u64::from(WHISPER_RATE) / u64::from(rate)) as usize;
    let mut out = Vec::with_capacity(expected + delay + CHUNK);
    let mut rest = samples;
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        let produced = resampler
            .process(&[chunk], None)
            .expect("invariant: the chunk has the size the resampler asked for");
        out.extend_from_slice(&produced[0]);
        rest = tail;
    }
    // The tail, then silence to flush the filter's delay.
    while out.len() < expected + delay {
        // rubato takes `None` for "no more input"; an empty slice would be a short buffer.
        let input: Option<&[&[f32]]> = if rest.is_empty() { None } else { Some(&[rest]) };
        let produced = resampler
            .process_partial(input, None)
            .expect("invariant: a partial chunk is never too long");
        out.extend_from_slice(&produced[0]);
        rest = &[];
    }
    out.drain(..delay.min(out.len()));
    out.truncate(expected);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_input_of_any_length() {
        for len in [1, 1023, 1024, 2048, 22_050] {
            let out = to_whisper_rate(&vec![0.5; len], 22_050);
            assert_eq!(out.len(), len * 16_000 / 22_050, "{len}");
        }
    }

    #[test]
    fn keeps_length_and_a_tone_in_band() {
        let rate = 22_050;
        let tone: Vec<f32> = (0..rate * 2)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
            .collect();
        let out = to_whisper_rate(&tone, rate as u32);
        assert_eq!(out.len(), 32_000);
        // Zero crossings of 440 Hz over 2 s: 1760, give or take the edges.
        let crossings = out.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        assert!((875..=885).contains(&crossings), "{crossings}");
        let peak = out[1000..31_000].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((0.95..1.05).contains(&peak), "{peak}");
    }
}
