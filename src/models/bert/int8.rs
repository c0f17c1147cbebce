//! int8 inference for the encoder: every linear layer of the blocks and the pooler on the
//! integer GEMM, Q/K/V and the FFN's first layer smoothed by their LayerNorm's scale.

use super::{BertModel, QkvProjections};
use crate::error::{Error, Result};
use crate::kernels::qgemm::CodeWidth;
use crate::kernels::Int8Weight;
use crate::nn::Linear;
use std::collections::HashMap;

/// Q, K and V in HF's order (the rows of a fused projection).
const QKV: [&str; 3] = ["query", "key", "value"];

/// The HF layer names a linear layer of [`BertModel::linears`] stands for: a fused Q/K/V
/// (`….attention.self.{query,key,value}`) is three, in row order.
fn hf_layers(name: &str) -> Vec<String> {
    match name.strip_suffix(".{query,key,value}") {
        Some(stem) => QKV.iter().map(|p| format!("{stem}.{p}")).collect(),
        None => vec![name.to_string()],
    }
}

/// The encoder's linear layers by HF name, borrowed through `$iter` / `$($r)+` (one list
/// for the shared and the mutable walk).
macro_rules! linears {
    ($m:ident, $iter:ident, $($r:tt)+) => {{
        let mut all = Vec::with_capacity(6 * $m.layers.len() + 1);
        for (i, l) in $m.layers.$iter().enumerate() {
            let name = |n: &str| format!("encoder.layer.{i}.{n}");
            match $($r)+ l.attention.projections {
                QkvProjections::Fused(qkv) => {
                    all.push((name("attention.self.{query,key,value}"), qkv))
                }
                QkvProjections::Separate(q, k, v) => {
                    all.push((name("attention.self.query"), q));
                    all.push((name("attention.self.key"), k));
                    all.push((name("attention.self.value"), v));
                }
            }
            all.push((name("attention.output.dense"), $($r)+ l.attention_output.dense));
            all.push((name("intermediate.dense"), $($r)+ l.intermediate.dense));
            all.push((name("output.dense"), $($r)+ l.output.dense));
        }
        if let Some(p) = $($r)+ $m.pooler {
            all.push(("pooler.dense".into(), $($r)+ p.dense));
        }
        all
    }};
}

impl BertModel {
    /// Switches every linear layer of the blocks and the pooler to dynamically quantised
    /// int8 ([`Linear::quantize_int8_dynamic`]: int8 weights per output channel, each
    /// token's activations quantised at run time to codes of `width`, exact integer sums);
    /// inference only. Checked for every layer before any changes.
    pub fn quantize_int8(&mut self, width: CodeWidth) -> Result<()> {
        crate::util::returning_freed_pages(|| self.quantize_int8_keeping_pages(width))
    }

    /// [`Self::quantize_int8`] without handing freed pages back (the caller does).
    fn quantize_int8_keeping_pages(&mut self, width: CodeWidth) -> Result<()> {
        for (name, l) in self.linears_mut() {
            l.check_int8(&name)?;
        }
        // The inputs of Q/K/V and the FFN's first layer are LayerNorm outputs, whose scale
        // per channel smooths their outlier channels (see `Int8Weight::quantize_smoothed`).
        let mut ln_in = self.embeddings.layer_norm.output_scale()?;
        for (i, l) in self.layers.iter_mut().enumerate() {
            let name = |n: &str| format!("encoder.layer.{i}.{n}");
            let ln_mid = l.attention_output.layer_norm.output_scale()?;
            let ln_out = l.output.layer_norm.output_scale()?;
            let qkv = name("attention.self");
            match &mut l.attention.projections {
                QkvProjections::Fused(p) => p.quantize_int8_dynamic(&qkv, Some(&ln_in), width)?,
                QkvProjections::Separate(q, k, v) => {
                    for p in [q, k, v] {
                        p.quantize_int8_dynamic(&qkv, Some(&ln_in), width)?;
                    }
                }
            }
            let dense = &mut l.attention_output.dense;
            dense.quantize_int8_dynamic(&name("attention.output.dense"), None, width)?;
            let dense = &mut l.intermediate.dense;
            dense.quantize_int8_dynamic(&name("intermediate.dense"), Some(&ln_mid), width)?;
            let dense = &mut l.output.dense;
            dense.quantize_int8_dynamic(&name("output.dense"), None, width)?;
            ln_in = ln_out;
        }
        if let Some(p) = &mut self.pooler {
            p.dense.quantize_int8_dynamic("pooler.dense", None, width)?;
        }
        Ok(())
    }

