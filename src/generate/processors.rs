//! Next-token score processors, each the same arithmetic as the HF `LogitsProcessor` of the
//! same name, applied to one row of scores in HF's order (penalties, then n-gram ban, then
//! temperature, top-k, top-p).

use std::collections::HashSet;

/// HF `RepetitionPenaltyLogitsProcessor`: every token already in the sequence has its score
/// divided by `penalty` when positive and multiplied when negative.
pub fn repetition_penalty(tokens: &[u32], scores: &mut [f32], penalty: f32) {
    let mut seen = HashSet::with_capacity(tokens.len());
    for &t in tokens {
        if seen.insert(t) {
            if let Some(s) = scores.get_mut(t as usize) {
                *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
            }
        }
    }
}

/// HF `NoRepeatNGramLogitsProcessor`: bans every token that would complete an n-gram already
/// present in `tokens` (prompt included).
pub fn no_repeat_ngram(tokens: &[u32], scores: &mut [f32], n: usize) {
    if n == 0 || tokens.len() + 1 < n {
        return;
    }
    let prefix = &tokens[tokens.len() + 1 - n..];
    for w in tokens.windows(n) {
        if &w[..n - 1] == prefix {
            if let Some(s) = scores.get_mut(w[n - 1] as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// HF `TemperatureLogitsWarper`.
pub fn temperature(scores: &mut [f32], t: f32) {
    scores.iter_mut().for_each(|s| *s /= t);
}

/// HF `TopKLogitsWarper`: keeps the scores at least as large as the k-th largest (ties with
/// it survive, as in HF).
pub fn top_k(scores: &mut [f32], k: usize, min_keep: usize) {
    let k = k.max(min_keep).min(scores.len());
    if k == 0 || k == scores.len() {
        return;
    }
    let mut sorted = scores.to_vec();
    let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    scores
        .iter_mut()
        .filter(|s| **s < kth)
        .for_each(|s| *s = f32::NEG_INFINITY);
}

/// HF `TopPLogitsWarper`: sorts ascending, removes the tokens whose cumulative probability
/// is at most `1 - p`, and always keeps the `min_keep` most likely.
pub fn top_p(scores: &mut [f32], p: f32, min_keep: usize) {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let probs = softmax(scores);
    let threshold = 1.0 - p as f64;
    let mut cum = 0f64;
    for (rank, &i) in order.iter().enumerate() {
        cum += probs[i] as f64;
        if cum <= threshold && rank < n.saturating_sub(min_keep) {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

/// Softmax of a row (`-inf` → 0).
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![1.0 / scores.len() as f32; scores.len()];
    }
    let mut out: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = out.iter().map(|&x| x as f64).sum();
    let inv = (1.0 / sum) as f32;
    out.iter_mut().for_each(|x| *x *= inv);
    out
}

/// Log-softmax of a row, computed as torch does (`x - max - log Σ exp(x - max)`).
pub fn log_softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = scores.iter().map(|&s| ((s - max) as f64).exp()).sum();
    let lse = sum.ln() as f32;
    scores.iter().map(|&s| s - max - lse).collect()
}

/// Index of the largest score (the first one on ties, like `torch.argmax`).
pub fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

/// The `k` most likely tokens with their probabilities, most likely first.
pub fn top_candidates(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let probs = softmax(scores);
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    idx.select_nth_unstable_by(k - 1, |&a, &b| probs[b].total_cmp(&probs[a]));
    idx.truncate(k);
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    idx.into_iter().map(|i| (i as u32, probs[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_ban_blocks_only_the_completing_token() {
        let mut s = vec![0.0; 6];
        // bigrams: (1,2) (2,3) (3,1): last token 1 → 2 is banned.
        no_repeat_ngram(&[1, 2, 3, 1], &mut s, 2);
        assert_eq!(s[2], f32::NEG_INFINITY);
        assert_eq!(s.iter().filter(|x| x.is_infinite()).count(), 1);
    }

    #[test]
    fn top_k_keeps_ties_with_the_kth() {
        let mut s = vec![1.0, 3.0, 2.0, 2.0, 0.0];
        top_k(&mut s, 2, 1);
        assert_eq!(s, vec![f32::NEG_INFINITY, 3.0, 2.0, 2.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probs ≈ 0.64, 0.24, 0.09, 0.03
        let mut s = vec![3.0, 2.0, 1.0, 0.0];
        top_p(&mut s, 0.8, 1);
        assert!(s[0].is_finite() && s[1].is_finite());
        assert!(s[2].is_infinite() && s[3].is_infinite());
    }
}
