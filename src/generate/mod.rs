//! Text generation with a causal LM: greedy, sampling and beam search with HF's logits
//! processors, a KV cache, and sequence log-probability scoring.
//!
//! Semantics follow HF `generate` (transformers 4.57) step for step, with one deliberate
//! difference: processors that look at the sequence so far (repetition penalty, n-gram ban)
//! see only real tokens, never the left padding of a batch, so a batched prompt gets the
//! same answer as the prompt alone. (HF counts the pad tokens, which for GPT-2 are
//! end-of-text tokens, so its batched and single results can differ.)

mod beam;
pub mod pipeline;
pub mod processors;
mod sample;
mod score;
pub mod seq2seq;

pub use pipeline::{TextGenerator, TextStream};
pub use score::{sequence_logprob, SequenceScore};

use crate::error::{Error, Result};
use crate::models::gpt2::{Gpt2Cache, Gpt2LMHeadModel};
use candle_core::{DType, Tensor};

/// When beam search stops (HF `early_stopping`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// Stop once no running beam is likely to beat the finished ones (HF `False`).
    #[default]
    Heuristic,
    /// Stop as soon as `num_beams` hypotheses are finished (HF `True`).
    Finished,
    /// Stop only when no running beam can possibly beat them (HF `"never"`).
    Never,
}

/// Decoding settings, named as in HF `GenerationConfig`.
#[derive(Clone, Debug)]
pub struct GenerationConfig {
    /// Tokens to generate after the prompt (at most).
    pub max_new_tokens: usize,
    /// Beams; 1 = greedy or sampling.
    pub num_beams: usize,
    /// Ban repeating any n-gram of this size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Exponent of the length normalisation of finished beams.
    pub length_penalty: f32,
    /// When beam search stops.
    pub early_stopping: EarlyStopping,
    /// Sequences returned per prompt (≤ `num_beams`).
    pub num_return_sequences: usize,
    /// Sample instead of taking the most likely token.
    pub do_sample: bool,
    /// Divides the scores before sampling.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = off).
    pub top_p: f32,
    /// Penalty on tokens already present (1 = off).
    pub repetition_penalty: f32,
    /// Seed of the sampling RNG.
    pub seed: u64,
    /// Stop a sequence at this token.
    pub eos_token_id: Option<u32>,
    /// Filler after a sequence ended and for left padding (defaults to `eos_token_id`).
    pub pad_token_id: Option<u32>,
    /// Decode with the KV cache (false re-runs the whole sequence every step; for tests).
    pub use_cache: bool,
    /// Report this many most likely tokens per step in [`StepInfo::top`] (0 = none; each
    /// costs a softmax over the vocabulary).
    pub report_top: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 20,
            num_beams: 1,
            no_repeat_ngram_size: 0,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            num_return_sequences: 1,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
            eos_token_id: None,
            pad_token_id: None,
            use_cache: true,
            report_top: 0,
        }
    }
}

impl GenerationConfig {
    /// Checks the settings; every error names the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1".into());
        }
        if self.num_beams == 0 {
            return bad("num_beams must be at least 1".into());
        }
        if self.num_return_sequences == 0
            || self.num_return_sequences > self.num_beams.max(1) && !self.do_sample
        {
            return bad(format!(
                "num_return_sequences ({}) must be between 1 and num_beams ({})",
                self.num_return_sequences, self.num_beams
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature must be > 0, got {}", self.temperature));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        if self.num_beams > 1 && self.do_sample {
            return bad(
                "beam sampling is not supported: use --num-beams 1 with --do-sample".into(),
            );
        }
        Ok(())
    }

    /// Applies the processors HF's `generate` would, in its order, to one row of scores
    /// (logits for greedy and sampling, log-probabilities for beam search).
    fn process(&self, tokens: &[u32], scores: &mut [f32]) {
        if self.repetition_penalty != 1.0 {
            processors::repetition_penalty(tokens, scores, self.repetition_penalty);
        }
        if self.no_repeat_ngram_size > 0 {
            processors::no_repeat_ngram(tokens, scores, self.no_repeat_ngram_size);
        }
        if self.do_sample {
            let min_keep = if self.num_beams > 1 { 2 } else { 1 };
            if self.temperature != 1.0 {
                processors::temperature(scores, self.temperature);
            }
            if self.top_k != 0 {
                processors::top_k(scores, self.top_k, min_keep);
            }
            if self.top_p < 1.0 {
                processors::top_p(scores, self.top_p, min_keep);
            }
        }
    }

    /// The processed next-token scores for `tokens` (what sampling draws from after a
    /// softmax): exposed so tests compare them with HF's processors.
    pub fn processed_scores(&self, tokens: &[u32], logits: &[f32]) -> Vec<f32> {
        let mut s = logits.to_vec();
        self.process(tokens, &mut s);
        s
    }

    /// Greedy decoding with no processor that changes the scores and no top-k report: the
    /// next token is the logits' argmax, which [`Gpt2LMHeadModel::greedy_tokens`] finds
    /// without computing every logit in f32.
    fn plain_greedy(&self) -> bool {
        !self.do_sample
            && self.num_beams == 1
            && self.repetition_penalty == 1.0
            && self.no_repeat_ngram_size == 0
            && self.report_top == 0
    }

    fn pad(&self) -> u32 {
        self.pad_token_id.or(self.eos_token_id).unwrap_or(0)
    }
}

