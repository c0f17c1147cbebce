//! Token classification (NER): per-word tags from an encoder with a `linear` head (HF's
//! `BertForTokenClassification`: dropout → `classifier`), a `crf` head (linear emissions →
//! CRF over the words), or `lstm_crf` (a BiLSTM over the encoder's states, then linear →
//! CRF); or, without an encoder, the classic BiLSTM-CRF from scratch (a learned embedding
//! per word or character, a vocabulary built from the training data).
//!
//! The encoder sees sub-tokens; labels live on words. A word's tag is read at its first
//! sub-token (HF's `-100` on the others), so emissions are gathered at those positions and
//! the loss and the CRF run over words.
//!
//! Saved directories: the `linear` head is HF's `BertForTokenClassification` layout
//! (`bert.*`, `classifier.*`, `id2label`); LSTM and CRF weights sit beside it as `lstm.*`
//! and `crf.*`, and `bert4rs_token_head` in `config.json` says which head it is.

use crate::data::aligned::TokenBatch;
use crate::data::batch::EncoderInput;
use crate::data::tags::Scheme;
use crate::error::{Error, Result};
use crate::kernels::CodeWidth;
use crate::models::bert::BertModel;
use crate::models::{hub, load_encoder};
use crate::nn::{
    Constraints, Crf, Dropout, Embedding, Init, Linear, Params, Reduction, Rnn, RnnConfig, RnnMode,
};
use candle_core::{DType, Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The layers after the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenHead {
    /// Dropout → linear; softmax cross-entropy per word.
    Linear,
    /// Linear emissions → CRF (negative log-likelihood, Viterbi decoding).
    Crf,
    /// BiLSTM → linear emissions → CRF.
    LstmCrf,
}

/// What a token model predicts and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenSpec {
    /// Tag names in id order (`O`, `B-PER`, ...).
    pub labels: Vec<String>,
    /// The head.
    pub head: TokenHead,
    /// The tags' scheme (CRF decoding keeps to its moves).
    pub scheme: Scheme,
    /// BiLSTM state size per direction (`lstm_crf`).
    pub lstm_hidden: usize,
    /// BiLSTM layers (`lstm_crf`).
    pub lstm_layers: usize,
    /// Without an encoder: the embedding size and the vocabulary (words or characters;
    /// id 0 = padding, 1 = unknown).
    pub scratch: Option<ScratchSpec>,
}

/// The embedding of an encoder-free BiLSTM-CRF.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScratchSpec {
    /// Embedding size.
    pub embedding_dim: usize,
    /// The vocabulary, in id order (saved as `vocab.txt`, one entry per line).
    #[serde(skip)]
    pub vocab: Vec<String>,
    /// Dropout on the embeddings and the LSTM outputs.
    pub dropout: f64,
}

enum Body {
    Encoder(Box<BertModel>),
    Scratch(Embedding),
}

/// An encoder (or an embedding) with a token-level head.
pub struct TokenClassifier {
    body: Body,
    lstm: Option<Rnn>,
    dropout: Dropout,
    classifier: Linear,
    crf: Option<Crf>,
    spec: TokenSpec,
    params: Params,
    prefix: String,
}

impl TokenClassifier {
    /// Loads an encoder directory; with `spec` a new head is made where the checkpoint has
    /// none, without it the head comes from `config.json` (a trained token model).
    pub fn from_dir(
        dir: &Path,
        device: &Device,
        trainable: bool,
        spec: Option<TokenSpec>,
    ) -> Result<Self> {
        let config_path = dir.join("config.json");
        let extra = read_extra(&config_path)?;
        if extra.get("model_type").and_then(|v| v.as_str()) == Some("bilstm_crf") {
            return Self::load_scratch(dir, &extra, device, trainable);
        }
        let loaded = load_encoder(dir, device, trainable)?;
        let cfg = loaded.model.config().clone();
        let spec = match spec {
            Some(s) => s,
            None => spec_from_config(&cfg.extra, &config_path)?,
        };
        let p_drop = cfg
            .extra
            .get("classifier_dropout")
            .and_then(|v| v.as_f64())
            .unwrap_or(cfg.hidden_dropout_prob);
        let std = cfg.initializer_range;
        let body = Body::Encoder(Box::new(loaded.model));
        Self::with_head(
            body,
            cfg.hidden_size,
            spec,
            loaded.params,
            loaded.prefix,
            p_drop,
            std,
        )
    }

    /// A new BiLSTM-CRF without an encoder (`spec.scratch` set).
    pub fn new_scratch(spec: TokenSpec, device: &Device) -> Result<Self> {
        let s = spec.scratch.clone().ok_or_else(|| {
            Error::Invalid("a scratch token model needs an embedding spec".into())
        })?;
        let params = Params::fresh(device, true);
        Self::scratch_with(spec, &s, params)
    }

