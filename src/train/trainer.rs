//! The fine-tuning loop: data → batches → forward/loss (+ R-Drop, penalties) → backward
//! (+ FGM/PGD) → accumulate → clip → optimiser step → EMA; evaluation, best-checkpoint
//! keeping, early stopping, exact resume.
//!
//! A [`Trainer`] can be driven whole ([`Trainer::fit`]) or step by step ([`Trainer::step`],
//! [`Trainer::evaluate`]) from user code with its own loop or callbacks.

use super::checkpoint::{self, TrainState};
use super::config::{Adversarial, BestMetric, RunConfig};
use super::groups::{build_groups, GroupSummary};
use super::metrics::{self, ClassMetrics, LengthBucket, RegressionMetrics};
use super::optim::Optimizer;
use super::report::{self, LogRecord};
use super::run_loop;
use super::schedule::Schedule;
use super::tricks::{accumulate, clip_coefficient, global_grad_norm, Adversary, Ema};
use crate::data::dataset::{self, Example, RawLabel};
use crate::error::{Error, Result};
use crate::models::bert::EncoderInput;
use crate::nn::losses;
use crate::nn::rng;
use crate::tasks::classify::{HeadSpec, Problem, SequenceClassifier, Targets};
use crate::tasks::embed::pad_batch;
use crate::tokenize::{EncodeOptions, Encoding, TextInput, Tokenizer, Truncation};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One example's gold answer, already mapped to ids.
#[derive(Clone, Debug)]
pub enum Target {
    /// Class id.
    Class(u32),
    /// Multi-hot row.
    Multi(Vec<f32>),
    /// Regression score.
    Score(f32),
}

/// A tokenized, labelled data set.
pub struct Dataset {
    /// Where it came from (for messages and reports).
    pub source: PathBuf,
    /// The examples as read.
    pub examples: Vec<Example>,
    /// Unpadded encodings (truncated to `data.max_length`).
    pub encodings: Vec<Encoding>,
    /// Gold answers.
    pub targets: Vec<Target>,
}

