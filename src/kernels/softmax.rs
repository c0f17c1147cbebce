//! Scaled, key-masked softmax for attention scores: `softmax(scale · s)` over the keys a
//! query may see. Masked keys get exactly zero probability, as HF's additive `finfo.min`
//! mask gives after `exp`, so padding never leaks into a real token's output.

use super::common::contiguous_f32;
use super::simd::{self, dispatch};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

struct MaskedSoftmaxOp {
    scale: f32,
}

/// Softmax over the last dim of `scores` `[batch, heads, queries, keys]` after multiplying by
/// `scale`; `key_mask` `[batch, keys]` holds 1 for real tokens and 0 for padding.
/// Differentiable in `scores`.
pub fn masked_softmax(scores: &Tensor, key_mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, _h, _q, k) = scores.dims4()?;
    let (mb, mk) = key_mask.dims2()?;
    if (mb, mk) != (b, k) {
        candle_core::bail!("masked_softmax: mask is [{mb}, {mk}], scores need [{b}, {k}]");
    }
    let scores = scores.contiguous()?;
    let key_mask = key_mask.to_dtype(scores.dtype())?.contiguous()?;
    if scores.device().is_cpu() && scores.dtype() == DType::F32 {
        scores.apply_op2(
            &key_mask,
            MaskedSoftmaxOp {
                scale: scale as f32,
            },
        )
    } else {
        masked_softmax_composite(&scores, &key_mask, scale)
    }
}

/// Reference implementation from primitive ops (GPU path and tests).
pub fn masked_softmax_composite(scores: &Tensor, key_mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, _, _, k) = scores.dims4()?;
    let bias = ((key_mask.to_dtype(scores.dtype())? - 1.0)? * 1e30)?.reshape((b, 1, 1, k))?;
    let s = (scores * scale)?.broadcast_add(&bias)?;
    let max = s.max_keepdim(D::Minus1)?;
    let e = s.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Softmax of one row in place after multiplying by `scale`; keys with `mask == 0` get
/// exactly 0, and a row with every key masked is spread evenly (as an additive `finfo.min`
/// mask does). Shared by this kernel and the fused attention.
#[inline(always)]
pub(super) fn softmax_row_in_place(row: &mut [f32], mask: &[f32], scale: f32) {
    let max = scale_masked_max(row, mask, scale);
    if max == f32::NEG_INFINITY {
        let even = 1.0 / row.len() as f32;
        row.iter_mut().for_each(|v| *v = even);
        return;
    }
    exp_normalize::<true>(row, max);
}

/// `v ← e^(v − max) / Σ e^(v − max)` over a row whose maximum is `max`; with `MASKED`,
/// −∞ entries (masked keys) get exactly 0 (the clamped `exp` alone would give ~1e-38).
#[inline(always)]
fn exp_normalize<const MASKED: bool>(row: &mut [f32], max: f32) {
    for v in row.iter_mut() {
        *v = if MASKED {
            simd::exp(*v - max) * ((*v != f32::NEG_INFINITY) as u32 as f32)
        } else {
            simd::exp(*v - max)
        };
    }
    let inv = 1.0 / simd::sum(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `v ← scale·v` where the key is visible, −∞ where masked; returns the row's maximum.
/// Two simple loops that vectorise: as one loop with `f32::max` LLVM kept it scalar (a
/// third of the softmax's time in a profile).
#[inline(always)]
fn scale_masked_max(row: &mut [f32], mask: &[f32], scale: f32) -> f32 {
    for (v, &m) in row.iter_mut().zip(mask) {
        *v = if m > 0.0 {
            *v * scale
        } else {
            f32::NEG_INFINITY
        };
    }
    simd::max(row)
}

#[inline(always)]
fn softmax_rows(scores: &[f32], mask: &[f32], out: &mut [f32], scale: f32) {
    out.copy_from_slice(scores);
    for row in out.chunks_exact_mut(mask.len()) {
        softmax_row_in_place(row, mask, scale);
    }
}

dispatch!(fn softmax_rows_best(scores: &[f32], mask: &[f32], out: &mut [f32], scale: f32) => softmax_rows);

#[inline(always)]
fn softmax_rows_in_place(rows: &mut [f32], mask: &[f32], scale: f32) {
    for row in rows.chunks_exact_mut(mask.len()) {
        softmax_row_in_place(row, mask, scale);
    }
}

// Callers outside a dispatched kernel must come through here: `softmax_row_in_place` inlined
// into plain code compiles `exp`'s `mul_add` as a libm `fmaf` call per element (the training
// attention's softmax spent 8 % of a MiniLM step that way).
dispatch!(
    /// [`softmax_row_in_place`] over each `mask.len()`-wide row, compiled for the best ISA.
    pub(super) fn softmax_rows_in_place_best(rows: &mut [f32], mask: &[f32], scale: f32) => softmax_rows_in_place
);

/// Softmax of each `width`-wide row in place when every key is visible and the scores are
/// already scaled (the fused attention's unpadded sequences): the same values as
/// [`softmax_row_in_place`] with an all-ones mask and scale 1, without its masking pass.
#[inline(always)]
fn softmax_rows_unmasked_in_place(rows: &mut [f32], width: usize) {
    for row in rows.chunks_exact_mut(width) {
        let max = simd::max(row);
        exp_normalize::<false>(row, max);
    }
}

dispatch!(
    /// [`softmax_rows_unmasked_in_place`], compiled for the best ISA.
    pub(super) fn softmax_rows_unmasked_in_place_best(rows: &mut [f32], width: usize) => softmax_rows_unmasked_in_place
);

impl CustomOp2 for MaskedSoftmaxOp {
    fn name(&self) -> &'static str {
        "bert4rs-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let scores = contiguous_f32(s1, l1, "scores")?;
        let mask = contiguous_f32(s2, l2, "key_mask")?;
        let dims = l1.dims();
        let (b, k) = (dims[0], dims[3]);
        let per_batch = scores.len() / b.max(1);
        let mut out = vec![0f32; scores.len()];
        // One task per (batch, head): each sees one mask row.
        let per_head = dims[2] * k;
        out.par_chunks_mut(per_head.max(1))
            .zip(scores.par_chunks(per_head.max(1)))
            .enumerate()
            .for_each(|(i, (o, s))| {
                let bi = i * per_head / per_batch.max(1);
                softmax_rows_best(s, &mask[bi * k..(bi + 1) * k], o, self.scale)
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        probs: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // d softmax: p ⊙ (g − Σ g⊙p), times the scale applied before it.
        let dot = (grad * probs)?.sum_keepdim(D::Minus1)?;
        let ds = (probs * grad.broadcast_sub(&dot)?)? * self.scale as f64;
        Ok((Some(ds?), None))
    }
}
