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

impl AttentionProducts {
    /// Whether these products run in bf16 for sequences of `t` tokens and heads of `d`
    /// values on this CPU: where a projection may hand [`fused_attention`] q, k and v as
    /// bf16 already (it rounds them the same way).
    pub fn runs_bf16(self, t: usize, d: usize) -> bool {
        self == AttentionProducts::Bf16Where2x && short_attention_bf16::fits(t, d)
    }
}

/// `qkv` `[batch, seq, 3·hidden]` (Q, K, V blocks, each `heads × head_dim`; f32, or bf16
/// where [`AttentionProducts::runs_bf16`]), `key_mask` `[batch, seq]` (1 = token) →
/// context `[batch, seq, hidden]` f32. `None` off CPU or for other dtypes.
pub fn fused_attention(
    qkv: &Tensor,
    key_mask: &Tensor,
    heads: usize,
    scale: f64,
    products: AttentionProducts,
) -> Result<Option<Tensor>> {
    if !qkv.device().is_cpu() || !matches!(qkv.dtype(), DType::F32 | DType::BF16) {
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
    let bf16_kernel = products.runs_bf16(t, h3 / 3 / heads);
    let converted;
    let qkv = match qkv.dtype() {
        DType::BF16 if !bf16_kernel => {
            converted = qkv.to_dtype(DType::F32)?;
            &converted
        }
        _ => qkv,
    };
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
        let mask = contiguous_f32(s2, l2, "key_mask")?;
        let (b, t, h3) = l1.shape().dims3()?;
        let (h, d) = (h3 / 3, h3 / 3 / self.heads);
        // Not zeroed: every (sequence, head) block is written by its kernel.
        let mut out = Vec::with_capacity(b * t * h);
        let dst = OutPtr(out.as_mut_ptr());
        let shape = (b, t, h3);
        if let CpuStorage::BF16(all) = s1 {
            // bf16 comes only where the bf16 kernel runs (`fused_attention` converts).
            if !self.products.runs_bf16(t, d) {
                candle_core::bail!("fused attention: bf16 q/k/v where bf16 products do not run")
            }
            let Some((from, to)) = l1.contiguous_offsets() else {
                candle_core::bail!("qkv: expected a contiguous tensor")
            };
            let qkv = half::slice::HalfFloatSliceExt::reinterpret_cast(&all[from..to]);
            let scratch = short_attention_bf16::scratch_len(t, d);
            // SAFETY: `runs_bf16` (the kernel's `fits`) holds, checked above; the scratch
            // has its `scratch_len`; `each_head` hands out pointers as its contract says.
            self.each_head(qkv, mask, shape, dst, scratch, |head, scratch| unsafe {
                short_attention_bf16::attend(head, scratch)
            });
        } else {
            let qkv = contiguous_f32(s1, l1, "qkv")?;
            let short = short_attention::fits(t, d);
            let bf16 = self.products.runs_bf16(t, d);
            let scratch = if bf16 {
                short_attention_bf16::scratch_len(t, d)
            } else if short {
                short_attention::scratch_len(t, d)
            } else {
                t * t
            };
            // SAFETY: the chosen kernel's `fits(t, d)` holds, the scratch has its
            // `scratch_len(t, d)` floats, and `each_head` hands out pointers as its
            // contract says.
            self.each_head(qkv, mask, shape, dst, scratch, |head, scratch| unsafe {
                match (bf16, short) {
                    (true, _) => short_attention_bf16::attend(head, scratch),
                    (_, true) => short_attention::attend(head, scratch),
                    _ => gemm_attention(head, scratch),
                }
            });
        }
        // SAFETY: the b·heads blocks of t rows × d columns tile all b·t·h outputs.
        unsafe { out.set_len(b * t * h) };
        Ok((CpuStorage::F32(out), Shape::from((b, t, h))))
    }
}

impl AttentionOp {
    /// `kernel(head, scratch)` for every (sequence, head) of `qkv` `[b, t, h3]` in
    /// parallel, each task with its own `scratch` floats; the contexts go to `dst`
    /// (`[b, t, h3 / 3]`): each head's q, k, v cover `t` rows of stride `h3`, and its `out`
    /// block (rows of its sequence, its `d` columns) belongs to its task alone.
    fn each_head<T: Sync>(
        &self,
        qkv: &[T],
        mask: &[f32],
        (b, t, h3): (usize, usize, usize),
        dst: OutPtr,
        scratch: usize,
        kernel: impl Fn(&Head<T>, &mut [f32]) + Sync,
    ) {
        let h = h3 / 3;
        let d = h / self.heads;
        (0..b * self.heads).into_par_iter().for_each_init(
            || vec![0f32; scratch],
            |scratch, job| {
                let (bi, head) = (job / self.heads, job % self.heads);
                let base = bi * t * h3 + head * d;
                let (q, k, v) = (&qkv[base..], &qkv[base + h..], &qkv[base + 2 * h..]);
                let head = Head {
                    q: q.as_ptr(),
                    k: k.as_ptr(),
                    v: v.as_ptr(),
                    ld: h3,
                    d,
                    keys: &mask[bi * t..(bi + 1) * t],
                    scale: self.scale,
                    // SAFETY: inside the output: row bi·t, column head·d.
                    out: unsafe { dst.get().add(bi * t * h + head * d) },
                    out_ld: h,
                };
                kernel(&head, scratch)
            },
        );
    }
}

/// One head through two strided GEMMs and the row softmax (sequences too long for
/// [`short_attention`], or without AVX-512); `scores` holds `t·t` floats.
///
/// # Safety
/// As [`short_attention::attend`]'s pointers.
unsafe fn gemm_attention(head: &Head, scores: &mut [f32]) {
    let (t, d, ld) = (head.keys.len(), head.d, head.ld);
    strided_gemm(
        (t, t, d),
        scores.as_mut_ptr(),
        t,
        (head.q, ld, 1),
        (head.k, 1, ld),
        head.scale,
        1,
    );
    // The scale was applied by the score GEMM.
    if head.keys.iter().all(|&m| m > 0.0) {
        softmax_rows_unmasked_in_place_best(scores, t);
    } else {
        softmax_rows_in_place_best(scores, head.keys, 1.0);
    }
    strided_gemm(
        (t, d, t),
        head.out,
        head.out_ld,
        (scores.as_ptr(), t, 1),
        (head.v, ld, 1),
        1.0,
        1,
    );
}