impl Dataset {
    /// Tokenizes `examples` and maps their labels; an unknown label names file and line.
    pub fn new(
        source: &Path,
        examples: Vec<Example>,
        tokenizer: &Tokenizer,
        spec: &HeadSpec,
        max_length: usize,
    ) -> Result<Self> {
        let targets = examples
            .iter()
            .map(|e| target_of(e, spec, source))
            .collect::<Result<Vec<_>>>()?;
        let inputs: Vec<TextInput> = examples
            .iter()
            .map(|e| TextInput {
                text: e.text.clone(),
                text_pair: e.text_pair.clone(),
            })
            .collect();
        let opts = EncodeOptions {
            max_length: Some(max_length),
            truncation: Some(Truncation::LongestFirst),
            ..Default::default()
        };
        let encodings = tokenizer.encode_batch(&inputs, &opts)?;
        Ok(Dataset {
            source: source.to_path_buf(),
            examples,
            encodings,
            targets,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Token counts (for length bucketing).
    pub fn token_lengths(&self) -> Vec<usize> {
        self.encodings.iter().map(|e| e.input_ids.len()).collect()
    }

    /// Gold answers of the examples `idx`, in the form the head's loss takes.
    pub fn targets_of(&self, idx: &[usize]) -> Targets {
        match self.targets.first() {
            Some(Target::Multi(_)) => Targets::Multi(
                idx.iter()
                    .map(|&i| match &self.targets[i] {
                        Target::Multi(r) => r.clone(),
                        _ => Vec::new(),
                    })
                    .collect(),
            ),
            Some(Target::Score(_)) => Targets::Scores(
                idx.iter()
                    .map(|&i| match self.targets[i] {
                        Target::Score(s) => s,
                        _ => 0.0,
                    })
                    .collect(),
            ),
            _ => Targets::Classes(
                idx.iter()
                    .map(|&i| match self.targets[i] {
                        Target::Class(c) => c,
                        _ => 0,
                    })
                    .collect(),
            ),
        }
    }

    /// A padded batch of the examples `idx`.
    pub fn batch(&self, idx: &[usize], pad_id: u32, device: &Device) -> Result<Batch> {
        let encs: Vec<Encoding> = idx.iter().map(|&i| self.encodings[i].clone()).collect();
        let input = crate::data::batch::to_encoder_input(&pad_batch(&encs, pad_id), device)?;
        let targets = self.targets_of(idx);
        Ok(Batch { input, targets })
    }
}

fn target_of(e: &Example, spec: &HeadSpec, source: &Path) -> Result<Target> {
    let bad = |msg: String| Error::Input {
        path: source.into(),
        line: e.line,
        msg,
    };
    let label = e
        .label
        .as_ref()
        .ok_or_else(|| bad("missing label".into()))?;
    let id = |name: &str| -> Result<u32> {
        spec.labels
            .iter()
            .position(|l| l == name)
            .map(|i| i as u32)
            .ok_or_else(|| {
                bad(format!(
                    "unknown label `{name}` (known: {})",
                    spec.labels.join(", ")
                ))
            })
    };
    match spec.problem {
        Problem::SingleLabel => match label {
            RawLabel::Names(v) => Err(bad(format!(
                "a single-label task got a list of labels {v:?}"
            ))),
            l => Ok(Target::Class(id(&l.names()[0])?)),
        },
        Problem::MultiLabel => {
            let mut row = vec![0f32; spec.labels.len()];
            for n in label.names() {
                row[id(&n)? as usize] = 1.0;
            }
            Ok(Target::Multi(row))
        }
        Problem::Regression => match label {
            RawLabel::Number(x) => Ok(Target::Score(*x as f32)),
            RawLabel::Name(s) => s
                .trim()
                .parse::<f32>()
                .map(Target::Score)
                .map_err(|_| bad(format!("regression label `{s}` is not a number"))),
            RawLabel::Names(_) => Err(bad("regression label must be a number".into())),
        },
    }
}

/// A padded batch with its gold answers.
pub struct Batch {
    /// Model input.
    pub input: EncoderInput,
    /// Gold answers.
    pub targets: Targets,
}

/// What one optimiser step did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepStats {
    /// Step number (1 = first).
    pub step: u64,
    /// Mean training loss over the step's micro-batches.
    pub loss: f64,
    /// Learning rate of the first (highest-lr) group.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Results of evaluating one data set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    /// `dev` or `test` (or a file name).
    pub split: String,
    /// Optimiser steps done when evaluated.
    pub step: u64,
    /// Mean loss.
    pub loss: f64,
    /// Examples evaluated.
    pub examples: usize,
    /// Classification metrics (single- and multi-label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassMetrics>,
    /// Regression metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionMetrics>,
    /// Single-label macro P/R/F1 by text length (characters, buckets of 50).
    pub by_length: Vec<LengthBucket>,
}

impl Evaluation {
    /// The value of `metric`, oriented so that higher is better.
    pub fn score(&self, metric: BestMetric) -> f64 {
        let c = self.classification.as_ref();
        let r = self.regression.as_ref();
        match metric {
            BestMetric::Accuracy => c.map_or(f64::NAN, |m| m.accuracy),
            BestMetric::MacroF1 => c.map_or(f64::NAN, |m| m.macro_f1),
            BestMetric::MicroF1 => c.map_or(f64::NAN, |m| m.micro_f1),
            BestMetric::Pearson => r.map_or(f64::NAN, |m| m.pearson),
            BestMetric::Loss => -self.loss,
        }
    }
}

/// Called by [`Trainer::fit`] after each step and each evaluation.
pub trait Callback {
    /// After an optimiser step.
    fn on_step(&mut self, _stats: &StepStats) {}
    /// After an evaluation.
    fn on_evaluate(&mut self, _eval: &Evaluation) {}
}

/// How a call to [`Trainer::fit`] ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FitSummary {
    /// Steps done in total.
    pub steps: u64,
    /// True when it stopped early on purpose (`stop_after_steps`); resume to continue.
    pub interrupted: bool,
    /// Best dev evaluation.
    pub best_dev: Option<Evaluation>,
    /// Test evaluation with the best weights.
    pub test: Option<Evaluation>,
    /// Where the best model was written.
    pub best_dir: PathBuf,
    /// Where the HTML report was written.
    pub report: PathBuf,
}

/// The fine-tuning engine.
pub struct Trainer {
    cfg: RunConfig,
    model: SequenceClassifier,
    tokenizer: Tokenizer,
    optimizer: Optimizer,
    schedule: Schedule,
    opt_vars: Vec<Var>,
    decayed_vars: Vec<Var>,
    ema: Option<Ema>,
    adversary: Option<Adversary>,
    train: Dataset,
    dev: Option<Dataset>,
    test: Option<Dataset>,
    state: TrainState,
    log: Vec<LogRecord>,
    callbacks: Vec<Box<dyn Callback>>,
    summary: GroupSummary,
    device: Device,
    pad_id: u32,
}

impl Trainer {
    /// Builds everything a run needs from `cfg`; with `resume`, continues from
    /// `<output_dir>/checkpoint` (an error when there is none).
    pub fn new(cfg: RunConfig, resume: bool) -> Result<Self> {
        let device = Device::Cpu;
        let ckpt = start_run(&cfg, resume)?;
        let base_dir = resolve_model(&cfg.model)?;
        let (train_ex, dev_ex, test_ex) = read_splits(&cfg)?;
        let spec = head_spec(&cfg, &train_ex)?;
        if spec.problem != Problem::Regression {
            for (path, ex) in dev_ex.iter().chain(test_ex.iter()) {
                dataset::check_labels(ex, &spec.labels, path)?;
            }
        }
        rng::seed_init(cfg.seed);
        let (model_dir, spec_arg) = match (&ckpt, resume) {
            (Some(dir), true) => (dir.clone(), None),
            _ => (base_dir.clone(), Some(spec.clone())),
        };
        let model = SequenceClassifier::from_dir(&model_dir, &device, true, spec_arg)?;
        let spec = model.spec().clone();
        let tokenizer = Tokenizer::from_dir(&model_dir)?;
        let pad_id = tokenizer.pad_id();
        let max_len = cfg
            .data
            .max_length
            .min(model.encoder().config().max_sequence_length());
        let mk = |path: &Path, ex: Vec<Example>| Dataset::new(path, ex, &tokenizer, &spec, max_len);
        let train = mk(&train_ex.0, train_ex.1)?;
        let dev = dev_ex.map(|(p, e)| mk(&p, e)).transpose()?;
        let test = test_ex.map(|(p, e)| mk(&p, e)).transpose()?;

        let num_layers = model.encoder().config().num_hidden_layers;
        let (groups, summary) = build_groups(
            model.vars(),
            &cfg.optimizer,
            model.encoder_prefix(),
            num_layers,
        )?;
        let opt_vars: Vec<Var> = groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(_, v)| v.clone()))
            .collect();
        let decayed_vars: Vec<Var> = groups
            .iter()
            .filter(|g| g.weight_decay > 0.0)
            .flat_map(|g| g.params.iter().map(|(_, v)| v.clone()))
            .collect();
        let optimizer = Optimizer::new(&cfg.optimizer, groups)?;
        let steps_per_epoch = train.len().div_ceil(cfg.train.batch_size) as u64;
        let mut total = steps_per_epoch * cfg.train.epochs as u64;
        if cfg.train.max_steps > 0 {
            total = total.min(cfg.train.max_steps);
        }
        let schedule = cfg.schedule.build(total, cfg.optimizer.lr)?;
        let ema = if cfg.tricks.ema_decay > 0.0 {
            Some(Ema::new(cfg.tricks.ema_decay, optimizer.params())?)
        } else {
            None
        };
        let adversary = match cfg.tricks.adversarial {
            Adversarial::None => None,
            _ => {
                let name = model
                    .encoder()
                    .embeddings()
                    .word_embeddings()
                    .name()
                    .to_string();
                let var = model
                    .vars()
                    .into_iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "adversarial training: `{name}` is frozen or not trainable"
                        ))
                    })?;
                Some(Adversary::new(var))
            }
        };
        let mut t = Trainer {
            cfg,
            model,
            tokenizer,
            optimizer,
            schedule,
            opt_vars,
            decayed_vars,
            ema,
            adversary,
            train,
            dev,
            test,
            state: TrainState::new(total),
            log: Vec::new(),
            callbacks: Vec::new(),
            summary,
            device,
            pad_id,
        };
        if let (true, Some(dir)) = (resume, ckpt) {
            t.restore(&dir)?;
        } else {
            report::reset_log(&t.cfg.output_dir)?;
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

    /// The model being trained.
    pub fn model(&self) -> &SequenceClassifier {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Loop state (steps, epoch, best metric).
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// Id of the padding token.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The training set.
    pub fn train_set(&self) -> &Dataset {
        &self.train
    }

    /// The opening summary: data sizes, parameter groups, steps.
    pub fn describe(&self) -> String {
        let s = &self.summary;
        let m = |n: usize| crate::util::human_count(n);
        format!(
            "model {} · {} labels {:?} · pooling {}\n\
             data: {} train / {} dev / {} test examples · {} steps ({} epochs × {} steps, warm-up {})\n\
             params: {} tensors ({}) with weight decay, {} ({}) without, {} ({}) frozen; {} lr/decay groups",
            self.cfg.model,
            self.model.spec().labels.len(),
            self.model.spec().labels,
            self.model.spec().pooling,
            self.train.len(),
            self.dev.as_ref().map_or(0, |d| d.len()),
            self.test.as_ref().map_or(0, |d| d.len()),
            self.state.total_steps,
            self.cfg.train.epochs,
            self.state.total_steps / self.cfg.train.epochs.max(1) as u64,
            self.schedule.warmup_steps(),
            s.decayed.0,
            m(s.decayed.1),
            s.not_decayed.0,
            m(s.not_decayed.1),
            s.frozen.0,
            m(s.frozen.1),
            s.groups,
        )
    }

    /// The loss of one batch in training mode: the head's loss (averaged over two dropout
    /// passes plus α·KL with R-Drop) plus the L1/L2 penalties.
    pub fn batch_loss(&self, batch: &Batch) -> Result<Tensor> {
        let logits = self.model.forward(&batch.input, true)?;
        let mut loss = self.model.loss(&logits, &batch.targets, &self.cfg.loss)?;
        let alpha = self.cfg.tricks.rdrop_alpha;
        if alpha > 0.0 {
            let logits2 = self.model.forward(&batch.input, true)?;
            let loss2 = self.model.loss(&logits2, &batch.targets, &self.cfg.loss)?;
            let kl = losses::rdrop_kl(&logits, &logits2)?;
            loss = (((loss + loss2)? * 0.5)? + (kl * alpha)?)?;
        }
        let (l1, l2) = (self.cfg.task.l1, self.cfg.task.l2);
        if l1 > 0.0 || l2 > 0.0 {
            for v in &self.decayed_vars {
                let w = v.as_tensor();
                if l1 > 0.0 {
                    loss = (loss + (w.abs()?.sum_all()? * l1)?)?;
                }
                if l2 > 0.0 {
                    loss = (loss + (w.sqr()?.sum_all()? * l2)?)?;
                }
            }
        }
        Ok(loss)
    }

    /// One optimiser step over `micro_batches` (gradients summed, each loss divided by
    /// their count): backward, adversarial passes, clipping, update, EMA.
    pub fn step(&mut self, micro_batches: &[Batch]) -> Result<StepStats> {
        seed_step_dropout(self.cfg.seed, self.state.global_step);
        let n = micro_batches.len().max(1) as f64;
        let mut acc = GradStore::default();
        let mut loss_sum = 0.0;
        for mb in micro_batches {
            let loss = self.batch_loss(mb)?;
            loss_sum += check_loss(&loss, &self.cfg, self.state.global_step)? / n;
            let mut grads = (loss / n)?.backward()?;
            self.adversarial(mb, &mut grads, n)?;
            accumulate(&mut acc, grads, self.opt_vars.iter())?;
        }
        let (grad_norm, lr) = apply_gradients(
            &mut self.optimizer,
            &self.schedule,
            &acc,
            &self.opt_vars,
            self.cfg.train.max_grad_norm,
            self.state.global_step,
        )?;
        if let Some(ema) = &mut self.ema {
            ema.update()?;
        }
        self.state.global_step += 1;
        Ok(StepStats {
            step: self.state.global_step,
            loss: loss_sum,
            lr,
            grad_norm,
        })
    }

    /// FGM / PGD: perturb the word embeddings along the gradient, add the adversarial
    /// loss's gradients, restore the embeddings.
    fn adversarial(&mut self, mb: &Batch, grads: &mut GradStore, n: f64) -> Result<()> {
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

    /// Logits of every example of `ds` in input order (eval mode; EMA weights when on).
    pub fn predict(&mut self, ds: &Dataset) -> Result<Vec<Vec<f32>>> {
        if let Some(ema) = &mut self.ema {
            ema.apply_shadow()?;
        }
        let out = predict_logits(
            &self.model,
            ds,
            self.cfg.train.eval_batch_size,
            self.pad_id,
            &self.device,
        );
        if let Some(ema) = &mut self.ema {
            ema.restore()?;
        }
        out
    }

    /// Evaluates `ds` (the dev set when `None`).
    pub fn evaluate(&mut self, which: Split) -> Result<Option<Evaluation>> {
        let ds = match which {
            Split::Dev => self.dev.take(),
            Split::Test => self.test.take(),
        };
        let Some(ds) = ds else {
            return Ok(None);
        };
        let result = self.predict(&ds).and_then(|logits| {
            evaluate_logits(
                &self.model,
                &ds,
                &logits,
                which.name(),
                self.state.global_step,
                &self.cfg.loss,
            )
        });
        match which {
            Split::Dev => self.dev = Some(ds),
            Split::Test => self.test = Some(ds),
        }
        result.map(Some)
    }

    /// Runs the whole loop: epochs of steps, evaluation, best checkpoint, early stopping,
    /// the final test evaluation with the best weights, the report.
    pub fn fit(&mut self) -> Result<FitSummary> {
        crate::util::write_atomic(
            &self.cfg.output_dir.join("resolved_config.toml"),
            self.cfg.to_toml()?.as_bytes(),
        )?;
        if run_loop::run_epochs(self)? {
            return self.summary_now(true);
        }
        self.finish()
    }

    /// Evaluates the dev set, keeps the best model, tracks early stopping; true = stop.
    fn evaluate_and_keep(&mut self) -> Result<bool> {
        let best_dir = self.cfg.output_dir.join("best");
        let Some(ev) = self.evaluate(Split::Dev)? else {
            // No dev set: the latest model is the best one.
            self.save_best(&best_dir)?;
            return Ok(false);
        };
        let score = ev.score(self.cfg.train.metric);
        if score.is_nan() {
            return Err(Error::Invalid(format!(
                "train.metric {:?} does not apply to a {} task",
                self.cfg.train.metric,
                self.model.spec().problem.hf_name()
            )));
        }
        self.record(LogRecord::eval(&ev))?;
        for cb in &mut self.callbacks {
            cb.on_evaluate(&ev);
        }
        let improved = self.state.best_score.is_none_or(|b| score > b);
        if improved {
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

    /// Writes the model as an HF directory (EMA weights when on).
    pub fn save_best(&mut self, dir: &Path) -> Result<()> {
        if let Some(ema) = &mut self.ema {
            ema.apply_shadow()?;
        }
        let r = checkpoint::save_model_dir(dir, &self.model, &self.tokenizer);
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
        checkpoint::save_checkpoint(
            &self.cfg.output_dir,
            &self.model,
            &self.tokenizer,
            &tensors,
            &self.state,
        )
    }

    fn restore(&mut self, dir: &Path) -> Result<()> {
        let (state, tensors) = checkpoint::load_state(dir)?;
        self.optimizer
            .load_state(&tensors, &state.optimizer_steps)?;
        if let Some(ema) = &mut self.ema {
            ema.load_state(&tensors)?;
        }
        check_same_plan(dir, &state, &self.state)?;
        self.state = state;
        self.log = report::read_log(&self.cfg.output_dir, self.state.global_step)?;
        Ok(())
    }

    fn record(&mut self, rec: LogRecord) -> Result<()> {
        report::append_log(&self.cfg.output_dir, &rec)?;
        self.log.push(rec);
        Ok(())
    }

    /// Test evaluation with the best weights, the report, the summary.
    fn finish(&mut self) -> Result<FitSummary> {
        let best_dir = self.cfg.output_dir.join("best");
        if !best_dir.join("model.safetensors").exists() {
            self.save_best(&best_dir)?;
        }
        checkpoint::load_weights(&best_dir, &self.model)?;
        // The best weights already are the EMA ones (when on): evaluate them as they are.
        self.ema = None;
        let test = self.evaluate(Split::Test)?;
        if let Some(t) = &test {
            self.record(LogRecord::eval(t))?;
            checkpoint::write_json(&best_dir.join("test_metrics.json"), t)?;
        }
        self.summary_now(false).map(|mut s| {
            s.test = test;
            s
        })
    }

    fn summary_now(&self, interrupted: bool) -> Result<FitSummary> {
        let best_dev = self
            .log
            .iter()
            .filter_map(|r| r.evaluation.clone())
            .rfind(|e| e.split == "dev" && e.step == self.state.best_step);
        let report = report::write_report(&self.cfg.output_dir, &self.log, self.model.spec())?;
        Ok(FitSummary {
            steps: self.state.global_step,
            interrupted,
            best_dev,
            test: None,
            best_dir: self.cfg.output_dir.join("best"),
            report,
        })
    }
}

impl run_loop::Steps for Trainer {
    type MicroBatch = Batch;

    fn config(&self) -> &RunConfig {
        &self.cfg
    }

    fn state(&self) -> &TrainState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut TrainState {
        &mut self.state
    }

    /// Length-bucketed batches (similar lengths together, little padding).
    fn epoch_batches(&self, epoch_seed: u64) -> Vec<Vec<usize>> {
        let lengths = self.train.token_lengths();
        dataset::bucketed_batches(&lengths, self.cfg.train.batch_size, epoch_seed)
    }

    fn micro_batches(&self, idx: &[usize], micro: usize) -> Result<Vec<Batch>> {
        idx.chunks(micro)
            .map(|c| self.train.batch(c, self.pad_id, &self.device))
            .collect()
    }

    fn step(&mut self, micro: &[Batch]) -> Result<StepStats> {
        Trainer::step(self, micro)
    }

    fn throughput(&self, examples_per_s: f64) -> String {
        format!("{examples_per_s:.1} ex/s")
    }

    fn log_step(&mut self, stats: &StepStats, examples_per_s: f64) -> Result<()> {
        self.record(LogRecord::step(stats, self.state.epoch, examples_per_s))?;
        for cb in &mut self.callbacks {
            cb.on_step(stats);
        }
        Ok(())
    }

    fn evaluate_and_keep(&mut self) -> Result<bool> {
        Trainer::evaluate_and_keep(self)
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        Trainer::save_checkpoint(self)
    }
}

/// Which held-out set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The dev set.
    Dev,
    /// The test set.
    Test,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

/// Logits of `ds` in input order, in length-sorted eval batches.
pub fn predict_logits(
    model: &SequenceClassifier,
    ds: &Dataset,
    batch_size: usize,
    pad_id: u32,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); ds.len()];
    for idx in crate::data::batch::length_sorted_batches(&ds.token_lengths(), batch_size) {
        let b = ds.batch(&idx, pad_id, device)?;
        let logits = model.forward(&b.input, false)?.detach().to_vec2::<f32>()?;
        for (i, row) in idx.into_iter().zip(logits) {
            out[i] = row;
        }
    }
    Ok(out)
}

/// Loss and metrics of `logits` against the gold answers of `ds`.
pub fn evaluate_logits(
    model: &SequenceClassifier,
    ds: &Dataset,
    logits: &[Vec<f32>],
    split: &str,
    step: u64,
    loss_cfg: &crate::tasks::classify::LossConfig,
) -> Result<Evaluation> {
    let spec = model.spec();
    let n = logits.len();
    let width = logits.first().map_or(0, |r| r.len());
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{}: the {split} set is empty",
            ds.source.display()
        )));
    }
    let t = Tensor::from_vec(logits.concat(), (n, width), &Device::Cpu)?;
    let targets = ds.targets_of(&(0..n).collect::<Vec<_>>());
    let loss = model.loss(&t, &targets, loss_cfg)?.to_scalar::<f32>()? as f64;
    let chars: Vec<usize> = ds.examples.iter().map(|e| e.text.chars().count()).collect();
    let mut ev = Evaluation {
        split: split.to_string(),
        step,
        loss,
        examples: n,
        classification: None,
        regression: None,
        by_length: Vec::new(),
    };
    match &targets {
        Targets::Classes(gold) => {
            let gold: Vec<usize> = gold.iter().map(|&g| g as usize).collect();
            let pred: Vec<usize> = logits.iter().map(|r| argmax(r)).collect();
            ev.classification = Some(metrics::classification(&gold, &pred, &spec.labels));
            ev.by_length = metrics::by_length(&chars, &gold, &pred, &spec.labels, 50);
        }
        Targets::Multi(rows) => {
            let gold: Vec<Vec<bool>> = rows
                .iter()
                .map(|r| r.iter().map(|&v| v > 0.5).collect())
                .collect();
            let pred: Vec<Vec<bool>> = logits
                .iter()
                .map(|r| r.iter().map(|&v| v > 0.0).collect())
                .collect();
            ev.classification = Some(metrics::multilabel(&gold, &pred, &spec.labels));
        }
        Targets::Scores(gold) => {
            let gold: Vec<f64> = gold.iter().map(|&g| g as f64).collect();
            let pred: Vec<f64> = logits.iter().map(|r| r[0] as f64).collect();
            ev.regression = Some(metrics::regression(&gold, &pred));
        }
    }
    Ok(ev)
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

