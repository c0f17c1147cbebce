//! LayerNorm layer over the fused, differentiable kernel.

use super::params::{Init, Params};
use crate::error::Result;
use crate::kernels;
use candle_core::Tensor;

/// LayerNorm over the last dimension with learnable `weight` and `bias`.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight`/`bias` (old checkpoints' `gamma`/`beta` are renamed on load).
    pub fn load(p: &Params, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: p.get(dim, "weight")?,
            bias: p.get(dim, "bias")?,
            eps,
        })
    }

    /// Loads when present, else ones/zeros as HF initialises.
    pub fn load_or_init(p: &Params, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: p.get_or_init(dim, "weight", Init::Ones)?,
            bias: p.get_or_init(dim, "bias", Init::Zeros)?,
            eps,
        })
    }

    /// `|γ_j| + |β_j|` per channel: the typical magnitude of output channel `j` (the
    /// normalised input is about unit-scale), for int8 smoothing.
    pub fn output_scale(&self) -> Result<Vec<f32>> {
        let g = self
            .weight
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let b = self
            .bias
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        Ok(g.iter().zip(&b).map(|(g, b)| g.abs() + b.abs()).collect())
    }

    /// `LayerNorm(x + residual)`, fused when no gradient is needed (post-norm blocks).
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        Ok(kernels::add_layer_norm(
            x,
            residual,
            &self.weight,
            &self.bias,
            self.eps,
        )?)
    }

    /// Normalises the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }
}
