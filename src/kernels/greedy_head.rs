//! Exact greedy token choice with half the LM head's weight traffic.
//!
//! Decoding one sequence streams every weight once per token, so its speed is memory
//! bandwidth; GPT-2 small's LM head (50257 × 768 f32, 154 MB) is 31 % of those bytes. Greedy
//! decoding needs only the index of the largest logit. [`GreedyScreen`] keeps a bf16 copy of
//! the head (half the bytes), computes every logit approximately from it together with a
//! rigorous bound on its distance from the f32 logit that [`super::skinny`] computes, and
//! then recomputes in f32 (same kernel, same summation order, bit for bit) only the outputs
//! whose upper bound reaches the best lower bound — typically 1–3 of 50257. The chosen index
//! is therefore always the first-maximum argmax of the full f32 logits, never an
//! approximation; tests check that against the full computation.
//!
//! The bound, for output `o`, input row `x` of length `k`, `u = 2⁻²⁴` (f32) and
//! `γ = k·u / (1 − k·u)` (any summation order, FMA or not; Higham, *Accuracy and Stability
//! of Numerical Algorithms*, §3.1):
//! - the bf16 copy: `|w̃ − w| ≤ 2⁻⁸·|w|` (round to nearest, 8 significant bits), so the exact
//!   dot products differ by at most `2⁻⁸·Σ|w||x|`;
//! - the two computed dot products each differ from their exact values by at most
//!   `γ·Σ|w̃||x| ≤ γ·(1 + 2⁻⁸)·Σ|w||x|` and `γ·Σ|w||x|`;
//! - `Σ|w||x| ≤ ‖w‖₂·‖x‖₂` (Cauchy–Schwarz; norms computed in f64 and rounded up);
//! - adding the bias rounds once more on each side: at most `2⁻²³·|value|`.
//!
//! The constants below round each term up.

use super::gemm::skinny;
use rayon::prelude::*;

/// Outputs per parallel task.
const TASK_OUTPUTS: usize = 240;

/// A bf16 copy of a frozen `w [n, k]` with its row norms, for [`GreedyScreen::argmax`].
pub struct GreedyScreen {
    w16: Vec<u16>,
    /// `‖w[o]‖₂`, rounded up.
    norms: Vec<f64>,
    max_norm: f64,
    n: usize,
    k: usize,
}

impl GreedyScreen {
    /// The screen of `w [n, k]`; `None` where it cannot help (no AVX2: the f32 kernel it
    /// must reproduce is then a different loop; non-finite or bf16-overflowing weights).
    pub fn new(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if !skinny::avx2_available() || n == 0 || k == 0 || w.len() != n * k {
            return None;
        }
        let w16: Vec<u16> = w
            .par_iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect();
        // A finite f32 near f32::MAX may round to a bf16 infinity.
        if w16.par_iter().any(|&b| b & 0x7f80 == 0x7f80) {
            return None;
        }
        let norms: Vec<f64> = w
            .par_chunks_exact(k)
            .map(|row| {
                let sq: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
                sq.sqrt() * (1.0 + 1e-12)
            })
            .collect();
        let max_norm = norms.iter().copied().fold(0.0, f64::max);
        Some(GreedyScreen {
            w16,
            norms,
            max_norm,
            n,
            k,
        })
    }

