//! Causal-LM training (`[task] kind = "causal_lm"`) as a [`Task`]: a GPT-2, new from its
//! `config.json` or loaded, trained on plain text packed into blocks, with every engine
//! feature (optimisers, parameter groups, schedules, clipping, accumulation, EMA, resume);
//! held-out loss and perplexity; the best model by dev loss.

use super::config::{BestMetric, RunConfig};
use super::evaluation::Evaluation;
use super::task::{Split, StepOutput, Task};
use super::OptimizerConfig;
use crate::config::Gpt2Config;
use crate::data::text::{pack_blocks, read_text_splits};
use crate::error::{Error, Result};
use crate::models::gpt2::Gpt2LMHeadModel;
use crate::models::hub;
use crate::tokenize::Tokenizer;
use candle_core::{DType, Device, Tensor, Var, D};
use std::path::Path;

/// GPT-2 language modelling on packed blocks of text.
pub struct CausalLmTask {
    model: Gpt2LMHeadModel,
    tokenizer: Tokenizer,
    train: Vec<Vec<u32>>,
    dev: Vec<Vec<u32>>,
    test: Vec<Vec<u32>>,
    device: Device,
}

impl CausalLmTask {
    /// Loads (or creates) the model and tokenizer, reads and packs the corpus.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let device = Device::Cpu;
        let model_dir = crate::assets::resolve_dir(&cfg.model)?;
        let model = load_or_create(&model_dir, &device, cfg.seed)?;
        let tok_dir = match &cfg.tokenizer {
            Some(t) => crate::assets::resolve_dir(t)?,
            None => model_dir.clone(),
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
        let [train, dev, test] = read_blocks(cfg, &tokenizer, &mc, block)?;
        Ok(CausalLmTask {
            model,
            tokenizer,
            train,
            dev,
            test,
            device,
        })
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
    fn loss(&self, blocks: &[Vec<u32>], train: bool) -> Result<Tensor> {
        let (b, t) = (blocks.len(), blocks[0].len());
        let flat: Vec<u32> = blocks.concat();
        let ids = Tensor::from_vec(flat, (b, t), &self.device)?;
        let mask = Tensor::ones((b, t), DType::F32, &self.device)?;
        let logits = self.model.forward(&ids, &mask, train)?;
        let v = logits.dim(D::Minus1)?;
        let pred = logits.narrow(1, 0, t - 1)?.reshape((b * (t - 1), v))?;
        let target = ids.narrow(1, 1, t - 1)?.reshape(b * (t - 1))?;
        Ok(candle_nn::loss::cross_entropy(&pred, &target)?)
    }

    fn prefix(&self) -> &'static str {
        match self.model.params().contains("transformer.wte.weight") {
            true => "transformer",
            false => "",
        }
    }
}

impl Task for CausalLmTask {
    /// Blocks of token ids, all of one length.
    type Batch = Vec<Vec<u32>>;

    fn describe(&self) -> String {
        let mc = self.model.config();
        let params: usize = self.params().iter().map(|(_, v)| v.elem_count()).sum();
        let block = self.train.first().map_or(0, Vec::len);
        format!(
            "causal LM: GPT-2 {} layers × {} ({} heads), vocab {}, {} parameters\n\
             data: {} train / {} dev / {} test blocks of {block} tokens",
            mc.n_layer,
            mc.n_embd,
            mc.n_head,
            mc.vocab_size,
            crate::util::human_count(params),
            self.train.len(),
            self.dev.len(),
            self.test.len(),
        )
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.model.params().vars()
    }

    fn layer_layout(&self) -> (String, usize) {
        (self.prefix().to_string(), self.model.config().n_layer)
    }

    /// GPT-2 names its LayerNorms `ln_*`: the default no-decay list (`bias`,
    /// `LayerNorm.weight`) gets them added, so only ≥2-D weights decay (as nanoGPT does).
    fn optimizer_config(&self, run: &OptimizerConfig) -> OptimizerConfig {
        let mut c = run.clone();
        if c.no_decay.iter().any(|n| n == "LayerNorm.weight") {
            for ln in ["ln_1.weight", "ln_2.weight", "ln_f.weight"] {
                c.no_decay.push(ln.into());
            }
        }
        c
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn batch(&self, idx: &[usize]) -> Result<Self::Batch> {
        Ok(idx.iter().map(|&i| self.train[i].clone()).collect())
    }

    fn forward(&self, batch: &Self::Batch, train: bool) -> Result<StepOutput> {
        Ok(StepOutput {
            loss: self.loss(batch, train)?,
            logits: None,
        })
    }

    /// Token-weighted mean loss and perplexity (eval mode).
    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>> {
        let blocks = match split {
            Split::Dev => &self.dev,
            Split::Test => &self.test,
        };
        if blocks.is_empty() {
            return Ok(None);
        }
        let (mut sum, mut tokens) = (0.0, 0usize);
        for chunk in blocks.chunks(batch_size.max(1)) {
            let n = chunk.len() * (chunk[0].len() - 1);
            sum += self.loss(chunk, false)?.to_scalar::<f32>()? as f64 * n as f64;
            tokens += n;
        }
        let loss = sum / tokens as f64;
        let mut ev = Evaluation::new(split.name(), step, loss, blocks.len());
        ev.perplexity = Some(loss.exp());
        ev.tokens = Some(tokens);
        Ok(Some(ev))
    }

    fn default_metric(&self) -> BestMetric {
        BestMetric::Loss
    }

    fn throughput(&self, blocks_per_s: f64) -> String {
        let block = self.train.first().map_or(0, Vec::len);
        format!("{:.0} tok/s", blocks_per_s * block as f64)
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)?;
        self.tokenizer.save(dir)
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        let prefix = self.prefix();
        hub::load_into(dir, &self.params(), |name| {
            match prefix.is_empty() && name != "lm_head.weight" {
                true => format!("transformer.{name}"),
                false => name.to_string(),
            }
        })
    }
}

/// A GPT-2 directory with weights is loaded (trainable); one with only `config.json` gives a
/// new model initialised as HF does.
fn load_or_create(dir: &Path, device: &Device, seed: u64) -> Result<Gpt2LMHeadModel> {
    let has_weights = crate::models::hub::WEIGHT_FILES
        .iter()
        .any(|f| dir.join(f).is_file());
    if has_weights {
        Gpt2LMHeadModel::from_dir(dir, device, true)
    } else {
        let cfg = Gpt2Config::from_file(&dir.join("config.json"))?;
        Gpt2LMHeadModel::new_random(&cfg, device, true, seed)
    }
}

/// Train / dev / test blocks: the documents of [`read_text_splits`], packed.
fn read_blocks(
    cfg: &RunConfig,
    tok: &Tokenizer,
    mc: &Gpt2Config,
    block: usize,
) -> Result<[Vec<Vec<u32>>; 3]> {
    let docs = read_text_splits(&cfg.data)?;
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
