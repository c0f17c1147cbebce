//! Contrastive sentence embeddings (`[task] kind = "simcse"`) as a [`Task`]: SimCSE on a
//! sentence encoder ([`SentenceEncoder`]). Texts alone train the unsupervised flavour
//! (each batch passes every text twice, so the two copies differ only by their dropout
//! masks, and the other texts of the batch are the negatives); pairs train the supervised
//! flavour, with an optional hard negative per row. Dev / test files are scored pairs, as
//! STS: Spearman's correlation of cosine with the scores, Wang & Isola's alignment and
//! uniformity, and the contrastive loss over the positive pairs.

use super::config::{BestMetric, RunConfig};
use super::embedding_metrics::{alignment, sts_spearman, uniformity, SentencePairs};
use super::evaluation::Evaluation;
use super::task::{Split, StepOutput, Task};
use crate::data::batch::{pad_batch, to_encoder_input, EncoderInput};
use crate::data::dataset::{read_labelled, DataConfig, Example};
use crate::error::{Error, Result};
use crate::models::hub;
use crate::nn::contrastive::simcse_loss;
use crate::nn::Pooling;
use crate::rng;
use crate::tasks::embed::{read_st_config, SentenceEncoder, SimcseSpec, ST_POOLINGS};
use crate::tokenize::{EncodeOptions, Encoding, Padding, TextInput, Tokenizer, Truncation};
use candle_core::{Device, Tensor, Var};
use std::path::{Path, PathBuf};

/// The training rows: anchors, and (supervised) their positives and hard negatives.
struct TrainRows {
    anchors: Vec<Encoding>,
    positives: Option<Vec<Encoding>>,
    negatives: Option<Vec<Encoding>>,
}

/// A held-out split: scored pairs and each distinct sentence's encoding.
struct EvalPairs {
    pairs: SentencePairs,
    encodings: Vec<Encoding>,
}

/// SimCSE fine-tuning of a sentence encoder.
pub struct SimcseTask {
    encoder: SentenceEncoder,
    spec: SimcseSpec,
    train: TrainRows,
    dev: Option<EvalPairs>,
    test: Option<EvalPairs>,
    model_name: String,
    device: Device,
}

/// A micro-batch: `groups` blocks of `rows` rows each (anchors, positives, then hard
/// negatives), padded together into one encoder input.
pub struct SimcseBatch {
    /// The encoder input, `[groups · rows, seq]`.
    pub input: EncoderInput,
    /// Examples in the batch.
    pub rows: usize,
    /// 2 (anchor, positive) or 3 (with a hard negative).
    pub groups: usize,
}

impl SimcseTask {
    /// Loads `cfg.model` and reads the data (`data.train` with `data.dev` / `data.test`);
    /// every file problem is reported before training starts.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let device = Device::Cpu;
        let d = &cfg.data;
        let train_path = d.train.as_ref().ok_or_else(|| {
            Error::Invalid(
                "kind = \"simcse\" reads data.train (texts, or pairs with data.text_pair_field) \
                 and optionally data.dev / data.test (scored pairs); data.file is not split for it"
                    .into(),
            )
        })?;
        rng::seed_init(cfg.seed);
        let dir = crate::assets::resolve_dir(&cfg.model)?;
        let pooling = simcse_pooling(&cfg.task.pooling, &dir)?;
        let mut encoder = SentenceEncoder::for_training(&dir, pooling, &device)?;
        encoder.batch_size = cfg.train.eval_batch_size;
        let limit = encoder.model.config().max_sequence_length();
        let max_len = d.max_length.min(limit);
        let tok = &encoder.tokenizer;
        let train = read_train(
            &crate::assets::resolve_file(train_path)?,
            d,
            &cfg.task.simcse,
        )?;
        let train = tokenize_train(tok, train, max_len)?;
        let read_eval = |p: &PathBuf| -> Result<EvalPairs> {
            read_eval_pairs(&crate::assets::resolve_file(p)?, d, tok, max_len)
        };
        let dev = d.dev.as_ref().map(read_eval).transpose()?;
        let test = d.test.as_ref().map(read_eval).transpose()?;
        Ok(SimcseTask {
            encoder,
            spec: cfg.task.simcse.clone(),
            train,
            dev,
            test,
            model_name: cfg.model.clone(),
            device,
        })
    }

    /// The sentence encoder being trained.
    pub fn encoder(&self) -> &SentenceEncoder {
        &self.encoder
    }

    fn pad_id(&self) -> u32 {
        self.encoder.model.config().pad_token_id as u32
    }

    fn split(&self, split: Split) -> Option<&EvalPairs> {
        match split {
            Split::Dev => self.dev.as_ref(),
            Split::Test => self.test.as_ref(),
        }
    }

    fn flavour(&self) -> &'static str {
        match (&self.train.positives, &self.train.negatives) {
            (None, _) => "unsupervised (dropout noise as augmentation)",
            (Some(_), None) => "supervised (pairs)",
            (Some(_), Some(_)) => "supervised (pairs + hard negatives)",
        }
    }
}

