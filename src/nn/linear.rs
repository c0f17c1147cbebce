//! Fully connected layer with HF's `weight [out, in]` / `bias [out]` layout.

use super::params::{Init, Params};
use crate::error::Result;
use candle_core::{Tensor, D};

/// `y = x · Wᵀ + b`, applied to the last dimension of any-rank input.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` (and `bias`) that must exist in the checkpoint.
    pub fn load(p: &Params, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Linear {
            weight: p.get((out_dim, in_dim), "weight")?,
            bias: Some(p.get(out_dim, "bias")?),
        })
    }

    /// Loads from the checkpoint when present, else initialises as HF does
    /// (normal(0, std) weights, zero bias).
    pub fn load_or_init(p: &Params, in_dim: usize, out_dim: usize, std: f64) -> Result<Self> {
        Ok(Linear {
            weight: p.get_or_init((out_dim, in_dim), "weight", Init::Normal(std))?,
            bias: Some(p.get_or_init(out_dim, "bias", Init::Zeros)?),
        })
    }

    /// Builds from explicit tensors.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear { weight, bias }
    }

    /// The `[out, in]` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The `[out]` bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Applies the layer to the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = x.dim(D::Minus1)?;
        let rows = x.elem_count() / in_dim.max(1);
        // One 2-D GEMM over all rows instead of a batched one with a broadcast weight.
        let x2 = x.reshape((rows, in_dim))?;
        let mut y = x2.matmul(&self.weight.t()?)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        Ok(y.reshape(out_dims)?)
    }
}
