//! Sentence embeddings: tokenizer + encoder + pooling (+ L2 normalisation), with defaults
//! read from a sentence-transformers layout (`modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`) when the directory has one.

use crate::data::batch::{length_sorted_batches, to_encoder_input, EncoderInput};
use crate::error::{Error, Result};
use crate::models::hub::WeightStorage;
use crate::models::{bert::BertModel, load_encoder_as};
use crate::nn::{Params, Pooler, Pooling};
use crate::tokenize::{EncodeOptions, Padding, TextInput, Tokenizer, Truncation};
use candle_core::{Device, Tensor, Var};
use serde_json::Value;
use std::path::Path;

/// Embedding defaults a sentence-transformers directory declares.
#[derive(Clone, Debug, PartialEq)]
pub struct SentenceTransformersConfig {
    /// Pooling from `1_Pooling/config.json`.
    pub pooling: Pooling,
    /// True when `modules.json` lists a `Normalize` module.
    pub normalize: bool,
    /// `max_seq_length` from `sentence_bert_config.json`.
    pub max_seq_length: Option<usize>,
}

/// Reads the sentence-transformers files of `dir`; `None` when it has no `modules.json`.
pub fn read_st_config(dir: &Path) -> Result<Option<SentenceTransformersConfig>> {
    let modules_path = dir.join("modules.json");
    if !modules_path.is_file() {
        return Ok(None);
    }
    let modules = read_json(&modules_path)?;
    let list = modules
        .as_array()
        .ok_or_else(|| Error::config(&modules_path, "expected a JSON list of modules"))?;
    let mut pooling = Pooling::Mean;
    let mut normalize = false;
    for m in list {
        let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
        let sub = m.get("path").and_then(Value::as_str).unwrap_or("");
        if ty.ends_with("Pooling") {
            pooling = pooling_from_st(&dir.join(sub).join("config.json"))?;
        } else if ty.ends_with("Normalize") {
            normalize = true;
        }
    }
    let sbert = dir.join("sentence_bert_config.json");
    let max_seq_length = if sbert.is_file() {
        read_json(&sbert)?
            .get("max_seq_length")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
    } else {
        None
    };
    Ok(Some(SentenceTransformersConfig {
        pooling,
        normalize,
        max_seq_length,
    }))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(path, format!("not valid JSON: {e}")))
}

fn pooling_from_st(path: &Path) -> Result<Pooling> {
    let v = read_json(path)?;
    let on = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let modes = [
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_max_tokens", Pooling::Max),
    ];
    let chosen: Vec<Pooling> = modes
        .iter()
        .filter(|(k, _)| on(k))
        .map(|(_, p)| *p)
        .collect();
    match chosen.as_slice() {
        [one] => Ok(*one),
        _ => Err(Error::config(
            path,
            "exactly one of pooling_mode_cls_token / mean_tokens / max_tokens must be true \
             (other sentence-transformers modes are not supported)",
        )),
    }
}

/// Tokenizer + encoder + pooler: text in, vectors out (and, loaded for training, the
/// model SimCSE fine-tunes).
pub struct SentenceEncoder {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The encoder.
    pub model: BertModel,
    pooler: Pooler,
    /// Every encoder parameter by its checkpoint name (for training and saving).
    params: Params,
    /// The prefix the checkpoint stores the encoder under (`""`, `"bert"`, ...).
    prefix: String,
    /// L2-normalise each vector.
    pub normalize: bool,
    /// Truncate inputs to this many tokens (`None`: error when a text is too long).
    pub max_length: Option<usize>,
    /// Texts per forward pass.
    pub batch_size: usize,
    device: Device,
}

