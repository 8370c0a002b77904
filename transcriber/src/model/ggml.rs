//! whisper.cpp's model file (the "ggml" format of its `convert-pt-to-ggml.py`): magic, hyper
//! parameters, the mel filterbank, the vocabulary, then tensors named as in OpenAI's PyTorch
//! checkpoint, each with its dimensions innermost first.

use std::io::{self, Write};

use half::f16;

const MAGIC: u32 = 0x6767_6d6c; // "ggml"

/// How the big matrices are stored. Biases, norms and positional embeddings stay f32 and the
/// convolutions f16 either way, as whisper.cpp expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightType {
    F16,
    /// 8-bit blocks of 32 with an f16 scale: half the size of f16, and faster on CPU.
    Q8_0,
}

impl WeightType {
    /// The header's `ftype`: ggml's file type, plus the quantization version (2) × 1000 for a
    /// quantized file, as whisper.cpp's own `quantize` writes it.
    fn file_type(self) -> i32 {
        match self {
            Self::F16 => 1,
            Self::Q8_0 => 2 * 1000 + 7,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HyperParams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
}

/// A tensor's storage in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    F32,
    F16,
    Q8_0,
}

impl Storage {
    /// ggml's type numbers.
    fn id(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 8,
        }
    }
}

pub struct Writer<W: Write> {
    out: W,
    weights: WeightType,
}

impl<W: Write> Writer<W> {
    pub fn new(
        mut out: W,
        hp: &HyperParams,
        weights: WeightType,
        filters: &[f32],
        tokens: &[Vec<u8>],
    ) -> io::Result<Self> {
        out.write_all(&MAGIC.to_le_bytes())?;
        for v in [
            hp.n_vocab,
            hp.n_audio_ctx,
            hp.n_audio_state,
            hp.n_audio_head,
            hp.n_audio_layer,
            hp.n_text_ctx,
            hp.n_text_state,
            hp.n_text_head,
            hp.n_text_layer,
            hp.n_mels,
        ] {
            out.write_all(&(v as i32).to_le_bytes())?;
        }
        out.write_all(&weights.file_type().to_le_bytes())?;
        let bins = filters.len() / hp.n_mels;
        out.write_all(&(hp.n_mels as i32).to_le_bytes())?;
        out.write_all(&(bins as i32).to_le_bytes())?;
        for w in filters {
            out.write_all(&w.to_le_bytes())?;
        }
        out.write_all(&(tokens.len() as i32).to_le_bytes())?;
        for t in tokens {
            out.write_all(&(t.len() as u32).to_le_bytes())?;
            out.write_all(t)?;
        }
        Ok(Self { out, weights })
    }

    /// Where a tensor of this shape and name goes: matrices at the chosen weight type, except
    /// the convolutions (f16) and positional embeddings (f32); everything 1-D in f32.
    pub fn storage(&self, name: &str, shape: &[usize]) -> Storage {
        if shape.len() < 2
            || name.ends_with("positional_embedding")
            || name.contains(".conv") && name.ends_with("bias")
        {
            return Storage::F32;
        }
        match self.weights {
            WeightType::Q8_0 if shape.len() == 2 && shape[1] % Q8_BLOCK == 0 => Storage::Q8_0,
            _ => Storage::F16,
        }
    }

    /// Writes one tensor; `shape` is outermost first, as in PyTorch.
    pub fn tensor(&mut self, name: &str, shape: &[usize], data: &[f32]) -> io::Result<()> {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        let storage = self.storage(name, shape);
        let out = &mut self.out;
        out.write_all(&(shape.len() as i32).to_le_bytes())?;
        out.write_all(&(name.len() as i32).to_le_bytes())?;
        out.write_all(&storage.id().to_le_bytes())?;
        for d in shape.iter().rev() {
            out.write_all(&(*d as i32).to_le_bytes())?;
        }
        out.write_all(name.as_bytes())?;
        let mut buf = Vec::with_capacity(data.len() * 2);
        match storage {
            Storage::F32 => data
                .iter()
                .for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
            Storage::F16 => data
                .iter()
                .for_each(|v| buf.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
            Storage::Q8_0 => data
                .chunks(Q8_BLOCK)
                .for_each(|b| quantize_q8_0(b, &mut buf)),
        }
        out.write_all(&buf)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

const Q8_BLOCK: usize = 32;

/// ggml's `quantize_row_q8_0_ref`: scale = max |x| / 127 (as f16), then each value rounded to
/// an i8 multiple of it.
fn quantize_q8_0(block: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(block.len(), Q8_BLOCK);
    let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = amax / 127.0;
    let inverse = if scale == 0.0 { 0.0 } else { 1.0 / scale };
    out.extend_from_slice(&f16::from_f32(scale).to_le_bytes());
    out.extend(block.iter().map(|v| (v * inverse).round() as i8 as u8));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_blocks_round_trip_within_about_half_a_step() {
        let block: Vec<f32> = (0..32).map(|i| (i as f32 - 13.0) * 0.37).collect();
        let mut out = Vec::new();
        quantize_q8_0(&block, &mut out);
        assert_eq!(out.len(), 34);
        let scale = f16::from_le_bytes([out[0], out[1]]).to_f32();
        for (v, q) in block.iter().zip(&out[2..]) {
            let back = f32::from(*q as i8) * scale;
            // Half a step, plus the f16 rounding of the scale times up to 127 steps.
            assert!((back - v).abs() <= scale * 0.6, "{v} came back as {back}");
        }
        let mut zeros = Vec::new();
        quantize_q8_0(&[0.0; 32], &mut zeros);
        assert!(zeros.iter().all(|b| *b == 0));
    }

    #[test]
    fn storage_follows_whisper_cpp() {
        let hp = HyperParams {
            n_vocab: 1,
            n_audio_ctx: 1,
            n_audio_state: 1,
            n_audio_head: 1,
            n_audio_layer: 1,
            n_text_ctx: 1,
            n_text_state: 1,
            n_text_head: 1,
            n_text_layer: 1,
            n_mels: 1,
        };
        let w = Writer::new(Vec::new(), &hp, WeightType::Q8_0, &[0.0], &[]).unwrap();
        assert_eq!(
            w.storage("encoder.conv1.weight", &[384, 80, 3]),
            Storage::F16
        );
        assert_eq!(w.storage("encoder.conv1.bias", &[384, 1]), Storage::F32);
        assert_eq!(
            w.storage("encoder.positional_embedding", &[1500, 384]),
            Storage::F32
        );
        assert_eq!(
            w.storage("decoder.token_embedding.weight", &[51864, 384]),
            Storage::Q8_0
        );
        assert_eq!(
            w.storage("encoder.blocks.0.attn_ln.weight", &[384]),
            Storage::F32
        );
    }
}
