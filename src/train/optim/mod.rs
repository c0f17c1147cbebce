//! Optimisers as in `torch.optim`, updating each parameter buffer in place with one fused
//! pass (no temporaries), with parameter groups (per-group lr and weight decay) and a state
//! that checkpoints save and restore.
//!
//! One file per algorithm; each holds the element-wise update of one chunk, and this module
//! drives it over every parameter in parallel.

mod adadelta;
mod adagrad;
mod adam;
mod rmsprop;
mod sgd;

use super::inplace::in_place;
use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// `torch.optim.SGD`.
    Sgd,
    /// `torch.optim.Adagrad`.
    Adagrad,
    /// `torch.optim.Adadelta`.
    Adadelta,
    /// `torch.optim.RMSprop`.
    Rmsprop,
    /// `torch.optim.Adam` (weight decay added to the gradient).
    Adam,
    /// `torch.optim.AdamW` (decoupled weight decay).
    Adamw,
}

/// Hyper-parameters shared by every group; defaults are torch's where torch has one, and
/// the fine-tuning defaults (AdamW, 2e-5, decay 0.01) of the notes otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Which algorithm.
    pub name: Algorithm,
    /// Learning rate (of the encoder: the notes' `bert_lr`).
    pub lr: f64,
    /// Learning rate of the task head (`down_stream_lr`); `None` = `lr`.
    pub head_lr: Option<f64>,
    /// Weight decay for every parameter not matched by `no_decay`.
    pub weight_decay: f64,
    /// Name fragments of parameters that get no weight decay.
    pub no_decay: Vec<String>,
    /// Layer-wise lr decay: layer `i` of `L` gets `lr · layer_decay^(L − i)`, the
    /// embeddings `lr · layer_decay^(L+1)`... as `lr · layer_decay^(L + 1 − depth)`; 1 = off.
    pub layer_decay: f64,
    /// Parameter-name prefixes (relative to the encoder, e.g. `embeddings`,
    /// `encoder.layer.0`) that are frozen: no gradient, no update.
    pub freeze: Vec<String>,
    /// Adam(W) betas.
    pub betas: [f64; 2],
    /// Numerical epsilon (Adam 1e-8, Adagrad 1e-10, Adadelta 1e-6, RMSprop 1e-8 in torch).
    pub eps: f64,
    /// Adam: use AMSGrad.
    pub amsgrad: bool,
    /// SGD / RMSprop momentum.
    pub momentum: f64,
    /// SGD dampening.
    pub dampening: f64,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// RMSprop smoothing constant.
    pub alpha: f64,
    /// RMSprop: normalise by the centred second moment.
    pub centered: bool,
    /// Adadelta coefficient.
    pub rho: f64,
    /// Adagrad learning-rate decay.
    pub lr_decay: f64,
    /// Adagrad initial accumulator.
    pub initial_accumulator_value: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            name: Algorithm::Adamw,
            lr: 2e-5,
            head_lr: None,
            weight_decay: 0.01,
            no_decay: vec!["bias".into(), "LayerNorm.weight".into()],
            layer_decay: 1.0,
            freeze: Vec::new(),
            betas: [0.9, 0.999],
            eps: 1e-8,
            amsgrad: false,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            alpha: 0.99,
            centered: false,
            rho: 0.9,
            lr_decay: 0.0,
            initial_accumulator_value: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// Rejects settings torch rejects, naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, why: &str| Err(Error::Invalid(format!("optimizer.{f}: {why}")));
        if self.lr.is_nan() || self.lr < 0.0 || !self.lr.is_finite() {
            return bad("lr", "must be a finite number ≥ 0");
        }
        if self.weight_decay < 0.0 {
            return bad("weight_decay", "must be ≥ 0");
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return bad("betas", "each beta must be in [0, 1)");
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return bad("nesterov", "needs momentum > 0 and dampening = 0");
        }
        if self.layer_decay <= 0.0 {
            return bad("layer_decay", "must be > 0");
        }
        Ok(())
    }

    fn buffers(&self) -> [bool; 3] {
        match self.name {
            Algorithm::Sgd => [self.momentum != 0.0, false, false],
            Algorithm::Adagrad => [true, false, false],
            Algorithm::Adadelta => [true, true, false],
            Algorithm::Rmsprop => [true, self.momentum > 0.0, self.centered],
            Algorithm::Adam | Algorithm::Adamw => [true, true, self.amsgrad],
        }
    }
}

