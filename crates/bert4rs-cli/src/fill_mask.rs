//! `bert4rs fill-mask`: for every `[MASK]` of each input line, the top-k tokens and their
//! probabilities, as HF's `fill-mask` pipeline returns them.

use bert4rs::data::batch::{length_sorted_batches, pad_batch, to_encoder_input};
use bert4rs::data::input::read_examples;
use bert4rs::error::{Error, Result};
use bert4rs::tasks::masked_lm::MaskedLm;
use bert4rs::tokenize::{EncodeOptions, Tokenizer};
use candle_core::Device;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A masked-LM directory (`BertForMaskedLM`, e.g. `bert4rs pretrain`'s `best/`).
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Texts with `[MASK]` (the tokenizer's mask token): .txt one per line, or
    /// .jsonl / .csv / .tsv with a `text` field.
    #[arg(long)]
    input: PathBuf,
    /// Output .jsonl, one `{"masks": [[{"token", "token_str", "score"}, ...], ...]}` per
    /// line (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Candidates per mask.
    #[arg(long, default_value_t = 5, value_parser = super::at_least_one())]
    top_k: usize,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one())]
    batch_size: usize,
}

pub fn run(a: Args) -> Result<()> {
    let tok = Tokenizer::from_dir(&a.model)?;
    let mask_token = "[MASK]";
    let mask_id = tok.token_to_id(mask_token).ok_or_else(|| {
        Error::config(
            &a.model,
            "the tokenizer has no [MASK] token: not a masked-LM model",
        )
    })?;
    let model = MaskedLm::from_dir(&a.model, &Device::Cpu, false)?;
    let inputs = read_examples(&a.input)?;
    if inputs.is_empty() {
        return Err(Error::Input {
            path: a.input.clone(),
            line: 1,
            msg: "no text in the file".into(),
        });
    }
    let encs = tok.encode_batch(&inputs, &EncodeOptions::default())?;
    let max = model.encoder().config().max_sequence_length();
    // Every line is checked before any model work, so a bad line costs nothing.
    for (i, e) in encs.iter().enumerate() {
        let bad = |msg: String| Error::Input {
            path: a.input.clone(),
            line: i + 1,
            msg,
        };
        if !e.input_ids.contains(&mask_id) {
            return Err(bad(format!("no {mask_token} in the text")));
        }
        if e.input_ids.len() > max {
            return Err(bad(format!(
                "{} tokens, more than the model's {max} positions",
                e.input_ids.len()
            )));
        }
    }
    let lengths: Vec<usize> = encs.iter().map(|e| e.input_ids.len()).collect();
    let mut rows: Vec<serde_json::Value> = vec![serde_json::Value::Null; encs.len()];
    for idx in length_sorted_batches(&lengths, a.batch_size) {
        let batch: Vec<_> = idx.iter().map(|&i| encs[i].clone()).collect();
        let input = to_encoder_input(&pad_batch(&batch, tok.pad_id()), &Device::Cpu)?;
        let found = model.fill_mask(&input, mask_id, a.top_k)?;
        for (&i, masks) in idx.iter().zip(found) {
            let masks: Vec<Vec<serde_json::Value>> = masks
                .into_iter()
                .map(|cands| {
                    cands
                        .into_iter()
                        .map(|(id, p)| {
                            let s = tok.decode_with(&[id], false).unwrap_or_default();
                            json!({"token": id, "token_str": s, "score": p})
                        })
                        .collect()
                })
                .collect();
            rows[i] = json!({ "masks": masks });
        }
    }
    let mut out = Vec::new();
    for r in &rows {
        writeln!(out, "{r}").map_err(|e| Error::Invalid(e.to_string()))?;
    }
    match &a.output {
        Some(p) => bert4rs::util::write_atomic(p, &out),
        None => std::io::stdout()
            .write_all(&out)
            .map_err(|e| Error::io("<stdout>", e)),
    }
}
