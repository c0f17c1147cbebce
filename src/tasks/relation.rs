//! Relation classification with entity markers (Baldini Soares et al., 2019, "Matching the
//! Blanks"): the subject and object are wrapped in marker tokens (`[E1]…[/E1]`,
//! `[E2]…[/E2]`, added to the tokenizer as special tokens, the embedding table resized),
//! and the relation is read from the concatenated encoder states of the two start markers
//! (`entity_start`, the paper's best) or from `[CLS]` (`cls`) → dropout → linear.
//!
//! Saved directories: `bert.*` encoder names, `classifier.*`, `id2label`, the tokenizer
//! with its added markers; `bert4rs_relation` in `config.json` records pooling and markers.

use crate::data::batch::EncoderInput;
use crate::error::{Error, Result};
use crate::kernels::CodeWidth;
use crate::models::bert::BertModel;
use crate::models::{hub, load_encoder};
use crate::nn::{Dropout, Linear, Params};
use crate::tokenize::Tokenizer;
use candle_core::{Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How the pair is read off the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationPooling {
    /// The states of the subject's and the object's start markers, concatenated.
    EntityStart,
    /// The `[CLS]` state.
    Cls,
}

/// Labels, pooling and markers of a relation head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelationSpec {
    /// Relation names in id order (`no_relation` among them).
    pub labels: Vec<String>,
    /// How the pair is pooled.
    pub pooling: RelationPooling,
    /// Subject start, subject end, object start, object end markers.
    pub markers: [String; 4],
}

/// A batch: encoder input and the positions of the two start markers `[batch, 2]` (u32).
pub struct RelationInput {
    /// Encoder input.
    pub input: EncoderInput,
    /// Position of `[E1]` and of `[E2]` per row.
    pub marker_positions: Tensor,
}

/// An encoder with a relation head.
pub struct RelationClassifier {
    encoder: BertModel,
    dropout: Dropout,
    classifier: Linear,
    spec: RelationSpec,
    params: Params,
    prefix: String,
}

impl RelationClassifier {
    /// Loads `dir` and its tokenizer; with `spec` the markers are added to the tokenizer
    /// (and the embeddings resized) and a new head made, without it both come from the
    /// directory (a trained relation model).
    pub fn from_dir(
        dir: &Path,
        device: &Device,
        trainable: bool,
        spec: Option<RelationSpec>,
    ) -> Result<(Self, Tokenizer)> {
        let mut loaded = load_encoder(dir, device, trainable)?;
        let mut tokenizer = Tokenizer::from_dir(dir)?;
        let cfg = loaded.model.config().clone();
        let spec = match spec {
            Some(s) => s,
            None => {
                let path = dir.join("config.json");
                let v = cfg.extra.get("bert4rs_relation").cloned().ok_or_else(|| {
                    Error::config(
                        &path,
                        "no `bert4rs_relation`: this is not a relation model (train one first)",
                    )
                })?;
                serde_json::from_value(v)
                    .map_err(|e| Error::config(&path, format!("`bert4rs_relation`: {e}")))?
            }
        };
        if spec.labels.len() < 2 {
            return Err(Error::Invalid(format!(
                "a relation head needs at least 2 labels, got {:?}",
                spec.labels
            )));
        }
        let markers: Vec<&str> = spec.markers.iter().map(String::as_str).collect();
        tokenizer.add_special_tokens(&markers)?;
        if tokenizer.vocab_size() > loaded.model.embeddings().word_embeddings().rows() {
            loaded.resize_token_embeddings(tokenizer.vocab_size())?;
        }
        let width = match spec.pooling {
            RelationPooling::EntityStart => 2 * cfg.hidden_size,
            RelationPooling::Cls => cfg.hidden_size,
        };
        let p = loaded.params.pp("classifier");
        crate::tasks::classify::keep_if_shaped(&p, [spec.labels.len(), width]);
        let classifier = Linear::load_or_init(&p, width, spec.labels.len(), cfg.initializer_range)?;
        let p_drop = cfg
            .extra
            .get("classifier_dropout")
            .and_then(|v| v.as_f64())
            .unwrap_or(cfg.hidden_dropout_prob);
        let model = RelationClassifier {
            encoder: loaded.model,
            dropout: Dropout::new(p_drop),
            classifier,
            spec,
            params: loaded.params,
            prefix: loaded.prefix,
        };
        Ok((model, tokenizer))
    }

    /// Labels, pooling, markers.
    pub fn spec(&self) -> &RelationSpec {
        &self.spec
    }

    /// Runs the encoder on dynamically quantised int8 ([`BertModel::quantize_int8`]); the
    /// head stays f32.
    pub fn quantize_int8(&mut self, width: CodeWidth) -> Result<()> {
        (self.encoder).quantize_int8_releasing(width, &self.params, &self.prefix)
    }

    /// The encoder.
    pub fn encoder(&self) -> &BertModel {
        &self.encoder
    }

    /// The prefix encoder weights are stored under.
    pub fn encoder_prefix(&self) -> &str {
        &self.prefix
    }

    /// The trainable handles (a checkpoint's pooler, unused here, left out).
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.params
            .vars()
            .into_iter()
            .filter(|(n, _)| !n.contains("pooler."))
            .collect()
    }

    /// Logits `[batch, labels]`; dropout only when `train`.
    pub fn forward(&self, batch: &RelationInput, train: bool) -> Result<Tensor> {
        let h = self.encoder.forward(&batch.input, train)?.last_hidden_state;
        let pooled = match self.spec.pooling {
            RelationPooling::Cls => h.narrow(1, 0, 1)?.squeeze(1)?,
            RelationPooling::EntityStart => {
                let (b, _, d) = h.dims3()?;
                let idx = batch
                    .marker_positions
                    .unsqueeze(2)?
                    .broadcast_as((b, 2, d))?
                    .contiguous()?;
                h.contiguous()?.gather(&idx, 1)?.reshape((b, 2 * d))?
            }
        };
        self.classifier
            .forward(&self.dropout.forward(&pooled, train)?)
    }

    /// Mean cross-entropy of `logits` against class ids.
    pub fn loss(&self, logits: &Tensor, labels: &[u32]) -> Result<Tensor> {
        let y = Tensor::new(labels, logits.device())?;
        Ok(candle_nn::loss::cross_entropy(logits, &y)?)
    }

    /// Writes `config.json` (labels, `bert4rs_relation`) and `model.safetensors`.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut cfg = self.encoder.config().clone();
        let labels = &self.spec.labels;
        let e = &mut cfg.extra;
        e.insert(
            "architectures".into(),
            serde_json::json!(["BertForRelationClassification"]),
        );
        e.insert(
            "id2label".into(),
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), serde_json::json!(l)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        e.insert(
            "label2id".into(),
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.clone(), serde_json::json!(i)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        e.insert(
            "bert4rs_relation".into(),
            serde_json::to_value(&self.spec).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        hub::save_pretrained(dir, &cfg.to_json()?, &self.named_tensors())
    }

    /// Every parameter under its saved name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .named_tensors()
            .into_iter()
            .filter(|(k, _)| !k.contains("pooler."))
            .map(|(k, t)| (self.saved_name(&k), t))
            .collect()
    }

    /// The name a parameter is saved under.
    pub fn saved_name(&self, name: &str) -> String {
        match name.starts_with("classifier.") || !self.prefix.is_empty() {
            true => name.to_string(),
            false => format!("bert.{name}"),
        }
    }
}

/// True when `dir` holds a relation model.
pub fn is_relation_model(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .is_ok_and(|t| t.contains("\"bert4rs_relation\""))
}

/// Index of the largest logit per row.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}
