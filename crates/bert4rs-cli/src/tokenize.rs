//! `bert4rs tokenize`: JSON lines of ids, segments, masks and character offsets.

use super::{PaddingArg, TokenizeOpts};
use bert4rs::data::input::read_examples;
use bert4rs::error::{Error, Result};
use bert4rs::tokenize::{EncodeOptions, Padding};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model or tokenizer directory (tokenizer.json, or vocab.txt [+ tokenizer_config.json]).
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Input: UTF-8 text, one example per line, or .jsonl with `text` and optional `text_pair`.
    #[arg(long)]
    input: PathBuf,
    /// Output file (default: stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Pad the whole input as one batch.
    #[arg(long)]
    padding: Option<PaddingArg>,
    #[command(flatten)]
    opts: TokenizeOpts,
}

pub fn run(a: Args) -> Result<()> {
    let tok = a.opts.load_tokenizer(&a.model)?;
    let inputs = read_examples(&a.input)?;
    let opts = EncodeOptions {
        max_length: a.opts.max_length,
        padding: match a.padding {
            None => Padding::None,
            Some(PaddingArg::Longest) => Padding::Longest,
            Some(PaddingArg::MaxLength) => Padding::MaxLength,
        },
        truncation: a.opts.truncation(),
    };
    let encs = tok.encode_batch(&inputs, &opts)?;
    let mut out = Vec::new();
    for e in &encs {
        let line = serde_json::json!({
            "input_ids": e.input_ids,
            "token_type_ids": e.token_type_ids,
            "attention_mask": e.attention_mask,
            "offsets": e.offsets,
        });
        writeln!(out, "{line}").map_err(|e| Error::Invalid(e.to_string()))?;
    }
    match a.output {
        Some(p) => bert4rs::util::write_atomic(&p, &out),
        None => std::io::stdout()
            .write_all(&out)
            .map_err(|e| Error::io("<stdout>", e)),
    }
}