    fn scratch_with(spec: TokenSpec, s: &ScratchSpec, params: Params) -> Result<Self> {
        let table = params.get_or_init(
            (s.vocab.len(), s.embedding_dim),
            "embedding.weight",
            Init::Normal(1.0),
        )?;
        let body = Body::Scratch(Embedding::new(table, "embedding.weight"));
        let dim = s.embedding_dim;
        Self::with_head(
            body,
            dim,
            spec.clone(),
            params,
            String::new(),
            s.dropout,
            0.02,
        )
    }

    fn load_scratch(
        dir: &Path,
        extra: &serde_json::Map<String, serde_json::Value>,
        device: &Device,
        trainable: bool,
    ) -> Result<Self> {
        let path = dir.join("config.json");
        let spec: TokenSpec =
            serde_json::from_value(extra.get("bert4rs_token").cloned().unwrap_or_default())
                .map_err(|e| Error::config(&path, format!("`bert4rs_token`: {e}")))?;
        let mut spec = spec;
        let s = spec
            .scratch
            .as_mut()
            .ok_or_else(|| Error::config(&path, "no `scratch` section"))?;
        let vocab_path = dir.join("vocab.txt");
        let text = std::fs::read_to_string(&vocab_path).map_err(|e| Error::io(&vocab_path, e))?;
        s.vocab = text.lines().map(String::from).collect();
        let s = s.clone();
        let weights = hub::find_weights(dir)?;
        let params =
            Params::from_tensors(hub::read_tensors(&weights)?, &weights, device, trainable);
        Self::scratch_with(spec, &s, params)
    }

    fn with_head(
        body: Body,
        in_dim: usize,
        spec: TokenSpec,
        params: Params,
        prefix: String,
        p_drop: f64,
        std: f64,
    ) -> Result<Self> {
        let k = spec.labels.len();
        if k < 2 {
            return Err(Error::Invalid(format!(
                "a token head needs at least 2 tags, got {:?}",
                spec.labels
            )));
        }
        let lstm = match spec.head == TokenHead::LstmCrf || spec.scratch.is_some() {
            true => Some(Rnn::load(
                &params.pp("lstm"),
                &RnnConfig {
                    mode: RnnMode::Lstm,
                    input_size: in_dim,
                    hidden_size: spec.lstm_hidden,
                    num_layers: spec.lstm_layers,
                    bidirectional: true,
                    dropout: p_drop,
                },
            )?),
            false => None,
        };
        let width = lstm.as_ref().map_or(in_dim, |l| l.config().output_size());
        // A checkpoint's head for other labels is replaced (HF's `ignore_mismatched_sizes`).
        crate::tasks::classify::keep_if_shaped(&params.pp("classifier"), [k, width]);
        let classifier = Linear::load_or_init(&params.pp("classifier"), width, k, std)?;
        let crf = match spec.head {
            TokenHead::Linear => None,
            _ => {
                let labels = spec.labels.clone();
                let scheme = spec.scheme;
                let rule = move |from: Option<usize>, to: Option<usize>| {
                    let name = |i: Option<usize>| i.map(|i| labels[i].as_str());
                    crate::data::tags::allowed(name(from), name(to), scheme)
                };
                Some(
                    Crf::load(&params.pp("crf"), k)?
                        .with_constraints(Constraints::from_rule(k, rule))?,
                )
            }
        };
        Ok(TokenClassifier {
            body,
            lstm,
            dropout: Dropout::new(p_drop),
            classifier,
            crf,
            spec,
            params,
            prefix,
        })
    }

    /// Tags, head and scheme.
    pub fn spec(&self) -> &TokenSpec {
        &self.spec
    }

    /// Runs the encoder on dynamically quantised int8 ([`BertModel::quantize_int8`]); the
    /// head stays f32. An error for an encoder-free tagger.
    pub fn quantize_int8(&mut self, width: CodeWidth) -> Result<()> {
        match &mut self.body {
            Body::Encoder(m) => m.quantize_int8_releasing(width, &self.params, &self.prefix),
            Body::Scratch(_) => Err(Error::Invalid(
                "int8 quantises a pre-trained encoder; this model has none (an encoder-free \
                 tagger): run it without --int8"
                    .into(),
            )),
        }
    }

    /// The encoder (`None` for an encoder-free tagger).
    pub fn encoder(&self) -> Option<&BertModel> {
        match &self.body {
            Body::Encoder(m) => Some(m),
            Body::Scratch(_) => None,
        }
    }

