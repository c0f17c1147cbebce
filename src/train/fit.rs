//! The one epoch/step loop every task runs: batches in a seeded order per epoch, a progress
//! bar, step logs, evaluation every `eval_every` steps or per epoch (the best model kept,
//! early stopping), checkpoints every `save_every` steps (0: at each evaluation) and at each
//! epoch's end, and `stop_after_steps` for interrupted runs; then the test evaluation with
//! the best weights and the report. Everything it tracks lives in [`TrainState`], so a
//! resumed run picks up at the next batch of the same order.

use super::checkpoint::{self, TrainState};
use super::engine::Trainer;
use super::evaluation::{Evaluation, FitSummary, StepStats};
use super::report::{self, LogRecord};
use super::task::{Split, Task};
use crate::error::{Error, Result};
use crate::rng;
use std::time::Instant;

impl<T: Task> Trainer<T> {
    /// Runs the whole loop: epochs of steps, evaluation, best checkpoint, early stopping,
    /// the final test evaluation with the best weights, the report.
    pub fn fit(&mut self) -> Result<FitSummary> {
        crate::util::write_atomic(
            &self.cfg.output_dir.join("resolved_config.toml"),
            self.cfg.to_toml()?.as_bytes(),
        )?;
        if self.run_epochs()? {
            return self.summary_now(true, None);
        }
        self.finish()
    }

    /// Runs epochs until the step budget, early stopping or the end; marks the run finished
    /// and saves the final checkpoint. Returns `true` when `stop_after_steps` interrupted it
    /// (its checkpoint saved; resume to continue).
    fn run_epochs(&mut self) -> Result<bool> {
        let (bs, accum) = (self.cfg.train.batch_size, self.cfg.train.grad_accum);
        let micro = (bs / accum.max(1)).max(1);
        let bar = crate::util::progress_bar(self.state.total_steps, "steps", "{msg}");
        bar.set_position(self.state.global_step);
        let mut done_here = 0u64;
        // Wall time waiting for batches vs in steps, since the last logged step.
        let (mut waited, mut stepped) = (0f64, 0f64);
        let mut stop = self.state.finished;
        let budget_left = |st: &TrainState| st.global_step < st.total_steps;
        while !stop && self.state.epoch < self.cfg.train.epochs && budget_left(&self.state) {
            let epoch_seed = self.cfg.seed ^ rng::mix64(0xE90C + self.state.epoch as u64);
            let batches = self.task.epoch_batches(bs, epoch_seed);
            let upcoming: Vec<Vec<usize>> = batches
                .iter()
                .skip(self.state.batch_in_epoch)
                .flat_map(|b| b.chunks(micro).map(<[usize]>::to_vec))
                .collect();
            self.task.start_epoch(epoch_seed, &upcoming);
            while self.state.batch_in_epoch < batches.len() && budget_left(&self.state) {
                let idx = &batches[self.state.batch_in_epoch];
                let tw = Instant::now();
                let mbs = idx
                    .chunks(micro)
                    .map(|c| self.task.epoch_batch(c, epoch_seed))
                    .collect::<Result<Vec<_>>>()?;
                let t0 = Instant::now();
                let stats = self.step(&mbs)?;
                let busy = t0.elapsed().as_secs_f64();
                let per_s = idx.len() as f64 / busy;
                waited += (t0 - tw).as_secs_f64();
                stepped += busy;
                self.state.batch_in_epoch += 1;
                done_here += 1;
                bar.set_position(self.state.global_step);
                bar.set_message(format!(
                    "loss {:.4} lr {:.2e} {}",
                    stats.loss,
                    stats.lr,
                    self.task.throughput(per_s)
                ));
                let wait = waited / (waited + stepped).max(1e-12);
                if self.after_step(&stats, per_s, wait)? {
                    (waited, stepped) = (0.0, 0.0);
                }
                let train = &self.cfg.train;
                let (every, save, limit) =
                    (train.eval_every, train.save_every, train.stop_after_steps);
                if every > 0 && stats.step % every == 0 {
                    stop = self.evaluate_and_keep()?;
                    if save == 0 {
                        self.save_checkpoint()?;
                    }
                }
                if save > 0 && stats.step % save == 0 {
                    self.save_checkpoint()?;
                }
                if limit > 0 && done_here >= limit {
                    self.save_checkpoint()?;
                    bar.abandon();
                    return Ok(true);
                }
                if stop {
                    break;
                }
            }
            if !stop {
                self.state.epoch += 1;
                self.state.batch_in_epoch = 0;
                if self.cfg.train.eval_every == 0 {
                    stop = self.evaluate_and_keep()?;
                }
            }
            self.save_checkpoint()?;
        }
        bar.finish_and_clear();
        // Steps after the last periodic evaluation still get a chance to be the best model.
        let every = self.cfg.train.eval_every;
        let st = &self.state;
        if every > 0 && !stop && !st.finished && !st.global_step.is_multiple_of(every) {
            self.evaluate_and_keep()?;
        }
        self.state.finished = true;
        self.save_checkpoint()?;
        Ok(false)
    }