/// Optimiser buffers by name (`<param>.buf<i>`) and each parameter's step count.
pub type OptimizerState = (Vec<(String, Tensor)>, BTreeMap<String, u64>);

/// One parameter group: parameters sharing a learning rate and weight decay.
#[derive(Clone)]
pub struct ParamGroup {
    /// Base learning rate (the schedule multiplies it).
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Parameters by name.
    pub params: Vec<(String, Var)>,
}

struct ParamState {
    name: String,
    var: Var,
    step: u64,
    bufs: [Vec<f32>; 3],
}

struct Group {
    lr: f64,
    weight_decay: f64,
    params: Vec<ParamState>,
}

/// What one update of one chunk sees.
pub(crate) struct Hyper<'a> {
    cfg: &'a OptimizerConfig,
    lr: f64,
    weight_decay: f64,
    /// The parameter's step count, this step included (1 on the first).
    step: u64,
}

/// An optimiser over parameter groups.
pub struct Optimizer {
    cfg: OptimizerConfig,
    groups: Vec<Group>,
}

const CHUNK: usize = 1 << 14;

impl Optimizer {
    /// Builds the optimiser; buffers start at zero (Adagrad: its initial accumulator).
    pub fn new(cfg: &OptimizerConfig, groups: Vec<ParamGroup>) -> Result<Self> {
        cfg.validate()?;
        let want = cfg.buffers();
        let init = if cfg.name == Algorithm::Adagrad {
            cfg.initial_accumulator_value as f32
        } else {
            0.0
        };
        let groups = groups
            .into_iter()
            .map(|g| Group {
                lr: g.lr,
                weight_decay: g.weight_decay,
                params: g
                    .params
                    .into_iter()
                    .map(|(name, var)| {
                        let n = var.elem_count();
                        let buf = |i: usize| if want[i] { vec![init; n] } else { Vec::new() };
                        ParamState {
                            name,
                            var,
                            step: 0,
                            bufs: [buf(0), buf(1), buf(2)],
                        }
                    })
                    .collect(),
            })
            .collect();
        Ok(Optimizer {
            cfg: cfg.clone(),
            groups,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    /// Base learning rate of each group.
    pub fn base_lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.lr).collect()
    }

    /// Every optimised parameter (name, handle).
    pub fn params(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.groups
            .iter()
            .flat_map(|g| g.params.iter().map(|p| (p.name.as_str(), &p.var)))
    }

    /// One update: each group's lr is `base_lr · lr_scale`, each gradient is multiplied by
    /// `grad_scale` first (gradient clipping's coefficient). Parameters without a gradient
    /// are skipped, as torch skips `p.grad is None`.
    pub fn step(&mut self, grads: &GradStore, lr_scale: f64, grad_scale: f64) -> Result<()> {
        let cfg = &self.cfg;
        for group in &mut self.groups {
            for p in &mut group.params {
                let Some(g) = grads.get(p.var.as_tensor()) else {
                    continue;
                };
                p.step += 1;
                let h = Hyper {
                    cfg,
                    lr: group.lr * lr_scale,
                    weight_decay: group.weight_decay,
                    step: p.step,
                };
                apply(&h, &p.var, g, grad_scale as f32, &mut p.bufs)
                    .map_err(|e| Error::Invalid(format!("optimizer step on `{}`: {e}", p.name)))?;
            }
        }
        Ok(())
    }

    /// The state as named tensors (`<param>.buf<i>`) plus the step count of each parameter,
    /// for checkpoints.
    pub fn state(&self) -> Result<OptimizerState> {
        let mut tensors = Vec::new();
        let mut steps = BTreeMap::new();
        for p in self.groups.iter().flat_map(|g| &g.params) {
            steps.insert(p.name.clone(), p.step);
            for (i, b) in p.bufs.iter().enumerate() {
                if !b.is_empty() {
                    let t = Tensor::from_slice(b, p.var.shape(), &candle_core::Device::Cpu)?;
                    tensors.push((format!("{}.buf{i}", p.name), t));
                }
            }
        }
        Ok((tensors, steps))
    }

    /// Restores what [`Optimizer::state`] returned; an error names a missing or mis-shaped
    /// buffer (a checkpoint of another model or optimiser).
    pub fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
        steps: &BTreeMap<String, u64>,
    ) -> Result<()> {
        for p in self.groups.iter_mut().flat_map(|g| &mut g.params) {
            p.step = *steps.get(&p.name).ok_or_else(|| {
                Error::Invalid(format!(
                    "optimizer state has no step count for `{}`",
                    p.name
                ))
            })?;
            for (i, b) in p.bufs.iter_mut().enumerate() {
                if b.is_empty() {
                    continue;
                }
                let key = format!("{}.buf{i}", p.name);
                let t = tensors.get(&key).ok_or_else(|| {
                    Error::Invalid(format!(
                        "optimizer state lacks `{key}` (another optimizer?)"
                    ))
                })?;
                let v = t.flatten_all()?.to_vec1::<f32>()?;
                if v.len() != b.len() {
                    return Err(Error::Invalid(format!(
                        "optimizer state `{key}` has {} values, the parameter {}",
                        v.len(),
                        b.len()
                    )));
                }
                *b = v;
            }
        }
        Ok(())
    }
}

