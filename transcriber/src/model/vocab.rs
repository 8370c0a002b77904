//! The vocabulary: `vocabulary.txt` holds one token per line in GPT-2's byte-level spelling,
//! where every byte is a printable character (a space is `Ġ`, a newline `Ċ`). whisper.cpp wants
//! the raw bytes, and only the ordinary tokens: it names the special ones (`<|endoftext|>` and
//! after) itself from their ids.

/// The raw bytes of each ordinary token, in id order.
pub fn decode(vocabulary: &str) -> Result<Vec<Vec<u8>>, String> {
    let table = byte_decoder();
    let mut tokens = Vec::new();
    for (id, line) in vocabulary.lines().enumerate() {
        if line.starts_with("<|") && line.ends_with("|>") {
            break;
        }
        let bytes =
            line.chars()
                .map(|c| {
                    table.get(c as usize).copied().flatten().ok_or_else(|| {
                        format!("token {id} holds {c:?}, not a byte-level character")
                    })
                })
                .collect::<Result<Vec<u8>, _>>()?;
        tokens.push(bytes);
    }
    Ok(tokens)
}

/// GPT-2's `bytes_to_unicode`, inverted: the printable bytes stand for themselves and the rest
/// are moved to 256 and up, in byte order.
fn byte_decoder() -> Vec<Option<u8>> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut table = vec![None; 512];
    let mut shifted = 256;
    for b in 0..=255u8 {
        if printable(b) {
            table[b as usize] = Some(b);
        } else {
            table[shifted] = Some(b);
            shifted += 1;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_byte_level_spelling_and_stops_at_special_tokens() {
        let tokens = decode("!\nĠthe\nĊ\nÃ©\n<|endoftext|>\n<|en|>\n").unwrap();
        assert_eq!(
            tokens,
            vec![
                b"!".to_vec(),
                b" the".to_vec(),
                b"\n".to_vec(),
                "é".as_bytes().to_vec()
            ]
        );
        assert!(decode("\u{4e00}\n").is_err());
    }
}