pub(crate) fn progress_bar(total: u64, pos: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_position(pos);
    bar
}

/// `asset:<name>` → the fetched asset directory; anything else is a path.
/// What every training run does first: sizes the thread pool, creates `output_dir`, and
/// finds the checkpoint to continue from (an error when `resume` is asked and there is none).
pub(crate) fn start_run(cfg: &RunConfig, resume: bool) -> Result<Option<PathBuf>> {
    if cfg.train.threads > 0 {
        // Fails only when the global pool already exists (a second trainer in one process).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.train.threads)
            .build_global();
    }
    std::fs::create_dir_all(&cfg.output_dir).map_err(|e| Error::io(&cfg.output_dir, e))?;
    let ckpt = checkpoint::latest(&cfg.output_dir);
    if resume && ckpt.is_none() {
        return Err(Error::Invalid(format!(
            "--resume: no checkpoint in {} (start without --resume)",
            cfg.output_dir.display()
        )));
    }
    Ok(ckpt)
}

/// Dropout masks of a step are a function of (seed, step), so a resumed run draws the same.
pub(crate) fn seed_step_dropout(seed: u64, global_step: u64) {
    rng::seed_dropout(seed ^ rng::mix64(global_step.wrapping_add(1)));
}

/// The value of a micro-batch loss, or an error when it is not finite.
pub(crate) fn check_loss(loss: &Tensor, cfg: &RunConfig, global_step: u64) -> Result<f64> {
    let value = loss.to_scalar::<f32>()? as f64;
    if !value.is_finite() {
        return Err(Error::Invalid(format!(
            "the loss became {value} at step {}: training stopped; the last good checkpoint is in {} (lower optimizer.lr or enable train.max_grad_norm)",
            global_step + 1,
            cfg.output_dir.join("checkpoint").display()
        )));
    }
    Ok(value)
}

