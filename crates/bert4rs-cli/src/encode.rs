//! `bert4rs encode`: hidden states of every layer to a safetensors file.

use super::TokenizeOpts;
use bert4rs::data::{batch::to_encoder_input, input::read_examples};
use bert4rs::error::Result;
use bert4rs::models::{hub::write_safetensors, load_encoder};
use bert4rs::tokenize::{EncodeOptions, Padding};
use candle_core::{DType, Device};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// HF model directory.
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Input: UTF-8 text, one example per line, or .jsonl with `text` and optional `text_pair`.
    #[arg(long)]
    input: PathBuf,
    /// Output .safetensors file.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    opts: TokenizeOpts,
}

pub fn run(a: Args) -> Result<()> {
    let tok = a.opts.load_tokenizer(&a.model)?;
    let dev = Device::Cpu;
    let loaded = load_encoder(&a.model, &dev, false)?;
    super::inspect::warn_unused(&loaded.unused);
    let inputs = read_examples(&a.input)?;
    let opts = EncodeOptions {
        max_length: a.opts.max_length,
        padding: Padding::Longest,
        truncation: a.opts.truncation(),
    };
    let encs = tok.encode_batch(&inputs, &opts)?;
    let input = to_encoder_input(&encs, &dev)?;
    let out = loaded.model.forward(&input, false)?;
    let mut tensors = vec![
        (
            "input_ids".to_string(),
            input.input_ids.to_dtype(DType::I64)?,
        ),
        (
            "attention_mask".to_string(),
            input.attention_mask.to_dtype(DType::I64)?,
        ),
        (
            "token_type_ids".to_string(),
            input.token_type_ids.to_dtype(DType::I64)?,
        ),
        (
            "last_hidden_state".to_string(),
            out.last_hidden_state.clone(),
        ),
    ];
    if let Some(p) = &out.pooler_output {
        tensors.push(("pooler_output".to_string(), p.clone()));
    }
    for (i, h) in out.hidden_states.iter().enumerate() {
        tensors.push((format!("hidden_states.{i}"), h.clone()));
    }
    write_safetensors(&tensors, &a.output)
}
