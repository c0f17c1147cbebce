//! Relation classification as a [`Task`] (`[task] kind = "relation"`): subject–object pairs
//! with entity markers on an encoder; accuracy and micro / macro F1 over the real relations
//! (`no_relation` excluded, as usual for relation extraction).

use super::config::{BestMetric, RunConfig};
use super::evaluation::{Evaluation, RelationMetrics};
use super::metrics;
use super::task::{Split, StepOutput, Task};
use crate::data::batch::EncoderInput;
use crate::data::relation::{marked_text, read_relations, RelationExample, NO_RELATION};
use crate::error::{Error, Result};
use crate::models::hub;
use crate::rng;
use crate::tasks::relation::{RelationClassifier, RelationInput, RelationSpec};
use crate::tokenize::Tokenizer;
use candle_core::{Device, Tensor, Var};
use std::path::{Path, PathBuf};

/// Relation examples tokenized with their markers.
pub struct RelationDataset {
    /// Where they came from.
    pub source: PathBuf,
    /// The examples as read.
    pub examples: Vec<RelationExample>,
    /// Ids per example (special tokens included, cropped to `max_length` around the pair).
    pub ids: Vec<Vec<u32>>,
    /// Positions of the subject's and the object's start markers.
    pub markers: Vec<[u32; 2]>,
    /// Label ids (empty when unlabelled).
    pub labels: Vec<u32>,
}

