//! The dropout mask that fused kernels apply in place and regenerate in their backward
//! passes (so it is never stored); [`crate::nn::Dropout`] draws the same masks.

use crate::error::Result;
use crate::kernels::simd::dispatch;
use crate::rng;
use candle_core::Tensor;
use rayon::prelude::*;

/// One dropout mask as a pure function of (stream key, element index): element `i` is kept,
/// scaled by `1/(1-p)`, when its [`rng::mask_bits`] are at least `p·2²⁴` (probability
/// `1 − p`). Fused kernels apply it in place and regenerate it in their backward pass instead
/// of storing it; it equals the mask [`crate::nn::Dropout::forward`] draws from the same key.
#[derive(Clone, Copy, Debug)]
pub struct DropMask {
    /// Drop probability.
    pub p: f32,
    /// Stream key (see [`rng::next_dropout_key`]).
    pub key: u64,
}

impl DropMask {
    /// A mask on the next key of this thread's dropout stream (as [`crate::nn::Dropout::forward`] takes).
    pub fn next(p: f32) -> Self {
        DropMask {
            p,
            key: rng::next_dropout_key(),
        }
    }

    /// `x · mask` as a graph node (autograd passes the same mask to the gradient).
    pub fn apply_tensor(&self, x: &Tensor) -> Result<Tensor> {
        let mut mask = vec![1f32; x.elem_count()];
        self.apply(&mut mask);
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }

    /// `values · mask` as a new vector.
    pub fn applied(&self, values: &[f32]) -> Vec<f32> {
        let mut out = values.to_vec();
        self.apply(&mut out);
        out
    }

    /// Multiplies `values` (element `i` of the masked tensor at index `i`) by the mask, in
    /// parallel chunks.
    pub fn apply(&self, values: &mut [f32]) {
        values
            .par_chunks_mut(1 << 14)
            .enumerate()
            .for_each(|(c, chunk)| self.apply_at((c << 14) as u64, chunk));
    }

    /// Multiplies `values` by the mask's elements `first ..` on the calling thread.
    pub fn apply_at(&self, first: u64, values: &mut [f32]) {
        apply_at_best(self.key, self.threshold(), self.scale(), first, values);
    }

    /// The factor (`0` or `1/(1-p)`) of element `i`.
    pub fn factor(&self, i: u64) -> f32 {
        if rng::mask_bits(self.key, i) >= self.threshold() {
            self.scale()
        } else {
            0.0
        }
    }

    /// Elements whose 24 mask bits are below this are dropped.
    fn threshold(&self) -> u32 {
        (self.p.max(0.0) as f64 * (1u64 << 24) as f64).ceil() as u32
    }

    fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }
}

#[inline(always)]
fn apply_at(key: u64, threshold: u32, scale: f32, first: u64, values: &mut [f32]) {
    for (j, v) in values.iter_mut().enumerate() {
        let keep = rng::mask_bits(key, first + j as u64) >= threshold;
        *v *= if keep { scale } else { 0.0 };
    }
}

dispatch!(fn apply_at_best(key: u64, threshold: u32, scale: f32, first: u64, values: &mut [f32]) => apply_at);

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(mask: &DropMask, n: u64) -> Vec<bool> {
        (0..n).map(|i| mask.factor(i) > 0.0).collect()
    }

    #[test]
    fn mask_keeps_one_minus_p_independently_per_key_and_element() {
        let n = 200_000u64;
        for p in [0.1f32, 0.5] {
            let a = kept(&DropMask { p, key: 11 }, n);
            let b = kept(&DropMask { p, key: 12 }, n);
            let rate = a.iter().filter(|&&k| k).count() as f64 / n as f64;
            assert!(
                (rate - (1.0 - p as f64)).abs() < 0.005,
                "p={p}: keep rate {rate}"
            );
            // Two keys agree as often as independent masks would: p² + (1-p)².
            let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / n as f64;
            let expect = (p * p + (1.0 - p) * (1.0 - p)) as f64;
            assert!((agree - expect).abs() < 0.005, "p={p}: keys agree {agree}");
            // Neighbouring elements likewise.
            let next = a.windows(2).filter(|w| w[0] == w[1]).count() as f64 / (n - 1) as f64;
            assert!(
                (next - expect).abs() < 0.005,
                "p={p}: neighbours agree {next}"
            );
        }
    }

    #[test]
    fn parallel_apply_equals_per_element_factors() {
        let mask = DropMask { p: 0.3, key: 5 };
        let n = (1 << 15) + 123;
        let mut v = vec![2f32; n];
        mask.apply(&mut v);
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x, 2.0 * mask.factor(i as u64), "element {i}");
        }
        assert_eq!(mask.applied(&vec![2f32; n]), v);
    }
}
