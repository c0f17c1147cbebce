//! `bert4rs quantize`: write an int8 copy of a BERT-family model directory that `embed`,
//! `predict`, `eval`, `index`, `serve` and the Python package load as they load the f32 one.

use bert4rs::error::{Error, Result};
use bert4rs::kernels::CodeWidth;
use bert4rs::models::quantize::quantize_dir;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// f32 model directory: a sentence encoder, classifier, tagger or relation model.
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Output directory: int8 weights (per output channel) for the encoder's linear layers,
    /// everything else as it is, tokenizer and side files copied.
    #[arg(long)]
    output: PathBuf,
    /// Bits per activation code the model runs with, 12, 8 or 7 (as `--int8-activations` of
    /// the other commands, which can still override it).
    #[arg(long = "int8-activations", default_value = "12", value_parser = super::int8_bits)]
    bits: CodeWidth,
}

pub fn run(a: Args) -> Result<()> {
    let summary = quantize_dir(&a.model, &a.output, a.bits)?;
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
    println!("{json}");
    Ok(())
}
