//! Dropout that knows train vs eval: identity in eval, inverted dropout in training.

use crate::error::Result;
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

    /// Applies dropout when `train` is true; returns `x` unchanged otherwise.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        Ok(candle_nn::ops::dropout(x, self.p)?)
    }
}