    /// For each row `r` of `x [rows, k]`: the index of the largest `w[o]·x[r] + b[o]` as
    /// [`skinny::skinny_linear`] computes it (the first one on ties), reading the bf16 copy
    /// and a few f32 rows of `w` (the same weights the screen was built from). `None` when
    /// the screen cannot vouch for the answer (non-finite input or bounds, more rows than the
    /// skinny kernel takes): compute the full logits then.
    pub fn argmax(&self, w: &[f32], b: &[f32], x: &[f32], rows: usize) -> Option<Vec<usize>> {
        let (n, k) = (self.n, self.k);
        if rows == 0
            || rows > skinny::MAX_ROWS
            || w.len() != n * k
            || b.len() != n
            || x.len() != rows * k
            || !x.iter().chain(b).all(|v| v.is_finite())
        {
            return None;
        }
        // approxᵀ [n, rows].
        let mut approx = vec![0f32; n * rows];
        approx
            .par_chunks_mut(TASK_OUTPUTS * rows)
            .enumerate()
            .try_for_each(|(task, block)| {
                let first = task * TASK_OUTPUTS;
                let outputs = block.len() / rows;
                let w_block = &self.w16[first * k..(first + outputs) * k];
                skinny::block_dots_narrow(w_block, x, rows, k, block)
            })?;
        let u = f64::powi(2.0, -24);
        let gamma = k as f64 * u / (1.0 - k as f64 * u);
        // bf16 rounding + both dot products' rounding, each rounded up.
        let c = (f64::powi(2.0, -8) + gamma * (2.0 + f64::powi(2.0, -8))) * (1.0 + 1e-9);
        (0..rows)
            .map(|r| self.pick(w, b, &x[r * k..][..k], &approx, r, rows, c))
            .collect()
    }