impl RelationDataset {
    /// Tokenizes the marked texts; a pair that does not fit in `max_length` tokens, or a
    /// label outside `labels`, is an error naming the file and line.
    pub fn new(
        source: &Path,
        examples: Vec<RelationExample>,
        tok: &Tokenizer,
        spec: &RelationSpec,
        max_length: usize,
    ) -> Result<Self> {
        let (pre, post) = tok.single_text_specials()?;
        let room = max_length.saturating_sub(pre.len() + post.len());
        let marker_ids: Vec<u32> = spec
            .markers
            .iter()
            .map(|m| {
                tok.token_to_id(m).ok_or_else(|| {
                    Error::Tokenizer(format!("marker `{m}` is not in the vocabulary"))
                })
            })
            .collect::<Result<_>>()?;
        let texts: Vec<String> = examples
            .iter()
            .map(|e| marked_text(e, &spec.markers))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encoded = tok.encode_with_offsets(&refs)?;
        let bad = |e: &RelationExample, msg: String| Error::Input {
            path: source.into(),
            line: e.line,
            msg,
        };
        let (mut ids, mut markers, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for (e, (tokens, _)) in examples.iter().zip(encoded) {
            let at = |id: u32| tokens.iter().position(|&t| t == id);
            let pos: Vec<usize> = marker_ids
                .iter()
                .map(|&m| {
                    at(m).ok_or_else(|| bad(e, "an entity marker was lost in tokenization".into()))
                })
                .collect::<Result<_>>()?;
            let (lo, hi) = (
                *pos.iter().min().unwrap_or(&0),
                *pos.iter().max().unwrap_or(&0) + 1,
            );
            if hi - lo > room {
                return Err(bad(e, format!(
                    "the subject and object span {} tokens with their markers, more than data.max_length {max_length} allows",
                    hi - lo
                )));
            }
            // Crop to `room` tokens around the pair, as centred as the text allows.
            let start = lo
                .saturating_sub((room - (hi - lo)) / 2)
                .min(tokens.len().saturating_sub(room));
            let end = (start + room).min(tokens.len());
            let mut row = pre.clone();
            row.extend(&tokens[start..end]);
            row.extend(&post);
            let shift = pre.len() - start;
            markers.push([(pos[0] + shift) as u32, (pos[2] + shift) as u32]);
            ids.push(row);
            if let Some(l) = &e.label {
                let id = spec.labels.iter().position(|x| x == l).ok_or_else(|| {
                    bad(
                        e,
                        format!(
                            "unknown relation `{l}` (the model's: {})",
                            spec.labels.join(", ")
                        ),
                    )
                })?;
                labels.push(id as u32);
            }
        }
        Ok(RelationDataset {
            source: source.to_path_buf(),
            examples,
            ids,
            markers,
            labels,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True without examples.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// A padded batch of the examples `idx`.
    pub fn batch(&self, idx: &[usize], pad_id: u32, device: &Device) -> Result<RelationInput> {
        let t = idx.iter().map(|&i| self.ids[i].len()).max().unwrap_or(1);
        let b = idx.len();
        let (mut ids, mut mask, mut pos) = (
            Vec::with_capacity(b * t),
            Vec::with_capacity(b * t),
            Vec::new(),
        );
        for &i in idx {
            let row = &self.ids[i];
            ids.extend(
                row.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, t - row.len())),
            );
            mask.extend((0..t).map(|j| if j < row.len() { 1f32 } else { 0.0 }));
            pos.extend(self.markers[i]);
        }
        Ok(RelationInput {
            input: EncoderInput {
                input_ids: Tensor::from_vec(ids, (b, t), device)?,
                attention_mask: Tensor::from_vec(mask, (b, t), device)?,
                token_type_ids: Tensor::zeros((b, t), candle_core::DType::U32, device)?,
            },
            marker_positions: Tensor::from_vec(pos, (b, 2), device)?,
        })
    }
}

/// Classifying the relation between a subject and an object.
pub struct RelationTask {
    model: RelationClassifier,
    tokenizer: Tokenizer,
    train: RelationDataset,
    dev: Option<RelationDataset>,
    test: Option<RelationDataset>,
    model_name: String,
    device: Device,
}

impl RelationTask {
    /// Reads `data.train` (+ `dev`, `test`) JSONL, builds the label set (`no_relation` first,
    /// then the training relations sorted, or `data.labels`) and a new head with markers.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let device = Device::Cpu;
        let d = &cfg.data;
        let read = |p: &PathBuf| -> Result<(PathBuf, Vec<RelationExample>)> {
            let p = crate::assets::resolve_file(p)?;
            let ex = read_relations(&p, true)?;
            Ok((p, ex))
        };
        let train_path = d.train.as_ref().ok_or_else(|| {
            Error::Invalid("relation tasks read data.train (and data.dev / data.test)".into())
        })?;
        let (train, dev, test) = (
            read(train_path)?,
            d.dev.as_ref().map(read).transpose()?,
            d.test.as_ref().map(read).transpose()?,
        );
        let labels = match &d.labels {
            Some(l) => l.clone(),
            None => label_set(&train.1),
        };
        let markers = cfg.task.markers.clone();
        let spec = RelationSpec {
            labels,
            pooling: cfg.task.relation_pooling,
            markers,
        };
        rng::seed_init(cfg.seed);
        let base = crate::assets::resolve_dir(&cfg.model)?;
        let (model, tokenizer) =
            RelationClassifier::from_dir(&base, &device, true, Some(spec.clone()))?;
        let max_len = d
            .max_length
            .min(model.encoder().config().max_sequence_length());
        let mk = |(p, ex): (PathBuf, Vec<RelationExample>)| {
            RelationDataset::new(&p, ex, &tokenizer, &spec, max_len)
        };
        let train = mk(train)?;
        let dev = dev.map(mk).transpose()?;
        let test = test.map(mk).transpose()?;
        Ok(RelationTask {
            model,
            tokenizer,
            train,
            dev,
            test,
            model_name: cfg.model.clone(),
            device,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &RelationClassifier {
        &self.model
    }
}

/// `no_relation` first (when present), then the other relations sorted.
fn label_set(ex: &[RelationExample]) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> =
        ex.iter().filter_map(|e| e.label.as_deref()).collect();
    let none = set.contains(NO_RELATION).then(|| NO_RELATION.to_string());
    none.into_iter()
        .chain(
            set.into_iter()
                .filter(|l| *l != NO_RELATION)
                .map(String::from),
        )
        .collect()
}

/// Logits of every example of `ds` in input order (eval mode).
pub fn predict_logits(
    model: &RelationClassifier,
    ds: &RelationDataset,
    pad_id: u32,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let lengths: Vec<usize> = ds.ids.iter().map(Vec::len).collect();
    let mut out = vec![Vec::new(); ds.len()];
    for idx in crate::data::batch::length_sorted_batches(&lengths, batch_size) {
        let logits = model
            .forward(&ds.batch(&idx, pad_id, device)?, false)?
            .to_vec2::<f32>()?;
        for (i, row) in idx.into_iter().zip(logits) {
            out[i] = row;
        }
    }
    Ok(out)
}

/// Loss, accuracy and relation F1 of `logits` against `ds`'s labels.
pub fn evaluate_logits(
    model: &RelationClassifier,
    ds: &RelationDataset,
    logits: &[Vec<f32>],
    split: &str,
    step: u64,
) -> Result<Evaluation> {
    let n = logits.len();
    let k = model.spec().labels.len();
    let t = Tensor::from_vec(logits.concat(), (n, k), &Device::Cpu)?;
    let loss = model.loss(&t, &ds.labels)?.to_scalar::<f32>()? as f64;
    let gold: Vec<usize> = ds.labels.iter().map(|&l| l as usize).collect();
    let pred: Vec<usize> = logits
        .iter()
        .map(|r| crate::tasks::classify::argmax(r))
        .collect();
    let labels = &model.spec().labels;
    let mut ev = Evaluation::new(split, step, loss, n);
    ev.classification = Some(metrics::classification(&gold, &pred, labels));
    ev.relations = Some(RelationMetrics::new(&gold, &pred, labels, NO_RELATION));
    Ok(ev)
}

impl Task for RelationTask {
    type Batch = (RelationInput, Vec<u32>);

    fn describe(&self) -> String {
        let s = self.model.spec();
        let n = |d: &Option<RelationDataset>| d.as_ref().map_or(0, RelationDataset::len);
        format!(
            "model {} · relation classification, pooling {:?}, markers {:?} · {} relations {:?}\ndata: {} train / {} dev / {} test pairs",
            self.model_name, s.pooling, s.markers, s.labels.len(), s.labels, self.train.len(), n(&self.dev), n(&self.test),
        )
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.model.vars()
    }

    fn layer_layout(&self) -> (String, usize) {
        (
            self.model.encoder_prefix().to_string(),
            self.model.encoder().config().num_hidden_layers,
        )
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn epoch_batches(&self, batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
        let lengths: Vec<usize> = self.train.ids.iter().map(Vec::len).collect();
        crate::data::dataset::bucketed_batches(&lengths, batch_size, seed)
    }

    fn batch(&self, idx: &[usize]) -> Result<Self::Batch> {
        let input = self
            .train
            .batch(idx, self.tokenizer.pad_id(), &self.device)?;
        Ok((input, idx.iter().map(|&i| self.train.labels[i]).collect()))
    }

    fn forward(&self, (input, labels): &Self::Batch, train: bool) -> Result<StepOutput> {
        let logits = self.model.forward(input, train)?;
        let loss = self.model.loss(&logits, labels)?;
        Ok(StepOutput {
            loss,
            logits: Some(logits),
        })
    }

    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>> {
        let ds = match split {
            Split::Dev => self.dev.as_ref(),
            Split::Test => self.test.as_ref(),
        };
        let Some(ds) = ds else {
            return Ok(None);
        };
        let logits = predict_logits(
            &self.model,
            ds,
            self.tokenizer.pad_id(),
            batch_size,
            &self.device,
        )?;
        evaluate_logits(&self.model, ds, &logits, split.name(), step).map(Some)
    }

    fn default_metric(&self) -> BestMetric {
        BestMetric::RelationF1
    }

    fn word_embeddings(&self) -> Option<String> {
        Some(
            self.model
                .encoder()
                .embeddings()
                .word_embeddings()
                .name()
                .to_string(),
        )
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)?;
        self.tokenizer.save(dir)
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        let m = &self.model;
        hub::load_into(dir, &m.vars(), |n| m.saved_name(n))
    }
}
