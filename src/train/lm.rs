//! Causal-LM training (`[task] kind = "causal_lm"`): a GPT-2, new from its `config.json` or
//! loaded, trained on plain text packed into blocks, with the engine's optimisers, parameter
//! groups, schedules, clipping and accumulation; held-out loss and perplexity; resumable
//! checkpoints in the same layout as the fine-tuning runs.

use super::checkpoint::{self, TrainState};
use super::config::RunConfig;
use super::groups::build_groups;
use super::report::{self, LogRecord};
use super::run_loop;
use super::trainer::{
    apply_gradients, check_loss, check_same_plan, resolve_model, seed_step_dropout, start_run,
    StepStats,
};
use super::tricks::accumulate;
use super::{Optimizer, OptimizerConfig, Schedule};
use crate::config::Gpt2Config;
use crate::data::text::{pack_blocks, read_documents};
use crate::error::{Error, Result};
use crate::models::gpt2::Gpt2LMHeadModel;
use crate::nn::rng::Rng;
use crate::tokenize::Tokenizer;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var, D};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Held-out result.
#[derive(Clone, Debug, Serialize)]
pub struct LmEvaluation {
    /// `dev` or `test`.
    pub split: String,
    /// Step it was measured at.
    pub step: u64,
    /// Mean next-token cross-entropy (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Tokens scored.
    pub tokens: usize,
}

/// What a finished run reports.
#[derive(Clone, Debug, Serialize)]
pub struct LmSummary {
    /// Optimiser steps.
    pub steps: u64,
    /// Best dev evaluation.
    pub best_dev: Option<LmEvaluation>,
    /// Test evaluation with the best weights.
    pub test: Option<LmEvaluation>,
    /// The best model (HF directory).
    pub best_dir: PathBuf,
}

/// The causal-LM training loop.
pub struct LmTrainer {
    cfg: RunConfig,
    model: Gpt2LMHeadModel,
    tokenizer: Tokenizer,
    optimizer: Optimizer,
    schedule: Schedule,
    opt_vars: Vec<Var>,
    train: Vec<Vec<u32>>,
    dev: Vec<Vec<u32>>,
    test: Vec<Vec<u32>>,
    state: TrainState,
    device: Device,
    describe: String,
}

