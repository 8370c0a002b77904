//! Fossil deltas, the format of Centrifugo's delta compression (`delta: "fossil"`).
//!
//! [`delta`] makes one (the `fossil-delta` crate's encoder); [`apply`] is this crate's own
//! decoder, written to take untrusted input: every count and offset is checked against the
//! source, the delta and the declared size before anything is allocated or copied, and the
//! checksum is verified, as the SDKs' decoders do.

const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

/// Why a delta could not be applied.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("malformed delta at byte {0}")]
    Malformed(usize),
    #[error("delta copies outside the source")]
    CopyOutOfRange,
    #[error("delta makes more or less than the size it declares")]
    WrongSize,
    #[error("checksum mismatch")]
    Checksum,
}

/// A delta that turns `source` into `target`.
pub fn delta(source: &[u8], target: &[u8]) -> Vec<u8> {
    // The crate's argument order: the target first, then the source.
    fossil_delta::delta(target, source)
}

fn digit(c: u8) -> Option<u32> {
    DIGITS.iter().position(|&d| d == c).map(|v| v as u32)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn int(&mut self) -> Result<usize, DeltaError> {
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(d) = self.bytes.get(self.pos).and_then(|&c| digit(c)) {
            v = v
                .checked_mul(64)
                .and_then(|v| v.checked_add(u64::from(d)))
                .filter(|&v| v <= u64::from(u32::MAX))
                .ok_or(DeltaError::Malformed(self.pos))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(DeltaError::Malformed(start));
        }
        Ok(v as usize)
    }

    fn byte(&mut self) -> Result<u8, DeltaError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(DeltaError::Malformed(self.pos))?;
        self.pos += 1;
        Ok(b)
    }
}

/// Fossil's checksum: the target's bytes summed as big-endian 32-bit words.
pub fn checksum(z: &[u8]) -> u32 {
    let (mut s0, mut s1, mut s2, mut s3) = (0u32, 0u32, 0u32, 0u32);
    let mut chunks = z.chunks_exact(4);
    for c in &mut chunks {
        s0 = s0.wrapping_add(u32::from(c[0]));
        s1 = s1.wrapping_add(u32::from(c[1]));
        s2 = s2.wrapping_add(u32::from(c[2]));
        s3 = s3.wrapping_add(u32::from(c[3]));
    }
    let mut sum = s3
        .wrapping_add(s2 << 8)
        .wrapping_add(s1 << 16)
        .wrapping_add(s0 << 24);
    let tail = chunks.remainder();
    for (i, shift) in [24u32, 16, 8].iter().enumerate().take(tail.len()) {
        sum = sum.wrapping_add(u32::from(tail[i]) << shift);
    }
    sum
}

/// `source` with `delta` applied.
pub fn apply(source: &[u8], delta: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let mut r = Reader {
        bytes: delta,
        pos: 0,
    };
    let size = r.int()?;
    if r.byte()? != b'\n' {
        return Err(DeltaError::Malformed(r.pos - 1));
    }
    // What a delta can make is bounded by what it can copy and quote.
    if size
        > source
            .len()
            .saturating_mul(delta.len())
            .saturating_add(delta.len())
    {
        return Err(DeltaError::WrongSize);
    }
    let mut out = Vec::with_capacity(size);
    loop {
        let count = r.int()?;
        match r.byte()? {
            b'@' => {
                let offset = r.int()?;
                if r.byte()? != b',' {
                    return Err(DeltaError::Malformed(r.pos - 1));
                }
                let end = offset
                    .checked_add(count)
                    .ok_or(DeltaError::CopyOutOfRange)?;
                let piece = source.get(offset..end).ok_or(DeltaError::CopyOutOfRange)?;
                if out.len() + count > size {
                    return Err(DeltaError::WrongSize);
                }
                out.extend_from_slice(piece);
            }
            b':' => {
                let end = r
                    .pos
                    .checked_add(count)
                    .ok_or(DeltaError::Malformed(r.pos))?;
                let piece = delta.get(r.pos..end).ok_or(DeltaError::Malformed(r.pos))?;
                if out.len() + count > size {
                    return Err(DeltaError::WrongSize);
                }
                out.extend_from_slice(piece);
                r.pos = end;
            }
            b';' => {
                if out.len() != size {
                    return Err(DeltaError::WrongSize);
                }
                if checksum(&out) as usize != count {
                    return Err(DeltaError::Checksum);
                }
                return Ok(out);
            }
            _ => return Err(DeltaError::Malformed(r.pos - 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_slowly_changing_document_makes_a_small_delta_that_applies() {
        let one = br#"{"title":"doc","body":"the same long body of text, unchanged","version":1}"#;
        let two = br#"{"title":"doc","body":"the same long body of text, unchanged","version":2}"#;
        let d = delta(one, two);
        assert!(d.len() < two.len() / 2, "{}", String::from_utf8_lossy(&d));
        assert_eq!(apply(one, &d).unwrap(), two);
        assert!(apply(b"another base entirely!!", &d).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_crash_or_a_huge_allocation() {
        assert!(apply(b"abc", b"garbage;").is_err());
        assert!(apply(b"abc", b"zzzzzz\n3@0,1;").is_err());
        assert!(apply(b"abc", b"3\n3@9,1;").is_err());
        assert!(apply(b"abc", b"").is_err());
    }

    proptest! {
        #[test]
        fn every_delta_applies_back(source in proptest::collection::vec(any::<u8>(), 0..300),
                                     target in proptest::collection::vec(any::<u8>(), 0..300)) {
            let d = delta(&source, &target);
            prop_assert_eq!(apply(&source, &d).unwrap(), target);
        }

        #[test]
        fn any_bytes_apply_or_fail_cleanly(source in proptest::collection::vec(any::<u8>(), 0..64),
                                            d in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = apply(&source, &d);
        }
    }
}
