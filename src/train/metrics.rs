//! Evaluation metrics: accuracy, macro/micro precision-recall-F1, a per-class table and the
//! confusion matrix (sklearn's conventions: a ratio with a zero denominator is 0), plus the
//! regression metrics and the notes' P/R/F1-by-sentence-length buckets.

use serde::{Deserialize, Serialize};

/// One row of the per-class table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    /// Label name.
    pub label: String,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Gold examples of the class.
    pub support: usize,
}

/// Classification metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Fraction exactly right (subset accuracy for multi-label).
    pub accuracy: f64,
    /// Unweighted mean over classes.
    pub macro_precision: f64,
    /// Unweighted mean over classes.
    pub macro_recall: f64,
    /// Unweighted mean of the per-class F1.
    pub macro_f1: f64,
    /// From pooled counts.
    pub micro_precision: f64,
    /// From pooled counts.
    pub micro_recall: f64,
    /// From pooled counts (= accuracy for single-label).
    pub micro_f1: f64,
    /// Per class.
    pub per_class: Vec<ClassRow>,
    /// `confusion[gold][pred]` (single-label only; empty otherwise).
    pub confusion: Vec<Vec<usize>>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Metrics from per-class true-positive / predicted / gold counts.
fn from_counts(
    tp: &[usize],
    pred: &[usize],
    gold: &[usize],
    labels: &[String],
    exact: f64,
) -> ClassMetrics {
    let per_class: Vec<ClassRow> = labels
        .iter()
        .enumerate()
        .map(|(c, l)| {
            let p = ratio(tp[c], pred[c]);
            let r = ratio(tp[c], gold[c]);
            ClassRow {
                label: l.clone(),
                precision: p,
                recall: r,
                f1: f1(p, r),
                support: gold[c],
            }
        })
        .collect();
    let k = labels.len().max(1) as f64;
    let (stp, spred, sgold) = (tp.iter().sum(), pred.iter().sum(), gold.iter().sum());
    let (mp, mr) = (ratio(stp, spred), ratio(stp, sgold));
    ClassMetrics {
        accuracy: exact,
        macro_precision: per_class.iter().map(|r| r.precision).sum::<f64>() / k,
        macro_recall: per_class.iter().map(|r| r.recall).sum::<f64>() / k,
        macro_f1: per_class.iter().map(|r| r.f1).sum::<f64>() / k,
        micro_precision: mp,
        micro_recall: mr,
        micro_f1: f1(mp, mr),
        per_class,
        confusion: Vec::new(),
    }
}

/// Single-label metrics of predicted vs gold class ids.
pub fn classification(gold: &[usize], pred: &[usize], labels: &[String]) -> ClassMetrics {
    let k = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&g, &p) in gold.iter().zip(pred) {
        if g < k && p < k {
            confusion[g][p] += 1;
        }
    }
    let tp: Vec<usize> = (0..k).map(|c| confusion[c][c]).collect();
    let npred: Vec<usize> = (0..k)
        .map(|c| confusion.iter().map(|row| row[c]).sum())
        .collect();
    let ngold: Vec<usize> = confusion.iter().map(|row| row.iter().sum()).collect();
    let correct = gold.iter().zip(pred).filter(|(g, p)| g == p).count();
    let mut m = from_counts(&tp, &npred, &ngold, labels, ratio(correct, gold.len()));
    m.confusion = confusion;
    m
}

/// Multi-label metrics of predicted vs gold label sets (multi-hot rows).
pub fn multilabel(gold: &[Vec<bool>], pred: &[Vec<bool>], labels: &[String]) -> ClassMetrics {
    let k = labels.len();
    let (mut tp, mut np, mut ng) = (vec![0; k], vec![0; k], vec![0; k]);
    let mut exact = 0;
    for (g, p) in gold.iter().zip(pred) {
        exact += usize::from(g == p);
        for c in 0..k {
            tp[c] += usize::from(g[c] && p[c]);
            np[c] += usize::from(p[c]);
            ng[c] += usize::from(g[c]);
        }
    }
    from_counts(&tp, &np, &ng, labels, ratio(exact, gold.len()))
}

/// Regression metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Mean squared error.
    pub mse: f64,
    /// Pearson correlation.
    pub pearson: f64,
    /// Spearman rank correlation.
    pub spearman: f64,
}

/// Pearson r of two series (0 when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (Pearson of the ranks, ties sharing their mean rank, as
/// `scipy.stats.spearmanr`).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// MSE, Pearson and Spearman of predictions vs gold scores.
pub fn regression(gold: &[f64], pred: &[f64]) -> RegressionMetrics {
    let n = gold.len().max(1) as f64;
    RegressionMetrics {
        mse: gold
            .iter()
            .zip(pred)
            .map(|(g, p)| (g - p).powi(2))
            .sum::<f64>()
            / n,
        pearson: pearson(gold, pred),
        spearman: spearman(gold, pred),
    }
}

/// Macro P/R/F1 of the examples whose text length (in characters) falls in one bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthBucket {
    /// Inclusive lower bound, in characters.
    pub from: usize,
    /// Exclusive upper bound.
    pub to: usize,
    /// Examples in the bucket.
    pub count: usize,
    /// Macro precision.
    pub precision: f64,
    /// Macro recall.
    pub recall: f64,
    /// Macro F1.
    pub f1: f64,
}

/// Single-label metrics per length bucket of `width` characters (0-50, 50-100, ...), the
/// notes' grouped bar chart; empty buckets are left out.
pub fn by_length(
    lengths: &[usize],
    gold: &[usize],
    pred: &[usize],
    labels: &[String],
    width: usize,
) -> Vec<LengthBucket> {
    let width = width.max(1);
    let top = lengths.iter().max().copied().unwrap_or(0) / width;
    (0..=top)
        .filter_map(|b| {
            let idx: Vec<usize> = (0..lengths.len())
                .filter(|&i| lengths[i] / width == b)
                .collect();
            if idx.is_empty() {
                return None;
            }
            let g: Vec<usize> = idx.iter().map(|&i| gold[i]).collect();
            let p: Vec<usize> = idx.iter().map(|&i| pred[i]).collect();
            let m = classification(&g, &p, labels);
            Some(LengthBucket {
                from: b * width,
                to: (b + 1) * width,
                count: idx.len(),
                precision: m.macro_precision,
                recall: m.macro_recall,
                f1: m.macro_f1,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sklearn_on_a_hand_checked_case() {
        // sklearn: precision_recall_fscore_support([0,0,1,1,2,2], [0,1,1,1,2,0])
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let m = classification(&[0, 0, 1, 1, 2, 2], &[0, 1, 1, 1, 2, 0], &labels);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.per_class[0].f1 - 0.5).abs() < 1e-12);
        assert!((m.macro_f1 - (0.5 + 0.8 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((m.micro_f1 - m.accuracy).abs() < 1e-12);
        assert_eq!(m.confusion[2], vec![1, 0, 1]);
        let r = regression(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]);
        assert!((r.spearman - 0.5).abs() < 1e-12);
    }
}