    /// The prefix encoder weights are stored under (`""` for a bare encoder checkpoint).
    pub fn encoder_prefix(&self) -> &str {
        &self.prefix
    }

    /// The trainable handles by name (a checkpoint's pooler, which token tasks never use,
    /// is left out, as HF's `BertForTokenClassification` has none).
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.params
            .vars()
            .into_iter()
            .filter(|(n, _)| !is_pooler(n))
            .collect()
    }

    /// Emission scores at every sub-token position `[batch, seq, tags]`.
    pub fn logits(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let states = match &self.body {
            Body::Encoder(m) => m.forward(input, train)?.last_hidden_state,
            Body::Scratch(e) => e.forward(&input.input_ids)?,
        };
        let mut x = self.dropout.forward(&states, train)?;
        if let Some(lstm) = &self.lstm {
            let out = lstm.forward(&x, &input.attention_mask, train)?.output;
            x = self.dropout.forward(&out, train)?;
        }
        self.classifier.forward(&x)
    }

    /// Emissions at each word's first sub-token `[batch, words, tags]`.
    pub fn word_emissions(&self, logits: &Tensor, batch: &TokenBatch) -> Result<Tensor> {
        let (b, w) = batch.word_positions.dims2()?;
        let k = logits.dim(D::Minus1)?;
        let idx = batch
            .word_positions
            .unsqueeze(2)?
            .broadcast_as((b, w, k))?
            .contiguous()?;
        Ok(logits.contiguous()?.gather(&idx, 1)?)
    }

    /// The training loss: cross-entropy per labelled word averaged over words (`linear`,
    /// as HF's `-100`-masked loss), or the CRF's negative log-likelihood averaged over
    /// sentences. `labels [batch][words]` are tag ids.
    pub fn loss(
        &self,
        emissions: &Tensor,
        labels: &[Vec<i64>],
        batch: &TokenBatch,
    ) -> Result<Tensor> {
        let mask = word_mask(&batch.word_counts, emissions.dim(1)?, emissions.device())?;
        match &self.crf {
            Some(crf) => {
                let width = emissions.dim(1)?;
                let padded: Vec<Vec<i64>> = labels
                    .iter()
                    .map(|r| {
                        r.iter()
                            .copied()
                            .chain(std::iter::repeat(0))
                            .take(width)
                            .collect()
                    })
                    .collect();
                Ok(crf
                    .log_likelihood(emissions, &padded, &mask, Reduction::Mean)?
                    .neg()?)
            }
            None => word_cross_entropy(emissions, labels, &mask),
        }
    }

    /// Each row's best tags over its words, with each tag's probability (`linear`: its
    /// softmax; CRF: the path's per-word softmax of emissions, a confidence, not a marginal).
    pub fn decode(&self, emissions: &Tensor, batch: &TokenBatch) -> Result<Vec<Vec<(usize, f32)>>> {
        let probs = candle_nn::ops::softmax_last_dim(emissions)?.to_vec3::<f32>()?;
        let paths: Vec<Vec<usize>> = match &self.crf {
            Some(crf) => {
                let keep: Vec<usize> = (0..batch.word_counts.len())
                    .filter(|&i| batch.word_counts[i] > 0)
                    .collect();
                let mut paths = vec![Vec::new(); batch.word_counts.len()];
                if !keep.is_empty() {
                    let idx = Tensor::new(
                        keep.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                        emissions.device(),
                    )?;
                    let e = emissions.index_select(&idx, 0)?;
                    let mask =
                        word_mask(&batch.word_counts, emissions.dim(1)?, emissions.device())?;
                    let m = mask.index_select(&idx, 0)?;
                    for (row, p) in keep.iter().zip(crf.decode(&e, &m)?) {
                        paths[*row] = p;
                    }
                }
                paths
            }
            None => probs
                .iter()
                .zip(&batch.word_counts)
                .map(|(rows, &n)| {
                    rows[..n]
                        .iter()
                        .map(|r| crate::tasks::classify::argmax(r))
                        .collect()
                })
                .collect(),
        };
        Ok(paths
            .into_iter()
            .zip(&probs)
            .map(|(path, rows)| {
                path.into_iter()
                    .enumerate()
                    .map(|(i, t)| (t, rows[i][t]))
                    .collect()
            })
            .collect())
    }

    /// Writes `config.json` and `model.safetensors` (HF names; see the module doc).
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let labels = &self.spec.labels;
        let id2label: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), serde_json::json!(l)))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), serde_json::json!(i)))
            .collect();
        let token = serde_json::to_value(&self.spec).map_err(|e| Error::Invalid(e.to_string()))?;
        let config = match &self.body {
            Body::Encoder(m) => {
                let mut cfg = m.config().clone();
                let e = &mut cfg.extra;
                e.insert(
                    "architectures".into(),
                    serde_json::json!(["BertForTokenClassification"]),
                );
                e.insert("id2label".into(), id2label.into());
                e.insert("label2id".into(), label2id.into());
                e.insert(
                    "bert4rs_token_head".into(),
                    serde_json::to_value(self.spec.head).unwrap_or_default(),
                );
                e.insert("bert4rs_token".into(), token);
                cfg.to_json()?
            }
            Body::Scratch(_) => serde_json::to_string_pretty(&serde_json::json!({
                "model_type": "bilstm_crf",
                "architectures": ["BiLstmCrf"],
                "id2label": id2label,
                "label2id": label2id,
                "bert4rs_token": token,
            }))
            .map_err(|e| Error::Invalid(e.to_string()))?,
        };
        hub::save_pretrained(dir, &config, &self.named_tensors())
    }

    /// Every parameter under its saved name (`bert.` added to a bare encoder's names).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .named_tensors()
            .into_iter()
            .filter(|(k, _)| !is_pooler(k))
            .map(|(k, t)| (self.saved_name(&k), t))
            .collect()
    }

    /// The name a parameter is saved under.
    pub fn saved_name(&self, name: &str) -> String {
        let head = ["classifier.", "crf.", "lstm.", "embedding."]
            .iter()
            .any(|h| name.starts_with(h));
        match head || !self.prefix.is_empty() || self.encoder().is_none() {
            true => name.to_string(),
            false => format!("bert.{name}"),
        }
    }
}

