//! `bert4rs embed`: one sentence embedding per input line, in input order.

use super::TokenizeOpts;
use bert4rs::data::input::read_examples;
use bert4rs::error::{Error, Result};
use bert4rs::models::hub::WeightStorage;
use bert4rs::nn::Pooling;
use bert4rs::tasks::embed::{read_st_config, SentenceEncoder};
use candle_core::Device;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// HF model directory (a sentence-transformers layout sets pooling/normalize defaults).
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Input: UTF-8 text, one example per line, or .jsonl with `text` and optional `text_pair`.
    #[arg(long)]
    input: PathBuf,
    /// Output .jsonl file: one {"embedding": [...]} per input line.
    #[arg(long)]
    output: PathBuf,
    /// Pooling: cls, pooler, mean, max, min, mean_kmax[:k], first_last_avg,
    /// last4_concat_cls, weighted_layer[:start], attention (default: the model's
    /// sentence-transformers config, else mean).
    #[arg(long)]
    pooling: Option<String>,
    /// L2-normalise the embeddings (default: on when the model declares a Normalize module).
    #[arg(long)]
    normalize: bool,
    /// Texts per forward pass (inputs are sorted by length first).
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one())]
    batch_size: usize,
    /// Run the encoder on dynamically quantised int8 (weights per output channel, each
    /// token's activations at run time): about 1.3-1.6x faster on AVX2, embeddings within
    /// cosine 0.999 of f32 (0.99 with --int8-activations 7).
    #[arg(long)]
    int8: bool,
    #[command(flatten)]
    int8_activations: super::Int8Activations,
    /// Weight storage: f32, or bf16 (half the weight memory, f32 arithmetic; not with
    /// --int8).
    #[arg(long, value_enum, default_value = "f32", conflicts_with = "int8")]
    dtype: super::WeightDtype,
    #[command(flatten)]
    opts: TokenizeOpts,
}

pub fn run(a: Args) -> Result<()> {
    let enc = encoder(
        &a.model,
        a.pooling.as_deref(),
        a.normalize,
        a.batch_size,
        &a.opts,
        (a.int8_activations.with(a.int8), a.dtype.storage()),
    )?;
    let inputs = read_examples(&a.input)?;
    let bar = super::progress_bar(inputs.len(), 256);
    let vecs = enc.embed_inputs(&inputs, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let mut out = Vec::with_capacity(vecs.len() * 64);
    for v in vecs {
        let line = serde_json::json!({ "embedding": v });
        writeln!(out, "{line}").map_err(|e| Error::Invalid(e.to_string()))?;
    }
    bert4rs::util::write_atomic(&a.output, &out)
}

/// The sentence encoder `embed` and `index` share: pooling and normalisation from the
/// arguments, else from the model's sentence-transformers config; `--max-length`, else the
/// model's `max_seq_length`, else (with `--truncation`) its position table; `int8`: the
/// dynamically quantised encoder.
pub fn encoder(
    model: &Path,
    pooling: Option<&str>,
    normalize: bool,
    batch_size: usize,
    opts: &TokenizeOpts,
    (int8, storage): (Option<bert4rs::kernels::CodeWidth>, WeightStorage),
) -> Result<SentenceEncoder> {
    let st = read_st_config(model)?;
    let pooling: Pooling = match pooling {
        Some(p) => p.parse()?,
        None => st.as_ref().map(|s| s.pooling).unwrap_or(Pooling::Mean),
    };
    let mut enc = SentenceEncoder::with_pooling_as(model, pooling, &Device::Cpu, storage)?;
    if opts.nfkc {
        enc.tokenizer.enable_nfkc()?;
    }
    enc.normalize = normalize || st.as_ref().is_some_and(|s| s.normalize);
    enc.max_length = opts
        .max_length
        .or(st.as_ref().and_then(|s| s.max_seq_length))
        .or(if opts.truncation.is_some() {
            Some(enc.model.config().max_sequence_length())
        } else {
            None
        });
    enc.batch_size = batch_size;
    if let Some(width) = int8 {
        enc.quantize_int8(width)?;
    }
    Ok(enc)
}
