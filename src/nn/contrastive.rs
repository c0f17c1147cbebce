//! SimCSE's contrastive objective (Gao, Yao & Chen 2021; InfoNCE with in-batch negatives):
//! row `i` of the anchors should be closest, in cosine similarity scaled by `1/τ`, to row `i`
//! of the positives, the other rows of the batch (and every hard negative) being negatives.
//! Written as candle ops so autograd gives the gradients; checked against the SimCSE code's
//! formula in PyTorch (`tests/simcse.rs`).

use super::losses::{cross_entropy, CrossEntropy};
use crate::error::{Error, Result};
use candle_core::{Tensor, D};

/// `cos(a_i, b_j)` for every pair of rows: `[n, m]` from `a` `[n, d]` and `b` `[m, d]`.
/// Each norm is clamped at 1e-8 as `nn.CosineSimilarity(eps=1e-8)` clamps it, so a zero
/// vector gives similarity 0 instead of NaN.
pub fn cosine_matrix(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(unit_rows(a, 1e-8)?.matmul(&unit_rows(b, 1e-8)?.t()?)?)
}

/// Each row (last dimension) divided by its L2 norm clamped at `eps`, as
/// `torch.nn.functional.normalize(x, eps=eps)`.
pub fn unit_rows(x: &Tensor, eps: f64) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(eps, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

/// The SimCSE loss: cross-entropy of `cos(anchor_i, ·) / temperature` over the columns
/// `[positives; hard_negatives]`, the target of row `i` being column `i` (mean over rows).
/// Unsupervised SimCSE passes the same sentences twice (two dropout masks) as anchors and
/// positives; supervised SimCSE passes entailment pairs, and their contradictions as hard
/// negatives.
pub fn simcse_loss(
    anchors: &Tensor,
    positives: &Tensor,
    hard_negatives: Option<&Tensor>,
    temperature: f64,
) -> Result<Tensor> {
    check_temperature(temperature)?;
    let (n, d) = anchors.dims2()?;
    if positives.dims2()? != (n, d) {
        return Err(Error::Invalid(format!(
            "SimCSE: {:?} positives for {:?} anchors; they must pair up row by row",
            positives.dims(),
            anchors.dims()
        )));
    }
    let mut logits = cosine_matrix(anchors, positives)?;
    if let Some(neg) = hard_negatives {
        if neg.dims2()? != (n, d) {
            return Err(Error::Invalid(format!(
                "SimCSE: {:?} hard negatives for {:?} anchors; give one per anchor",
                neg.dims(),
                anchors.dims()
            )));
        }
        logits = Tensor::cat(&[&logits, &cosine_matrix(anchors, neg)?], 1)?;
    }
    let logits = (logits / temperature)?;
    let labels: Vec<u32> = (0..n as u32).collect();
    cross_entropy(&logits, &labels, &CrossEntropy::default())
}

/// A temperature must be a positive finite number.
pub fn check_temperature(temperature: f64) -> Result<()> {
    if temperature.is_finite() && temperature > 0.0 {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "task.temperature must be a positive number (SimCSE uses 0.05), got {temperature}"
        )))
    }
}