/// The end of every step: global-norm clipping, the scheduled learning rate, the optimiser
/// update. Returns the gradient norm (before clipping) and the first group's learning rate.
pub(crate) fn apply_gradients(
    optimizer: &mut Optimizer,
    schedule: &Schedule,
    grads: &GradStore,
    vars: &[Var],
    max_grad_norm: f64,
    global_step: u64,
) -> Result<(f64, f64)> {
    let norm = global_grad_norm(grads, vars.iter())?;
    let coef = clip_coefficient(norm, max_grad_norm);
    let lr_scale = schedule.factor(global_step);
    optimizer.step(grads, lr_scale, coef)?;
    let lr = optimizer.base_lrs().first().copied().unwrap_or(0.0) * lr_scale;
    Ok((norm, lr))
}

/// A checkpoint only resumes the run it was made for (same number of steps).
pub(crate) fn check_same_plan(dir: &Path, saved: &TrainState, now: &TrainState) -> Result<()> {
    if saved.total_steps != now.total_steps {
        return Err(Error::Invalid(format!(
            "{}: the checkpoint was made for {} steps, this config gives {} (data or epochs changed?)",
            dir.display(),
            saved.total_steps,
            now.total_steps
        )));
    }
    Ok(())
}

pub fn resolve_model(model: &str) -> Result<PathBuf> {
    match model.strip_prefix("asset:") {
        Some(name) => crate::assets::fetch(crate::assets::find(name)?),
        None => Ok(PathBuf::from(model)),
    }
}