/// `task.pooling` for SimCSE: `pooler` (the default) means the model's own
/// sentence-transformers pooling, else CLS (SimCSE's); otherwise one that a
/// sentence-transformers directory can say, so the trained model embeds the same way.
fn simcse_pooling(name: &str, dir: &Path) -> Result<Pooling> {
    let p: Pooling = name
        .parse()
        .map_err(|e| Error::Invalid(format!("task.pooling: {e}")))?;
    if p == Pooling::Pooler {
        return Ok(read_st_config(dir)?.map_or(Pooling::Cls, |st| st.pooling));
    }
    if !ST_POOLINGS.contains(&p) {
        return Err(Error::Invalid(format!(
            "task.pooling = \"{p}\": SimCSE trains cls, mean or max pooling (what a \
             sentence-transformers directory can record, so `embed` reads the model back the \
             same way); compare other poolings with `bert4rs eval-embeddings`"
        )));
    }
    Ok(p)
}

/// The training file's rows: text, and the pair / hard negative when configured. A row
/// missing any of them, or an empty text, is an error naming its line.
fn read_train(path: &Path, d: &DataConfig, spec: &SimcseSpec) -> Result<Vec<Vec<String>>> {
    let rows = read_labelled(path, d, false)?;
    let negatives = match &spec.hard_negative_field {
        None => None,
        Some(field) => {
            if d.text_pair_field.is_none() {
                return Err(Error::Invalid(
                    "task.simcse.hard_negative_field needs data.text_pair_field: a hard \
                     negative is the negative of an (anchor, positive) pair"
                        .into(),
                ));
            }
            let cfg = DataConfig {
                text_field: field.clone(),
                text_pair_field: None,
                ..d.clone()
            };
            Some(read_labelled(path, &cfg, false)?)
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for (i, e) in rows.iter().enumerate() {
        let mut texts = vec![e.text.clone()];
        if d.text_pair_field.is_some() {
            texts.push(
                e.text_pair
                    .clone()
                    .ok_or_else(|| missing(path, e, "text_pair"))?,
            );
        }
        if let Some(neg) = &negatives {
            texts.push(neg[i].text.clone());
        }
        if texts.iter().any(|t| t.trim().is_empty()) {
            return Err(Error::Input {
                path: path.into(),
                line: e.line,
                msg: "an empty text: SimCSE needs a sentence in every field of every row".into(),
            });
        }
        out.push(texts);
    }
    if out.len() < 2 {
        return Err(Error::Input {
            path: path.into(),
            line: 1,
            msg: "SimCSE needs at least 2 training rows (the other rows of a batch are the \
                  negatives)"
                .into(),
        });
    }
    Ok(out)
}

fn missing(path: &Path, e: &Example, what: &str) -> Error {
    Error::Input {
        path: path.into(),
        line: e.line,
        msg: format!("no {what}: supervised SimCSE reads a pair on every row"),
    }
}

fn encode_all(tok: &Tokenizer, texts: &[String], max_len: usize) -> Result<Vec<Encoding>> {
    let inputs: Vec<TextInput> = texts
        .iter()
        .map(|t| TextInput::single(t.as_str()))
        .collect();
    let opts = EncodeOptions {
        max_length: Some(max_len),
        padding: Padding::None,
        truncation: Some(Truncation::LongestFirst),
    };
    tok.encode_batch(&inputs, &opts)
}

fn tokenize_train(tok: &Tokenizer, rows: Vec<Vec<String>>, max_len: usize) -> Result<TrainRows> {
    let column = |k: usize| -> Result<Option<Vec<Encoding>>> {
        if rows[0].len() <= k {
            return Ok(None);
        }
        let texts: Vec<String> = rows.iter().map(|r| r[k].clone()).collect();
        encode_all(tok, &texts, max_len).map(Some)
    };
    Ok(TrainRows {
        anchors: column(0)?.unwrap_or_default(),
        positives: column(1)?,
        negatives: column(2)?,
    })
}

/// Scored (or unscored) pairs: `text`, the pair field (`data.text_pair_field`, else
/// `text_pair`) and the score in `data.label_field`, all rows scored or none.
fn read_eval_pairs(
    path: &Path,
    d: &DataConfig,
    tok: &Tokenizer,
    max_len: usize,
) -> Result<EvalPairs> {
    let cfg = DataConfig {
        text_pair_field: Some(d.text_pair_field.clone().unwrap_or("text_pair".into())),
        ..d.clone()
    };
    let pairs = SentencePairs::read(path, &cfg)?;
    let encodings = encode_all(tok, &pairs.sentences, max_len)?;
    Ok(EvalPairs { pairs, encodings })
}

impl Task for SimcseTask {
    type Batch = SimcseBatch;

    fn describe(&self) -> String {
        let mc = self.encoder.model.config();
        let params: usize = self.params().iter().map(|(_, v)| v.elem_count()).sum();
        let pairs = |s: &Option<EvalPairs>| {
            s.as_ref().map_or("no".to_string(), |p| {
                let scored = if p.pairs.scores.is_some() {
                    " scored"
                } else {
                    ""
                };
                format!("{}{scored}", p.pairs.pairs.len())
            })
        };
        format!(
            "SimCSE, {}: {} ({} layers × {}, {} parameters), {} pooling, temperature {}\n\
             data: {} train rows / {} dev pairs / {} test pairs",
            self.flavour(),
            self.model_name,
            mc.num_hidden_layers,
            mc.hidden_size,
            crate::util::human_count(params),
            self.encoder.pooling(),
            self.spec.temperature,
            self.train.anchors.len(),
            pairs(&self.dev),
            pairs(&self.test),
        )
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.encoder.vars()
    }

    fn layer_layout(&self) -> (String, usize) {
        let layers = self.encoder.model.config().num_hidden_layers;
        (self.encoder.encoder_prefix().to_string(), layers)
    }

    fn train_len(&self) -> usize {
        self.train.anchors.len()
    }

    fn batch(&self, idx: &[usize]) -> Result<SimcseBatch> {
        let t = &self.train;
        let pick = |col: &[Encoding]| idx.iter().map(|&i| col[i].clone()).collect::<Vec<_>>();
        // Unsupervised: each text is its own positive; the two copies are separate rows,
        // so they get separate dropout masks.
        let mut rows = pick(&t.anchors);
        rows.extend(pick(t.positives.as_deref().unwrap_or(&t.anchors)));
        if let Some(neg) = &t.negatives {
            rows.extend(pick(neg));
        }
        let groups = rows.len() / idx.len().max(1);
        Ok(SimcseBatch {
            input: to_encoder_input(&pad_batch(&rows, self.pad_id()), &self.device)?,
            rows: idx.len(),
            groups,
        })
    }

    fn forward(&self, batch: &SimcseBatch, train: bool) -> Result<StepOutput> {
        let z = self.encoder.pool(&batch.input, train)?;
        let n = batch.rows;
        let neg = (batch.groups == 3)
            .then(|| z.narrow(0, 2 * n, n))
            .transpose()?;
        let loss = simcse_loss(
            &z.narrow(0, 0, n)?,
            &z.narrow(0, n, n)?,
            neg.as_ref(),
            self.spec.temperature,
        )?;
        Ok(StepOutput { loss, logits: None })
    }

    /// Embeds each distinct sentence once (eval mode), then: Spearman (scored pairs),
    /// alignment over the positive pairs, uniformity over the sentences, and the loss of
    /// the positive pairs in batches of `batch_size` (as supervised SimCSE would score them).
    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>> {
        let Some(data) = self.split(split) else {
            return Ok(None);
        };
        let vecs = self.encoder.embed_tokenized(&data.encodings, |_| {})?;
        let (all, positives) = data.pairs.vectors(&vecs, self.spec.positive_threshold);
        let loss = self.pairs_loss(&positives, batch_size)?;
        let mut ev = Evaluation::new(split.name(), step, loss, all.len());
        if let Some(scores) = &data.pairs.scores {
            ev.scores
                .insert("spearman".into(), sts_spearman(&all, scores));
        }
        if !positives.is_empty() {
            ev.scores.insert("alignment".into(), alignment(&positives)?);
        }
        if vecs.len() >= 2 {
            let sentences: Vec<&[f32]> = vecs.iter().map(Vec::as_slice).collect();
            ev.scores
                .insert("uniformity".into(), uniformity(&sentences)?);
        }
        Ok(Some(ev))
    }

    fn default_metric(&self) -> BestMetric {
        match self.dev.as_ref().and_then(|d| d.pairs.scores.as_ref()) {
            Some(_) => BestMetric::Spearman,
            None => BestMetric::Loss,
        }
    }

    fn word_embeddings(&self) -> Option<String> {
        let table = self.encoder.model.embeddings().word_embeddings();
        Some(table.name().to_string())
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.encoder.save_pretrained(dir)
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        hub::load_into(dir, &self.encoder.vars(), str::to_string)
    }
}

impl SimcseTask {
    /// Mean contrastive loss of positive pairs, in-batch negatives within each chunk of
    /// `batch_size` pairs (NaN when there is no positive pair).
    fn pairs_loss(&self, positives: &[(&[f32], &[f32])], batch_size: usize) -> Result<f64> {
        let (mut sum, mut n) = (0.0, 0usize);
        for chunk in positives.chunks(batch_size.max(2)) {
            let rows = |side: usize| -> Result<Tensor> {
                let flat: Vec<f32> = chunk
                    .iter()
                    .flat_map(|p| if side == 0 { p.0 } else { p.1 }.iter().copied())
                    .collect();
                let dim = flat.len() / chunk.len();
                Ok(Tensor::from_vec(flat, (chunk.len(), dim), &self.device)?)
            };
            let loss = simcse_loss(&rows(0)?, &rows(1)?, None, self.spec.temperature)?;
            sum += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            n += chunk.len();
        }
        Ok(if n == 0 { f64::NAN } else { sum / n as f64 })
    }
}
