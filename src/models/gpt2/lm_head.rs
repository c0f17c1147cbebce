//! GPT-2 with its LM head: loading an HF directory, a new model, logits, the greedy screen
//! and `save_pretrained`.

use super::{Gpt2Cache, Gpt2Model};
use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::kernels::qgemm::CodeWidth;
use crate::kernels::{self, GreedyScreen};
use crate::models::hub;
use crate::nn::{Linear, Params};
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use std::sync::OnceLock;

/// Checkpoint keys that are buffers (the causal-mask tables of old checkpoints), not weights.
const BUFFER_SUFFIXES: [&str; 2] = [".attn.bias", ".attn.masked_bias"];

/// GPT-2 with its language-model head (HF `GPT2LMHeadModel`).
pub struct Gpt2LMHeadModel {
    transformer: Gpt2Model,
    lm_head: Linear,
    /// The LM head's bf16 screen for [`Self::greedy_tokens`], built on first use.
    greedy: OnceLock<Option<GreedyScreen>>,
    params: Params,
    prefix: String,
}

impl Gpt2LMHeadModel {
    /// Loads `config.json` and the weights of an HF GPT-2 directory (names with or without
    /// the `transformer.` prefix).
    pub fn from_dir(dir: &Path, device: &Device, trainable: bool) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::config(dir, "model directory not found"));
        }
        let cfg = Gpt2Config::from_file(&dir.join("config.json"))?;
        let weights = hub::find_weights(dir)?;
        let tensors = hub::read_tensors(&weights)?;
        let prefix = if tensors.contains_key("transformer.wte.weight") {
            "transformer"
        } else if tensors.contains_key("wte.weight") {
            ""
        } else {
            return Err(Error::checkpoint(
                &weights,
                "no GPT-2 weights: expected `transformer.wte.weight` or `wte.weight`",
            ));
        };
        let params = Params::from_tensors(tensors, &weights, device, trainable);
        let model = Self::load(&params, &cfg, prefix)?;
        let unused: Vec<String> = params
            .unused_keys()
            .into_iter()
            .filter(|k| !BUFFER_SUFFIXES.iter().any(|s| k.ends_with(s)))
            .collect();
        if !unused.is_empty() {
            log::warn!(
                "{} unused tensors in {}: {}",
                unused.len(),
                weights.display(),
                unused.join(", ")
            );
        }
        Ok(model)
    }

    /// A new model with HF's initialisation (`GPT2PreTrainedModel._init_weights`): normal(0,
    /// initializer_range) weights and embeddings, the residual projections (`c_proj`) scaled
    /// by 1/√(2·n_layer), zero biases, unit LayerNorms; seeded.
    pub fn new_random(
        cfg: &Gpt2Config,
        device: &Device,
        trainable: bool,
        seed: u64,
    ) -> Result<Self> {
        let (e, inner, std) = (cfg.n_embd, cfg.inner_dim(), cfg.initializer_range);
        let proj_std = std / (2.0 * cfg.n_layer as f64).sqrt();
        let mut rng = crate::rng::Rng::new(seed);
        let mut tensors = std::collections::HashMap::new();
        let mut normal = |name: String, shape: (usize, usize), s: f64| -> Result<()> {
            let v: Vec<f32> = (0..shape.0 * shape.1)
                .map(|_| (rng.normal() * s) as f32)
                .collect();
            tensors.insert(name, Tensor::from_vec(v, shape, &Device::Cpu)?);
            Ok(())
        };
        normal("transformer.wte.weight".into(), (cfg.vocab_size, e), std)?;
        normal("transformer.wpe.weight".into(), (cfg.n_positions, e), std)?;
        for i in 0..cfg.n_layer {
            let p = format!("transformer.h.{i}");
            normal(format!("{p}.attn.c_attn.weight"), (e, 3 * e), std)?;
            normal(format!("{p}.attn.c_proj.weight"), (e, e), proj_std)?;
            normal(format!("{p}.mlp.c_fc.weight"), (e, inner), std)?;
            normal(format!("{p}.mlp.c_proj.weight"), (inner, e), proj_std)?;
        }
        let mut constant = |name: String, n: usize, v: f32| -> Result<()> {
            tensors.insert(name, Tensor::full(v, n, &Device::Cpu)?);
            Ok(())
        };
        for i in 0..cfg.n_layer {
            let p = format!("transformer.h.{i}");
            constant(format!("{p}.attn.c_attn.bias"), 3 * e, 0.0)?;
            constant(format!("{p}.attn.c_proj.bias"), e, 0.0)?;
            constant(format!("{p}.mlp.c_fc.bias"), inner, 0.0)?;
            constant(format!("{p}.mlp.c_proj.bias"), e, 0.0)?;
            for ln in ["ln_1", "ln_2"] {
                constant(format!("{p}.{ln}.weight"), e, 1.0)?;
                constant(format!("{p}.{ln}.bias"), e, 0.0)?;
            }
        }
        constant("transformer.ln_f.weight".into(), e, 1.0)?;
        constant("transformer.ln_f.bias".into(), e, 0.0)?;
        let params = Params::from_tensors(tensors, Path::new("<new model>"), device, trainable);
        Self::load(&params, cfg, "transformer")
    }

    /// Builds from parameters (`prefix` is where the `GPT2Model` weights live).
    pub fn load(params: &Params, cfg: &Gpt2Config, prefix: &str) -> Result<Self> {
        let scoped = if prefix.is_empty() {
            params.clone()
        } else {
            params.pp(prefix)
        };
        let transformer = Gpt2Model::load(&scoped, cfg)?;
        let tied = cfg
            .extra
            .get("tie_word_embeddings")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let table = if !tied && params.contains("lm_head.weight") {
            params.get((cfg.vocab_size, cfg.n_embd), "lm_head.weight")?
        } else {
            // Tied: the checkpoint's copy (if any) equals `wte`; mark it as used.
            params.discard("lm_head.weight");
            transformer.wte.weight().clone()
        };
        let zeros = Tensor::zeros(cfg.vocab_size, DType::F32, table.device())?;
        Ok(Gpt2LMHeadModel {
            transformer,
            lm_head: Linear::new(table, Some(zeros)),
            greedy: OnceLock::new(),
            params: params.clone(),
            prefix: prefix.to_string(),
        })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &Gpt2Config {
        &self.transformer.config
    }

    /// Every parameter by HF name.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Logits `[batch, seq, vocab]` of whole sequences (differentiable).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        self.logits(&self.hidden_states(input_ids, attention_mask, train)?)
    }

    /// An empty decoding cache for `rows` sequences.
    pub fn new_cache(&self, rows: usize) -> Gpt2Cache {
        self.transformer.new_cache(rows)
    }

    /// Appends tokens to the cache and returns the next-token logits `[rows, vocab]`.
    pub fn forward_cached(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        kernels::on_pool(|| self.logits(&self.forward_cached_hidden(ids, mask, cache)?))
    }

    /// Final hidden states `[batch, seq, n_embd]` of whole sequences (the LM head's input).
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        self.transformer.forward(input_ids, attention_mask, train)
    }

    /// Appends tokens to the cache and returns each row's final hidden state `[rows,
    /// n_embd]` (the input of [`Self::logits`] and [`Self::greedy_tokens`]).
    pub fn forward_cached_hidden(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        self.transformer.forward_cached(ids, mask, cache)
    }

    /// Switches the blocks and the LM head to int8 (per-output-channel symmetric weights,
    /// each row's activations quantised at run time, exact integer sums:
    /// [`Linear::quantize_int8_dynamic`]) for decoding: a quarter of the weight traffic that
    /// bounds batch-1 steps, and integer multiplies for the compute of larger batches (as
    /// CTranslate2's `int8_float32`). Inference only; the f32 weights stay in
    /// [`Self::params`] (saving writes them).
    pub fn quantize_int8(&mut self) -> Result<()> {
        // Every layer is checked first, so an error leaves the model as it was.
        self.transformer.check_int8()?;
        self.lm_head.check_int8("lm_head")?;
        self.transformer.quantize_int8()?;
        self.lm_head
            .quantize_int8_dynamic("lm_head", None, CodeWidth::U7)?;
        // The bf16 screen reads the f32 head; the int8 head's argmax is its own.
        self.greedy = OnceLock::new();
        Ok(())
    }

    /// True once [`Self::quantize_int8`] ran.
    pub fn is_int8(&self) -> bool {
        self.lm_head.int8().is_some()
    }

    /// Logits `[rows, vocab]` from final hidden states `[rows, n_embd]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        kernels::on_pool(|| self.lm_head.forward(hidden))
    }

    /// The most likely next token of each row of final hidden states `[rows, n_embd]`:
    /// exactly the first maximum of [`Self::logits`], read mostly from a bf16 copy of the LM
    /// head (half its memory traffic, which bounds batch-1 decoding; see
    /// [`GreedyScreen`]). The copy (half the head's size) is made on first use. `None` where
    /// the screen does not apply (trainable or non-CPU model, no AVX2, more than 16 rows,
    /// non-finite values): take the argmax of the logits then.
    pub fn greedy_tokens(&self, hidden: &Tensor) -> Result<Option<Vec<u32>>> {
        let screen = match self.greedy.get() {
            Some(s) => s,
            None => {
                let s = self.lm_head.greedy_screen()?;
                self.greedy.get_or_init(|| s)
            }
        };
        let Some(screen) = screen else {
            return Ok(None);
        };
        let picks = kernels::on_pool(|| self.lm_head.argmax_screened(hidden, screen))?;
        Ok(picks.map(|p| p.into_iter().map(|i| i as u32).collect()))
    }

    /// Writes `config.json` and `model.safetensors` as `GPT2LMHeadModel.save_pretrained`
    /// does (HF names, tied head not stored), atomically.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut cfg = self.config().clone();
        cfg.extra.insert(
            "architectures".into(),
            serde_json::json!(["GPT2LMHeadModel"]),
        );
        let tensors: Vec<(String, Tensor)> = self
            .params
            .named_tensors()
            .into_iter()
            .map(|(k, t)| {
                let k = if self.prefix.is_empty() && k != "lm_head.weight" {
                    format!("transformer.{k}")
                } else {
                    k
                };
                (k, t)
            })
            .collect();
        hub::save_pretrained(dir, &cfg.to_json()?, &tensors)
    }
}
