//! Text-to-text training (`[task] kind = "seq2seq"`) as a [`Task`]: a bert2bert
//! [`EncoderDecoderModel`] — loaded, or warm-started from BERT checkpoints as HF's
//! `from_encoder_decoder_pretrained` does — trained with teacher forcing on (source, target)
//! records (`data.text_field` → `data.label_field`). Evaluation reports the loss, the mean
//! ROUGE-L and exact match of generated text (greedy or beam search, `[task.seq2seq]`), and
//! the ROUGE-L of the lead baseline (the source's first sentence) beside it; the best model
//! is the one with the highest dev ROUGE-L. The test split's generations are written to
//! `<output_dir>/test_generations.jsonl`.

use super::config::{BestMetric, RunConfig};
use super::evaluation::Evaluation;
use super::generation_metrics::{generation_scores, lead_sentence};
use super::task::{Split, StepOutput, Task};
use crate::data::batch::{pad_batch, to_encoder_input};
use crate::data::dataset::Example;
use crate::data::labelled::read_splits;
use crate::error::{Error, Result};
use crate::generate::seq2seq::{generate_seq2seq, Seq2SeqSpec};
use crate::models::bert::EncoderInput;
use crate::models::encoder_decoder::{EncoderDecoderModel, Seq2SeqIds};
use crate::models::hub;
use crate::tokenize::{EncodeOptions, Encoding, Padding, TextInput, Tokenizer, Truncation};
use candle_core::{Device, Var};
use std::path::{Path, PathBuf};

/// Words of the lead baseline (about a subject line's length).
const LEAD_WORDS: usize = 12;

/// Tokenized (source, target) records of one split.
struct Records {
    sources: Vec<Encoding>,
    targets: Vec<Vec<u32>>,
    source_text: Vec<String>,
    target_text: Vec<String>,
}

/// A bert2bert trained on (source, target) text.
pub struct Seq2SeqTask {
    model: EncoderDecoderModel,
    tokenizer: Tokenizer,
    spec: Seq2SeqSpec,
    train: Records,
    dev: Option<Records>,
    test: Option<Records>,
    warm_started: bool,
    output_dir: PathBuf,
    device: Device,
}

