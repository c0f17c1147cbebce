//! The training engine: one optimiser step of any [`Task`] — forward/loss (+ R-Drop, L1/L2)
//! → backward (+ FGM/PGD) → accumulate → clip → optimiser step → EMA — and the state a run
//! carries between steps. The loop around it, evaluation and checkpoints are in
//! [`super::fit`].
//!
//! A [`Trainer`] can be driven whole ([`Trainer::fit`]) or step by step ([`Trainer::step`],
//! [`Trainer::evaluate`]) from user code with its own loop or callbacks.

use super::checkpoint::{self, TrainState};
use super::config::{Adversarial, BestMetric, RunConfig};
use super::evaluation::{Callback, Evaluation, StepStats};
use super::groups::{build_groups, GroupSummary};
use super::optim::Optimizer;
use super::report::{self, LogRecord};
use super::schedule::Schedule;
use super::task::{Split, Task};
use super::tricks::{accumulate, clip_coefficient, global_grad_norm, Adversary, Ema};
use crate::error::{Error, Result};
use crate::rng;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::path::{Path, PathBuf};

/// The engine that trains a [`Task`].
pub struct Trainer<T: Task> {
    pub(super) cfg: RunConfig,
    pub(super) task: T,
    pub(super) optimizer: Optimizer,
    pub(super) schedule: Schedule,
    opt_vars: Vec<Var>,
    decayed_vars: Vec<Var>,
    pub(super) ema: Option<Ema>,
    adversary: Option<Adversary>,
    pub(super) state: TrainState,
    pub(super) log: Vec<LogRecord>,
    pub(super) callbacks: Vec<Box<dyn Callback>>,
    pub(super) metric: BestMetric,
    summary: GroupSummary,
}

impl<T: Task> Trainer<T> {
    /// Builds the optimiser, schedule and tricks for `task`; with `resume`, continues from
    /// `<output_dir>/checkpoint` (an error when there is none): weights, optimiser state
    /// and the loop's position. Build the task after [`prepare_run`], which sizes the
    /// thread pool before the task's data is tokenized.
    pub fn new(cfg: RunConfig, task: T, resume: bool) -> Result<Self> {
        let ckpt = prepare_run(&cfg, resume)?;
        if task.train_len() == 0 {
            return Err(Error::Invalid("the training set is empty".into()));
        }
        std::fs::create_dir_all(&cfg.output_dir).map_err(|e| Error::io(&cfg.output_dir, e))?;
        let (prefix, layers) = task.layer_layout();
        let opt_cfg = task.optimizer_config(&cfg.optimizer);
        let (groups, summary) = build_groups(task.params(), &opt_cfg, &prefix, layers)?;
        let vars_of = |decayed_only: bool| -> Vec<Var> {
            groups
                .iter()
                .filter(|g| !decayed_only || g.weight_decay > 0.0)
                .flat_map(|g| g.params.iter().map(|(_, v)| v.clone()))
                .collect()
        };
        let (opt_vars, decayed_vars) = (vars_of(false), vars_of(true));
        let optimizer = Optimizer::new(&opt_cfg, groups)?;
        let total = total_steps(&cfg, task.train_len());
        let schedule = cfg.schedule.build(total, cfg.optimizer.lr)?;
        let ema = match cfg.tricks.ema_decay > 0.0 {
            true => Some(Ema::new(cfg.tricks.ema_decay, optimizer.params())?),
            false => None,
        };
        let adversary = adversary_for(&cfg, &task)?;
        let metric = cfg.train.metric.unwrap_or_else(|| task.default_metric());
        let mut t = Trainer {
            cfg,
            task,
            optimizer,
            schedule,
            opt_vars,
            decayed_vars,
            ema,
            adversary,
            state: TrainState::new(total),
            log: Vec::new(),
            callbacks: Vec::new(),
            metric,
            summary,
        };
        match (resume, ckpt) {
            (true, Some(dir)) => t.restore(&dir)?,
            _ => report::reset_log(&t.cfg.output_dir)?,
        }
        Ok(t)
    }

    /// Registers a callback.
    pub fn add_callback(&mut self, cb: Box<dyn Callback>) {
        self.callbacks.push(cb);
    }

    /// The run configuration.
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// The task being trained (its model, tokenizer and data).
    pub fn task(&self) -> &T {
        &self.task
    }

