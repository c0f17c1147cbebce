//! `bert4rs extend-positions`: a BERT/RoBERTa directory with a longer position table, for
//! inputs past the length it was trained on.

use bert4rs::error::Result;
use bert4rs::models::positions::extend_positions;
use bert4rs::nn::positions::Extension;
use std::path::PathBuf;

/// How the new rows are filled.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Method {
    /// Repeat the trained table.
    Copy,
    /// Su Jianlin's hierarchical decomposition: the trained rows stay, later ones are distinct.
    Hierarchical,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// HF model directory (config.json + weights), or `asset:<name>`.
    #[arg(long)]
    model: String,
    /// New `max_position_embeddings` (larger than the current one).
    #[arg(long)]
    to: usize,
    /// copy or hierarchical (a sinusoidal table is recomputed whatever is chosen).
    #[arg(long, value_enum, default_value = "hierarchical")]
    method: Method,
    /// Hierarchical only: weight of the coarse part, in (0, 1).
    #[arg(long, default_value_t = 0.4)]
    alpha: f64,
    /// Output directory (a new HF directory; tokenizer files are copied).
    #[arg(long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let how = match a.method {
        Method::Copy => Extension::Copy,
        Method::Hierarchical => Extension::Hierarchical { alpha: a.alpha },
    };
    let model = bert4rs::assets::resolve_dir(&a.model)?;
    let summary = extend_positions(&model, a.to, how, &a.output)?;
    println!("{}", serde_json::json!(summary));
    Ok(())
}
