//! How good sentence embeddings are, as the SimCSE paper measures them: Wang & Isola's
//! alignment (positive pairs close) and uniformity (all embeddings spread over the sphere),
//! and Spearman's correlation of cosine similarity with gold similarity scores (STS).

use super::metrics::spearman;
use crate::error::{Error, Result};

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
