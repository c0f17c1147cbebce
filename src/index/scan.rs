//! Exact inner-product top-k over a row-major `[count, dim]` matrix: each thread scans a
//! contiguous share of the rows with a vectorised dot product and keeps its own k best;
//! the shares merge at the end. One query streams the matrix once (memory-bound), so the
//! scan reads each row exactly once and does nothing else per row but one compare.

use crate::kernels::simd::{dispatch, dot_fused as dot};
use rayon::prelude::*;

/// One search result: the row and its inner product with the query (the cosine when both
/// are unit vectors).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Hit {
    /// Row of the index (0-based, the corpus line order).
    pub index: usize,
    /// Inner product with the query.
    pub score: f32,
}

/// Scores of `rows` (row-major, `dim` wide) against `q`, into `out`.
#[inline(always)]
fn scores(rows: &[f32], q: &[f32], out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(q.len()).zip(out.iter_mut()) {
        *o = dot(row, q);
    }
}

dispatch!(fn scores_best(rows: &[f32], q: &[f32], out: &mut [f32]) => scores);

/// The k best of a stream, kept sorted best first (k is small: insertion beats a heap).
struct TopK {
    k: usize,
    hits: Vec<Hit>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            hits: Vec::with_capacity(k + 1),
        }
    }

    /// The score a newcomer must beat.
    fn floor(&self) -> f32 {
        match self.hits.len() == self.k {
            true => self.hits[self.k - 1].score,
            false => f32::NEG_INFINITY,
        }
    }

    fn push(&mut self, hit: Hit) {
        // Ties keep the lower row first (the order of a stable sort by descending score).
        let at = self.hits.partition_point(|h| {
            h.score > hit.score || (h.score == hit.score && h.index < hit.index)
        });
        if at < self.k {
            self.hits.insert(at, hit);
            self.hits.truncate(self.k);
        }
    }
}

/// Rows scored per block: the scores of one block stay in L1.
const BLOCK: usize = 1024;

/// The `k` rows of `matrix` with the largest inner product with `q`, best first (ties: lower
/// row first). `matrix.len()` must be a multiple of `q.len()`; NaN scores never enter.
pub fn top_k(matrix: &[f32], q: &[f32], k: usize) -> Vec<Hit> {
    let dim = q.len();
    let count = matrix.len().checked_div(dim).unwrap_or(0);
    if k == 0 || count == 0 {
        return Vec::new();
    }
    let threads = rayon::current_num_threads().max(1);
    // Whole blocks per share, at least one share per thread when there are rows enough.
    let share = count.div_ceil(threads).next_multiple_of(BLOCK).max(BLOCK);
    let parts: Vec<TopK> = (0..count.div_ceil(share))
        .into_par_iter()
        .map(|p| {
            let (r0, r1) = (p * share, ((p + 1) * share).min(count));
            let mut best = TopK::new(k);
            let mut s = vec![0f32; BLOCK];
            for b0 in (r0..r1).step_by(BLOCK) {
                let b1 = (b0 + BLOCK).min(r1);
                let out = &mut s[..b1 - b0];
                scores_best(&matrix[b0 * dim..b1 * dim], q, out);
                for (i, &score) in out.iter().enumerate() {
                    if score > best.floor() {
                        best.push(Hit {
                            index: b0 + i,
                            score,
                        });
                    }
                }
            }
            best
        })
        .collect();
    let mut all = TopK::new(k);
    for part in parts {
        for hit in part.hits {
            all.push(hit);
        }
    }
    all.hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_rows_in_order_and_ties_by_row() {
        // Rows 0..5 score 0, 3, 1, 3, 2 against q = [1, 0, 0].
        let m = [0., 0., 0., 3., 0., 0., 1., 0., 0., 3., 0., 0., 2., 0., 0.];
        let hits = top_k(&m, &[1., 0., 0.], 3);
        let rows: Vec<usize> = hits.iter().map(|h| h.index).collect();
        assert_eq!(rows, [1, 3, 4]);
        assert_eq!(top_k(&m, &[1., 0., 0.], 9).len(), 5, "k above the count");
        assert!(top_k(&m, &[1., 0., 0.], 0).is_empty());
    }

    #[test]
    fn dot_matches_a_plain_sum_at_every_tail_length() {
        for n in [1, 15, 16, 17, 33, 384] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4, "n = {n}");
        }
    }
}
