//! Sequence classification, multi-label classification and regression on any pooling, with
//! HF's heads: `BertForSequenceClassification` (pooled output → dropout → `classifier`
//! linear) and `RobertaForSequenceClassification` (the `<s>` state → dropout →
//! `classifier.dense` → tanh → dropout → `classifier.out_proj`), generalised to every
//! pooling of [`crate::nn::pooling`].
//!
//! Saved directories use HF's names (`bert.*` / `roberta.*`, `classifier.*`, `id2label`,
//! `problem_type`), so `transformers` loads them as the matching `*ForSequenceClassification`
//! and, with the default pooling (`pooler`: BERT's pooler output; for RoBERTa, whose HF head
//! has its own dense + tanh and no pooler, the `<s>` state, recorded as `cls`), computes the
//! same logits. Other poolings are recorded in `config.json` as `bert4rs_pooling`
//! (transformers ignores the field and pools its own way; bert4rs reads it back).
//!
//! An optional LSTM/GRU between the encoder and the pooling (`[task] rnn`) gives the notes'
//! "BERT + BiLSTM + attention" classifier: any single-layer pooling (`attention`, `mean`,
//! `max`, ...) then reads the RNN's outputs. Its weights are saved as `rnn.*` (torch's
//! `nn.LSTM` names) and its shape as `bert4rs_rnn`; transformers does not know the layer.

pub use super::classify_loss::{head_loss, LossConfig, LossKind};
use crate::config::ModelType;
use crate::data::labelled::Batch;
pub use crate::data::labelled::{Problem, Targets};
use crate::data::windows::WindowOptions;
use crate::error::{Error, Result};
use crate::kernels::CodeWidth;
use crate::models::bert::{BertModel, EncoderInput, EncoderOutput};
use crate::models::hub::{self, WeightStorage};
use crate::models::load_encoder_as;
use crate::nn::rnn::{Rnn, RnnConfig, RnnMode};
use crate::nn::{Dropout, ExitRamps, Linear, Params, Pooler, Pooling, WindowPool, WindowPooler};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the head is asked to be when it is created (training from a plain encoder).
#[derive(Clone, Debug)]
pub struct HeadSpec {
    /// The problem.
    pub problem: Problem,
    /// Label names in id order (one name, `score`, for regression).
    pub labels: Vec<String>,
    /// How tokens are pooled into one vector.
    pub pooling: Pooling,
    /// A bidirectional LSTM/GRU over the encoder's last layer, pooled instead of it.
    pub rnn: Option<RnnSpec>,
    /// Long texts read whole, as windows whose vectors are pooled before the head.
    pub windows: Option<WindowSpec>,
}

/// Long-text classification (`[task.windows]`): each text is cut into windows of
/// `max_length` tokens overlapping by `stride`, every window is encoded and pooled as a
/// short text would be, and the window vectors are combined by `pool` (trained end to end).
/// Saved as `bert4rs_windows` so `eval` and `predict` cut texts the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Tokens each window shares with the one before it.
    #[serde(default = "default_stride")]
    pub stride: usize,
    /// At most this many windows per text (the rest of a longer text is not read).
    #[serde(default = "default_max_windows")]
    pub max_windows: usize,
    /// mean, max or attention over the windows.
    #[serde(default)]
    pub pool: WindowPool,
    /// Window length in tokens: the run's `data.max_length` (set by the trainer).
    #[serde(default)]
    pub max_length: usize,
}

fn default_stride() -> usize {
    128
}
fn default_max_windows() -> usize {
    8
}

impl WindowSpec {
    /// How texts are cut.
    pub fn options(&self) -> WindowOptions {
        WindowOptions {
            stride: self.stride,
            max_windows: self.max_windows,
        }
    }
}

/// The recurrent layer between the encoder and the pooling (always bidirectional).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RnnSpec {
    /// LSTM or GRU.
    pub mode: RnnMode,
    /// State size per direction.
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
}