    /// Logs the step (every `log_every` steps and the first; true when it did) and tells
    /// the callbacks.
    fn after_step(&mut self, stats: &StepStats, per_s: f64, data_wait: f64) -> Result<bool> {
        let every = self.cfg.train.log_every.max(1);
        let log = stats.step.is_multiple_of(every) || stats.step == 1;
        if log {
            let rec = LogRecord::step(stats, self.state.epoch, per_s, data_wait);
            self.record(rec)?;
        }
        for cb in &mut self.callbacks {
            cb.on_step(stats);
        }
        Ok(log)
    }

    /// Evaluates the dev set, keeps the best model, tracks early stopping; true = stop.
    fn evaluate_and_keep(&mut self) -> Result<bool> {
        let best_dir = self.cfg.output_dir.join("best");
        let Some(ev) = self.evaluate(Split::Dev)? else {
            // No dev set: the latest model is the best one.
            self.save_best(&best_dir)?;
            return Ok(false);
        };
        let score = ev.score(self.metric);
        if score.is_nan() {
            return Err(Error::Invalid(format!(
                "train.metric {:?} does not apply to this task (its evaluation has no such number)",
                self.metric
            )));
        }
        log::info!("step {}: dev {}", ev.step, one_line(&ev));
        self.record(LogRecord::eval(&ev))?;
        for cb in &mut self.callbacks {
            cb.on_evaluate(&ev);
        }
        if self.state.best_score.is_none_or(|b| score > b) {
            self.state.best_score = Some(score);
            self.state.best_step = self.state.global_step;
            self.state.evals_without_improvement = 0;
            self.save_best(&best_dir)?;
            checkpoint::write_json(&best_dir.join("dev_metrics.json"), &ev)?;
        } else {
            self.state.evals_without_improvement += 1;
        }
        let patience = self.cfg.train.early_stopping_patience;
        Ok(patience > 0 && self.state.evals_without_improvement >= patience)
    }

    /// Test evaluation with the best weights, the report, the summary.
    fn finish(&mut self) -> Result<FitSummary> {
        let best_dir = self.cfg.output_dir.join("best");
        if !best_dir.join("model.safetensors").exists() {
            self.save_best(&best_dir)?;
        }
        self.task.load_weights(&best_dir)?;
        // The best weights already are the EMA ones (when on): evaluate them as they are.
        self.ema = None;
        let test = self.evaluate(Split::Test)?;
        if let Some(t) = &test {
            self.record(LogRecord::eval(t))?;
            checkpoint::write_json(&best_dir.join("test_metrics.json"), t)?;
        }
        self.summary_now(false, test)
    }

    fn summary_now(&self, interrupted: bool, test: Option<Evaluation>) -> Result<FitSummary> {
        let best_dev = self
            .log
            .iter()
            .filter_map(|r| r.evaluation.clone())
            .rfind(|e| e.split == "dev" && e.step == self.state.best_step);
        let report = report::write_report(&self.cfg.output_dir, &self.log, &self.task.describe())?;
        Ok(FitSummary {
            steps: self.state.global_step,
            interrupted,
            best_dev,
            test,
            best_dir: self.cfg.output_dir.join("best"),
            report,
        })
    }

    fn record(&mut self, rec: LogRecord) -> Result<()> {
        report::append_log(&self.cfg.output_dir, &rec)?;
        self.log.push(rec);
        Ok(())
    }
}

/// `loss 0.4321 · accuracy 0.8750` (the headline number when there is one).
pub fn one_line(ev: &Evaluation) -> String {
    match ev.headline() {
        Some((name, v)) => format!("loss {:.4} · {name} {v:.4}", ev.loss),
        None => format!("loss {:.4}", ev.loss),
    }
}
