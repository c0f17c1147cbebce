//! `bert4rs segment`: Chinese word segmentation with a character-tagging model (trained on
//! `bert4rs prepare zh-seg` data): one line of space-separated words per input text.

use super::DataArgs;
use bert4rs::error::Result;
use bert4rs::train::predict::EntityTagger;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Segmentation model (`bert4rs train --config configs/zh-seg-bilstm-crf.toml`).
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Input texts: .txt (one per line), .csv / .tsv / .jsonl (the text field).
    #[arg(long)]
    input: PathBuf,
    /// Output: one line per text, its words separated by spaces (.jsonl: {"words": [...]}).
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    fields: DataArgs,
}

pub fn run(a: Args) -> Result<()> {
    if !bert4rs::tasks::token_classify::is_token_model(&a.model) {
        return Err(bert4rs::Error::Invalid(format!(
            "{} is not a token-classification model: segment needs a character tagger \
             (bert4rs train --config configs/zh-seg-bilstm-crf.toml)",
            a.model.display()
        )));
    }
    let tagger = EntityTagger::from_dir(&a.model)?;
    let ex = bert4rs::data::dataset::read_labelled(&a.input, &a.fields.config(), false)?;
    let words = tagger.segment(&a.input, ex, a.fields.max_length, a.fields.batch_size)?;
    let jsonl = a.output.extension().is_some_and(|e| e == "jsonl");
    let mut out = String::new();
    for w in &words {
        match jsonl {
            true => out.push_str(&serde_json::json!({ "words": w }).to_string()),
            false => out.push_str(&w.join(" ")),
        }
        out.push('\n');
    }
    bert4rs::util::write_atomic(&a.output, out.as_bytes())?;
    eprintln!("{} texts segmented → {}", words.len(), a.output.display());
    Ok(())
}