impl SentenceEncoder {
    /// Loads a model directory with its sentence-transformers defaults (mean pooling,
    /// no normalisation, no truncation when it has none) on the CPU.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_dir_as(dir, WeightStorage::F32)
    }

    /// [`Self::from_dir`] with the encoder's matrices stored as `storage` says.
    pub fn from_dir_as(dir: &Path, storage: WeightStorage) -> Result<Self> {
        let st = read_st_config(dir)?;
        let pooling = st.as_ref().map(|s| s.pooling).unwrap_or(Pooling::Mean);
        let mut enc = Self::with_pooling_as(dir, pooling, &Device::Cpu, storage)?;
        if let Some(st) = st {
            enc.normalize = st.normalize;
            enc.max_length = st.max_seq_length;
        }
        Ok(enc)
    }

    /// Loads a model directory with an explicit pooling mode.
    pub fn with_pooling(dir: &Path, pooling: Pooling, device: &Device) -> Result<Self> {
        Self::load(dir, pooling, device, false, WeightStorage::F32)
    }

    /// [`Self::with_pooling`] with the encoder's matrices stored as `storage` says (bf16:
    /// half the weight memory, f32 arithmetic).
    pub fn with_pooling_as(
        dir: &Path,
        pooling: Pooling,
        device: &Device,
        storage: WeightStorage,
    ) -> Result<Self> {
        Self::load(dir, pooling, device, false, storage)
    }

    /// Loads a model directory to fine-tune (SimCSE) with `pooling`, keeping its
    /// sentence-transformers normalisation and `max_seq_length` for the saved model.
    pub fn for_training(dir: &Path, pooling: Pooling, device: &Device) -> Result<Self> {
        let mut enc = Self::load(dir, pooling, device, true, WeightStorage::F32)?;
        if let Some(st) = read_st_config(dir)? {
            enc.normalize = st.normalize;
            enc.max_length = st.max_seq_length;
        }
        Ok(enc)
    }

    fn load(
        dir: &Path,
        pooling: Pooling,
        device: &Device,
        trainable: bool,
        storage: WeightStorage,
    ) -> Result<Self> {
        let tokenizer = Tokenizer::from_dir(dir)?;
        let loaded = load_encoder_as(dir, device, trainable, storage)?;
        let cfg = loaded.model.config().clone();
        let pooler = Pooler::new(
            pooling,
            &loaded.params.pp("pooling"),
            cfg.hidden_size,
            cfg.num_hidden_layers,
            cfg.initializer_range,
        )?;
        if pooling == Pooling::Pooler && !loaded.model.has_pooler() {
            return Err(Error::checkpoint(
                loaded.params.source_path(),
                "pooling `pooler` needs `pooler.dense.weight`, which this checkpoint lacks",
            ));
        }
        Ok(SentenceEncoder {
            tokenizer,
            model: loaded.model,
            pooler,
            params: loaded.params,
            prefix: loaded.prefix,
            normalize: false,
            max_length: None,
            batch_size: 32,
            device: device.clone(),
        })
    }

    /// Runs the encoder on dynamically quantised int8 ([`BertModel::quantize_int8`]) and
    /// frees its f32 matrices: inference only, and saving is refused afterwards.
    pub fn quantize_int8(&mut self, width: crate::kernels::qgemm::CodeWidth) -> Result<()> {
        (self.model).quantize_int8_releasing(width, &self.params, &self.prefix)
    }

    /// The pooling mode.
    pub fn pooling(&self) -> Pooling {
        self.pooler.kind()
    }

    /// Embeds texts; one vector per text, in input order.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let inputs: Vec<TextInput> = texts
            .iter()
            .map(|t| TextInput::single(t.as_ref()))
            .collect();
        self.embed_inputs(&inputs, |_| {})
    }

    /// Embeds texts or pairs, sorted by length and batched internally; `progress` is told
    /// how many inputs each finished batch held.
    pub fn embed_inputs(
        &self,
        inputs: &[TextInput],
        progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let opts = EncodeOptions {
            max_length: self.max_length,
            padding: Padding::None,
            truncation: self.max_length.map(|_| Truncation::LongestFirst),
        };
        let encs = self.tokenizer.encode_batch(inputs, &opts)?;
        self.embed_tokenized(&encs, progress)
    }

    /// Embeds unpadded encodings (one per text, as the tokenizer gave them): sorted by
    /// length into batches of `batch_size`, each padded only to its own longest row, so
    /// mixed lengths cost little padding (the server's dynamic batches come this way).
    pub fn embed_tokenized(
        &self,
        encs: &[crate::tokenize::Encoding],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let lengths: Vec<usize> = encs.iter().map(|e| e.input_ids.len()).collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); encs.len()];
        for batch in length_sorted_batches(&lengths, self.batch_size) {
            let padded = crate::data::batch::pad_batch(
                &batch.iter().map(|&i| encs[i].clone()).collect::<Vec<_>>(),
                self.pad_id(),
            );
            let vecs = self.embed_encodings(&padded)?;
            for (row, &i) in vecs.into_iter().zip(&batch) {
                out[i] = row;
            }
            progress(batch.len());
        }
        Ok(out)
    }

    fn pad_id(&self) -> u32 {
        self.model.config().pad_token_id as u32
    }

    /// Embeds already padded encodings.
    pub fn embed_encodings(&self, encs: &[crate::tokenize::Encoding]) -> Result<Vec<Vec<f32>>> {
        let input = to_encoder_input(encs, &self.device)?;
        let mut pooled = self.pool(&input, false)?;
        if self.normalize {
            pooled = l2_normalize(&pooled)?;
        }
        Ok(pooled.to_vec2::<f32>()?)
    }

    /// The pooled (not normalised) vector of every row, `[batch, hidden]`; dropout only
    /// when `train`.
    pub fn pool(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let out = self.model.forward(input, train)?;
        self.pooler.forward(
            &out.hidden_states,
            out.pooler_output.as_ref(),
            &input.attention_mask,
        )
    }

    /// The prefix the checkpoint stores the encoder under (`""`, `"bert"`, ...).
    pub fn encoder_prefix(&self) -> &str {
        &self.prefix
    }

    /// The trainable parameters with their checkpoint names.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.params.vars()
    }

    /// Writes the model as a sentence-transformers directory that HF `AutoModel` also
    /// loads: `config.json` and `model.safetensors` (the checkpoint's own tensor names),
    /// the tokenizer, and `modules.json` + `1_Pooling/config.json` (+ `2_Normalize` and
    /// `sentence_bert_config.json` when the model had them) saying how to pool, so `embed`,
    /// `serve` and sentence-transformers read it back the same way.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut cfg = self.model.config().clone();
        let arch = format!("{}Model", cfg.model_type.class_stem());
        cfg.extra
            .insert("architectures".into(), serde_json::json!([arch]));
        crate::models::hub::save_pretrained(dir, &cfg.to_json()?, &self.params.named_tensors())?;
        self.tokenizer.save(dir)?;
        self.write_st_config(dir)
    }

    fn write_st_config(&self, dir: &Path) -> Result<()> {
        let mode = |p: Pooling| self.pooling() == p;
        let pooling = serde_json::json!({
            "word_embedding_dimension": self.model.config().hidden_size,
            "pooling_mode_cls_token": mode(Pooling::Cls),
            "pooling_mode_mean_tokens": mode(Pooling::Mean),
            "pooling_mode_max_tokens": mode(Pooling::Max),
            "pooling_mode_mean_sqrt_len_tokens": false,
        });
        let mut modules = vec![
            module(0, "", "Transformer"),
            module(1, "1_Pooling", "Pooling"),
        ];
        if self.normalize {
            modules.push(module(2, "2_Normalize", "Normalize"));
            let norm = dir.join("2_Normalize");
            std::fs::create_dir_all(&norm).map_err(|e| Error::io(&norm, e))?;
        }
        write_json(&dir.join("modules.json"), &serde_json::json!(modules))?;
        let pool_dir = dir.join("1_Pooling");
        std::fs::create_dir_all(&pool_dir).map_err(|e| Error::io(&pool_dir, e))?;
        write_json(&pool_dir.join("config.json"), &pooling)?;
        if let Some(n) = self.max_length {
            let sbert = serde_json::json!({"max_seq_length": n, "do_lower_case": false});
            write_json(&dir.join("sentence_bert_config.json"), &sbert)?;
        }
        Ok(())
    }
}