impl Seq2SeqTask {
    /// Loads (or warm-starts) the model and tokenizer and reads the data.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let device = Device::Cpu;
        let spec = cfg.task.seq2seq.clone();
        if spec.max_target_length == 0 || spec.num_beams == 0 {
            return Err(Error::Invalid(
                "task.seq2seq.max_target_length and num_beams must be at least 1".into(),
            ));
        }
        let model_dir = crate::assets::resolve_dir(&cfg.model)?;
        let tok_dir = match &cfg.tokenizer {
            Some(t) => crate::assets::resolve_dir(t)?,
            None => model_dir.clone(),
        };
        let tokenizer = Tokenizer::from_dir(&tok_dir)?;
        // A warm start draws the decoder's cross-attention new: from the run's seed.
        crate::rng::seed_init(cfg.seed);
        let (model, warm_started) = load_model(&model_dir, &spec, &tokenizer, &device)?;
        let vocab = model.config().decoder.vocab_size;
        if tokenizer.vocab_size() > vocab {
            return Err(Error::Invalid(format!(
                "the tokenizer in {} has {} tokens but the decoder's vocab_size is {vocab}",
                tok_dir.display(),
                tokenizer.vocab_size()
            )));
        }
        let splits = read_splits(&cfg.data, &cfg.output_dir)?;
        let read = |src: &(PathBuf, Vec<Example>)| {
            records(&src.0, &src.1, &tokenizer, cfg.data.max_length, &spec)
        };
        Ok(Seq2SeqTask {
            train: read(&splits.train)?,
            dev: splits.dev.as_ref().map(read).transpose()?,
            test: splits.test.as_ref().map(read).transpose()?,
            model,
            tokenizer,
            spec,
            warm_started,
            output_dir: cfg.output_dir.clone(),
            device,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &EncoderDecoderModel {
        &self.model
    }

    fn input(&self, encs: &[Encoding]) -> Result<EncoderInput> {
        to_encoder_input(&pad_batch(encs, self.tokenizer.pad_id()), &self.device)
    }

    /// Generated texts for every source of `r`, in order.
    fn generate_all(&self, r: &Records, batch_size: usize) -> Result<Vec<String>> {
        let gen = self.spec.generation();
        let mut out = Vec::with_capacity(r.sources.len());
        for chunk in r.sources.chunks(batch_size.max(1)) {
            for g in generate_seq2seq(&self.model, &self.input(chunk)?, &gen)? {
                out.push(self.tokenizer.decode_with(&g.ids[g.prompt_len..], true)?);
            }
        }
        Ok(out)
    }
}

/// An encoder–decoder directory is loaded; a BERT one warm-starts a bert2bert (decoder from
/// `spec.decoder`, default the same checkpoint) with the tokenizer's `[CLS]`, `[PAD]` and
/// `[SEP]` as start, pad and end ids. True when warm-started.
fn load_model(
    dir: &Path,
    spec: &Seq2SeqSpec,
    tok: &Tokenizer,
    device: &Device,
) -> Result<(EncoderDecoderModel, bool)> {
    let cfg_path = dir.join("config.json");
    let raw = crate::config::read_json(&cfg_path)?;
    if raw.get("model_type").and_then(|v| v.as_str()) == Some("encoder-decoder") {
        return Ok((EncoderDecoderModel::from_dir(dir, device, true)?, false));
    }
    let id = |t: &str| {
        tok.token_to_id(t).ok_or_else(|| {
            Error::Invalid(format!(
                "the tokenizer has no {t} token, which a bert2bert warm start uses"
            ))
        })
    };
    let ids = Seq2SeqIds {
        decoder_start_token_id: id("[CLS]")?,
        pad_token_id: tok.pad_id(),
        eos_token_id: id("[SEP]")?,
    };
    let decoder = match &spec.decoder {
        Some(d) => crate::assets::resolve_dir(d)?,
        None => dir.to_path_buf(),
    };
    let m = EncoderDecoderModel::warm_start(dir, &decoder, ids, device, true)?;
    Ok((m, true))
}

/// Tokenizes a split: sources with `[CLS]`/`[SEP]`, truncated to `max_length`; targets
/// without specials, cut to `max_target_length`, then the end token.
fn records(
    path: &Path,
    ex: &[Example],
    tok: &Tokenizer,
    max_length: usize,
    spec: &Seq2SeqSpec,
) -> Result<Records> {
    let eos = tok
        .token_to_id("[SEP]")
        .ok_or_else(|| Error::Invalid("the tokenizer has no [SEP] token to end targets".into()))?;
    let mut target_text = Vec::with_capacity(ex.len());
    let mut targets = Vec::with_capacity(ex.len());
    for e in ex {
        let t = e
            .label
            .as_ref()
            .map(|l| l.names().join("|"))
            .unwrap_or_default();
        let mut ids = tok.encode_plain(&t)?;
        if ids.is_empty() {
            return Err(Error::Input {
                path: path.into(),
                line: e.line,
                msg: "empty target text (data.label_field)".into(),
            });
        }
        ids.truncate(spec.max_target_length);
        ids.push(eos);
        targets.push(ids);
        target_text.push(t);
    }
    let opts = EncodeOptions {
        max_length: Some(max_length),
        padding: Padding::None,
        truncation: Some(Truncation::LongestFirst),
    };
    let inputs: Vec<TextInput> = ex
        .iter()
        .map(|e| TextInput::single(e.text.clone()))
        .collect();
    Ok(Records {
        sources: tok.encode_batch(&inputs, &opts)?,
        targets,
        source_text: ex.iter().map(|e| e.text.clone()).collect(),
        target_text,
    })
}

impl Task for Seq2SeqTask {
    /// The padded sources and the targets.
    type Batch = (EncoderInput, Vec<Vec<u32>>);

    fn describe(&self) -> String {
        let c = self.model.config();
        let params: usize = self.params().iter().map(|(_, v)| v.elem_count()).sum();
        let start = match self.warm_started {
            true => "warm-started from BERT (cross-attention new)",
            false => "loaded",
        };
        format!(
            "seq2seq: bert2bert, encoder {} × {} layers, decoder {} layers with cross-attention, \
             {} parameters, {start}\n\
             data: {} train / {} dev / {} test pairs; targets ≤ {} tokens; evaluation decodes \
             with {} beam(s)",
            c.encoder.hidden_size,
            c.encoder.num_hidden_layers,
            c.decoder.num_hidden_layers,
            crate::util::human_count(params),
            self.train.targets.len(),
            self.dev.as_ref().map_or(0, |d| d.targets.len()),
            self.test.as_ref().map_or(0, |d| d.targets.len()),
            self.spec.max_target_length,
            self.spec.num_beams,
        )
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.model.params().vars()
    }

    fn train_len(&self) -> usize {
        self.train.targets.len()
    }

    fn batch(&self, idx: &[usize]) -> Result<Self::Batch> {
        let encs: Vec<Encoding> = idx.iter().map(|&i| self.train.sources[i].clone()).collect();
        let targets = idx.iter().map(|&i| self.train.targets[i].clone()).collect();
        Ok((self.input(&encs)?, targets))
    }

    fn forward(&self, batch: &Self::Batch, train: bool) -> Result<StepOutput> {
        Ok(StepOutput {
            loss: self.model.loss(&batch.0, &batch.1, train)?,
            logits: None,
        })
    }

    /// Token-weighted loss, then ROUGE-L / exact match of generations and of the lead
    /// baseline.
    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>> {
        let r = match split {
            Split::Dev => self.dev.as_ref(),
            Split::Test => self.test.as_ref(),
        };
        let Some(r) = r else { return Ok(None) };
        let (mut sum, mut tokens) = (0.0, 0usize);
        let n = r.targets.len();
        for start in (0..n).step_by(batch_size.max(1)) {
            let end = (start + batch_size.max(1)).min(n);
            let input = self.input(&r.sources[start..end])?;
            let ys = &r.targets[start..end];
            let k: usize = ys.iter().map(Vec::len).sum();
            sum += self.model.loss(&input, ys, false)?.to_scalar::<f32>()? as f64 * k as f64;
            tokens += k;
        }
        let mut ev = Evaluation::new(split.name(), step, sum / tokens.max(1) as f64, n);
        ev.tokens = Some(tokens);
        let generated = self.generate_all(r, batch_size)?;
        let (rouge, exact) = generation_scores(&generated, &r.target_text);
        let lead: Vec<String> = (r.source_text.iter())
            .map(|s| lead_sentence(s, LEAD_WORDS))
            .collect();
        let (lead_rouge, _) = generation_scores(&lead, &r.target_text);
        ev.scores.insert("rouge_l".into(), rouge);
        ev.scores.insert("exact_match".into(), exact);
        ev.scores.insert("rouge_l_lead".into(), lead_rouge);
        if split == Split::Test {
            write_generations(&self.output_dir, r, &generated)?;
        }
        Ok(Some(ev))
    }

    fn default_metric(&self) -> BestMetric {
        BestMetric::RougeL
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)?;
        self.tokenizer.save(dir)
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        hub::load_into(dir, &self.params(), str::to_string)
    }
}

/// `{"source", "target", "generated"}` per test record, written atomically.
fn write_generations(dir: &Path, r: &Records, generated: &[String]) -> Result<()> {
    let mut out = String::new();
    for ((s, t), g) in r.source_text.iter().zip(&r.target_text).zip(generated) {
        let row = serde_json::json!({"source": s, "target": t, "generated": g});
        out.push_str(&row.to_string());
        out.push('\n');
    }
    crate::util::write_atomic(&dir.join("test_generations.jsonl"), out.as_bytes())
}
