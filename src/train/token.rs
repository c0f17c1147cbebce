//! Token classification (NER) as a [`Task`] (`[task] kind = "token_classification"`): CoNLL
//! or JSONL sentences, an encoder with a `linear` / `crf` / `lstm_crf` head or a BiLSTM-CRF
//! from scratch, windows of `data.max_length`, entity-level metrics.

use super::config::{BestMetric, RunConfig};
use super::entity_metrics::entity_metrics;
use super::evaluation::Evaluation;
use super::task::{Split, StepOutput, Task};
use crate::data::aligned::{word_vocabulary, TokenBatch, TokenDataset, Vocabulary};
use crate::data::dataset::bucketed_batches;
use crate::data::tagged::{read_tagged, TaggedFormat, TaggedSentence};
use crate::data::tags;
use crate::error::{Error, Result};
use crate::models::hub;
use crate::rng::{self, Rng};
use crate::tasks::token_classify::{ScratchSpec, TokenClassifier, TokenSpec};
use crate::tokenize::Tokenizer;
use candle_core::{Device, Var};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How a token model turns text into ids: its tokenizer, or its word vocabulary.
pub enum TokenVocab {
    /// A pre-trained encoder's tokenizer.
    Tokenizer(Box<Tokenizer>),
    /// A from-scratch model's words (id = position).
    Words(HashMap<String, u32>, Vec<String>),
}

impl TokenVocab {
    /// The vocabulary of a saved token model directory.
    pub fn from_dir(dir: &Path, model: &TokenClassifier) -> Result<Self> {
        match &model.spec().scratch {
            Some(s) => Ok(words(s.vocab.clone())),
            None => Ok(TokenVocab::Tokenizer(Box::new(Tokenizer::from_dir(dir)?))),
        }
    }

    /// How the vocabulary lays out sentences.
    pub fn layout(&self) -> Vocabulary<'_> {
        match self {
            TokenVocab::Tokenizer(t) => Vocabulary::Tokenizer(t),
            TokenVocab::Words(m, _) => Vocabulary::Words(m),
        }
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        match self {
            TokenVocab::Tokenizer(t) => t.pad_id(),
            TokenVocab::Words(..) => 0,
        }
    }
}

fn words(vocab: Vec<String>) -> TokenVocab {
    let map = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), i as u32))
        .collect();
    TokenVocab::Words(map, vocab)
}

/// Tagging words with entity labels.
pub struct TokenTask {
    model: TokenClassifier,
    vocab: TokenVocab,
    train: TokenDataset,
    dev: Option<TokenDataset>,
    test: Option<TokenDataset>,
    max_length: usize,
    model_name: String,
    device: Device,
}

