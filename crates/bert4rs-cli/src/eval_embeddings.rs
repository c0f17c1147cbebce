//! `bert4rs eval-embeddings`: how good a model's sentence embeddings are on text pairs —
//! Wang & Isola's alignment and uniformity, and, with gold similarity scores, Spearman's
//! correlation of cosine with them (SimCSE's STS evaluation) — for one or more poolings.

use super::TokenizeOpts;
use bert4rs::data::dataset::DataConfig;
use bert4rs::error::{Error, Result};
use bert4rs::train::embedding_metrics::{alignment, sts_spearman, uniformity, SentencePairs};
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
    let data = SentencePairs::read(&a.data, &cfg)?;
    let poolings: Vec<Option<String>> = match &a.pooling {
        Some(list) => list
            .split(',')
            .map(|p| Some(p.trim().to_string()))
            .collect(),
        None => vec![None],
    };
    let mut out = Vec::new();
    for p in poolings {
        out.push(evaluate(&a, p.as_deref(), &data)?);
    }
    let text = serde_json::to_string_pretty(&out).map_err(|e| Error::Invalid(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn evaluate(a: &Args, pooling: Option<&str>, data: &SentencePairs) -> Result<serde_json::Value> {
    let enc = super::embed::encoder(
        &a.model,
        pooling,
        false,
        a.batch_size,
        &a.opts,
        (None, bert4rs::models::hub::WeightStorage::F32),
    )?;
    let vecs = enc.embed(&data.sentences)?;
    let (all, positives) = data.vectors(&vecs, a.positive_threshold);
    let sentences: Vec<&[f32]> = vecs.iter().map(Vec::as_slice).collect();
    Ok(serde_json::json!({
        "pooling": enc.pooling().to_string(),
        "pairs": all.len(),
        "positives": positives.len(),
        "sentences": data.sentences.len(),
        "alignment": alignment(&positives)?,
        "uniformity": uniformity(&sentences)?,
        "spearman": data.scores.as_ref().map(|s| sts_spearman(&all, s)),
    }))
}