    /// Every int8 linear layer by HF name (`encoder.layer.0.attention.self.query`, ...; a
    /// fused Q/K/V split back into its three layers), for saving; empty before
    /// [`Self::quantize_int8`].
    pub fn int8_weights(&self) -> Vec<(String, Int8Weight)> {
        let mut all = Vec::new();
        for (name, l) in self.linears() {
            let Some(q) = l.int8() else { continue };
            let names = hf_layers(&name);
            let rows = q.rows() / names.len();
            for (i, part) in names.into_iter().enumerate() {
                all.push((part, q.rows_range(i * rows, rows)));
            }
        }
        all
    }

    /// [`Self::quantize_int8`], then the f32 weights of the int8 layers are dropped from
    /// `params` (the checkpoint's tensors under `prefix`) too, so only the int8 copies stay
    /// in memory (BERT-base: ~930 → ~220 MB). For task models that hold their
    /// parameters; saving them afterwards is refused.
    pub fn quantize_int8_releasing(
        &mut self,
        width: CodeWidth,
        params: &crate::nn::Params,
        prefix: &str,
    ) -> Result<()> {
        crate::util::returning_freed_pages(|| self.release_int8(width, params, prefix))
    }

    fn release_int8(
        &mut self,
        width: CodeWidth,
        params: &crate::nn::Params,
        prefix: &str,
    ) -> Result<()> {
        self.quantize_int8_keeping_pages(width)?;
        let scoped = params.pp(prefix);
        for (name, _) in self.linears() {
            for n in hf_layers(&name) {
                params.drop_values(&scoped.full_name(&format!("{n}.weight")))?;
            }
        }
        Ok(())
    }

    /// Runs every linear layer of the blocks and the pooler on `saved` (by HF name, as
    /// [`Self::int8_weights`] gave them; each is taken out of the map) with activation codes
    /// of `width`: the model as [`Self::quantize_int8`] left it. A layer missing from
    /// `saved` is an error naming it.
    pub fn load_int8(
        &mut self,
        saved: &mut HashMap<String, Int8Weight>,
        width: CodeWidth,
    ) -> Result<()> {
        let mut take = |name: &str| {
            saved.remove(name).ok_or_else(|| {
                Error::Invalid(format!("{name}: no int8 weight in this int8 checkpoint"))
            })
        };
        for (name, l) in self.linears_mut() {
            let parts = (hf_layers(&name).iter())
                .map(|n| take(n))
                .collect::<Result<Vec<_>>>()?;
            let q = match <[Int8Weight; 1]>::try_from(parts) {
                Ok([one]) => one,
                Err(parts) => {
                    Int8Weight::stack(&parts.iter().collect::<Vec<_>>()).ok_or_else(|| {
                        Error::Invalid(format!("{name}: the parts differ in inputs or multipliers"))
                    })?
                }
            };
            l.set_int8(&name, q.with_dynamic_activations(width))?;
        }
        Ok(())
    }

    /// True once [`Self::quantize_int8`] ran (or the model came from an int8 directory).
    pub fn is_int8(&self) -> bool {
        self.int8_code_width().is_some()
    }

    /// The width of the activations' codes of an int8 model; `None` for f32 / bf16.
    pub fn int8_code_width(&self) -> Option<CodeWidth> {
        let first = self.layers.first()?;
        first.intermediate.dense.int8()?.code_width()
    }

    /// Every linear layer with its HF name (Q, K and V as one when they are fused).
    fn linears(&self) -> Vec<(String, &Linear)> {
        linears!(self, iter, &)
    }

    /// [`Self::linears`], mutable.
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        linears!(self, iter_mut, &mut)
    }
}
