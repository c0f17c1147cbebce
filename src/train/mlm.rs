//! Masked-LM pre-training (`[task] kind = "mlm"`, or `bert4rs pretrain`) as a [`Task`]: a
//! BERT, new from a `config.json` or continued from a checkpoint, on plain text packed into
//! blocks; a fresh dynamic mask for every pass (token or whole-word, 80/10/10), produced by
//! `task.mask_workers` threads into a bounded queue ahead of the trainer; dev / test loss,
//! perplexity and masked-token accuracy on fixed masks; saved as HF `BertForMaskedLM`.
//! With `task.next_sentence = "nsp" | "sop"` the blocks are sentence pairs
//! ([`crate::data::sentence_pairs`]), the loss adds the pair head's cross-entropy as HF's
//! `BertForPreTraining` does, and the model is saved as that class.

use super::config::{BestMetric, RunConfig};
use super::evaluation::Evaluation;
use super::task::{Split, StepOutput, Task};
use crate::data::masking::{mask_sequence, Masked, MaskingConfig, Vocab, IGNORE};
use crate::data::prefetch::Prefetcher;
use crate::data::pretrain::{pack_blocks, tokenize_documents, Block, Pair};
use crate::data::sentence_pairs::{pair_blocks, tokenize_sentences, PairObjective, PairSettings};
use crate::data::text::read_text_splits;
use crate::error::{Error, Result};
use crate::models::hub;
use crate::rng::{self, Rng};
use crate::tasks::masked_lm::MaskedLm;
use crate::tokenize::Tokenizer;
use candle_core::{DType, Device, Tensor, Var, D};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use crate::data::mlm_batch::MlmBatch;

/// What the mask producers share with the task.
struct Masker {
    train: Vec<Block>,
    vocab: Vocab,
    cfg: MaskingConfig,
}

impl Masker {
    /// The masks of training examples `idx` in the pass of `seed`: each example's mask is a
    /// function of (`seed`, its index) only, so neither batching nor threads change it.
    fn mask(&self, idx: &[usize], seed: u64) -> Vec<Masked> {
        idx.iter()
            .map(|&i| {
                let mut r = Rng::new(seed ^ rng::mix64(0x4D4C4D + i as u64));
                let b = &self.train[i];
                ensure_one(
                    mask_sequence(&b.ids, &b.word_start, &self.vocab, &self.cfg, &mut r),
                    &b.ids,
                    &self.vocab,
                )
            })
            .collect()
    }
}

/// The losses of a micro-batch.
struct Losses {
    /// What is minimised: the masked-LM loss, plus the pair loss for pair blocks (summed,
    /// as BertForPreTraining sums them).
    total: Tensor,
    /// Mean cross-entropy over the scored positions (0 when none is scored).
    mlm: Tensor,
    /// The scored positions' vocabulary logits `[scored, vocab]`.
    logits: Tensor,
    /// Pair logits `[batch, 2]` and their mean cross-entropy.
    pairs: Option<(Tensor, Tensor)>,
}

/// How many rows of `logits` have their argmax at `want`.
fn agreeing(logits: &Tensor, want: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let want = want.to_vec1::<u32>()?;
    Ok(pred.iter().zip(&want).filter(|(a, b)| a == b).count())
}

/// A sequence where masking chose nothing (a short block at a small probability) predicts
/// its first ordinary token unchanged, so every micro-batch has a loss term.
fn ensure_one(mut m: Masked, ids: &[u32], vocab: &Vocab) -> Masked {
    if m.labels.iter().all(|&l| l == IGNORE) {
        if let Some(i) = ids.iter().position(|&id| !vocab.special[id as usize]) {
            m.labels[i] = ids[i] as i64;
        }
    }
    m
}

/// The masked batches of one epoch being produced ahead.
struct Ahead {
    plan: Vec<Vec<usize>>,
    seed: u64,
    queue: Prefetcher<Vec<Masked>>,
}

/// BERT masked-LM pre-training.
pub struct MlmTask {
    model: MaskedLm,
    tokenizer: Tokenizer,
    masker: Arc<Masker>,
    dev: Vec<Block>,
    test: Vec<Block>,
    workers: usize,
    queue: usize,
    ahead: Mutex<Option<Ahead>>,
    pad_id: u32,
    device: Device,
    /// The sentence-pair objective (for the summary).
    objective: PairObjective,
}

