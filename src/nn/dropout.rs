//! Dropout that knows train vs eval: identity in eval, inverted dropout in training, with
//! masks drawn from the seedable per-thread stream of [`crate::rng`]. The mask itself is
//! [`DropMask`] in `kernels/`, since fused kernels regenerate it in their backward passes.

use crate::error::Result;
use crate::kernels::DropMask;
use candle_core::Tensor;

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
        match self.mask(train) {
            Some(mask) => mask.apply_tensor(x),
            None => Ok(x.clone()),
        }
    }

    /// The mask one forward pass applies (taking the next key of this thread's dropout
    /// stream), or `None` when dropout is off (eval, or `p = 0`: no key is taken).
    pub fn mask(&self, train: bool) -> Option<DropMask> {
        (train && self.p > 0.0).then(|| DropMask::next(self.p))
    }
}
