//! Loss functions for task heads and the trainer, written as candle ops so autograd gives
//! their gradients. Each matches the PyTorch formula named in its doc (checked against
//! fixtures in `tests/train_parity.rs`). All reduce by the mean over the batch.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor, D};

/// `log_softmax` over the last dimension. The row max is detached: it cancels out of the
/// result, so its gradient is exactly zero and need not be traced.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// `[n, classes]` one-hot rows of `labels`; an error names a label out of range.
pub fn one_hot(labels: &[u32], classes: usize, like: &Tensor) -> Result<Tensor> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &y) in labels.iter().enumerate() {
        if y as usize >= classes {
            return Err(Error::Invalid(format!(
                "label id {y} is out of range for {classes} classes"
            )));
        }
        v[i * classes + y as usize] = 1.0;
    }
    Ok(Tensor::from_vec(v, (labels.len(), classes), like.device())?.to_dtype(like.dtype())?)
}

/// Options of [`cross_entropy`].
#[derive(Clone, Debug, Default)]
pub struct CrossEntropy {
    /// `label_smoothing` of `torch.nn.functional.cross_entropy`.
    pub label_smoothing: f64,
    /// Per-class weights (`weight=`); the mean is then weighted as torch does it.
    pub class_weights: Option<Vec<f32>>,
}

/// `F.cross_entropy(logits, labels, weight, label_smoothing)` with mean reduction:
/// `(1-ε)·Σ w_y·nll / Σ w_y + ε/C · Σ_i Σ_j w_j·(−log p_ij) / Σ w_y`.
pub fn cross_entropy(logits: &Tensor, labels: &[u32], opt: &CrossEntropy) -> Result<Tensor> {
    let (n, c) = logits.dims2()?;
    check_batch(n, labels.len())?;
    let logp = log_softmax(logits)?;
    let y = one_hot(labels, c, logits)?;
    let w = match &opt.class_weights {
        Some(w) if w.len() != c => {
            return Err(Error::Invalid(format!(
                "{} class weights given for {c} classes",
                w.len()
            )))
        }
        Some(w) => Some(Tensor::from_slice(w, c, logits.device())?.to_dtype(logits.dtype())?),
        None => None,
    };
    let (y_w, norm) = match &w {
        Some(w) => {
            let yw = y.broadcast_mul(w)?;
            let norm = yw.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            (yw, norm)
        }
        None => (y.clone(), n as f64),
    };
    let nll = (logp.mul(&y_w)?.sum_all()?.neg()? / norm)?;
    if opt.label_smoothing == 0.0 {
        return Ok(nll);
    }
    let eps = opt.label_smoothing;
    let smooth = match &w {
        Some(w) => logp.broadcast_mul(w)?.sum_all()?.neg()?,
        None => logp.sum_all()?.neg()?,
    };
    let smooth = (smooth * (eps / c as f64 / norm))?;
    Ok(((nll * (1.0 - eps))? + smooth)?)
}

/// `F.binary_cross_entropy_with_logits(logits, targets)` (mean over every element), in the
/// stable form `max(x,0) − x·t + log(1 + e^{−|x|})`.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let per = bce_elementwise(logits, targets)?;
    Ok(per.mean_all()?)
}

fn bce_elementwise(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    check_same(x, t)?;
    Ok(((x.relu()? - x.mul(t)?)? + softplus_neg_abs(x)?)?)
}

/// `log(1 + e^{−|x|})`.
fn softplus_neg_abs(x: &Tensor) -> Result<Tensor> {
    Ok((x.abs()?.neg()?.exp()? + 1.0)?.log()?)
}

/// `softplus(x) = log(1 + eˣ)`, stable for large |x|.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + softplus_neg_abs(x)?)?)
}

/// `F.mse_loss(pred, target)`.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_same(pred, target)?;
    Ok(pred.sub(target)?.sqr()?.mean_all()?)
}

/// MSE plus `weight · (1 − Pearson r)` over the batch: the regression loss that also
/// rewards ranking (used for STS-style targets).
pub fn mse_corr(pred: &Tensor, target: &Tensor, weight: f64) -> Result<Tensor> {
    let pred = pred.flatten_all()?;
    let target = target.flatten_all()?;
    let m = mse(&pred, &target)?;
    let pc = pred.broadcast_sub(&pred.mean_all()?)?;
    let tc = target.broadcast_sub(&target.mean_all()?)?;
    let den = (pc.sqr()?.sum_all()?.sqrt()? * tc.sqr()?.sum_all()?.sqrt()?)?;
    let corr = pc.mul(&tc)?.sum_all()?.div(&den)?;
    Ok((m + ((corr.neg()? + 1.0)? * weight)?)?)
}

/// Multi-class focal loss `−α_y (1 − p_y)^γ log p_y` (Lin et al. 2017), mean over the batch;
/// `alpha` is an optional per-class weight.
pub fn focal(logits: &Tensor, labels: &[u32], gamma: f64, alpha: Option<&[f32]>) -> Result<Tensor> {
    let (n, c) = logits.dims2()?;
    check_batch(n, labels.len())?;
    let y = one_hot(labels, c, logits)?;
    let logp_y = log_softmax(logits)?.mul(&y)?.sum(D::Minus1)?;
    let p_y = logp_y.exp()?;
    let modulator = (p_y.neg()? + 1.0)?.powf(gamma)?;
    let mut per = modulator.mul(&logp_y)?.neg()?;
    if let Some(a) = alpha {
        let a: Vec<f32> = labels.iter().map(|&l| a[l as usize]).collect();
        per = per.mul(&Tensor::from_vec(a, n, logits.device())?.to_dtype(logits.dtype())?)?;
    }
    Ok(per.mean_all()?)
}

