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
        let mask = dropout_mask(x, self.p)?;
        // x · mask: autograd passes the same mask to the gradient.
        Ok(x.mul(&mask)?)
    }
}

/// A mask of `0` (dropped) and `1/(1-p)` (kept) shaped like `x`.
fn dropout_mask(x: &Tensor, p: f32) -> Result<Tensor> {
    let key = rng::next_dropout_key();
    let scale = 1.0 / (1.0 - p);
    let n = x.elem_count();
    let mut mask = vec![0f32; n];
    mask.par_chunks_mut(1 << 14)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = (c << 14) as u64;
            for (j, m) in chunk.iter_mut().enumerate() {
                let u = rng::uniform_at(key, base + j as u64);
                *m = if u >= p { scale } else { 0.0 };
            }
        });
    Ok(Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?)
}