    /// Row `r`'s pick from the approximate logits `approx [n, rows]` (see the module docs).
    #[allow(clippy::too_many_arguments)]
    fn pick(
        &self,
        w: &[f32],
        b: &[f32],
        xr: &[f32],
        approx: &[f32],
        r: usize,
        rows: usize,
        c: f64,
    ) -> Option<usize> {
        let (n, k) = (self.n, self.k);
        let xn = xr
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        let scale = c * xn * (1.0 + 1e-12);
        let t = |o: usize| approx[o * rows + r] + b[o];
        let bound =
            |o: usize, t: f64| scale * self.norms[o] + 2.0 * f64::powi(2.0, -23) * t.abs() + 1e-30;
        // A cheap first pass: every candidate lies within 2·(the largest bound) of the
        // largest approximate logit, and so does the best lower bound.
        let (mut top, mut top_abs) = (f32::NEG_INFINITY, 0f32);
        for o in 0..n {
            let v = t(o);
            top = top.max(v);
            top_abs = top_abs.max(v.abs());
        }
        let widest = scale * self.max_norm + 2.0 * f64::powi(2.0, -23) * top_abs as f64 + 1e-30;
        let near = top as f64 - 2.0 * widest;
        if !near.is_finite() {
            return None;
        }
        let near: Vec<(usize, f64)> = (0..n)
            .filter_map(|o| {
                let v = t(o) as f64;
                (v >= near).then_some((o, v))
            })
            .collect();
        let best_lo = near
            .iter()
            .map(|&(o, v)| v - bound(o, v))
            .fold(f64::NEG_INFINITY, f64::max);
        // `xr` ran in the skinny kernel's group of up to 4 rows starting at r - r % 4.
        let group = (rows - (r - r % 4)).min(4);
        let mut best: Option<(usize, f32)> = None;
        for &(o, v) in &near {
            if v + bound(o, v) < best_lo {
                continue;
            }
            let exact = skinny::skinny_dot(&w[o * k..][..k], xr, group)? + b[o];
            if best.is_none_or(|(_, bv)| exact > bv) {
                best = Some((o, exact));
            }
        }
        best.map(|(o, _)| o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn first_max(v: &[f32]) -> usize {
        let mut best = 0;
        for (i, &s) in v.iter().enumerate() {
            if s > v[best] {
                best = i;
            }
        }
        best
    }

    fn normal(rng: &mut Rng, len: usize, std: f32) -> Vec<f32> {
        (0..len).map(|_| rng.normal() as f32 * std).collect()
    }

    /// The screened argmax equals the argmax of the full f32 logits for every batch size
    /// the skinny kernel takes (each size groups rows differently), with and without bias.
    #[test]
    fn screened_argmax_equals_the_full_logits_argmax() {
        if !skinny::avx2_available() {
            return; // no screen without AVX2 (GreedyScreen::new returns None; checked below)
        }
        let mut rng = Rng::new(7);
        let (n, k) = (5003, 200);
        let w = normal(&mut rng, n * k, 0.02);
        let screen = GreedyScreen::new(&w, n, k).expect("screen");
        for rows in [1, 2, 3, 4, 5, 8, 11, 16] {
            for bias in [0.0, 0.3] {
                let x = normal(&mut rng, rows * k, 1.0);
                let b = normal(&mut rng, n, bias);
                let full = skinny::skinny_linear(&x, rows, k, &w, &b);
                let want: Vec<usize> = full.chunks_exact(n).map(first_max).collect();
                assert_eq!(screen.argmax(&w, &b, &x, rows), Some(want), "rows {rows}");
            }
        }
    }

    /// Rows that differ by less than bf16 resolution (relative 2⁻⁸): the bf16 copies order
    /// them wrongly, so only a sound bound and the exact recomputation find the f32 argmax
    /// (a screen that ignored the bf16 error fails here).
    #[test]
    fn screened_argmax_is_exact_when_many_rows_agree_to_bf16_resolution() {
        if !skinny::avx2_available() {
            return;
        }
        let mut rng = Rng::new(3);
        let (n, k) = (2000, 256);
        let v = normal(&mut rng, k, 0.05);
        let mut w = Vec::with_capacity(n * k);
        for _ in 0..n {
            let scale = 1.0 + 1e-4 * rng.normal() as f32;
            w.extend(v.iter().map(|a| a * scale + 1e-6 * rng.normal() as f32));
        }
        let screen = GreedyScreen::new(&w, n, k).expect("screen");
        let b = vec![0f32; n];
        for rows in [1, 2, 3, 4, 8, 16] {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| v[i % k] * 20.0 + 0.5 * rng.normal() as f32)
                .collect();
            let full = skinny::skinny_linear(&x, rows, k, &w, &b);
            let want: Vec<usize> = full.chunks_exact(n).map(first_max).collect();
            assert_eq!(screen.argmax(&w, &b, &x, rows), Some(want), "rows {rows}");
        }
    }

    /// Near-ties (outputs whose logits differ by less than bf16 resolution) are decided by
    /// the f32 values, ties exactly by the lowest index.
    #[test]
    fn screened_argmax_decides_near_ties_and_ties_like_the_full_logits() {
        if !skinny::avx2_available() {
            return;
        }
        let mut rng = Rng::new(11);
        let (n, k) = (64, 96);
        let mut w = normal(&mut rng, n * k, 0.05);
        let x = normal(&mut rng, k, 1.0);
        // Row 40 = row 9 nudged below bf16 resolution; row 50 = row 9 exactly (a tie).
        let row9: Vec<f32> = w[9 * k..10 * k].to_vec();
        for (i, v) in row9.iter().enumerate() {
            w[40 * k + i] = v * (1.0 + 1e-5);
            w[50 * k + i] = *v;
        }
        // Make the three the largest.
        let s: f32 = row9.iter().zip(&x).map(|(a, b)| a * b).sum();
        let b: Vec<f32> = (0..n)
            .map(|o| {
                if [9, 40, 50].contains(&o) {
                    0.0
                } else {
                    -s.abs() - 10.0
                }
            })
            .collect();
        let screen = GreedyScreen::new(&w, n, k).expect("screen");
        let full = skinny::skinny_linear(&x, 1, k, &w, &b);
        assert_eq!(screen.argmax(&w, &b, &x, 1), Some(vec![first_max(&full)]));
    }

    #[test]
    fn screen_declines_what_it_cannot_vouch_for() {
        let w = vec![1f32; 16];
        if !skinny::avx2_available() {
            assert!(GreedyScreen::new(&w, 2, 8).is_none());
            return;
        }
        let screen = GreedyScreen::new(&w, 2, 8).expect("screen");
        let b = [0f32; 2];
        let mut x = vec![1f32; 8];
        x[3] = f32::NAN;
        assert_eq!(screen.argmax(&w, &b, &x, 1), None, "NaN input");
        assert_eq!(
            screen.argmax(&w, &b, &[1.0; 8 * 17], 17),
            None,
            "too many rows"
        );
        assert!(GreedyScreen::new(&[f32::INFINITY; 16], 2, 8).is_none());
        assert!(
            GreedyScreen::new(&[f32::MAX; 16], 2, 8).is_none(),
            "bf16 overflow"
        );
    }
}
