//! The training tricks of the bert4torch world that act on parameters and gradients:
//! gradient clipping by global norm, gradient accumulation, EMA of weights, and FGM / PGD
//! adversarial perturbations of the word embeddings. (R-Drop is a loss: see the trainer
//! and [`crate::nn::losses::rdrop_kl`].)

use super::inplace::{in_place, overwrite, to_host};
use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rayon::prelude::*;

/// The global L2 norm of the gradients of `vars`, as `torch.nn.utils.clip_grad_norm_`
/// computes it (norm of the per-tensor norms).
pub fn global_grad_norm<'a>(grads: &GradStore, vars: impl Iterator<Item = &'a Var>) -> Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            let n = g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
            sq += n;
        }
    }
    Ok(sq.sqrt())
}

/// The factor `clip_grad_norm_` multiplies every gradient by: `min(1, max / (norm + 1e-6))`.
pub fn clip_coefficient(total_norm: f64, max_norm: f64) -> f64 {
    if max_norm <= 0.0 {
        return 1.0;
    }
    (max_norm / (total_norm + 1e-6)).min(1.0)
}

/// Adds `more` into `acc` for every var (gradient accumulation over micro-batches).
pub fn accumulate<'a>(
    acc: &mut GradStore,
    more: GradStore,
    vars: impl Iterator<Item = &'a Var>,
) -> Result<()> {
    let mut more = more;
    for v in vars {
        let t = v.as_tensor();
        if let Some(g) = more.remove(t) {
            let sum = match acc.remove(t) {
                Some(a) => (a + g)?,
                None => g,
            };
            acc.insert(t, sum);
        }
    }
    Ok(())
}

/// Exponential moving average of the weights (bert4torch's `ExponentialMovingAverage`):
/// `shadow = decay · shadow + (1 − decay) · param` after each optimiser step. The shadow is
/// swapped in for evaluation and saving and the live weights restored afterwards.
pub struct Ema {
    decay: f32,
    shadow: Vec<(String, Var, Vec<f32>)>,
    backup: Option<Vec<Vec<f32>>>,
}

impl Ema {
    /// Starts the shadow at the current weights.
    pub fn new<'a>(decay: f64, vars: impl Iterator<Item = (&'a str, &'a Var)>) -> Result<Self> {
        let shadow = vars
            .map(|(n, v)| Ok((n.to_string(), v.clone(), to_host(v.as_tensor())?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Ema {
            decay: decay as f32,
            shadow,
            backup: None,
        })
    }

    /// One EMA update from the current weights.
    pub fn update(&mut self) -> Result<()> {
        let d = self.decay;
        for (_, v, s) in &mut self.shadow {
            let p = to_host(v.as_tensor())?;
            s.par_iter_mut().zip(p.par_iter()).for_each(|(s, p)| {
                *s = d * *s + (1.0 - d) * p;
            });
        }
        Ok(())
    }

    /// Puts the shadow weights into the model, keeping the live ones to restore.
    pub fn apply_shadow(&mut self) -> Result<()> {
        if self.backup.is_some() {
            return Ok(());
        }
        let mut backup = Vec::with_capacity(self.shadow.len());
        for (_, v, s) in &self.shadow {
            backup.push(to_host(v.as_tensor())?);
            overwrite(v.as_tensor(), |p| {
                p.copy_from_slice(s);
                Ok(())
            })?;
        }
        self.backup = Some(backup);
        Ok(())
    }

    /// Restores the live weights after [`Ema::apply_shadow`].
    pub fn restore(&mut self) -> Result<()> {
        if let Some(backup) = self.backup.take() {
            for ((_, v, _), b) in self.shadow.iter().zip(backup) {
                overwrite(v.as_tensor(), |p| {
                    p.copy_from_slice(&b);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// The shadow weights by name (for checkpoints).
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        self.shadow
            .iter()
            .map(|(n, v, s)| {
                Ok((
                    format!("ema.{n}"),
                    Tensor::from_slice(s, v.shape(), &candle_core::Device::Cpu)?,
                ))
            })
            .collect()
    }

    /// Restores the shadow saved by [`Ema::state`].
    pub fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<()> {
        for (n, _, s) in &mut self.shadow {
            let key = format!("ema.{n}");
            let t = tensors
                .get(&key)
                .ok_or_else(|| Error::Invalid(format!("checkpoint lacks EMA weights `{key}`")))?;
            *s = to_host(t)?;
        }
        Ok(())
    }
}

/// Adversarial training on the word embeddings: FGM (one step of size ε along the
/// normalised gradient) or PGD (K steps of size α, projected back into the ε-ball).
pub struct Adversary {
    table: Var,
    backup: Option<Vec<f32>>,
}

impl Adversary {
    /// Attacks `table` (the word-embedding weight).
    pub fn new(table: Var) -> Self {
        Adversary {
            table,
            backup: None,
        }
    }

    /// The attacked table.
    pub fn table(&self) -> &Var {
        &self.table
    }

    /// Adds `step · g / ‖g‖` to the table (saving the clean table on the first attack); with
    /// `epsilon` set, projects the total perturbation back onto the ε-ball (PGD). A zero or
    /// non-finite gradient norm leaves the table unchanged, as bert4torch does.
    pub fn attack(&mut self, grad: &Tensor, step: f64, epsilon: Option<f64>) -> Result<()> {
        let t = self.table.as_tensor();
        if self.backup.is_none() {
            self.backup = Some(to_host(t)?);
        }
        let norm = grad
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?
            .sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return Ok(());
        }
        let scale = (step / norm) as f32;
        in_place(t, &grad.contiguous()?, |p, g| {
            p.par_iter_mut()
                .zip(g.par_iter())
                .for_each(|(p, g)| *p += scale * g);
            Ok(())
        })?;
        if let (Some(eps), Some(clean)) = (epsilon, &self.backup) {
            overwrite(t, |p| {
                let r2: f64 = p
                    .iter()
                    .zip(clean)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum();
                let r = r2.sqrt();
                if r > eps {
                    let k = (eps / r) as f32;
                    p.par_iter_mut()
                        .zip(clean.par_iter())
                        .for_each(|(p, c)| *p = c + k * (*p - c));
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Puts the clean table back.
    pub fn restore(&mut self) -> Result<()> {
        if let Some(b) = self.backup.take() {
            overwrite(self.table.as_tensor(), |p| {
                p.copy_from_slice(&b);
                Ok(())
            })?;
        }
        Ok(())
    }
}