    /// Loop state (steps, epoch, best metric).
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// The opening summary: the task's, then steps and parameter groups.
    pub fn describe(&self) -> String {
        let s = &self.summary;
        let m = crate::util::human_count;
        let epochs = self.cfg.train.epochs;
        let per_epoch = self
            .task
            .train_len()
            .div_ceil(self.cfg.train.batch_size.max(1));
        let capped = match self.cfg.train.max_steps {
            0 => String::new(),
            n => format!(", capped at train.max_steps = {n}"),
        };
        format!(
            "{}\nplan: {} steps ({} epochs × {} steps{}, warm-up {}) · best model by {:?}\n\
             params: {} tensors ({}) with weight decay, {} ({}) without, {} ({}) frozen; {} lr/decay groups",
            self.task.describe(),
            self.state.total_steps,
            epochs,
            per_epoch,
            capped,
            self.schedule.warmup_steps(),
            self.metric,
            s.decayed.0,
            m(s.decayed.1),
            s.not_decayed.0,
            m(s.not_decayed.1),
            s.frozen.0,
            m(s.frozen.1),
            s.groups,
        )
    }

    /// The loss of one micro-batch in training mode: the task's loss (averaged over two
    /// dropout passes plus α·divergence with R-Drop) plus the L1/L2 penalties.
    pub fn batch_loss(&self, batch: &T::Batch) -> Result<Tensor> {
        let first = self.task.forward(batch, true)?;
        let mut loss = first.loss;
        let alpha = self.cfg.tricks.rdrop_alpha;
        if alpha > 0.0 {
            let second = self.task.forward(batch, true)?;
            let (Some(a), Some(b)) = (&first.logits, &second.logits) else {
                return Err(Error::Invalid(
                    "tricks.rdrop_alpha: this task gives no logits to compare".into(),
                ));
            };
            let div = self.task.rdrop_divergence(a, b)?;
            loss = (((loss + second.loss)? * 0.5)? + (div * alpha)?)?;
        }
        let (l1, l2) = (self.cfg.task.l1, self.cfg.task.l2);
        for w in self.decayed_vars.iter().map(Var::as_tensor) {
            if l1 > 0.0 {
                loss = (loss + (w.abs()?.sum_all()? * l1)?)?;
            }
            if l2 > 0.0 {
                loss = (loss + (w.sqr()?.sum_all()? * l2)?)?;
            }
        }
        Ok(loss)
    }

    /// One optimiser step over `micro_batches` (gradients summed, each loss divided by
    /// their count): backward, adversarial passes, clipping, update, EMA.
    pub fn step(&mut self, micro_batches: &[T::Batch]) -> Result<StepStats> {
        // Dropout masks of a step are a function of (seed, step): a resumed run draws the same.
        rng::seed_dropout(self.cfg.seed ^ rng::mix64(self.state.global_step.wrapping_add(1)));
        let n = micro_batches.len().max(1) as f64;
        let mut acc = GradStore::default();
        let mut loss_sum = 0.0;
        for mb in micro_batches {
            let loss = self.batch_loss(mb)?;
            loss_sum += self.finite_loss(&loss)? / n;
            let mut grads = (loss / n)?.backward()?;
            self.adversarial(mb, &mut grads, n)?;
            accumulate(&mut acc, grads, self.opt_vars.iter())?;
        }
        let norm = global_grad_norm(&acc, self.opt_vars.iter())?;
        let coef = clip_coefficient(norm, self.cfg.train.max_grad_norm);
        let lr_scale = self.schedule.factor(self.state.global_step);
        self.optimizer.step(&acc, lr_scale, coef)?;
        let lr = self.optimizer.base_lrs().first().copied().unwrap_or(0.0) * lr_scale;
        if let Some(ema) = &mut self.ema {
            ema.update()?;
        }
        self.state.global_step += 1;
        Ok(StepStats {
            step: self.state.global_step,
            loss: loss_sum,
            lr,
            grad_norm: norm,
        })
    }

