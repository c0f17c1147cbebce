//! `bert4rs eval-embeddings`: how good a model's sentence embeddings are on text pairs —
//! Wang & Isola's alignment and uniformity, and, with gold similarity scores, Spearman's
//! correlation of cosine with them (SimCSE's STS evaluation) — for one or more poolings.

use super::TokenizeOpts;
use bert4rs::data::dataset::{read_labelled, DataConfig, RawLabel};
use bert4rs::error::{Error, Result};
use bert4rs::train::embedding_metrics::{alignment, sts_spearman, uniformity};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// HF model directory.
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Pairs: .jsonl / .csv / .tsv with `text`, `text_pair` and optionally a score.
    #[arg(long)]
    data: PathBuf,
    /// Field of the gold similarity score (pairs without one: every pair is a positive).
    #[arg(long, default_value = "label")]
    score_field: String,
    /// Poolings to compare, comma-separated (default: the model's own, else mean), e.g.
    /// `mean,cls,first_last_avg`.
    #[arg(long)]
    pooling: Option<String>,
    /// Pairs scored at least this are the positives of alignment (SimCSE: 4 of STS's 0–5).
    #[arg(long, default_value_t = 4.0)]
    positive_threshold: f64,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one())]
    batch_size: usize,
    #[command(flatten)]
    opts: TokenizeOpts,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = DataConfig {
        text_pair_field: Some("text_pair".into()),
        label_field: a.score_field.clone(),
        ..Default::default()
    };
    let examples = read_labelled(&a.data, &cfg, false)?;
    let mut pairs = Vec::with_capacity(examples.len());
    let mut scores = Vec::new();
    for e in &examples {
        let pair = e.text_pair.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "{}:{}: no `text_pair`: eval-embeddings reads pairs",
                a.data.display(),
                e.line
            ))
        })?;
        match &e.label {
            Some(RawLabel::Number(x)) => scores.push(*x),
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "{}:{}: `{}` must be a number (a similarity score)",
                    a.data.display(),
                    e.line,
                    a.score_field
                )))
            }
            None => {}
        }
        pairs.push((e.text.clone(), pair));
    }
    if !scores.is_empty() && scores.len() != pairs.len() {
        return Err(Error::Invalid(format!(
            "{}: {} of {} pairs have a score; score all or none",
            a.data.display(),
            scores.len(),
            pairs.len()
        )));
    }
    let poolings: Vec<Option<String>> = match &a.pooling {
        Some(list) => list
            .split(',')
            .map(|p| Some(p.trim().to_string()))
            .collect(),
        None => vec![None],
    };
    let mut out = Vec::new();
    for p in poolings {
        out.push(evaluate(&a, p.as_deref(), &pairs, &scores)?);
    }
    let text = serde_json::to_string_pretty(&out).map_err(|e| Error::Invalid(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn evaluate(
    a: &Args,
    pooling: Option<&str>,
    pairs: &[(String, String)],
    scores: &[f64],
) -> Result<serde_json::Value> {
    let enc = super::embed::encoder(&a.model, pooling, false, a.batch_size, &a.opts, false)?;
    // Each distinct sentence once: uniformity is over sentences, not pair slots.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut texts: Vec<&str> = Vec::new();
    for (x, y) in pairs {
        for t in [x.as_str(), y.as_str()] {
            index.entry(t).or_insert_with(|| {
                texts.push(t);
                texts.len() - 1
            });
        }
    }
    let vecs = enc.embed(&texts)?;
    let v = |t: &str| vecs[index[t]].as_slice();
    let all: Vec<(&[f32], &[f32])> = pairs.iter().map(|(x, y)| (v(x), v(y))).collect();
    let positives: Vec<(&[f32], &[f32])> = match scores.is_empty() {
        true => all.clone(),
        false => (all.iter().zip(scores))
            .filter(|(_, s)| **s >= a.positive_threshold)
            .map(|(p, _)| *p)
            .collect(),
    };
    let sentences: Vec<&[f32]> = vecs.iter().map(Vec::as_slice).collect();
    Ok(serde_json::json!({
        "pooling": enc.pooling().to_string(),
        "pairs": pairs.len(),
        "positives": positives.len(),
        "sentences": texts.len(),
        "alignment": alignment(&positives)?,
        "uniformity": uniformity(&sentences)?,
        "spearman": (!scores.is_empty()).then(|| sts_spearman(&all, scores)),
    }))
}