/// One generated sequence.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Generated {
    /// Prompt ids followed by the generated ids (HF `generate`'s `sequences` row, without
    /// left padding; ends at end-of-text or after `max_new_tokens`).
    pub ids: Vec<u32>,
    /// How many of `ids` are the prompt.
    pub prompt_len: usize,
    /// Beam score (sum of log-probs / length^penalty); `None` for greedy and sampling.
    pub score: Option<f32>,
}

/// What a step reports to a streaming caller.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// Which sequence (row of the batch; with sampling and `num_return_sequences` > 1 the
    /// prompt is `row / num_return_sequences`).
    pub row: usize,
    /// Tokens generated for this row before this one.
    pub step: usize,
    /// The chosen token.
    pub token: u32,
    /// The `report_top` most likely tokens after processing, with probabilities.
    pub top: Vec<(u32, f32)>,
}

/// A model [`generate`] decodes with: a cache that tokens are appended to, and an LM head
/// over final hidden states. GPT-2 implements it; so does a bert2bert decoder bound to its
/// encoder output ([`seq2seq::Seq2SeqDecoding`]).
pub trait Decoder: Sync {
    /// The decoding state of a batch of sequences.
    type Cache;
    /// Rows of the LM head.
    fn vocab_size(&self) -> usize;
    /// Longest sequence (prompt plus generated tokens) the model takes.
    fn max_positions(&self) -> usize;
    /// The config field [`Decoder::max_positions`] comes from (for error messages).
    fn positions_field(&self) -> &'static str;
    /// An empty cache for `rows` sequences.
    fn new_cache(&self, rows: usize) -> Result<Self::Cache>;
    /// Keeps sequence `order[i]` of the cache as sequence `i` (beam search).
    fn reorder_cache(&self, cache: &mut Self::Cache, order: &[usize]) -> Result<()>;
    /// Appends `ids` (`rows × t`; `mask` 0 marks left padding) to the cache and returns
    /// each row's final hidden state `[rows, hidden]`.
    fn forward_cached(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Self::Cache,
    ) -> Result<Tensor>;
    /// Each row's final hidden state `[rows, hidden]` from whole sequences, no cache.
    fn last_hidden(&self, ids: &[Vec<u32>], mask: &[Vec<f32>]) -> Result<Tensor>;
    /// Logits `[rows, vocab]` of final hidden states.
    fn logits(&self, hidden: &Tensor) -> Result<Tensor>;
    /// The argmax of [`Decoder::logits`] when the model has a faster way to it.
    fn greedy_tokens(&self, _hidden: &Tensor) -> Result<Option<Vec<u32>>> {
        Ok(None)
    }
}

impl Decoder for Gpt2LMHeadModel {
    type Cache = Gpt2Cache;

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }

    fn max_positions(&self) -> usize {
        self.config().n_positions
    }

    fn positions_field(&self) -> &'static str {
        "n_positions"
    }

    fn new_cache(&self, rows: usize) -> Result<Gpt2Cache> {
        Ok(Gpt2LMHeadModel::new_cache(self, rows))
    }

    fn reorder_cache(&self, cache: &mut Gpt2Cache, order: &[usize]) -> Result<()> {
        cache.reorder(order);
        Ok(())
    }

    fn forward_cached(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        self.forward_cached_hidden(ids, mask, cache)
    }

    fn last_hidden(&self, ids: &[Vec<u32>], mask: &[Vec<f32>]) -> Result<Tensor> {
        let (b, t) = (ids.len(), ids.first().map_or(0, Vec::len));
        let dev = self.params().device();
        let ids = Tensor::from_vec(ids.concat(), (b, t), &dev)?;
        let mask = Tensor::from_vec(mask.concat(), (b, t), &dev)?;
        let all = self.hidden_states(&ids, &mask, false)?;
        Ok(all.narrow(1, t - 1, 1)?.squeeze(1)?)
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Gpt2LMHeadModel::logits(self, hidden)
    }

    fn greedy_tokens(&self, hidden: &Tensor) -> Result<Option<Vec<u32>>> {
        Gpt2LMHeadModel::greedy_tokens(self, hidden)
    }
}

/// Decoding state over the model: keeps the KV cache (or, uncached, the whole sequences).
struct Session<'a, M: Decoder> {
    model: &'a M,
    cache: Option<M::Cache>,
    ids: Vec<Vec<u32>>,
    mask: Vec<Vec<f32>>,
}