    /// The value of a micro-batch loss, or an error when it is not finite.
    fn finite_loss(&self, loss: &Tensor) -> Result<f64> {
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Err(Error::Invalid(format!(
                "the loss became {value} at step {}: training stopped; the last good checkpoint is in {} (lower optimizer.lr or enable train.max_grad_norm)",
                self.state.global_step + 1,
                self.cfg.output_dir.join("checkpoint").display()
            )));
        }
        Ok(value)
    }

    /// FGM / PGD: perturb the word embeddings along the gradient, add the adversarial
    /// loss's gradients, restore the embeddings.
    fn adversarial(&mut self, mb: &T::Batch, grads: &mut GradStore, n: f64) -> Result<()> {
        let Some(adv) = &self.adversary else {
            return Ok(());
        };
        let table = adv.table().as_tensor().clone();
        let Some(mut g) = grads.get(&table).cloned() else {
            return Ok(());
        };
        let t = &self.cfg.tricks;
        let (k, step, ball) = match t.adversarial {
            Adversarial::Pgd => (t.pgd_steps, t.pgd_alpha, Some(t.adv_epsilon)),
            _ => (1, t.adv_epsilon, None),
        };
        for i in 0..k {
            if let Some(adv) = &mut self.adversary {
                adv.attack(&g, step, ball)?;
            }
            let adv_grads = (self.batch_loss(mb)? / n)?.backward()?;
            if i + 1 < k {
                match adv_grads.get(&table) {
                    Some(next) => g = next.clone(),
                    None => break,
                }
            } else {
                accumulate(grads, adv_grads, self.opt_vars.iter())?;
            }
        }
        if let Some(adv) = &mut self.adversary {
            adv.restore()?;
        }
        Ok(())
    }

    /// Evaluates a held-out split in eval mode (with the EMA weights when on).
    pub fn evaluate(&mut self, split: Split) -> Result<Option<Evaluation>> {
        self.with_shadow(|t| {
            t.task
                .evaluate(split, t.state.global_step, t.cfg.train.eval_batch_size)
        })
    }

    /// Writes the model as an HF directory (EMA weights when on).
    pub fn save_best(&mut self, dir: &Path) -> Result<()> {
        self.with_shadow(|t| checkpoint::save_model_dir(dir, |tmp| t.task.save_pretrained(tmp)))
    }

    /// Runs `f` with the EMA shadow weights swapped in (when EMA is on).
    fn with_shadow<R>(&mut self, f: impl FnOnce(&Self) -> Result<R>) -> Result<R> {
        if let Some(ema) = &mut self.ema {
            ema.apply_shadow()?;
        }
        let r = f(self);
        if let Some(ema) = &mut self.ema {
            ema.restore()?;
        }
        r
    }

    /// Writes `<output_dir>/checkpoint`: live weights, optimiser + EMA state, loop state.
    pub fn save_checkpoint(&mut self) -> Result<()> {
        let (mut tensors, steps) = self.optimizer.state()?;
        if let Some(ema) = &self.ema {
            tensors.extend(ema.state()?);
        }
        self.state.optimizer_steps = steps;
        let task = &self.task;
        checkpoint::save_checkpoint(
            &self.cfg.output_dir,
            |tmp| task.save_pretrained(tmp),
            &tensors,
            &self.state,
        )
    }

    fn restore(&mut self, dir: &Path) -> Result<()> {
        let (state, tensors) = checkpoint::load_state(dir)?;
        if state.total_steps != self.state.total_steps {
            return Err(Error::Invalid(format!(
                "{}: the checkpoint was made for {} steps, this config gives {} (data or epochs changed?)",
                dir.display(),
                state.total_steps,
                self.state.total_steps
            )));
        }
        self.task.load_weights(dir)?;
        self.optimizer
            .load_state(&tensors, &state.optimizer_steps)?;
        if let Some(ema) = &mut self.ema {
            ema.load_state(&tensors)?;
        }
        self.state = state;
        self.log = report::read_log(&self.cfg.output_dir, self.state.global_step)?;
        Ok(())
    }
}

/// Steps of the whole run: `epochs` passes over the training set, capped by `max_steps`.
fn total_steps(cfg: &RunConfig, train_len: usize) -> u64 {
    let per_epoch = train_len.div_ceil(cfg.train.batch_size) as u64;
    let total = per_epoch * cfg.train.epochs as u64;
    match cfg.train.max_steps {
        0 => total,
        max => total.min(max),
    }
}

fn adversary_for<T: Task>(cfg: &RunConfig, task: &T) -> Result<Option<Adversary>> {
    if cfg.tricks.adversarial == Adversarial::None {
        return Ok(None);
    }
    let name = task.word_embeddings().ok_or_else(|| {
        Error::Invalid("tricks.adversarial: this task has no word embeddings to perturb".into())
    })?;
    let var = task
        .params()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "tricks.adversarial: `{name}` is frozen or not trainable"
            ))
        })?;
    Ok(Some(Adversary::new(var)))
}

/// What every run does before its task loads data: sizes rayon's pool (`train.threads`)
/// and finds the checkpoint to continue from (an error when `resume` is asked and there is
/// none). Writes nothing; cheap, so front ends call it first to fail fast.
pub fn prepare_run(cfg: &RunConfig, resume: bool) -> Result<Option<PathBuf>> {
    crate::util::init_threads(cfg.train.threads);
    let ckpt = checkpoint::latest(&cfg.output_dir);
    if resume && ckpt.is_none() {
        return Err(Error::Invalid(format!(
            "--resume: no checkpoint in {} (start without --resume)",
            cfg.output_dir.display()
        )));
    }
    Ok(ckpt)
}