type Split3 = (
    (PathBuf, Vec<Example>),
    Option<(PathBuf, Vec<Example>)>,
    Option<(PathBuf, Vec<Example>)>,
);

/// Reads train/dev/test files, or splits `data.file` and writes the split to
/// `<output_dir>/split/*.jsonl` (so a reference run can use the very same examples).
fn read_splits(cfg: &RunConfig) -> Result<Split3> {
    let d = &cfg.data;
    if let Some(train) = &d.train {
        let read = |p: &PathBuf| -> Result<(PathBuf, Vec<Example>)> {
            Ok((p.clone(), dataset::read_labelled(p, d, true)?))
        };
        return Ok((
            read(train)?,
            d.dev.as_ref().map(read).transpose()?,
            d.test.as_ref().map(read).transpose()?,
        ));
    }
    let file = d.file.as_ref().ok_or_else(|| {
        Error::Invalid("set data.train (and data.dev / data.test) or data.file".into())
    })?;
    let file = match file.to_str().and_then(|s| s.strip_prefix("asset:")) {
        Some(spec) => asset_file(spec)?,
        None => file.clone(),
    };
    let all = dataset::read_labelled(&file, d, true)?;
    let [train, dev, test] = dataset::split(all, d.split, d.split_seed)?;
    let dir = cfg.output_dir.join("split");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let write = |name: &str, ex: Vec<Example>| -> Result<Option<(PathBuf, Vec<Example>)>> {
        if ex.is_empty() {
            return Ok(None);
        }
        let p = dir.join(format!("{name}.jsonl"));
        dataset::write_jsonl(&p, &ex)?;
        Ok(Some((p, ex)))
    };
    let train = write("train", train)?.ok_or_else(|| {
        Error::Invalid(format!("{}: the training split is empty", file.display()))
    })?;
    Ok((train, write("dev", dev)?, write("test", test)?))
}

