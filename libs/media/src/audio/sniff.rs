//! The accepted containers, told by their magic bytes rather than by the client's
//! Content-Type, which browsers and curl get wrong often enough.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Wav,
    Flac,
    Mp3,
    /// Vorbis or Opus inside.
    Ogg,
    /// Opus inside, as browsers' MediaRecorder writes it.
    WebM,
}

impl Container {
    pub fn sniff(head: &[u8]) -> Option<Self> {
        match head {
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E', ..] => Some(Self::Wav),
            [b'f', b'L', b'a', b'C', ..] => Some(Self::Flac),
            [b'O', b'g', b'g', b'S', ..] => Some(Self::Ogg),
            [0x1A, 0x45, 0xDF, 0xA3, ..] => Some(Self::WebM),
            [b'I', b'D', b'3', ..] => Some(Self::Mp3),
            // An MPEG audio frame header: 11 sync bits, then layer III (01).
            [0xFF, b, ..] if b & 0xE0 == 0xE0 && b & 0x06 == 0x02 => Some(Self::Mp3),
            _ => None,
        }
    }

    /// symphonia's hint for the demuxer.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
            Self::Ogg => "ogg",
            Self::WebM => "webm",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Flac => "audio/flac",
            Self::Mp3 => "audio/mpeg",
            Self::Ogg => "audio/ogg",
            Self::WebM => "audio/webm",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_containers_apart() {
        assert_eq!(
            Container::sniff(b"RIFF\0\0\0\0WAVEfmt "),
            Some(Container::Wav)
        );
        assert_eq!(Container::sniff(b"fLaC\0"), Some(Container::Flac));
        assert_eq!(Container::sniff(b"OggS\0"), Some(Container::Ogg));
        assert_eq!(
            Container::sniff(&[0x1A, 0x45, 0xDF, 0xA3, 1]),
            Some(Container::WebM)
        );
        assert_eq!(Container::sniff(b"ID3\x04"), Some(Container::Mp3));
        assert_eq!(Container::sniff(&[0xFF, 0xFB, 0x90]), Some(Container::Mp3));
        assert_eq!(Container::sniff(b"RIFF\0\0\0\0AVI "), None);
        assert_eq!(Container::sniff(b"\0\0\0\x20ftypM4A "), None);
        assert_eq!(Container::sniff(b""), None);
    }
}
