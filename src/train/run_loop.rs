//! The one epoch/step loop every training task runs (fine-tuning in [`super::trainer`], the
//! causal LM in [`super::lm`]): batches in a seeded order per epoch, a progress bar, step
//! logs, evaluation every `eval_every` steps or per epoch (the best model kept, early
//! stopping), checkpoints every `save_every` steps (0: at each evaluation) and at each
//! epoch's end, and `stop_after_steps` for interrupted runs. Everything it tracks lives in
//! [`TrainState`], so a resumed run picks up at the next batch of the same order.

use super::checkpoint::TrainState;
use super::config::RunConfig;
use super::trainer::{progress_bar, StepStats};
use crate::error::Result;
use crate::nn::rng;
use std::time::Instant;

/// What the loop drives: one task's data, step, evaluation and checkpoint.
pub(crate) trait Steps {
    /// One micro-batch as the task's step takes it.
    type MicroBatch;

    fn config(&self) -> &RunConfig;
    fn state(&self) -> &TrainState;
    fn state_mut(&mut self) -> &mut TrainState;
    /// The epoch's batches, as indices into the training set, in the epoch's seeded order.
    fn epoch_batches(&self, epoch_seed: u64) -> Vec<Vec<usize>>;
    /// The micro-batches of one batch (`micro` examples each).
    fn micro_batches(&self, idx: &[usize], micro: usize) -> Result<Vec<Self::MicroBatch>>;
    /// One optimiser step over the micro-batches.
    fn step(&mut self, micro: &[Self::MicroBatch]) -> Result<StepStats>;
    /// The progress bar's throughput text for `examples_per_s`.
    fn throughput(&self, examples_per_s: f64) -> String;
    /// Records a step (log file, callbacks).
    fn log_step(&mut self, stats: &StepStats, examples_per_s: f64) -> Result<()>;
    /// Evaluates on dev and keeps the best model; true = stop early.
    fn evaluate_and_keep(&mut self) -> Result<bool>;
    fn save_checkpoint(&mut self) -> Result<()>;
}

/// Runs epochs until the step budget, early stopping or the end; marks the run finished and
/// saves the final checkpoint. Returns `true` when `stop_after_steps` interrupted it (its
/// checkpoint saved; resume to continue).
pub(crate) fn run_epochs<S: Steps>(s: &mut S) -> Result<bool> {
    let (bs, accum) = (s.config().train.batch_size, s.config().train.grad_accum);
    let micro = (bs / accum.max(1)).max(1);
    let bar = progress_bar(s.state().total_steps, s.state().global_step);
    let mut done_here = 0u64;
    let mut stop = s.state().finished;
    let budget_left = |st: &TrainState| st.global_step < st.total_steps;
    while !stop && s.state().epoch < s.config().train.epochs && budget_left(s.state()) {
        let epoch_seed = s.config().seed ^ rng::mix64(0xE90C + s.state().epoch as u64);
        let batches = s.epoch_batches(epoch_seed);
        while s.state().batch_in_epoch < batches.len() && budget_left(s.state()) {
            let idx = &batches[s.state().batch_in_epoch];
            let mbs = s.micro_batches(idx, micro)?;
            let t0 = Instant::now();
            let stats = s.step(&mbs)?;
            let per_s = idx.len() as f64 / t0.elapsed().as_secs_f64();
            s.state_mut().batch_in_epoch += 1;
            done_here += 1;
            bar.set_position(s.state().global_step);
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} {}",
                stats.loss,
                stats.lr,
                s.throughput(per_s)
            ));
            let train = &s.config().train;
            let (log_every, every, save, limit) = (
                train.log_every.max(1),
                train.eval_every,
                train.save_every,
                train.stop_after_steps,
            );
            if stats.step % log_every == 0 || stats.step == 1 {
                s.log_step(&stats, per_s)?;
            }
            if every > 0 && stats.step % every == 0 {
                stop = s.evaluate_and_keep()?;
                if save == 0 {
                    s.save_checkpoint()?;
                }
            }
            if save > 0 && stats.step % save == 0 {
                s.save_checkpoint()?;
            }
            if limit > 0 && done_here >= limit {
                s.save_checkpoint()?;
                bar.abandon();
                return Ok(true);
            }
            if stop {
                break;
            }
        }
        if !stop {
            let st = s.state_mut();
            st.epoch += 1;
            st.batch_in_epoch = 0;
            if s.config().train.eval_every == 0 {
                stop = s.evaluate_and_keep()?;
            }
        }
        s.save_checkpoint()?;
    }
    bar.finish_and_clear();
    // Steps after the last periodic evaluation still get a chance to be the best model.
    let every = s.config().train.eval_every;
    let st = s.state();
    if every > 0 && !stop && !st.finished && !st.global_step.is_multiple_of(every) {
        s.evaluate_and_keep()?;
    }
    s.state_mut().finished = true;
    s.save_checkpoint()?;
    Ok(false)
}