/// Runs the update of `h.cfg.name` over the whole parameter, in place, in parallel chunks.
fn apply(
    h: &Hyper,
    var: &Var,
    grad: &Tensor,
    grad_scale: f32,
    bufs: &mut [Vec<f32>; 3],
) -> Result<()> {
    let grad = grad.contiguous()?;
    let update = |p: &mut [f32], g: &[f32]| -> Result<()> {
        if p.len() != g.len() {
            return Err(Error::Invalid("gradient and parameter sizes differ".into()));
        }
        let scaled;
        let g = if grad_scale != 1.0 {
            scaled = g.iter().map(|x| x * grad_scale).collect::<Vec<f32>>();
            &scaled[..]
        } else {
            g
        };
        par_chunks(h, p, g, bufs);
        Ok(())
    };
    in_place(var.as_tensor(), &grad, update)
}

/// A buffer cut into `CHUNK`-sized pieces, or `n` empty pieces for an unused buffer.
fn split_buf(b: &mut [f32], n: usize) -> Vec<&mut [f32]> {
    if b.is_empty() {
        (0..n).map(|_| <&mut [f32]>::default()).collect()
    } else {
        b.chunks_mut(CHUNK).collect()
    }
}

fn par_chunks(h: &Hyper, p: &mut [f32], g: &[f32], bufs: &mut [Vec<f32>; 3]) {
    let [b0, b1, b2] = bufs;
    let n = p.len().div_ceil(CHUNK);
    let pieces: Vec<_> = p
        .chunks_mut(CHUNK)
        .zip(g.chunks(CHUNK))
        .zip(
            split_buf(b0, n)
                .into_iter()
                .zip(split_buf(b1, n))
                .zip(split_buf(b2, n)),
        )
        .collect();
    pieces.into_par_iter().for_each(|((p, g), ((a, b), c))| {
        let mut bs = [a, b, c];
        match h.cfg.name {
            Algorithm::Sgd => sgd::update(h, p, g, &mut bs),
            Algorithm::Adagrad => adagrad::update(h, p, g, &mut bs),
            Algorithm::Adadelta => adadelta::update(h, p, g, &mut bs),
            Algorithm::Rmsprop => rmsprop::update(h, p, g, &mut bs),
            Algorithm::Adam => adam::update(h, p, g, &mut bs, false),
            Algorithm::Adamw => adam::update(h, p, g, &mut bs, true),
        }
    });
}
