//! Dropout that knows train vs eval: identity in eval, inverted dropout in training, with
//! masks drawn from the seedable per-thread stream of [`crate::nn::rng`].

use super::rng;
use crate::error::Result;
use candle_core::Tensor;
use rayon::prelude::*;

/// Zeroes each element with probability `p` in training and scales the rest by `1/(1-p)`.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// A dropout layer with drop probability `p` (0 disables it).
    pub fn new(p: f64) -> Self {
        Dropout { p: p as f32 }
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// Applies dropout when `train` is true; returns `x` unchanged otherwise.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        DropMask::next(self.p).apply_tensor(x)
    }
}

/// One dropout mask as a pure function of (stream key, element index): element `i` is kept,
/// scaled by `1/(1-p)`, when `uniform_at(key, i) >= p`. Fused kernels apply it in place and
/// regenerate it in their backward pass instead of storing it; it equals the mask
/// [`Dropout::forward`] draws from the same key.
#[derive(Clone, Copy, Debug)]
pub struct DropMask {
    /// Drop probability.
    pub p: f32,
    /// Stream key (see [`rng::next_dropout_key`]).
    pub key: u64,
}

impl DropMask {
    /// A mask on the next key of this thread's dropout stream (as [`Dropout::forward`] takes).
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

    /// `values · mask` as a new vector (one pass; no copy first).
    pub fn applied(&self, values: &[f32]) -> Vec<f32> {
        let (p, key) = (self.p, self.key);
        let scale = 1.0 / (1.0 - p);
        values
            .par_iter()
            .with_min_len(1 << 14)
            .enumerate()
            .map(|(i, &v)| {
                v * if rng::uniform_at(key, i as u64) >= p {
                    scale
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Multiplies `values` (element `i` of the masked tensor at index `i`) by the mask.
    pub fn apply(&self, values: &mut [f32]) {
        let (p, key) = (self.p, self.key);
        let scale = 1.0 / (1.0 - p);
        values
            .par_chunks_mut(1 << 14)
            .enumerate()
            .for_each(|(c, chunk)| {
                let base = (c << 14) as u64;
                for (j, v) in chunk.iter_mut().enumerate() {
                    let u = rng::uniform_at(key, base + j as u64);
                    *v *= if u >= p { scale } else { 0.0 };
                }
            });
    }
}
