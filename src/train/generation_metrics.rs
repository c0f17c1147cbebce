//! Scores of generated text against references: ROUGE-L (Lin, 2004) as Google's
//! `rouge-score` package computes it (`RougeScorer(["rougeL"])`, no stemming — the default of
//! HF `evaluate`'s `rouge`), exact match, and the lead baseline (the source's first
//! sentence) that a summariser must beat.

use crate::data::sentence_pairs::split_sentences;

/// `rouge-score`'s tokens: lower-cased, every run of characters other than `a-z0-9` a
/// separator (so accented letters and CJK characters are dropped, as there).
pub fn rouge_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Length of the longest common subsequence of two token lists.
fn lcs(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L precision, recall and F-measure of `prediction` against `reference` (all 0 when
/// either has no tokens, as `rouge-score`).
pub fn rouge_l(prediction: &str, reference: &str) -> (f64, f64, f64) {
    let (p, r) = (rouge_tokens(prediction), rouge_tokens(reference));
    if p.is_empty() || r.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let common = lcs(&p, &r) as f64;
    let (precision, recall) = (common / p.len() as f64, common / r.len() as f64);
    let f = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f)
}

/// Mean ROUGE-L F-measure and exact-match rate of predictions against references. Exact
/// match compares ROUGE's tokens (lower-cased `a-z0-9` runs), since an uncased WordPiece
/// model cannot give back the reference's case and spacing around punctuation.
pub fn generation_scores(predictions: &[String], references: &[String]) -> (f64, f64) {
    let n = predictions.len().max(1) as f64;
    let pairs = predictions.iter().zip(references);
    let rouge: f64 = pairs.clone().map(|(p, r)| rouge_l(p, r).2).sum();
    let exact = pairs
        .filter(|(p, r)| rouge_tokens(p) == rouge_tokens(r))
        .count();
    (rouge / n, exact as f64 / n)
}

/// The lead baseline: the first sentence of `source` (at most `max_words` words).
pub fn lead_sentence(source: &str, max_words: usize) -> String {
    let first = split_sentences(source)
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .unwrap_or("");
    first
        .split_whitespace()
        .take(max_words)
        .collect::<Vec<_>>()
        .join(" ")
}
