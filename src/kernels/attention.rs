//! Fused inference self-attention over a packed QKV projection: per (sequence, head), in
//! parallel, `softmax(scale · q·kᵀ + mask) · v` with q, k, v read in place from the
//! `[batch, seq, 3·hidden]` projection through strides and the context written straight into
//! `[batch, seq, hidden]`. Compared with the tensor-op version this skips the head split
//! and merge copies, the `[batch, heads, seq, seq]` score tensor and a softmax pass, and runs
//! the small GEMMs single-threaded side by side instead of parallelising each one. Up to
//! 128 tokens on AVX-512 a head runs in registers instead ([`short_attention`], with bf16
//! products [`short_attention_bf16`]). Forward only: training uses the differentiable composition (dropout on the
//! probabilities needs it anyway).

use super::common::contiguous_f32;
use super::common::OutPtr;
use super::linear::strided_gemm;
use super::short_attention::{self, Head};
use super::short_attention_bf16;
use super::softmax::{softmax_rows_in_place_best, softmax_rows_unmasked_in_place_best};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct AttentionOp {
    heads: usize,
    scale: f32,
    products: AttentionProducts,
}

/// The precision of attention's two products, `q·kᵀ` and `p·v` (scaling, softmax and the
/// sums stay f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionProducts {
    /// f32 operands.
    F32,
    /// q, k, the probabilities and v rounded to bf16 where the CPU multiplies bf16 pairs
    /// natively (AVX-512 BF16: twice the f32 rate), for sequences of up to 128 tokens and
    /// head sizes a multiple of 32; f32 elsewhere. For the int8 encoder, whose own
    /// rounding is larger.
    Bf16Where2x,
}

/// `qkv` `[batch, seq, 3·hidden]` (Q, K, V blocks, each `heads × head_dim`), `key_mask`
/// `[batch, seq]` (1 = token) → context `[batch, seq, hidden]`. `None` off CPU f32.
pub fn fused_attention(
    qkv: &Tensor,
    key_mask: &Tensor,
    heads: usize,
    scale: f64,
    products: AttentionProducts,
) -> Result<Option<Tensor>> {
    if !qkv.device().is_cpu() || qkv.dtype() != DType::F32 {
        return Ok(None);
    }
    let (b, t, h3) = qkv.dims3()?;
    if h3 % (3 * heads) != 0 || key_mask.dims2()? != (b, t) {
        candle_core::bail!(
            "fused_attention: qkv {:?} / mask {:?} / {heads} heads",
            qkv.dims(),
            key_mask.dims()
        );
    }
    let mask = key_mask.to_dtype(DType::F32)?.contiguous()?;
    let op = AttentionOp {
        heads,
        scale: scale as f32,
        products,
    };
    Ok(Some(qkv.contiguous()?.apply_op2(&mask, op)?))
}

impl CustomOp2 for AttentionOp {
    fn name(&self) -> &'static str {
        "bert4rs-fused-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(s1, l1, "qkv")?;
        let mask = contiguous_f32(s2, l2, "key_mask")?;
        let (b, t, h3) = l1.shape().dims3()?;
        let h = h3 / 3;
        let d = h / self.heads;
        // Not zeroed: every (sequence, head) block is written by its context GEMM.
        let mut out = Vec::with_capacity(b * t * h);
        let dst = OutPtr(out.as_mut_ptr());
        let short = short_attention::fits(t, d);
        let bf16 =
            self.products == AttentionProducts::Bf16Where2x && short_attention_bf16::fits(t, d);
        let scratch = if bf16 {
            short_attention_bf16::scratch_len(t, d)
        } else if short {
            short_attention::scratch_len(t, d)
        } else {
            t * t
        };
        (0..b * self.heads).into_par_iter().for_each_init(
            || vec![0f32; scratch],
            |scratch, job| {
                let (bi, head) = (job / self.heads, job % self.heads);
                let base = bi * t * h3 + head * d;
                let (q, k, v) = (&qkv[base..], &qkv[base + h..], &qkv[base + 2 * h..]);
                let keys = &mask[bi * t..(bi + 1) * t];
                // SAFETY: the output block (rows of sequence bi, columns head·d..) belongs
                // to this task; q/k/v cover t rows of stride 3h from `base`.
                let out = unsafe { dst.get().add(bi * t * h + head * d) };
                if short {
                    let head = Head {
                        q: q.as_ptr(),
                        k: k.as_ptr(),
                        v: v.as_ptr(),
                        ld: h3,
                        d,
                        keys,
                        scale: self.scale,
                        out,
                        out_ld: h,
                    };
                    // SAFETY: the chosen kernel's `fits(t, d)` holds, the scratch has its
                    // `scratch_len(t, d)` floats, and the pointers are as above.
                    unsafe {
                        match bf16 {
                            true => short_attention_bf16::attend(&head, scratch),
                            false => short_attention::attend(&head, scratch),
                        }
                    }
                } else {
                    // SAFETY: as above; scores is t×t.
                    unsafe {
                        gemm_attention(t, d, (q, k, v, h3), keys, self.scale, scratch, (out, h))
                    };
                }
            },
        );
        // SAFETY: the b·heads blocks of t rows × d columns tile all b·t·h outputs.
        unsafe { out.set_len(b * t * h) };
        Ok((CpuStorage::F32(out), Shape::from((b, t, h))))
    }
}

/// One head through two strided GEMMs and the row softmax (sequences too long for
/// [`short_attention`], or without AVX-512).
///
/// # Safety
/// q, k, v cover `t` rows of stride `ld`; `out` is valid for `t` rows of `d` values at
/// stride `out_ld` and no one else writes them; `scores` holds `t·t` floats.
unsafe fn gemm_attention(
    t: usize,
    d: usize,
    (q, k, v, ld): (&[f32], &[f32], &[f32], usize),
    keys: &[f32],
    scale: f32,
    scores: &mut [f32],
    (out, out_ld): (*mut f32, usize),
) {
    strided_gemm(
        (t, t, d),
        scores.as_mut_ptr(),
        t,
        (q.as_ptr(), ld, 1),
        (k.as_ptr(), 1, ld),
        scale,
        1,
    );
    // The scale was applied by the score GEMM.
    if keys.iter().all(|&m| m > 0.0) {
        softmax_rows_unmasked_in_place_best(scores, t);
    } else {
        softmax_rows_in_place_best(scores, keys, 1.0);
    }
    strided_gemm(
        (t, d, t),
        out,
        out_ld,
        (scores.as_ptr(), t, 1),
        (v.as_ptr(), ld, 1),
        1.0,
        1,
    );
}