fn is_pooler(name: &str) -> bool {
    name.starts_with("pooler.") || name.contains(".pooler.")
}

/// Mean cross-entropy over the real words of `emissions [b, w, k]`.
fn word_cross_entropy(
    emissions: &Tensor,
    labels: &[Vec<i64>],
    word_mask: &Tensor,
) -> Result<Tensor> {
    let (b, w, k) = emissions.dims3()?;
    let mask = word_mask.to_vec2::<f32>()?;
    let mut idx = Vec::with_capacity(b * w);
    for (row, m) in mask.iter().enumerate() {
        for (i, &on) in m.iter().enumerate() {
            let y = labels.get(row).and_then(|r| r.get(i)).copied().unwrap_or(0);
            if on > 0.5 && !(0..k as i64).contains(&y) {
                return Err(Error::Invalid(format!(
                    "tag id {y} at row {row}, word {i} is not in 0..{k}"
                )));
            }
            idx.push(if on > 0.5 { y as u32 } else { 0 });
        }
    }
    let idx = Tensor::from_vec(idx, (b, w, 1), emissions.device())?;
    let logp = candle_nn::ops::log_softmax(emissions, D::Minus1)?;
    let picked = logp.gather(&idx, 2)?.squeeze(2)?;
    let n = word_mask.sum_all()?;
    Ok((picked * word_mask)?.sum_all()?.neg()?.div(&n)?)
}

fn read_extra(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(path, e.to_string()))
}

/// The head of a trained token model, from its `config.json`.
fn spec_from_config(
    extra: &serde_json::Map<String, serde_json::Value>,
    path: &Path,
) -> Result<TokenSpec> {
    let token = extra.get("bert4rs_token").cloned();
    if let Some(t) = token {
        return serde_json::from_value(t)
            .map_err(|e| Error::config(path, format!("`bert4rs_token`: {e}")));
    }
    // An HF `*ForTokenClassification` directory: a linear head over `id2label`.
    let labels = crate::tasks::classify::id2label(extra, path)?;
    Ok(TokenSpec {
        labels,
        head: TokenHead::Linear,
        scheme: Scheme::Bio,
        lstm_hidden: 0,
        lstm_layers: 0,
        scratch: None,
    })
}

/// True when `dir`'s `config.json` describes a token model (ours or HF's).
pub fn is_token_model(dir: &Path) -> bool {
    read_extra(&dir.join("config.json")).is_ok_and(|e| {
        e.contains_key("bert4rs_token")
            || e.get("architectures")
                .and_then(|a| a.as_array())
                .is_some_and(|a| {
                    a.iter().any(|x| {
                        x.as_str()
                            .is_some_and(|s| s.ends_with("ForTokenClassification"))
                    })
                })
    })
}

/// The f32 `[batch, words]` mask of `counts` padded to `width`.
pub fn word_mask(counts: &[usize], width: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> = counts
        .iter()
        .flat_map(|&n| (0..width).map(move |i| if i < n { 1.0 } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(m, (counts.len(), width), device)?.to_dtype(DType::F32)?)
}