impl<'a, M: Decoder> Session<'a, M> {
    fn new(model: &'a M, rows: usize, use_cache: bool) -> Result<Self> {
        Ok(Session {
            model,
            cache: use_cache.then(|| model.new_cache(rows)).transpose()?,
            ids: vec![Vec::new(); rows],
            mask: vec![Vec::new(); rows],
        })
    }

    /// Appends tokens to every row and returns each row's next-token logits.
    fn feed(&mut self, ids: &[Vec<u32>], mask: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let hidden = self.feed_hidden(ids, mask)?;
        self.logits(&hidden)
    }

    /// Appends tokens to every row and returns each row's final hidden state `[rows,
    /// hidden]`, the input of [`Self::logits`] and of the model's greedy screen.
    fn feed_hidden(&mut self, ids: &[Vec<u32>], mask: &[Vec<f32>]) -> Result<Tensor> {
        for (r, (i, m)) in ids.iter().zip(mask).enumerate() {
            self.ids[r].extend_from_slice(i);
            self.mask[r].extend_from_slice(m);
        }
        match &mut self.cache {
            Some(cache) => self.model.forward_cached(ids, mask, cache),
            None => self.model.last_hidden(&self.ids, &self.mask),
        }
    }

    /// Next-token logits of final hidden states, one `Vec` per row.
    fn logits(&self, hidden: &Tensor) -> Result<Vec<Vec<f32>>> {
        let logits = self.model.logits(hidden)?;
        Ok(logits.to_dtype(DType::F32)?.to_vec2()?)
    }

    fn reorder(&mut self, order: &[usize]) -> Result<()> {
        if let Some(c) = &mut self.cache {
            self.model.reorder_cache(c, order)?;
        }
        self.ids = order.iter().map(|&i| self.ids[i].clone()).collect();
        self.mask = order.iter().map(|&i| self.mask[i].clone()).collect();
        Ok(())
    }
}

/// Left-pads prompts to one length: ids, mask.
fn left_pad(prompts: &[Vec<u32>], pad: u32) -> (Vec<Vec<u32>>, Vec<Vec<f32>>) {
    let t = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let ids = prompts
        .iter()
        .map(|p| {
            std::iter::repeat_n(pad, t - p.len())
                .chain(p.iter().copied())
                .collect()
        })
        .collect();
    let mask = prompts
        .iter()
        .map(|p| {
            std::iter::repeat_n(0.0, t - p.len())
                .chain(std::iter::repeat_n(1.0, p.len()))
                .collect()
        })
        .collect();
    (ids, mask)
}

/// Checks prompts against the model before any work.
fn check_prompts(model: &impl Decoder, prompts: &[Vec<u32>], cfg: &GenerationConfig) -> Result<()> {
    let (vocab, max, field) = (
        model.vocab_size(),
        model.max_positions(),
        model.positions_field(),
    );
    if prompts.is_empty() {
        return Err(Error::Invalid("no prompts to generate from".into()));
    }
    for (name, id) in [
        ("eos_token_id", cfg.eos_token_id),
        ("pad_token_id", cfg.pad_token_id),
    ] {
        if let Some(id) = id.filter(|&i| i as usize >= vocab) {
            return Err(Error::Invalid(format!(
                "{name} {id} is outside the model's vocabulary of {}",
                vocab
            )));
        }
    }
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(Error::Invalid(format!(
                "prompt {i} is empty: give at least one token"
            )));
        }
        if let Some(bad) = p.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Invalid(format!(
                "prompt {i}: token id {bad} is outside the model's vocabulary of {}",
                vocab
            )));
        }
        if p.len() > max {
            return Err(Error::Invalid(format!(
                "prompt {i} has {} tokens, longer than the model's {field} ({max})",
                p.len()
            )));
        }
        if p.len().saturating_add(cfg.max_new_tokens) > max {
            return Err(Error::Invalid(format!(
                "prompt {i} ({} tokens) + max_new_tokens ({}) exceeds the model's {field} ({max}); \
                 lower --max-new-tokens to at most {}",
                p.len(),
                cfg.max_new_tokens,
                max - p.len()
            )));
        }
    }
    Ok(())
}

/// Generates from each prompt (token ids); returns `num_return_sequences` results per prompt,
/// in prompt order. `on_step` sees every chosen token as it is decided (streaming).
pub fn generate<M: Decoder>(
    model: &M,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    on_step: &mut (dyn FnMut(&StepInfo) + Send),
) -> Result<Vec<Generated>> {
    cfg.validate()?;
    check_prompts(model, prompts, cfg)?;
    // Decoding makes ~50 small parallel calls per token. Issued from a thread outside the
    // pool, each one is a hand-off and a wake-up (futex, sched_yield: 10 % of the time in a
    // profile); from inside a worker, rayon runs small ones inline.
    let mut result = None;
    rayon::scope(|_| {
        result = Some(if cfg.num_beams > 1 {
            beam::beam_search(model, prompts, cfg)
        } else {
            sample::greedy_or_sample(model, prompts, cfg, on_step)
        })
    });
    result.unwrap_or_else(|| Err(Error::Invalid("generation did not run".into())))
}
