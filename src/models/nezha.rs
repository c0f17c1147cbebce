//! NEZHA ([Wei et al., 2019](https://arxiv.org/abs/1909.00204)): BERT's blocks without an
//! absolute position table; every self-attention adds functional relative positions, as
//! transformers' `NezhaSelfAttention` does: with `a[i, j]` the sinusoidal encoding of the
//! distance `j − i` clipped to `±max_relative_position` (one head wide),
//!
//! `scores[i, j] = (q_i · k_j + q_i · a[i, j]) / √d` and `ctx_i = Σ_j p[i, j] (v_j + a[i, j])`.
//!
//! The encodings are fixed (no weights), so a NEZHA checkpoint holds exactly BERT's tensors
//! minus `embeddings.position_embeddings`.

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::nn::positions::sinusoidal_table;
use candle_core::{Device, Tensor};

/// The sinusoidal table of relative distances, `[2·max + 1, head_dim]`: row `k` encodes the
/// distance `k − max`.
pub struct RelativePositions {
    table: Tensor,
    max_relative_position: usize,
}

impl RelativePositions {
    /// The table of `cfg` (`max_relative_position`, one head wide).
    pub fn new(cfg: &BertConfig, device: &Device) -> Result<Self> {
        let max = cfg
            .max_relative_position
            .ok_or_else(|| Error::Invalid("a NEZHA config needs `max_relative_position`".into()))?;
        Ok(RelativePositions {
            table: sinusoidal_table(2 * max + 1, cfg.head_dim(), device)?,
            max_relative_position: max,
        })
    }

    /// `a [t, t, head_dim]`: row `(i, j)` is the encoding of `clip(j − i)`.
    pub fn matrix(&self, t: usize) -> Result<Tensor> {
        let m = self.max_relative_position as i64;
        let idx: Vec<u32> = (0..t as i64)
            .flat_map(|i| (0..t as i64).map(move |j| ((j - i).clamp(-m, m) + m) as u32))
            .collect();
        let idx = Tensor::from_vec(idx, t * t, self.table.device())?;
        let d = self.table.dim(1)?;
        Ok(self.table.index_select(&idx, 0)?.reshape((t, t, d))?)
    }
}

/// `q_i · a[i, j]` for every head: `q [b, heads, t, d]`, `a [t, t, d]` → `[b, heads, t, t]`
/// (one batched product per query position, as transformers computes it).
pub fn key_scores(q: &Tensor, a: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let per_query = q
        .permute((2, 0, 1, 3))?
        .contiguous()?
        .reshape((t, b * h, d))?;
    let s = per_query.matmul(&a.transpose(1, 2)?.contiguous()?)?;
    Ok(s.reshape((t, b, h, t))?.permute((1, 2, 0, 3))?)
}

/// `Σ_j p[i, j] a[i, j]`: `probs [b, heads, t, t]`, `a [t, t, d]` → `[b, heads, t, d]`.
pub fn value_terms(probs: &Tensor, a: &Tensor) -> Result<Tensor> {
    let (b, h, t, _) = probs.dims4()?;
    let d = a.dim(2)?;
    let per_query = probs
        .permute((2, 0, 1, 3))?
        .contiguous()?
        .reshape((t, b * h, t))?;
    let v = per_query.matmul(a)?;
    Ok(v.reshape((t, b, h, d))?.permute((1, 2, 0, 3))?)
}
