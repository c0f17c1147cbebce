//! `bert4rs prepare`: writes a fetched corpus as JSON lines the trainer reads.

use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The corpus: spam-assassin.
    corpus: String,
    /// Output .jsonl ({"text", "label"} per line).
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
        other => Err(Error::Invalid(format!(
            "unknown corpus `{other}` (known: spam-assassin; polarity-en is a CSV the trainer reads directly)"
        ))),
    }
}
