//! int8 inference for the encoder: every linear layer of the blocks and the pooler on the
//! integer GEMM, Q/K/V and the FFN's first layer smoothed by their LayerNorm's scale.

use super::{BertModel, QkvProjections};
use crate::error::Result;
use crate::kernels::qgemm::CodeWidth;
use crate::nn::Linear;

impl BertModel {
    /// Switches every linear layer of the blocks and the pooler to dynamically quantised
    /// int8 ([`Linear::quantize_int8_dynamic`]: int8 weights per output channel, each
    /// token's activations quantised at run time to codes of `width`, exact integer sums);
    /// inference only. Checked for every layer before any changes.
    pub fn quantize_int8(&mut self, width: CodeWidth) -> Result<()> {
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

    /// True once [`Self::quantize_int8`] ran.
    pub fn is_int8(&self) -> bool {
        self.layers
            .first()
            .is_some_and(|l| l.intermediate.dense.int8().is_some())
    }

    /// Every linear layer with its HF name (Q, K and V as one when they are fused).
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut all = Vec::with_capacity(6 * self.layers.len() + 1);
        for (i, l) in self.layers.iter_mut().enumerate() {
            let name = |n: &str| format!("encoder.layer.{i}.{n}");
            match &mut l.attention.projections {
                QkvProjections::Fused(qkv) => {
                    all.push((name("attention.self.{query,key,value}"), qkv))
                }
                QkvProjections::Separate(q, k, v) => {
                    all.push((name("attention.self.query"), q));
                    all.push((name("attention.self.key"), k));
                    all.push((name("attention.self.value"), v));
                }
            }
            all.push((
                name("attention.output.dense"),
                &mut l.attention_output.dense,
            ));
            all.push((name("intermediate.dense"), &mut l.intermediate.dense));
            all.push((name("output.dense"), &mut l.output.dense));
        }
        if let Some(p) = &mut self.pooler {
            all.push(("pooler.dense".into(), &mut p.dense));
        }
        all
    }
}