/// The poolings a sentence-transformers `Pooling` module can say (what a fine-tuned
/// sentence encoder may be saved with).
pub const ST_POOLINGS: [Pooling; 3] = [Pooling::Cls, Pooling::Mean, Pooling::Max];

fn module(idx: usize, path: &str, kind: &str) -> Value {
    serde_json::json!({
        "idx": idx,
        "name": idx.to_string(),
        "path": path,
        "type": format!("sentence_transformers.models.{kind}"),
    })
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::util::write_atomic(path, text.as_bytes())
}

/// Divides each row by its L2 norm (as `torch.nn.functional.normalize`, eps 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    crate::nn::contrastive::unit_rows(x, 1e-12)
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Contrastive fine-tuning of a sentence encoder (`[task.simcse]`, with `kind = "simcse"`):
/// SimCSE's settings. The training data decides the flavour: texts alone train
/// unsupervised SimCSE (each text against itself under another dropout mask), pairs
/// (`data.text_pair_field`) supervised SimCSE, with `hard_negative_field` a third text per
/// row as its hard negative.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimcseSpec {
    /// The temperature τ that cosine similarities are divided by (SimCSE's `temp`, 0.05).
    pub temperature: f64,
    /// Field (or column) of each training row's hard negative (SimCSE's `hard_neg`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_negative_field: Option<String>,
    /// Dev / test pairs scored at least this are the positives that alignment averages
    /// over (4 on STS's 0–5 scale, as the SimCSE paper; pairs without scores are all
    /// positives).
    pub positive_threshold: f64,
}

impl Default for SimcseSpec {
    fn default() -> Self {
        SimcseSpec {
            temperature: 0.05,
            hard_negative_field: None,
            positive_threshold: 4.0,
        }
    }
}