impl LmTrainer {
    /// Loads (or creates) the model, reads and packs the corpus, builds the optimiser; with
    /// `resume`, continues from `<output_dir>/checkpoint`.
    pub fn new(cfg: RunConfig, resume: bool) -> Result<Self> {
        let device = Device::Cpu;
        let ckpt = start_run(&cfg, resume)?;
        let model_dir = match (&ckpt, resume) {
            (Some(dir), true) => dir.clone(),
            _ => resolve_model(&cfg.model)?,
        };
        let model = load_or_create(&model_dir, &device, cfg.seed)?;
        let tok_dir = match (&cfg.tokenizer, resume) {
            (Some(t), false) => resolve_model(t)?,
            _ => model_dir.clone(),
        };
        let tokenizer = Tokenizer::from_dir(&tok_dir)?;
        let mc = model.config().clone();
        if tokenizer.vocab_size() > mc.vocab_size {
            return Err(Error::Invalid(format!(
                "the tokenizer in {} has {} tokens but the model's vocab_size is {}",
                tok_dir.display(),
                tokenizer.vocab_size(),
                mc.vocab_size
            )));
        }
        let block = cfg.data.max_length.min(mc.n_positions);
        if block < 2 {
            return Err(Error::Invalid(format!(
                "data.max_length {} gives blocks of {block} tokens: next-token training needs at least 2",
                cfg.data.max_length
            )));
        }
        let [train, dev, test] = read_blocks(&cfg, &tokenizer, &mc, block)?;
        let opt_cfg = lm_optimizer_config(&cfg.optimizer);
        let prefix = if model.params().contains("transformer.wte.weight") {
            "transformer"
        } else {
            ""
        };
        let (groups, summary) = build_groups(model.params().vars(), &opt_cfg, prefix, mc.n_layer)?;
        let opt_vars: Vec<Var> = groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(_, v)| v.clone()))
            .collect();
        let optimizer = Optimizer::new(&opt_cfg, groups)?;
        let steps_per_epoch = train.len().div_ceil(cfg.train.batch_size) as u64;
        let mut total = steps_per_epoch * cfg.train.epochs as u64;
        if cfg.train.max_steps > 0 {
            total = total.min(cfg.train.max_steps);
        }
        let schedule = cfg.schedule.build(total, cfg.optimizer.lr)?;
        let params: usize = model
            .params()
            .vars()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum();
        let describe = format!(
            "causal LM: GPT-2 {} layers × {} ({} heads), vocab {}, {} parameters\n\
             data: {} train / {} dev / {} test blocks of {block} tokens · {total} steps ({} epochs × {steps_per_epoch}, warm-up {})\n\
             params: {} tensors ({}) with weight decay, {} ({}) without",
            mc.n_layer,
            mc.n_embd,
            mc.n_head,
            mc.vocab_size,
            crate::util::human_count(params),
            train.len(),
            dev.len(),
            test.len(),
            cfg.train.epochs,
            schedule.warmup_steps(),
            summary.decayed.0,
            crate::util::human_count(summary.decayed.1),
            summary.not_decayed.0,
            crate::util::human_count(summary.not_decayed.1),
        );
        let mut t = LmTrainer {
            cfg,
            model,
            tokenizer,
            optimizer,
            schedule,
            opt_vars,
            train,
            dev,
            test,
            state: TrainState::new(total),
            device,
            describe,
        };
        if let (true, Some(dir)) = (resume, ckpt) {
            t.restore(&dir)?;
        } else {
            report::reset_log(&t.cfg.output_dir)?;
        }
        Ok(t)
    }

    /// The opening summary.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The model being trained.
    pub fn model(&self) -> &Gpt2LMHeadModel {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Mean next-token cross-entropy of a batch of equal-length blocks (dropout per `train`).
    fn loss(&self, blocks: &[&[u32]], train: bool) -> Result<Tensor> {
        let (b, t) = (blocks.len(), blocks[0].len());
        let flat: Vec<u32> = blocks.iter().flat_map(|s| s.iter().copied()).collect();
        let ids = Tensor::from_vec(flat, (b, t), &self.device)?;
        let mask = Tensor::ones((b, t), DType::F32, &self.device)?;
        let logits = self.model.forward(&ids, &mask, train)?;
        let v = logits.dim(D::Minus1)?;
        let pred = logits.narrow(1, 0, t - 1)?.reshape((b * (t - 1), v))?;
        let target = ids.narrow(1, 1, t - 1)?.reshape(b * (t - 1))?;
        Ok(candle_nn::loss::cross_entropy(&pred, &target)?)
    }

    /// One optimiser step over micro-batches of blocks.
    pub fn step(&mut self, micro: &[Vec<Vec<u32>>]) -> Result<StepStats> {
        seed_step_dropout(self.cfg.seed, self.state.global_step);
        let n = micro.len().max(1) as f64;
        let mut acc = GradStore::default();
        let mut loss_sum = 0.0;
        for mb in micro {
            let refs: Vec<&[u32]> = mb.iter().map(Vec::as_slice).collect();
            let loss = self.loss(&refs, true)?;
            loss_sum += check_loss(&loss, &self.cfg, self.state.global_step)? / n;
            let grads = (loss / n)?.backward()?;
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
        self.state.global_step += 1;
        Ok(StepStats {
            step: self.state.global_step,
            loss: loss_sum,
            lr,
            grad_norm,
        })
    }

    /// Token-weighted mean loss and perplexity over a held-out set (eval mode).
    pub fn evaluate(&self, split: &str) -> Result<Option<LmEvaluation>> {
        let blocks = if split == "test" {
            &self.test
        } else {
            &self.dev
        };
        if blocks.is_empty() {
            return Ok(None);
        }
        let bs = self.cfg.train.eval_batch_size.max(1);
        let (mut sum, mut tokens) = (0.0, 0usize);
        for chunk in blocks.chunks(bs) {
            let refs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
            let n = chunk.len() * (chunk[0].len() - 1);
            sum += self.loss(&refs, false)?.to_scalar::<f32>()? as f64 * n as f64;
            tokens += n;
        }
        let loss = sum / tokens as f64;
        Ok(Some(LmEvaluation {
            split: split.into(),
            step: self.state.global_step,
            loss,
            perplexity: loss.exp(),
            tokens,
        }))
    }

    /// Epochs of shuffled blocks in the engine's loop ([`run_loop`]: evaluation every
    /// `eval_every` steps or per epoch, the best model by dev loss in `best/`, early
    /// stopping, resumable checkpoints), then the test evaluation with the best weights.
    pub fn fit(&mut self) -> Result<LmSummary> {
        crate::util::write_atomic(
            &self.cfg.output_dir.join("resolved_config.toml"),
            self.cfg.to_toml()?.as_bytes(),
        )?;
        if run_loop::run_epochs(self)? {
            return self.summary(None);
        }
        let best = self.cfg.output_dir.join("best");
        if !best.join("model.safetensors").exists() {
            self.save_model(&best)?;
        }
        self.model = load_or_create(&best, &self.device, self.cfg.seed)?;
        let test = self.evaluate("test")?;
        if let Some(t) = &test {
            checkpoint::write_json(&best.join("test_metrics.json"), t)?;
        }
        self.summary(test)
    }

    /// Dev evaluation; the lowest dev loss so far is kept in `best/`. True = stop early
    /// (`early_stopping_patience` evaluations without a lower loss).
    fn evaluate_and_keep(&mut self) -> Result<bool> {
        let best = self.cfg.output_dir.join("best");
        let Some(ev) = self.evaluate("dev")? else {
            self.save_model(&best)?;
            return Ok(false);
        };
        eprintln!(
            "step {}: dev loss {:.4}, perplexity {:.2}",
            ev.step, ev.loss, ev.perplexity
        );
        let score = -ev.loss;
        if self.state.best_score.is_none_or(|b| score > b) {
            self.state.best_score = Some(score);
            self.state.best_step = self.state.global_step;
            self.state.evals_without_improvement = 0;
            self.save_model(&best)?;
            checkpoint::write_json(&best.join("dev_metrics.json"), &ev)?;
        } else {
            self.state.evals_without_improvement += 1;
        }
        checkpoint::write_json(&self.cfg.output_dir.join("last_dev_metrics.json"), &ev)?;
        let patience = self.cfg.train.early_stopping_patience;
        Ok(patience > 0 && self.state.evals_without_improvement >= patience)
    }

    fn save_model(&self, dir: &Path) -> Result<()> {
        checkpoint::save_model_dir(dir, &self.model, &self.tokenizer)
    }

    /// Writes `<output_dir>/checkpoint`: weights, tokenizer, optimiser state, loop state.
    pub fn save_checkpoint(&mut self) -> Result<()> {
        let (tensors, steps) = self.optimizer.state()?;
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
        check_same_plan(dir, &state, &self.state)?;
        self.state = state;
        Ok(())
    }

    fn summary(&self, test: Option<LmEvaluation>) -> Result<LmSummary> {
        let best_dir = self.cfg.output_dir.join("best");
        let p = best_dir.join("dev_metrics.json");
        let best_dev = std::fs::read_to_string(&p).ok().and_then(|t| {
            let v: serde_json::Value = serde_json::from_str(&t).ok()?;
            Some(LmEvaluation {
                split: "dev".into(),
                step: v["step"].as_u64()?,
                loss: v["loss"].as_f64()?,
                perplexity: v["perplexity"].as_f64()?,
                tokens: v["tokens"].as_u64()? as usize,
            })
        });
        Ok(LmSummary {
            steps: self.state.global_step,
            best_dev,
            test,
            best_dir,
        })
    }
}

impl run_loop::Steps for LmTrainer {
    type MicroBatch = Vec<Vec<u32>>;

    fn config(&self) -> &RunConfig {
        &self.cfg
    }

    fn state(&self) -> &TrainState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut TrainState {
        &mut self.state
    }

    /// The blocks shuffled (all have the same length).
    fn epoch_batches(&self, epoch_seed: u64) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        Rng::new(epoch_seed).shuffle(&mut order);
        order
            .chunks(self.cfg.train.batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    fn micro_batches(&self, idx: &[usize], micro: usize) -> Result<Vec<Vec<Vec<u32>>>> {
        Ok(idx
            .chunks(micro)
            .map(|c| c.iter().map(|&i| self.train[i].clone()).collect())
            .collect())
    }

    fn step(&mut self, micro: &[Vec<Vec<u32>>]) -> Result<StepStats> {
        LmTrainer::step(self, micro)
    }

    fn throughput(&self, blocks_per_s: f64) -> String {
        let block = self.train.first().map_or(0, Vec::len);
        format!("{:.0} tok/s", blocks_per_s * block as f64)
    }

    fn log_step(&mut self, stats: &StepStats, blocks_per_s: f64) -> Result<()> {
        let rec = LogRecord::step(stats, self.state.epoch, blocks_per_s);
        report::append_log(&self.cfg.output_dir, &rec)
    }

    fn evaluate_and_keep(&mut self) -> Result<bool> {
        LmTrainer::evaluate_and_keep(self)
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        LmTrainer::save_checkpoint(self)
    }
}

/// A GPT-2 directory with weights is loaded (trainable); one with only `config.json` gives a
/// new model initialised as HF does.
fn load_or_create(dir: &Path, device: &Device, seed: u64) -> Result<Gpt2LMHeadModel> {
    let has_weights = crate::models::checkpoint::WEIGHT_FILES
        .iter()
        .any(|f| dir.join(f).is_file());
    if has_weights {
        Gpt2LMHeadModel::from_dir(dir, device, true)
    } else {
        let cfg = Gpt2Config::from_file(&dir.join("config.json"))?;
        Gpt2LMHeadModel::new_random(&cfg, device, true, seed)
    }
}

/// GPT-2 names its LayerNorms `ln_*`: the default no-decay list (`bias`,
/// `LayerNorm.weight`) gets them added, so only ≥2-D weights decay (as nanoGPT does).
fn lm_optimizer_config(cfg: &OptimizerConfig) -> OptimizerConfig {
    let mut c = cfg.clone();
    if c.no_decay.iter().any(|n| n == "LayerNorm.weight") {
        for ln in ["ln_1.weight", "ln_2.weight", "ln_f.weight"] {
            c.no_decay.push(ln.into());
        }
    }
    c
}

/// Train / dev / test blocks: `data.train` (+ `dev`, `test`) files, or `data.file` split by
/// document with `data.split` ratios.
fn read_blocks(
    cfg: &RunConfig,
    tok: &Tokenizer,
    mc: &Gpt2Config,
    block: usize,
) -> Result<[Vec<Vec<u32>>; 3]> {
    let d = &cfg.data;
    let path_of = |p: &PathBuf| -> Result<PathBuf> {
        match p.to_str().and_then(|s| s.strip_prefix("asset:")) {
            Some(spec) => super::trainer::asset_file(spec),
            None => Ok(p.clone()),
        }
    };
    let docs: [Vec<String>; 3] = if let Some(train) = &d.train {
        let read = |p: Option<&PathBuf>| -> Result<Vec<String>> {
            p.map(|p| read_documents(&path_of(p)?, d))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        [
            read(Some(train))?,
            read(d.dev.as_ref())?,
            read(d.test.as_ref())?,
        ]
    } else {
        let file = d.file.as_ref().ok_or_else(|| {
            Error::Invalid("set data.train (and data.dev / data.test) or data.file".into())
        })?;
        let mut all = read_documents(&path_of(file)?, d)?;
        Rng::new(d.split_seed).shuffle(&mut all);
        let n = all.len() as f64;
        let n_dev = (n * d.split[1]).round() as usize;
        let n_test = (n * d.split[2]).round() as usize;
        let test = all.split_off(all.len() - n_test.min(all.len()));
        let dev = all.split_off(all.len() - n_dev.min(all.len()));
        [all, dev, test]
    };
    let wordpiece = tok.is_wordpiece();
    let eos = if wordpiece {
        tok.token_to_id("[SEP]")
    } else {
        mc.eos_token_id.or_else(|| tok.token_to_id("<|endoftext|>"))
    };
    let cls = if wordpiece {
        tok.token_to_id("[CLS]")
    } else {
        None
    };
    let pack = |docs: &[String]| -> Result<Vec<Vec<u32>>> {
        let ids: Vec<Vec<u32>> = docs
            .iter()
            .map(|t| {
                // The Chinese GPT-2s (BERT vocabulary) read `[CLS] text [SEP]`.
                let mut v: Vec<u32> = cls.into_iter().collect();
                v.extend(tok.encode_plain(t)?);
                Ok(v)
            })
            .collect::<Result<_>>()?;
        Ok(pack_blocks(&ids, eos, block))
    };
    let [a, b, c] = docs;
    let train = pack(&a)?;
    if train.is_empty() {
        return Err(Error::Invalid(format!(
            "the training text gives no complete block of {block} tokens (more text or a smaller data.max_length)"
        )));
    }
    Ok([train, pack(&b)?, pack(&c)?])
}