impl MlmTask {
    /// Loads (or creates) the model, reads, tokenizes and packs the corpus.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let device = Device::Cpu;
        let masking = cfg.task.masking();
        masking
            .validate()
            .map_err(|e| Error::Invalid(format!("task.{e}")))?;
        let model_dir = crate::assets::resolve_dir(&cfg.model)?;
        let tok_dir = match &cfg.tokenizer {
            Some(t) => crate::assets::resolve_dir(t)?,
            None => model_dir.clone(),
        };
        let tokenizer = Tokenizer::from_dir(&tok_dir)?;
        rng::seed_init(cfg.seed);
        let objective = cfg.task.next_sentence;
        let model = match objective {
            PairObjective::None => MaskedLm::from_dir(&model_dir, &device, true)?,
            _ => MaskedLm::for_pretraining(&model_dir, &device, true)?,
        };
        let mc = model.encoder().config().clone();
        if tokenizer.vocab_size() > mc.vocab_size {
            return Err(Error::Invalid(format!(
                "the tokenizer in {} has {} tokens but the model's vocab_size is {}: set \
                 vocab_size in config.json to at least {}",
                tok_dir.display(),
                tokenizer.vocab_size(),
                mc.vocab_size,
                tokenizer.vocab_size()
            )));
        }
        let special = |t: &str| {
            tokenizer.token_to_id(t).ok_or_else(|| {
                Error::Invalid(format!(
                    "the tokenizer in {} has no {t} token, which masked-LM training needs",
                    tok_dir.display()
                ))
            })
        };
        let (cls, sep, mask_id) = (special("[CLS]")?, special("[SEP]")?, special("[MASK]")?);
        let max_len = cfg.data.max_length.min(mc.max_sequence_length());
        if max_len < 3 {
            return Err(Error::Invalid(format!(
                "data.max_length {} leaves no room for text between [CLS] and [SEP]",
                cfg.data.max_length
            )));
        }
        let [train, dev, test] = read_text_splits(&cfg.data)?;
        let pack = |docs: &[String], salt: u64| -> Result<Vec<Block>> {
            if objective == PairObjective::None {
                let t = tokenize_documents(docs, &tokenizer, masking.whole_word)?;
                return Ok(pack_blocks(&t, cls, sep, max_len));
            }
            let t = tokenize_sentences(docs, &tokenizer, masking.whole_word)?;
            let settings = PairSettings {
                objective,
                max_length: max_len,
                short_seq_probability: cfg.task.short_seq_probability,
                seed: rng::mix64(cfg.seed ^ salt),
                cls,
                sep,
            };
            Ok(pair_blocks(&t, &settings))
        };
        let train = pack(&train, 0x7A1)?;
        if train.is_empty() {
            return Err(Error::Invalid(
                "the training text has no tokens to pre-train on".into(),
            ));
        }
        let mut specials: Vec<u32> = tokenizer
            .inner()
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&id, _)| id)
            .collect();
        specials.extend(
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                .iter()
                .filter_map(|t| tokenizer.token_to_id(t)),
        );
        let maskable = train
            .iter()
            .any(|b| b.ids.iter().any(|id| !specials.contains(id)));
        if !maskable {
            let file = cfg.data.file.as_ref().or(cfg.data.train.as_ref());
            return Err(Error::Invalid(format!(
                "{}: the training text holds only special tokens ([CLS], [SEP], [MASK], ...): \
                 there is nothing to mask",
                file.map_or("data".into(), |f| f.display().to_string())
            )));
        }
        // Ids past the tokenizer's (rows the model has spare) are never drawn as replacements.
        let vocab = Vocab::new(tokenizer.vocab_size(), mask_id, &specials);
        let pad_id = tokenizer.pad_id();
        let (dev, test) = (pack(&dev, 0xDE5)?, pack(&test, 0x7E57)?);
        Ok(MlmTask {
            model,
            tokenizer,
            masker: Arc::new(Masker {
                train,
                vocab,
                cfg: masking,
            }),
            dev,
            test,
            workers: cfg.task.mask_workers,
            queue: cfg.task.mask_queue,
            ahead: Mutex::new(None),
            pad_id,
            device,
            objective,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &MaskedLm {
        &self.model
    }

    /// The losses and logits of a micro-batch.
    fn loss(&self, batch: &MlmBatch, train: bool) -> Result<Losses> {
        let zero = || Tensor::zeros((), DType::F32, &self.device);
        if batch.scored == 0 && batch.next_labels.is_none() {
            // Only special tokens (e.g. a text of unknown characters): nothing to predict.
            let v = self.model.encoder().config().vocab_size;
            let none = Tensor::zeros((0, v), DType::F32, &self.device)?;
            return Ok(Losses {
                total: zero()?,
                mlm: zero()?,
                logits: none,
                pairs: None,
            });
        }
        let (logits, pair_logits) =
            self.model
                .forward_pretraining(&batch.input, &batch.rows, train)?;
        let mlm = match batch.scored {
            0 => zero()?,
            _ => candle_nn::loss::cross_entropy(&logits, &batch.targets)?,
        };
        let pairs = match (pair_logits, &batch.next_labels) {
            (Some(l), Some(y)) => {
                let ce = candle_nn::loss::cross_entropy(&l, y)?;
                Some((l, ce))
            }
            (None, Some(_)) => {
                return Err(Error::Invalid(
                    "sentence-pair blocks need a model with a next-sentence head".into(),
                ))
            }
            _ => None,
        };
        let total = match &pairs {
            Some((_, ce)) => (&mlm + ce)?,
            None => mlm.clone(),
        };
        Ok(Losses {
            total,
            mlm,
            logits,
            pairs,
        })
    }

    fn blocks(&self, split: Split) -> &[Block] {
        match split {
            Split::Dev => &self.dev,
            Split::Test => &self.test,
        }
    }

    /// The sentence-pair facts of training examples `idx` (empty without pairs).
    fn pairs_of<'a>(blocks: impl Iterator<Item = &'a Block>) -> Vec<Pair> {
        blocks
            .map(|b| b.pair)
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    }

    fn lock_ahead(&self) -> std::sync::MutexGuard<'_, Option<Ahead>> {
        self.ahead.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Task for MlmTask {
    type Batch = MlmBatch;

    fn describe(&self) -> String {
        let mc = self.model.encoder().config();
        let params: usize = self.params().iter().map(|(_, v)| v.elem_count()).sum();
        let tokens: usize = self.masker.train.iter().map(|b| b.ids.len()).sum();
        let m = &self.masker.cfg;
        let train = &self.masker.train;
        let pairs = Self::pairs_of(train.iter());
        let pair_text = match (self.objective, pairs.is_empty()) {
            (PairObjective::None, _) | (_, true) => String::new(),
            (objective, false) => {
                let ones = pairs.iter().filter(|p| p.label == 1).count();
                format!(
                    "\nsentence pairs ({}): label 1 in {:.1} % of train blocks",
                    objective.name(),
                    100.0 * ones as f64 / pairs.len() as f64
                )
            }
        };
        let text = format!(
            "masked LM: BERT {} layers × {} ({} heads), vocab {}, {} parameters\n\
             masking: {:.0} % of tokens ({}), {:.0} / {:.0} / {:.0} mask / random / kept, \
             {} producer thread(s), queue {}\n\
             data: {} train ({} tokens) / {} dev / {} test blocks of ≤ {} tokens",
            mc.num_hidden_layers,
            mc.hidden_size,
            mc.num_attention_heads,
            mc.vocab_size,
            crate::util::human_count(params),
            m.mlm_probability * 100.0,
            if m.whole_word {
                "whole words"
            } else {
                "tokens"
            },
            m.mask_replace * 100.0,
            m.random_replace * 100.0,
            (1.0 - m.mask_replace - m.random_replace) * 100.0,
            self.workers,
            self.queue,
            self.masker.train.len(),
            crate::util::human_count(tokens),
            self.dev.len(),
            self.test.len(),
            self.masker
                .train
                .iter()
                .map(|b| b.ids.len())
                .max()
                .unwrap_or(0),
        );
        text + &pair_text
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.model.vars()
    }

    fn layer_layout(&self) -> (String, usize) {
        let layers = self.model.encoder().config().num_hidden_layers;
        (self.model.encoder_prefix().to_string(), layers)
    }

    fn train_len(&self) -> usize {
        self.masker.train.len()
    }

    /// The examples masked as in a pass with seed 0 (tests; training uses
    /// [`Task::epoch_batch`]).
    fn batch(&self, idx: &[usize]) -> Result<MlmBatch> {
        self.epoch_batch(idx, 0)
    }

    fn start_epoch(&self, epoch_seed: u64, upcoming: &[Vec<usize>]) {
        if self.workers == 0 {
            // No producers: `epoch_batch` masks on the training thread.
            *self.lock_ahead() = None;
            return;
        }
        let (masker, plan) = (self.masker.clone(), upcoming.to_vec());
        let jobs = plan.clone();
        let queue = Prefetcher::start(plan.len(), self.workers, self.queue, move |i| {
            masker.mask(&jobs[i], epoch_seed)
        });
        *self.lock_ahead() = Some(Ahead {
            plan,
            seed: epoch_seed,
            queue,
        });
    }

    fn epoch_batch(&self, idx: &[usize], epoch_seed: u64) -> Result<MlmBatch> {
        let mut ahead = self.lock_ahead();
        let produced = match ahead.as_mut() {
            Some(a)
                if a.seed == epoch_seed
                    && a.plan.get(a.queue.position()) == Some(&idx.to_vec()) =>
            {
                a.queue.take_next()
            }
            _ => None,
        };
        drop(ahead);
        let masked = match produced {
            Some(m) => m,
            None => self.masker.mask(idx, epoch_seed),
        };
        let pairs = Self::pairs_of(idx.iter().map(|&i| &self.masker.train[i]));
        MlmBatch::with_pairs(&masked, &pairs, self.pad_id, &self.device)
    }

    fn forward(&self, batch: &MlmBatch, train: bool) -> Result<StepOutput> {
        let l = self.loss(batch, train)?;
        Ok(StepOutput {
            loss: l.total,
            logits: Some(l.logits),
        })
    }

    /// Loss over the masked tokens (each block masked the same way at every evaluation),
    /// perplexity and masked-token accuracy; with pairs, the loss adds the pair head's
    /// (as the training loss does), perplexity stays the masked LM's, and
    /// `next_sentence_accuracy` is reported.
    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>> {
        let blocks = self.blocks(split);
        if blocks.is_empty() {
            return Ok(None);
        }
        let salt = match split {
            Split::Dev => 0xDE5,
            Split::Test => 0x7E57,
        };
        let m = &self.masker;
        let (mut sum, mut scored, mut correct) = (0.0, 0usize, 0usize);
        let (mut pair_sum, mut pair_rows, mut pair_correct) = (0.0, 0usize, 0usize);
        for (c, chunk) in blocks.chunks(batch_size.max(1)).enumerate() {
            let masked: Vec<Masked> = chunk
                .iter()
                .enumerate()
                .map(|(j, b)| {
                    let key = rng::mix64(salt ^ rng::mix64((c * batch_size + j) as u64));
                    let masked =
                        mask_sequence(&b.ids, &b.word_start, &m.vocab, &m.cfg, &mut Rng::new(key));
                    ensure_one(masked, &b.ids, &m.vocab)
                })
                .collect();
            let pairs = Self::pairs_of(chunk.iter());
            let batch = MlmBatch::with_pairs(&masked, &pairs, self.pad_id, &self.device)?;
            let l = self.loss(&batch, false)?;
            sum += l.mlm.to_scalar::<f32>()? as f64 * batch.scored as f64;
            scored += batch.scored;
            correct += agreeing(&l.logits, &batch.targets)?;
            if let (Some((logits, ce)), Some(y)) = (&l.pairs, &batch.next_labels) {
                pair_sum += ce.to_scalar::<f32>()? as f64 * pairs.len() as f64;
                pair_rows += pairs.len();
                pair_correct += agreeing(logits, y)?;
            }
        }
        let mlm = sum / scored.max(1) as f64;
        let pair_loss = pair_sum / pair_rows.max(1) as f64;
        let mut ev = Evaluation::new(split.name(), step, mlm + pair_loss, blocks.len());
        ev.perplexity = Some(mlm.exp());
        ev.tokens = Some(scored);
        ev.scores.insert(
            "masked_accuracy".into(),
            correct as f64 / scored.max(1) as f64,
        );
        if pair_rows > 0 {
            ev.scores.insert("mlm_loss".into(), mlm);
            ev.scores.insert("next_sentence_loss".into(), pair_loss);
            ev.scores.insert(
                "next_sentence_accuracy".into(),
                pair_correct as f64 / pair_rows as f64,
            );
        }
        Ok(Some(ev))
    }

    fn default_metric(&self) -> BestMetric {
        BestMetric::Loss
    }

    fn word_embeddings(&self) -> Option<String> {
        let table = self.model.encoder().embeddings().word_embeddings();
        Some(table.name().to_string())
    }

    fn throughput(&self, blocks_per_s: f64) -> String {
        let n = self.masker.train.len().max(1);
        let mean: f64 =
            self.masker.train.iter().map(|b| b.ids.len()).sum::<usize>() as f64 / n as f64;
        let depth = self.lock_ahead().as_ref().map_or(0, |a| a.queue.depth());
        format!("{:.0} tok/s · queue {depth}", blocks_per_s * mean)
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)?;
        self.tokenizer.save(dir)
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        let model = &self.model;
        hub::load_into(dir, &self.model.vars(), |name| model.saved_name(name))
    }
}