/// `asset:<name>/<file>` → that file of a fetched asset.
pub(crate) fn asset_file(spec: &str) -> Result<PathBuf> {
    let (name, rel) = spec
        .split_once('/')
        .ok_or_else(|| Error::Invalid(format!("`asset:{spec}`: expected asset:<name>/<file>")))?;
    Ok(crate::assets::fetch(crate::assets::find(name)?)?.join(rel))
}

fn head_spec(cfg: &RunConfig, train: &(PathBuf, Vec<Example>)) -> Result<HeadSpec> {
    let pooling = cfg.task.pooling.parse()?;
    let labels = match cfg.task.problem {
        Problem::Regression => vec!["score".to_string()],
        _ => dataset::label_vocab(&train.1, cfg.data.labels.as_deref(), &train.0)?,
    };
    Ok(HeadSpec {
        problem: cfg.task.problem,
        labels,
        pooling,
    })
}

/// Probabilities of a head's logits row (softmax, sigmoid, or the raw score).
pub fn probabilities(problem: Problem, row: &[f32]) -> Vec<f32> {
    match problem {
        Problem::SingleLabel => {
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        }
        Problem::MultiLabel => row.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        Problem::Regression => row.to_vec(),
    }
}

/// A `Dataset` for a fine-tuned model directory (eval / predict).
pub fn dataset_for(
    model: &SequenceClassifier,
    tokenizer: &Tokenizer,
    path: &Path,
    examples: Vec<Example>,
    max_length: usize,
    with_labels: bool,
) -> Result<Dataset> {
    let spec = model.spec();
    if !with_labels {
        // Predictions need no gold answers: give each example a placeholder.
        let ex: Vec<Example> = examples
            .into_iter()
            .map(|mut e| {
                e.label = Some(match spec.problem {
                    Problem::Regression => RawLabel::Number(0.0),
                    Problem::MultiLabel => RawLabel::Names(Vec::new()),
                    Problem::SingleLabel => RawLabel::Name(spec.labels[0].clone()),
                });
                e
            })
            .collect();
        return Dataset::new(path, ex, tokenizer, spec, max_length);
    }
    Dataset::new(path, examples, tokenizer, spec, max_length)
}