impl TokenTask {
    /// Reads the run's tagged data, builds the tag set (`O` first, then the training
    /// data's tags sorted, or `data.labels`), and the model with a new head.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let device = Device::Cpu;
        let [train, dev, test] = read_splits(cfg)?;
        let train = train.ok_or_else(|| Error::Invalid("the training split is empty".into()))?;
        let labels = match &cfg.data.labels {
            Some(l) => l.clone(),
            None => tag_set(&train.1),
        };
        rng::seed_init(cfg.seed);
        let t = &cfg.task;
        let mut spec = TokenSpec {
            labels: labels.clone(),
            head: t.head,
            scheme: t.scheme,
            lstm_hidden: t.lstm_hidden,
            lstm_layers: t.lstm_layers,
            scratch: None,
        };
        let (model, vocab, model_name) = if t.from_scratch {
            let vocab = word_vocabulary(&train.1, t.min_count.max(1));
            spec.scratch = Some(ScratchSpec {
                embedding_dim: t.embedding_dim,
                vocab: vocab.clone(),
                dropout: t.dropout,
            });
            let model = TokenClassifier::new_scratch(spec, &device)?;
            (model, words(vocab), "BiLSTM-CRF from scratch".to_string())
        } else {
            let base = crate::assets::resolve_dir(&cfg.model)?;
            let model = TokenClassifier::from_dir(&base, &device, true, Some(spec))?;
            (
                model,
                TokenVocab::Tokenizer(Box::new(Tokenizer::from_dir(&base)?)),
                cfg.model.clone(),
            )
        };
        let max_length = match model.encoder() {
            Some(e) => cfg.data.max_length.min(e.config().max_sequence_length()),
            None => cfg.data.max_length,
        };
        let layout = vocab.layout();
        let mk = |(path, s): (PathBuf, Vec<TaggedSentence>)| {
            TokenDataset::new(&path, s, &layout, Some(&labels), max_length)
        };
        let train = mk(train)?;
        let dev = dev.map(mk).transpose()?;
        let test = test.map(mk).transpose()?;
        Ok(TokenTask {
            model,
            vocab,
            train,
            dev,
            test,
            max_length,
            model_name,
            device,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &TokenClassifier {
        &self.model
    }

    /// The training set.
    pub fn train_set(&self) -> &TokenDataset {
        &self.train
    }

    fn held_out(&self, split: Split) -> Option<&TokenDataset> {
        match split {
            Split::Dev => self.dev.as_ref(),
            Split::Test => self.test.as_ref(),
        }
    }
}

impl Task for TokenTask {
    type Batch = TokenBatch;

    fn describe(&self) -> String {
        let s = self.model.spec();
        let n = |d: &Option<TokenDataset>| d.as_ref().map_or(0, |d| d.sentences.len());
        format!(
            "model {} · token classification, head {:?}, scheme {:?} · {} tags {:?}\n\
             data: {} train / {} dev / {} test sentences ({} training windows of ≤ {} tokens)",
            self.model_name,
            s.head,
            s.scheme,
            s.labels.len(),
            s.labels,
            self.train.sentences.len(),
            n(&self.dev),
            n(&self.test),
            self.train.len(),
            self.max_length,
        )
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.model.vars()
    }

    fn layer_layout(&self) -> (String, usize) {
        match self.model.encoder() {
            Some(e) => (
                self.model.encoder_prefix().to_string(),
                e.config().num_hidden_layers,
            ),
            None => (String::new(), 0),
        }
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn epoch_batches(&self, batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
        bucketed_batches(&self.train.lengths(), batch_size, seed)
    }

    fn batch(&self, idx: &[usize]) -> Result<TokenBatch> {
        self.train.batch(idx, self.vocab.pad_id(), &self.device)
    }

    fn forward(&self, batch: &TokenBatch, train: bool) -> Result<StepOutput> {
        let logits = self.model.logits(&batch.input, train)?;
        let emissions = self.model.word_emissions(&logits, batch)?;
        let loss = self.model.loss(&emissions, &batch.tags, batch)?;
        Ok(StepOutput { loss, logits: None })
    }

    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>> {
        let Some(ds) = self.held_out(split) else {
            return Ok(None);
        };
        let (pred, loss) = predict(
            &self.model,
            ds,
            self.vocab.pad_id(),
            batch_size,
            &self.device,
        )?;
        let labels = &self.model.spec().labels;
        let name = |ids: &[i64]| -> Vec<String> {
            ids.iter().map(|&i| labels[i as usize].clone()).collect()
        };
        let gold: Vec<Vec<String>> = ds.tag_ids.iter().map(|t| name(t)).collect();
        let pred: Vec<Vec<String>> = pred
            .iter()
            .map(|p| p.iter().map(|&(t, _)| labels[t].clone()).collect())
            .collect();
        let mut ev = Evaluation::new(
            split.name(),
            step,
            loss.unwrap_or(f64::NAN),
            ds.sentences.len(),
        );
        ev.entities = Some(entity_metrics(&gold, &pred));
        Ok(Some(ev))
    }

    fn default_metric(&self) -> BestMetric {
        BestMetric::EntityF1
    }

    fn word_embeddings(&self) -> Option<String> {
        let e = self.model.encoder()?;
        Some(e.embeddings().word_embeddings().name().to_string())
    }

    fn throughput(&self, windows_per_s: f64) -> String {
        format!("{windows_per_s:.1} sent/s")
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)?;
        match &self.vocab {
            TokenVocab::Tokenizer(t) => t.save(dir),
            TokenVocab::Words(_, list) => crate::util::write_atomic(
                &dir.join("vocab.txt"),
                (list.join("\n") + "\n").as_bytes(),
            ),
        }
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        let model = &self.model;
        hub::load_into(dir, &model.vars(), |n| model.saved_name(n))
    }
}

/// The predicted `(tag id, probability)` of each word of a sentence.
pub type WordTags = Vec<(usize, f32)>;

/// Predicted `(tag id, probability)` per sentence and word of `ds` (eval mode), and the
/// mean loss over its batches when `ds` is labelled.
pub fn predict(
    model: &TokenClassifier,
    ds: &TokenDataset,
    pad_id: u32,
    batch_size: usize,
    device: &Device,
) -> Result<(Vec<WordTags>, Option<f64>)> {
    let mut per_window = vec![Vec::new(); ds.len()];
    let (mut loss_sum, mut batches) = (0.0, 0usize);
    for idx in crate::data::batch::length_sorted_batches(&ds.lengths(), batch_size) {
        let b = ds.batch(&idx, pad_id, device)?;
        let logits = model.logits(&b.input, false)?;
        let emissions = model.word_emissions(&logits, &b)?;
        if !ds.tag_ids.is_empty() {
            loss_sum += model.loss(&emissions, &b.tags, &b)?.to_scalar::<f32>()? as f64;
            batches += 1;
        }
        for (i, tags) in idx.into_iter().zip(model.decode(&emissions, &b)?) {
            per_window[i] = tags;
        }
    }
    let outside = model
        .spec()
        .labels
        .iter()
        .position(|l| l == "O")
        .unwrap_or(0);
    let loss = (batches > 0).then(|| loss_sum / batches as f64);
    Ok((ds.join(&per_window, outside), loss))
}

/// One predicted entity, in character offsets of the sentence's text.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Entity {
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// Entity type (`PER`).
    pub label: String,
    /// `text[start..end]`.
    pub text: String,
    /// Mean probability of the entity's word tags.
    pub score: f32,
}

/// The entities of a sentence from its words' predicted `(tag id, probability)`.
pub fn sentence_entities(
    s: &TaggedSentence,
    pred: &[(usize, f32)],
    labels: &[String],
) -> Vec<Entity> {
    let names: Vec<String> = pred.iter().map(|&(t, _)| labels[t].clone()).collect();
    let chars: Vec<char> = s.text.chars().collect();
    tags::entities(&names)
        .into_iter()
        .map(|(label, first, end)| {
            let (start, stop) = (s.words[first].0, s.words[end - 1].1);
            let score = pred[first..end].iter().map(|p| p.1).sum::<f32>() / (end - first) as f32;
            Entity {
                start,
                end: stop,
                label,
                text: chars[start..stop].iter().collect(),
                score,
            }
        })
        .collect()
}

/// The tags of the training data: `O` first, then the rest sorted by type and prefix.
fn tag_set(sentences: &[TaggedSentence]) -> Vec<String> {
    let mut set: Vec<String> = sentences
        .iter()
        .flat_map(|s| s.tags.iter().flatten().cloned())
        .filter(|t| t != "O")
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    set.sort_by(|a, b| {
        let (pa, ta) = tags::split(a);
        let (pb, tb) = tags::split(b);
        let order = |p: char| "BIES".find(p).unwrap_or(4);
        (ta, order(pa)).cmp(&(tb, order(pb)))
    });
    std::iter::once("O".to_string()).chain(set).collect()
}

type TaggedSource = (PathBuf, Vec<TaggedSentence>);

/// Train / dev / test sentences: `data.train` (+ `dev`, `test`), or `data.file` split with
/// `data.split` ratios and `data.split_seed`.
fn read_splits(cfg: &RunConfig) -> Result<[Option<TaggedSource>; 3]> {
    let d = &cfg.data;
    let fmt = TaggedFormat {
        scheme: cfg.task.scheme,
        repair: d.repair_tags,
    };
    let read = |p: &PathBuf| -> Result<TaggedSource> {
        let p = crate::assets::resolve_file(p)?;
        let s = read_tagged(&p, d.format, fmt)?;
        Ok((p, s))
    };
    if let Some(train) = &d.train {
        let dev = d.dev.as_ref().map(read).transpose()?;
        let test = d.test.as_ref().map(read).transpose()?;
        return Ok([Some(read(train)?), dev, test]);
    }
    let file = d.file.as_ref().ok_or_else(|| {
        Error::Invalid("set data.train (and data.dev / data.test) or data.file".into())
    })?;
    let (path, mut all) = read(file)?;
    Rng::new(d.split_seed).shuffle(&mut all);
    let n = all.len() as f64;
    let n_test = (n * d.split[2]).round() as usize;
    let n_dev = (n * d.split[1]).round() as usize;
    let test = all.split_off(all.len() - n_test.min(all.len()));
    let dev = all.split_off(all.len() - n_dev.min(all.len()));
    let some = |v: Vec<TaggedSentence>| (!v.is_empty()).then(|| (path.clone(), v));
    Ok([some(all), some(dev), some(test)])
}
