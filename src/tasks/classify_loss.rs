//! The losses of a sequence-level head (`[loss]`): the problem's natural one (cross-entropy,
//! binary cross-entropy per class, MSE) or focal, dice, sigmoid focal and MSE + (1 − r).

use crate::data::labelled::{Problem, Targets};
use crate::error::{Error, Result};
use crate::nn::losses::{self, CrossEntropy};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// The loss a head trains with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Cross-entropy (single-label; label smoothing and class weights apply).
    Ce,
    /// Multi-class focal loss.
    Focal,
    /// Soft dice loss.
    Dice,
    /// Binary cross-entropy per class (multi-label).
    Bce,
    /// Sigmoid focal loss per class (multi-label).
    FocalBinary,
    /// Mean squared error (regression).
    Mse,
    /// MSE + (1 − Pearson r) (regression).
    MseCorr,
}

/// Loss settings (section `[loss]` of a run config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// The loss; `None` = the problem's natural one (ce, bce, mse).
    pub name: Option<LossKind>,
    /// Cross-entropy label smoothing.
    pub label_smoothing: f64,
    /// Per-class weights for cross-entropy (in label order).
    pub class_weights: Option<Vec<f32>>,
    /// Focal γ.
    pub focal_gamma: f64,
    /// Focal α: per class (multi-class) or its first value for the positive class (binary).
    pub focal_alpha: Option<Vec<f32>>,
    /// Dice smoothing.
    pub dice_smooth: f64,
    /// Weight of the correlation term of `mse_corr`.
    pub corr_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            name: None,
            label_smoothing: 0.0,
            class_weights: None,
            focal_gamma: 2.0,
            focal_alpha: None,
            dice_smooth: 1.0,
            corr_weight: 1.0,
        }
    }
}

/// The loss of a head's logits (shared with custom heads).
pub fn head_loss(
    problem: Problem,
    logits: &Tensor,
    targets: &Targets,
    cfg: &LossConfig,
) -> Result<Tensor> {
    let kind = cfg.name.unwrap_or(match problem {
        Problem::SingleLabel => LossKind::Ce,
        Problem::MultiLabel => LossKind::Bce,
        Problem::Regression => LossKind::Mse,
    });
    let dev = logits.device();
    match (targets, kind) {
        (Targets::Classes(y), LossKind::Ce) => losses::cross_entropy(
            logits,
            y,
            &CrossEntropy {
                label_smoothing: cfg.label_smoothing,
                class_weights: cfg.class_weights.clone(),
            },
        ),
        (Targets::Classes(y), LossKind::Focal) => {
            losses::focal(logits, y, cfg.focal_gamma, cfg.focal_alpha.as_deref())
        }
        (Targets::Classes(y), LossKind::Dice) => losses::dice(logits, y, cfg.dice_smooth),
        (Targets::Multi(rows), LossKind::Bce | LossKind::FocalBinary) => {
            let (b, n) = (rows.len(), rows.first().map_or(0, |r| r.len()));
            let t = Tensor::from_vec(rows.concat(), (b, n), dev)?.to_dtype(DType::F32)?;
            if kind == LossKind::Bce {
                losses::bce_with_logits(logits, &t)
            } else {
                let alpha = cfg
                    .focal_alpha
                    .as_ref()
                    .and_then(|a| a.first())
                    .copied()
                    .unwrap_or(0.25);
                losses::focal_binary(logits, &t, cfg.focal_gamma, alpha as f64)
            }
        }
        (Targets::Scores(s), LossKind::Mse | LossKind::MseCorr) => {
            let t = Tensor::from_slice(s, s.len(), dev)?;
            let pred = logits.flatten_all()?;
            if kind == LossKind::Mse {
                losses::mse(&pred, &t)
            } else {
                losses::mse_corr(&pred, &t, cfg.corr_weight)
            }
        }
        (_, kind) => Err(Error::Invalid(format!(
            "loss `{kind:?}` does not fit a {} head",
            problem.hf_name()
        ))),
    }
}
