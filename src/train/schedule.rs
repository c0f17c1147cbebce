//! Learning-rate schedules with linear warm-up, the same lambdas as
//! `transformers.get_*_schedule_with_warmup` (the lr at step `s` is `base_lr · factor(s)`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The shape of the schedule after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Constant (warm-up ignored, as `get_constant_schedule`).
    Constant,
    /// Linear warm-up, then constant.
    ConstantWithWarmup,
    /// Linear warm-up, then linear decay to 0 at the last step.
    Linear,
    /// Linear warm-up, then cosine decay (`num_cycles` half-waves ×2; 0.5 = to zero once).
    Cosine,
    /// Linear warm-up, then polynomial decay to `lr_end`.
    Polynomial,
}

/// A schedule; `warmup_ratio` (of the total steps) is used when `warmup_steps` is unset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// The kind.
    pub name: ScheduleKind,
    /// Warm-up steps.
    pub warmup_steps: Option<u64>,
    /// Warm-up as a fraction of the training steps (used when `warmup_steps` is unset).
    pub warmup_ratio: f64,
    /// Cosine: number of waves (0.5 = half a cosine, decaying to 0).
    pub num_cycles: f64,
    /// Polynomial: final learning rate.
    pub lr_end: f64,
    /// Polynomial: power.
    pub power: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            name: ScheduleKind::Linear,
            warmup_steps: None,
            warmup_ratio: 0.0,
            num_cycles: 0.5,
            lr_end: 1e-7,
            power: 1.0,
        }
    }
}

/// A schedule resolved against a run length and the optimiser's base lr.
#[derive(Clone, Debug)]
pub struct Schedule {
    kind: ScheduleKind,
    warmup: u64,
    total: u64,
    num_cycles: f64,
    lr_end: f64,
    power: f64,
    base_lr: f64,
}

impl ScheduleConfig {
    /// Resolves warm-up and length; `base_lr` is the optimiser's lr (polynomial decay is
    /// relative to it, as transformers' is to `optimizer.defaults["lr"]`).
    pub fn build(&self, total_steps: u64, base_lr: f64) -> Result<Schedule> {
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(Error::Invalid(
                "schedule.warmup_ratio must be in [0, 1]".into(),
            ));
        }
        if self.name == ScheduleKind::Polynomial && self.lr_end > base_lr {
            return Err(Error::Invalid(format!(
                "schedule.lr_end ({}) must be ≤ optimizer.lr ({base_lr})",
                self.lr_end
            )));
        }
        let warmup = self
            .warmup_steps
            .unwrap_or((self.warmup_ratio * total_steps as f64).ceil() as u64);
        Ok(Schedule {
            kind: self.name,
            warmup,
            total: total_steps,
            num_cycles: self.num_cycles,
            lr_end: self.lr_end,
            power: self.power,
            base_lr,
        })
    }
}

impl Schedule {
    /// The multiplier of the base lr at optimiser step `step` (0 = the first step).
    pub fn factor(&self, step: u64) -> f64 {
        let (s, w, t) = (step as f64, self.warmup as f64, self.total as f64);
        if self.kind != ScheduleKind::Constant && step < self.warmup {
            return s / w.max(1.0);
        }
        match self.kind {
            ScheduleKind::Constant | ScheduleKind::ConstantWithWarmup => 1.0,
            ScheduleKind::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
            ScheduleKind::Cosine => {
                let progress = (s - w) / (t - w).max(1.0);
                let c = (std::f64::consts::PI * self.num_cycles * 2.0 * progress).cos();
                (0.5 * (1.0 + c)).max(0.0)
            }
            ScheduleKind::Polynomial => {
                if step > self.total {
                    return self.lr_end / self.base_lr;
                }
                let range = self.base_lr - self.lr_end;
                let remaining = 1.0 - (s - w) / (t - w);
                (range * remaining.powf(self.power) + self.lr_end) / self.base_lr
            }
        }
    }

    /// Warm-up steps after resolving `warmup_ratio`.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup
    }
}
