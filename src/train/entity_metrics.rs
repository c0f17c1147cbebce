//! Entity-level metrics of a tagger, as seqeval's default mode computes them: an entity is
//! counted correct only when its type and both boundaries match a gold one exactly;
//! precision / recall / F1 per type, micro (over all entities) and macro (mean over types);
//! token accuracy; and micro F1 by sentence length.

use crate::data::tags;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Scores of one entity type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeScores {
    /// Entity type (`PER`).
    pub label: String,
    /// Correct / predicted.
    pub precision: f64,
    /// Correct / gold.
    pub recall: f64,
    /// Harmonic mean.
    pub f1: f64,
    /// Gold entities of the type.
    pub support: usize,
}

/// Micro F1 over sentences of `from..to` words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthF1 {
    /// Shortest sentence (words) of the bucket.
    pub from: usize,
    /// One past the longest.
    pub to: usize,
    /// Sentences in the bucket.
    pub count: usize,
    /// Entity micro F1 of those sentences.
    pub f1: f64,
}

/// Entity metrics of a data set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntityMetrics {
    /// Per type, sorted by type.
    pub per_type: Vec<TypeScores>,
    /// Micro precision.
    pub micro_precision: f64,
    /// Micro recall.
    pub micro_recall: f64,
    /// Micro F1 (the usual headline number).
    pub micro_f1: f64,
    /// Mean F1 over types.
    pub macro_f1: f64,
    /// Words whose tag is right.
    pub token_accuracy: f64,
    /// Micro F1 by sentence length.
    pub by_length: Vec<LengthF1>,
}

/// Entities of each sentence as `(sentence, type, first, last + 1)`.
fn spans(tags_of: &[Vec<String>]) -> Vec<(usize, String, usize, usize)> {
    tags_of
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            tags::entities(t)
                .into_iter()
                .map(move |(ty, s, e)| (i, ty, s, e))
        })
        .collect()
}

fn prf(correct: usize, predicted: usize, gold: usize) -> (f64, f64, f64) {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (p, r) = (ratio(correct, predicted), ratio(correct, gold));
    let f = if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    };
    (p, r, f)
}

/// Entity metrics of `pred` against `gold` (one tag per word; same sentence lengths).
pub fn entity_metrics(gold: &[Vec<String>], pred: &[Vec<String>]) -> EntityMetrics {
    let (g, p) = (spans(gold), spans(pred));
    let gold_set: HashSet<&(usize, String, usize, usize)> = g.iter().collect();
    let mut counts: BTreeMap<String, [usize; 3]> = BTreeMap::new(); // correct, predicted, gold
    for e in &g {
        counts.entry(e.1.clone()).or_default()[2] += 1;
    }
    for e in &p {
        let c = counts.entry(e.1.clone()).or_default();
        c[1] += 1;
        if gold_set.contains(e) {
            c[0] += 1;
        }
    }
    let per_type: Vec<TypeScores> = counts
        .iter()
        .filter(|(_, c)| c[2] > 0 || c[1] > 0)
        .map(|(label, c)| {
            let (precision, recall, f1) = prf(c[0], c[1], c[2]);
            TypeScores {
                label: label.clone(),
                precision,
                recall,
                f1,
                support: c[2],
            }
        })
        .collect();
    let total = counts
        .values()
        .fold([0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
    let (micro_precision, micro_recall, micro_f1) = prf(total[0], total[1], total[2]);
    // seqeval's macro average runs over the types that occur in the gold data.
    let gold_types: Vec<&TypeScores> = per_type.iter().filter(|t| t.support > 0).collect();
    let macro_f1 = match gold_types.len() {
        0 => 0.0,
        n => gold_types.iter().map(|t| t.f1).sum::<f64>() / n as f64,
    };
    let words: usize = gold.iter().map(Vec::len).sum();
    let right: usize = gold
        .iter()
        .zip(pred)
        .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x == y).count())
        .sum();
    EntityMetrics {
        per_type,
        micro_precision,
        micro_recall,
        micro_f1,
        macro_f1,
        token_accuracy: if words == 0 {
            0.0
        } else {
            right as f64 / words as f64
        },
        by_length: by_length(gold, pred, 25),
    }
}

/// Micro F1 of sentences grouped by word count in buckets of `width`.
fn by_length(gold: &[Vec<String>], pred: &[Vec<String>], width: usize) -> Vec<LengthF1> {
    type Sentences = Vec<Vec<String>>;
    let mut buckets: BTreeMap<usize, (Sentences, Sentences)> = BTreeMap::new();
    for (g, p) in gold.iter().zip(pred) {
        let b = buckets.entry(g.len() / width).or_default();
        b.0.push(g.clone());
        b.1.push(p.clone());
    }
    buckets
        .into_iter()
        .map(|(k, (g, p))| {
            let (gs, ps) = (spans(&g), spans(&p));
            let gold_set: HashSet<&(usize, String, usize, usize)> = gs.iter().collect();
            let correct = ps.iter().filter(|e| gold_set.contains(e)).count();
            LengthF1 {
                from: k * width,
                to: (k + 1) * width,
                count: g.len(),
                f1: prf(correct, ps.len(), gs.len()).2,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// seqeval's README example: `classification_report` gives MISC 0/0/0 (support 1),
    /// PER 1/1/1 (support 1); micro 0.5 / 0.5 / 0.5, macro F1 0.5.
    #[test]
    fn seqeval_readme_example() {
        let gold = [t("O O O B-MISC I-MISC I-MISC O"), t("B-PER I-PER O")];
        let pred = [t("O O B-MISC I-MISC I-MISC I-MISC O"), t("B-PER I-PER O")];
        let m = entity_metrics(&gold, &pred);
        assert_eq!(m.micro_f1, 0.5);
        assert_eq!(m.macro_f1, 0.5);
        assert_eq!(m.per_type.len(), 2);
        assert_eq!(
            (m.per_type[0].label.as_str(), m.per_type[0].f1),
            ("MISC", 0.0)
        );
        assert_eq!(
            (m.per_type[1].label.as_str(), m.per_type[1].f1),
            ("PER", 1.0)
        );
        // Words 3 and 4 of the first sentence differ (O vs B-MISC, B-MISC vs I-MISC).
        assert!((m.token_accuracy - 8.0 / 10.0).abs() < 1e-12);
    }

    /// In seqeval's default mode an `I-X` after `O` opens an entity.
    #[test]
    fn an_inside_tag_after_outside_opens_an_entity() {
        let gold = [t("O I-PER I-PER O")];
        let m = entity_metrics(&gold, &[t("O B-PER I-PER O")]);
        assert_eq!(m.micro_f1, 1.0);
    }
}
