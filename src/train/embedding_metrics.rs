//! How good sentence embeddings are, as the SimCSE paper measures them: Wang & Isola's
//! alignment (positive pairs close) and uniformity (all embeddings spread over the sphere),
//! and Spearman's correlation of cosine similarity with gold similarity scores (STS).

use super::metrics::spearman;
use crate::data::dataset::{read_labelled, DataConfig, RawLabel};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// `v / ‖v‖` (zero stays zero).
fn unit(v: &[f32]) -> Vec<f64> {
    let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    v.iter()
        .map(|x| if n > 0.0 { f64::from(*x) / n } else { 0.0 })
        .collect()
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// Alignment: the mean of `‖f(x) − f(y)‖²` over positive pairs, on unit vectors (α = 2;
/// 0 best, 4 worst).
pub fn alignment(pairs: &[(&[f32], &[f32])]) -> Result<f64> {
    if pairs.is_empty() {
        return Err(Error::Invalid(
            "alignment needs at least one positive pair".into(),
        ));
    }
    let total: f64 = pairs.iter().map(|(a, b)| sq_dist(&unit(a), &unit(b))).sum();
    Ok(total / pairs.len() as f64)
}

/// Uniformity: `log` of the mean of `exp(−2‖f(x) − f(y)‖²)` over all pairs of distinct
/// embeddings, on unit vectors (t = 2; lower is more uniform, −4 is the least possible).
pub fn uniformity(vectors: &[&[f32]]) -> Result<f64> {
    if vectors.len() < 2 {
        return Err(Error::Invalid(
            "uniformity needs at least two embeddings".into(),
        ));
    }
    let units: Vec<Vec<f64>> = vectors.iter().map(|v| unit(v)).collect();
    let (mut sum, mut n) = (0.0, 0u64);
    for i in 0..units.len() {
        for j in i + 1..units.len() {
            sum += (-2.0 * sq_dist(&units[i], &units[j])).exp();
            n += 1;
        }
    }
    Ok((sum / n as f64).ln())
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    unit(a).iter().zip(unit(b)).map(|(x, y)| x * y).sum()
}

/// Spearman correlation of each pair's cosine with its gold score.
pub fn sts_spearman(pairs: &[(&[f32], &[f32])], gold: &[f64]) -> f64 {
    let cos: Vec<f64> = pairs.iter().map(|(a, b)| cosine(a, b)).collect();
    spearman(&cos, gold)
}

/// The two vectors of a sentence pair.
pub type VectorPair<'a> = (&'a [f32], &'a [f32]);

/// A file of sentence pairs, each distinct sentence once (uniformity is over sentences, not
/// pair slots), with gold similarity scores when the file has them.
pub struct SentencePairs {
    /// The distinct sentences, in order of first appearance.
    pub sentences: Vec<String>,
    /// Each row's two sentences, as indices into `sentences`.
    pub pairs: Vec<(usize, usize)>,
    /// Each row's score (`cfg.label_field`), when every row has one.
    pub scores: Option<Vec<f64>>,
}

impl SentencePairs {
    /// Reads `path` with `cfg` (whose `text_pair_field` names the second sentence): a row
    /// without a pair or with a non-numeric score, or scores on only some rows, is an error
    /// naming the file (and line).
    pub fn read(path: &Path, cfg: &DataConfig) -> Result<Self> {
        let field = cfg.text_pair_field.as_deref().unwrap_or("text_pair");
        let rows = read_labelled(path, cfg, false)?;
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut sentences: Vec<String> = Vec::new();
        let mut id = |t: &str| -> usize {
            *index.entry(t.to_string()).or_insert_with(|| {
                sentences.push(t.to_string());
                sentences.len() - 1
            })
        };
        let (mut pairs, mut scores) = (Vec::new(), Vec::new());
        for e in &rows {
            let bad = |msg: String| Error::Input {
                path: path.into(),
                line: e.line,
                msg,
            };
            let b = (e.text_pair.as_deref())
                .ok_or_else(|| bad(format!("no `{field}`: sentence pairs are needed here")))?;
            pairs.push((id(&e.text), id(b)));
            match &e.label {
                Some(RawLabel::Number(x)) => scores.push(*x),
                None => {}
                Some(_) => {
                    return Err(bad(format!(
                        "`{}` must be a number (a similarity score)",
                        cfg.label_field
                    )))
                }
            }
        }
        if !scores.is_empty() && scores.len() != pairs.len() {
            return Err(Error::config(
                path,
                format!(
                    "{} of {} pairs have a score; score all or none",
                    scores.len(),
                    pairs.len()
                ),
            ));
        }
        Ok(SentencePairs {
            sentences,
            pairs,
            scores: (!scores.is_empty()).then_some(scores),
        })
    }

    /// Every pair's two vectors (`vecs` one per sentence), and the positives among them:
    /// pairs scored at least `threshold`, or every pair when there are no scores.
    pub fn vectors<'a>(
        &self,
        vecs: &'a [Vec<f32>],
        threshold: f64,
    ) -> (Vec<VectorPair<'a>>, Vec<VectorPair<'a>>) {
        let all: Vec<(&[f32], &[f32])> = (self.pairs.iter())
            .map(|&(a, b)| (vecs[a].as_slice(), vecs[b].as_slice()))
            .collect();
        let positives = match &self.scores {
            None => all.clone(),
            Some(s) => (all.iter().zip(s))
                .filter(|(_, x)| **x >= threshold)
                .map(|(p, _)| *p)
                .collect(),
        };
        (all, positives)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_zero_for_equal_directions_and_two_for_orthogonal_ones() {
        let (a, b, c) = ([1.0f32, 0.0], [3.0f32, 0.0], [0.0f32, 2.0]);
        assert_eq!(alignment(&[(&a, &b)]).unwrap(), 0.0);
        assert!((alignment(&[(&a, &c)]).unwrap() - 2.0).abs() < 1e-12);
        assert!((alignment(&[(&a, &b), (&a, &c)]).unwrap() - 1.0).abs() < 1e-12);
        assert!(alignment(&[]).is_err());
    }

    #[test]
    fn uniformity_of_opposite_points_is_minus_eight() {
        let (a, b) = ([1.0f32, 0.0], [-2.0f32, 0.0]);
        assert!((uniformity(&[&a, &b]).unwrap() + 8.0).abs() < 1e-12);
        // Three points: pairs at squared distances 4, 2, 2.
        let c = [0.0f32, 1.0];
        let want = (((-8.0f64).exp() + 2.0 * (-4.0f64).exp()) / 3.0).ln();
        assert!((uniformity(&[&a, &b, &c]).unwrap() - want).abs() < 1e-12);
        assert!(uniformity(&[&a]).is_err());
    }

    #[test]
    fn sts_spearman_ranks_cosines_against_scores_with_ties() {
        let v = [[1.0f32, 0.0], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]];
        let pairs: Vec<(&[f32], &[f32])> = v.iter().map(|b| (&v[0][..], &b[..])).collect();
        // Cosines fall 1, 0.98, 0.71, 0: scores in the same order give 1, reversed −1.
        assert!((sts_spearman(&pairs, &[5.0, 4.0, 2.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!((sts_spearman(&pairs, &[0.0, 1.0, 2.0, 3.0]) + 1.0).abs() < 1e-12);
        // scipy.stats.spearmanr([1, .98, .71, 0], [3, 3, 1, 2]).statistic (scipy 1.17.1)
        let r = sts_spearman(&pairs, &[3.0, 3.0, 1.0, 2.0]);
        assert!((r - 0.737_864_787_372_621_8).abs() < 1e-12, "{r}");
    }
}