impl RnnSpec {
    /// The poolings that read one layer's states (the others need the encoder's layers or
    /// its pooler, which an RNN output does not have).
    pub fn check_pooling(pooling: Pooling) -> Result<()> {
        match pooling {
            Pooling::Cls
            | Pooling::Mean
            | Pooling::Max
            | Pooling::Min
            | Pooling::MeanKmax { .. }
            | Pooling::Attention => Ok(()),
            other => Err(Error::Invalid(format!(
                "task.pooling {other} cannot read an RNN's outputs (task.rnn is set); \
                 use attention, mean, max, min, mean_kmax or cls"
            ))),
        }
    }
}

/// Whether a parameter belongs to the head (saved without the encoder's family prefix).
pub fn is_head_param(name: &str) -> bool {
    ["classifier.", "pooling.", "rnn.", "window_pooling."]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The layers after the pooling, as HF names them.
enum Head {
    /// BERT: one `classifier` linear layer.
    Linear(Linear),
    /// RoBERTa (HF `RobertaClassificationHead`): `classifier.dense` → tanh → dropout →
    /// `classifier.out_proj`.
    Roberta { dense: Linear, out_proj: Linear },
}

/// An encoder with a pooling and HF's classification head for its family.
pub struct SequenceClassifier {
    encoder: BertModel,
    rnn: Option<Rnn>,
    pooler: Pooler,
    windows: Option<WindowPooler>,
    dropout: Dropout,
    head: Head,
    /// DeeBERT's off-ramps after every layer but the last (early exit), when the checkpoint
    /// has them or [`Self::add_exit_ramps`] made them.
    ramps: Option<ExitRamps>,
    spec: HeadSpec,
    params: Params,
    prefix: String,
}

impl SequenceClassifier {
    /// Loads `dir`; with `spec` a new head is created where the checkpoint has none (an
    /// error if an existing head disagrees), without it the head and labels come from the
    /// directory's `config.json` (a fine-tuned model).
    pub fn from_dir(
        dir: &Path,
        device: &Device,
        trainable: bool,
        spec: Option<HeadSpec>,
    ) -> Result<Self> {
        Self::load(dir, device, trainable, spec, WeightStorage::F32)
    }

    /// Loads a fine-tuned classifier for inference with the encoder's matrices stored as
    /// `storage` says (the head stays f32).
    pub fn for_inference(dir: &Path, device: &Device, storage: WeightStorage) -> Result<Self> {
        Self::load(dir, device, false, None, storage)
    }

    fn load(
        dir: &Path,
        device: &Device,
        trainable: bool,
        spec: Option<HeadSpec>,
        storage: WeightStorage,
    ) -> Result<Self> {
        let loaded = load_encoder_as(dir, device, trainable, storage)?;
        let cfg = loaded.model.config().clone();
        let mut spec = match spec {
            Some(s) => s,
            None => spec_from_config(&cfg.extra, &dir.join("config.json"))?,
        };
        let roberta = cfg.model_type == ModelType::Roberta;
        if roberta && spec.pooling == Pooling::Pooler {
            // HF's RoBERTa head reads the `<s>` state (it has its own dense + tanh); its
            // fine-tuned checkpoints have no pooler.
            spec.pooling = Pooling::Cls;
        }
        let n_out = match spec.problem {
            Problem::Regression => 1,
            _ => spec.labels.len(),
        };
        if n_out == 0 || (spec.problem == Problem::SingleLabel && n_out < 2) {
            return Err(Error::Invalid(format!(
                "a {} head needs at least 2 labels, got {:?}",
                spec.problem.hf_name(),
                spec.labels
            )));
        }
        let rnn = match spec.rnn {
            None => None,
            Some(r) => {
                RnnSpec::check_pooling(spec.pooling)?;
                let rc = RnnConfig {
                    mode: r.mode,
                    input_size: cfg.hidden_size,
                    hidden_size: r.hidden_size,
                    num_layers: r.num_layers,
                    bidirectional: true,
                    dropout: cfg.hidden_dropout_prob,
                };
                Some(Rnn::load(&loaded.params.pp("rnn"), &rc)?)
            }
        };
        let width = rnn
            .as_ref()
            .map_or(cfg.hidden_size, |r| r.config().output_size());
        let pooler = Pooler::new(
            spec.pooling,
            &loaded.params.pp("pooling"),
            width,
            cfg.num_hidden_layers,
            cfg.initializer_range,
        )?;
        if spec.pooling == Pooling::Pooler && !loaded.model.has_pooler() {
            return Err(Error::checkpoint(
                loaded.params.source_path(),
                "pooling `pooler` needs `pooler.dense.weight`, which this checkpoint lacks; use cls or mean",
            ));
        }
        let in_dim = pooler.output_dim(width);
        let windows = match &spec.windows {
            Some(w) => Some(WindowPooler::new(
                w.pool,
                &loaded.params.pp("window_pooling"),
                in_dim,
                cfg.initializer_range,
            )?),
            None => None,
        };
        let std = cfg.initializer_range;
        let p = loaded.params.pp("classifier");
        let head = if roberta {
            let (dense, out_proj) = (p.pp("dense"), p.pp("out_proj"));
            // A head for another pooling width or other labels is replaced (as HF's
            // `ignore_mismatched_sizes=True`).
            keep_if_shaped(&dense, [in_dim, in_dim]);
            keep_if_shaped(&out_proj, [n_out, in_dim]);
            Head::Roberta {
                dense: Linear::load_or_init(&dense, in_dim, in_dim, std)?,
                out_proj: Linear::load_or_init(&out_proj, in_dim, n_out, std)?,
            }
        } else {
            keep_if_shaped(&p, [n_out, in_dim]);
            Head::Linear(Linear::load_or_init(&p, in_dim, n_out, std)?)
        };
        let p_drop = cfg
            .extra
            .get("classifier_dropout")
            .and_then(|v| v.as_f64())
            .unwrap_or(cfg.hidden_dropout_prob);
        let mut model = SequenceClassifier {
            encoder: loaded.model,
            rnn,
            pooler,
            windows,
            dropout: Dropout::new(p_drop),
            head,
            ramps: None,
            spec,
            params: loaded.params,
            prefix: loaded.prefix,
        };
        model.ramps = model.exit_ramps_with(|p, (layers, hidden, n_out, cls, drop)| {
            ExitRamps::load_if_present(p, layers, hidden, n_out, cls, drop)
        })?;
        Ok(model)
    }

    /// Gives the model DeeBERT's off-ramps (the checkpoint's, else new ones initialised as
    /// HF initialises a linear layer), to train them. A single-label classifier without an
    /// RNN or windows only: an error says why otherwise.
    pub fn add_exit_ramps(&mut self) -> Result<()> {
        let why = match (&self.spec.problem, &self.spec.rnn, &self.spec.windows) {
            (Problem::SingleLabel, None, None) => None,
            (Problem::SingleLabel, Some(_), _) => Some("a classifier with task.rnn"),
            (Problem::SingleLabel, _, Some(_)) => Some("a classifier with task.windows"),
            (p, _, _) => Some(p.hf_name()),
        };
        if let Some(what) = why {
            return Err(Error::Invalid(format!(
                "task.early_exit: early exit is for single-label classifiers on the encoder's \
                 layers, not {what}"
            )));
        }
        if self.ramps.is_none() {
            let std = self.encoder.config().initializer_range;
            self.ramps = self.exit_ramps_with(|p, (layers, hidden, n_out, cls, drop)| {
                ExitRamps::load_or_init(p, layers, hidden, n_out, cls, drop, std).map(Some)
            })?;
        }
        Ok(())
    }

    /// Builds the ramps in the encoder's parameter scope from (layers, hidden, labels,
    /// pool `[CLS]`, dropout).
    fn exit_ramps_with(
        &self,
        make: impl FnOnce(&Params, (usize, usize, usize, bool, f64)) -> Result<Option<ExitRamps>>,
    ) -> Result<Option<ExitRamps>> {
        let cfg = self.encoder.config();
        let scope = match self.prefix.is_empty() {
            true => self.params.clone(),
            false => self.params.pp(&self.prefix),
        };
        let cls = matches!(self.spec.pooling, Pooling::Cls | Pooling::Pooler);
        let n_out = self.spec.labels.len();
        let drop = f64::from(self.dropout.p());
        make(
            &scope,
            (cfg.num_hidden_layers, cfg.hidden_size, n_out, cls, drop),
        )
    }

    /// The off-ramps, when the model has them.
    pub fn exit_ramps(&self) -> Option<&ExitRamps> {
        self.ramps.as_ref()
    }

    /// The encoder.
    pub fn encoder(&self) -> &BertModel {
        &self.encoder
    }

    /// Runs the encoder on dynamically quantised int8 ([`BertModel::quantize_int8`]); the
    /// head stays f32. Inference only.
    pub fn quantize_int8(&mut self, width: CodeWidth) -> Result<()> {
        (self.encoder).quantize_int8_releasing(width, &self.params, &self.prefix)
    }

    /// Gates on the encoder's heads ([`BertModel::set_head_gates`]), for head importance.
    pub fn set_head_gates(&mut self, gates: Option<Vec<Tensor>>) -> Result<()> {
        self.encoder.set_head_gates(gates)
    }

    /// Problem, labels and pooling.
    pub fn spec(&self) -> &HeadSpec {
        &self.spec
    }

    /// Every parameter by its HF name (encoder ones under the saved prefix).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The trainable handles, by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.params.vars()
    }

    /// The prefix encoder weights are stored under (`""` for a bare encoder checkpoint).
    pub fn encoder_prefix(&self) -> &str {
        &self.prefix
    }

    /// Logits of a batch: one row per example, the windows of a long text pooled first.
    pub fn forward_batch(&self, batch: &Batch, train: bool) -> Result<Tensor> {
        match (&batch.windows, &self.windows) {
            (None, _) => self.forward(&batch.input, train),
            (Some(counts), Some(windows)) => {
                let pooled = self.pooled(&batch.input, train)?;
                self.head(&windows.forward(&pooled, counts)?, train)
            }
            (Some(_), None) => Err(Error::Invalid(
                "a batch of windows for a model without task.windows".into(),
            )),
        }
    }

    /// Logits `[batch, labels]` (`[batch, 1]` for regression); dropout only when `train`.
    pub fn forward(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let pooled = self.pooled(input, train)?;
        self.head(&pooled, train)
    }

    /// The pooled vector of every row.
    fn pooled(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let out = self.encoder.forward(input, train)?;
        self.pool_states(&out, &input.attention_mask, train)
    }

    /// The pooled vector of every row from the encoder's output (`mask` `[batch, seq]`).
    pub fn pool_states(&self, out: &EncoderOutput, mask: &Tensor, train: bool) -> Result<Tensor> {
        let pooled = match &self.rnn {
            None => self
                .pooler
                .forward(&out.hidden_states, out.pooler_output.as_ref(), mask)?,
            Some(rnn) => {
                let last = out
                    .hidden_states
                    .last()
                    .ok_or_else(|| Error::Invalid("the encoder returned no states".into()))?;
                let states = rnn.forward(last, mask, train)?.output;
                self.pooler.forward(&[states], None, mask)?
            }
        };
        Ok(pooled)
    }

    /// Dropout and the classification layer(s).
    pub fn head(&self, pooled: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.dropout.forward(pooled, train)?;
        match &self.head {
            Head::Linear(classifier) => classifier.forward(&x),
            Head::Roberta { dense, out_proj } => {
                let h = dense.forward(&x)?.tanh()?;
                out_proj.forward(&self.dropout.forward(&h, train)?)
            }
        }
    }

    /// The training loss of `logits` against `targets`.
    pub fn loss(&self, logits: &Tensor, targets: &Targets, cfg: &LossConfig) -> Result<Tensor> {
        head_loss(self.spec.problem, logits, targets, cfg)
    }

    /// Writes an HF directory: `config.json` (labels, problem type, pooling) and
    /// `model.safetensors` with `bert.`-prefixed encoder names, atomically.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut cfg = self.encoder.config().clone();
        let family = cfg.model_type.base_model_prefix();
        let arch = format!("{}ForSequenceClassification", cfg.model_type.class_stem());
        let labels: serde_json::Map<String, serde_json::Value> = self
            .spec
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), serde_json::json!(l)))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = self
            .spec
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), serde_json::json!(i)))
            .collect();
        let e = &mut cfg.extra;
        e.insert("architectures".into(), serde_json::json!([arch]));
        e.insert("id2label".into(), labels.into());
        e.insert("label2id".into(), label2id.into());
        e.insert(
            "problem_type".into(),
            serde_json::json!(self.spec.problem.hf_name()),
        );
        e.insert(
            "bert4rs_pooling".into(),
            serde_json::json!(self.spec.pooling.to_string()),
        );
        if let Some(r) = &self.spec.rnn {
            let v = serde_json::to_value(r).map_err(|e| Error::Invalid(e.to_string()))?;
            e.insert("bert4rs_rnn".into(), v);
        }
        if let Some(w) = &self.spec.windows {
            let v = serde_json::to_value(w).map_err(|e| Error::Invalid(e.to_string()))?;
            e.insert("bert4rs_windows".into(), v);
        }
        hub::save_pretrained(dir, &cfg.to_json()?, &self.named_tensors(family))
    }

    /// Every parameter under the name HF's `*ForSequenceClassification` expects.
    pub fn named_tensors(&self, family: &str) -> Vec<(String, Tensor)> {
        self.params
            .named_tensors()
            .into_iter()
            .map(|(k, t)| {
                if is_head_param(&k) || !self.prefix.is_empty() {
                    (k, t)
                } else {
                    (format!("{family}.{k}"), t)
                }
            })
            .collect()
    }
}