/// Binary (sigmoid) focal loss as torchvision's `sigmoid_focal_loss`, mean reduction:
/// `α_t (1 − p_t)^γ · BCE`.
pub fn focal_binary(logits: &Tensor, targets: &Tensor, gamma: f64, alpha: f64) -> Result<Tensor> {
    let ce = bce_elementwise(logits, targets)?;
    // σ(x) = exp(−softplus(−x)), from differentiable ops (candle-nn's fused ones lack backward).
    let p = softplus(&logits.neg()?)?.neg()?.exp()?;
    let one_minus_t = (targets.neg()? + 1.0)?;
    let p_t = (p.mul(targets)? + (p.neg()? + 1.0)?.mul(&one_minus_t)?)?;
    let a_t = ((targets * alpha)? + (one_minus_t * (1.0 - alpha))?)?;
    let modulator = (p_t.neg()? + 1.0)?.powf(gamma)?;
    Ok(a_t.mul(&modulator)?.mul(&ce)?.mean_all()?)
}

/// Soft multi-class dice loss on softmax probabilities, averaged over classes:
/// `1 − (2 Σ p·y + s) / (Σ p + Σ y + s)`.
pub fn dice(logits: &Tensor, labels: &[u32], smooth: f64) -> Result<Tensor> {
    let (n, c) = logits.dims2()?;
    check_batch(n, labels.len())?;
    let p = log_softmax(logits)?.exp()?;
    let y = one_hot(labels, c, logits)?;
    let inter = p.mul(&y)?.sum(0)?;
    let card = (p.sum(0)? + y.sum(0)?)?;
    let ratio = ((inter * 2.0)? + smooth)?.div(&(card + smooth)?)?;
    Ok((ratio.neg()? + 1.0)?.mean_all()?)
}

/// R-Drop's symmetric KL between two forward passes' predictions:
/// `½ (KL(p_a ‖ p_b) + KL(p_b ‖ p_a))`, summed over classes, mean over the batch.
pub fn rdrop_kl(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_same(a, b)?;
    let la = log_softmax(a)?;
    let lb = log_softmax(b)?;
    let diff = la.sub(&lb)?;
    let kl = (la.exp()?.mul(&diff)? - lb.exp()?.mul(&diff)?)?;
    Ok((kl.sum(D::Minus1)?.mean_all()? * 0.5)?)
}

/// Knowledge distillation's soft-label loss (Hinton et al.; DistilBERT's
/// `KLDivLoss(reduction="batchmean")(log_softmax(s/T), softmax(t/T)) · T²`):
/// `T² · KL(softmax(teacher/T) ‖ softmax(student/T))`, summed over classes, mean over rows.
/// The `T²` keeps its gradient on the hard loss's scale. No gradient reaches the teacher.
pub fn distill_kl(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor> {
    check_same(student, teacher)?;
    let ls = log_softmax(&(student / temperature)?)?;
    let lt = log_softmax(&(teacher.detach() / temperature)?)?;
    let kl = lt.exp()?.mul(&lt.sub(&ls)?)?;
    Ok((kl.sum(D::Minus1)?.mean_all()? * (temperature * temperature))?)
}

/// The classic binary losses on a score `f` and a sign label `y ∈ {−1, +1}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarginLoss {
    /// `max(0, 1 − y f)` (SVM).
    Hinge,
    /// `e^{−y f}` (AdaBoost).
    Exponential,
    /// `|y − f|` (L1).
    Absolute,
    /// `log(1 + e^{−y f})` (logistic regression).
    Log,
    /// `(y − f)²` (least squares).
    Squared,
    /// `max(0, −y f)` (perceptron).
    Perceptron,
}

impl MarginLoss {
    /// Mean loss of `scores` against `signs` (both `[n]`).
    pub fn loss(self, scores: &Tensor, signs: &Tensor) -> Result<Tensor> {
        check_same(scores, signs)?;
        let margin = || -> Result<Tensor> { Ok(scores.mul(signs)?) };
        let per = match self {
            MarginLoss::Hinge => (margin()?.neg()? + 1.0)?.relu()?,
            MarginLoss::Exponential => margin()?.neg()?.exp()?,
            MarginLoss::Absolute => signs.sub(scores)?.abs()?,
            MarginLoss::Log => softplus(&margin()?.neg()?)?,
            MarginLoss::Squared => signs.sub(scores)?.sqr()?,
            MarginLoss::Perceptron => margin()?.neg()?.relu()?,
        };
        Ok(per.mean_all()?)
    }
}

/// The 0-1 loss (a metric, it has no useful gradient): the fraction with `y·f ≤ 0`.
pub fn zero_one(scores: &[f32], signs: &[f32]) -> f64 {
    let wrong = scores
        .iter()
        .zip(signs)
        .filter(|(s, y)| *s * *y <= 0.0)
        .count();
    wrong as f64 / scores.len().max(1) as f64
}

fn check_batch(rows: usize, labels: usize) -> Result<()> {
    if rows != labels {
        return Err(Error::Invalid(format!(
            "{rows} rows of logits but {labels} labels"
        )));
    }
    Ok(())
}

fn check_same(a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::Invalid(format!(
            "loss inputs differ in shape: {:?} vs {:?}",
            a.dims(),
            b.dims()
        )));
    }
    Ok(())
}