/// Discards a checkpoint's `weight`/`bias` under `p` when the weight is not `shape` (a new
/// layer is then initialised), with a warning.
pub(crate) fn keep_if_shaped(p: &Params, shape: [usize; 2]) {
    if let Some(found) = p.source_shape("weight") {
        if found != shape {
            log::warn!(
                "the checkpoint's {} has shape {found:?}, this task needs {shape:?}: a new layer is initialised",
                p.full_name("weight")
            );
            p.discard("weight");
            p.discard("bias");
        }
    }
}

fn spec_from_config(
    extra: &serde_json::Map<String, serde_json::Value>,
    path: &Path,
) -> Result<HeadSpec> {
    let labels = id2label(extra, path)?;
    let problem = extra
        .get("problem_type")
        .and_then(|v| v.as_str())
        .and_then(Problem::from_hf)
        .unwrap_or(if labels.len() == 1 {
            Problem::Regression
        } else {
            Problem::SingleLabel
        });
    let pooling = match extra.get("bert4rs_pooling").and_then(|v| v.as_str()) {
        Some(s) => s
            .parse()
            .map_err(|e| Error::config(path, format!("bert4rs_pooling: {e}")))?,
        None => Pooling::Pooler,
    };
    let rnn = match extra.get("bert4rs_rnn") {
        None => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| Error::config(path, format!("bert4rs_rnn: {e}")))?,
        ),
    };
    let windows = match extra.get("bert4rs_windows") {
        None => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| Error::config(path, format!("bert4rs_windows: {e}")))?,
        ),
    };
    Ok(HeadSpec {
        problem,
        labels,
        pooling,
        rnn,
        windows,
    })
}

/// The label names of a fine-tuned model's `config.json`, in id order (`id2label`).
pub fn id2label(
    extra: &serde_json::Map<String, serde_json::Value>,
    path: &Path,
) -> Result<Vec<String>> {
    let id2label = extra
        .get("id2label")
        .and_then(|v| v.as_object())
        .ok_or_else(|| {
            Error::config(
                path,
                "no `id2label`: this is not a fine-tuned model (train one first)",
            )
        })?;
    let mut labels: Vec<(usize, String)> = Vec::new();
    for (k, v) in id2label {
        let id: usize = k
            .parse()
            .map_err(|_| Error::config(path, format!("id2label key `{k}` is not a number")))?;
        labels.push((id, v.as_str().unwrap_or_default().to_string()));
    }
    labels.sort();
    Ok(labels.into_iter().map(|(_, l)| l).collect())
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Probabilities of a head's logits row (softmax, sigmoid, or the raw score).
pub fn probabilities(problem: Problem, row: &[f32]) -> Vec<f32> {
    match problem {
        Problem::SingleLabel => {
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        }
        Problem::MultiLabel => row.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        Problem::Regression => row.to_vec(),
    }
}
