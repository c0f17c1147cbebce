//! HF's `BertLMPredictionHead` (`cls.predictions`): dense → activation → LayerNorm → a
//! decoder whose weight is the word-embedding table (tied) plus `cls.predictions.bias`. The
//! masked-LM head and the bert2bert decoder's LM head.

use crate::config::{BertConfig, HiddenAct};
use crate::error::Result;
use crate::kernels::Gelu;
use crate::nn::{Init, LayerNorm, Linear, Params};
use candle_core::Tensor;

/// Vocabulary logits from hidden states.
pub struct BertLMPredictionHead {
    dense: Linear,
    norm: LayerNorm,
    decoder: Linear,
    act: HiddenAct,
}

impl BertLMPredictionHead {
    /// Loads `p` (the `cls.predictions` scope), initialising as HF does what the checkpoint
    /// lacks (a head on a bare encoder); `table` is the tied word-embedding table.
    pub fn load(p: &Params, cfg: &BertConfig, table: Tensor) -> Result<Self> {
        let (h, v, std) = (cfg.hidden_size, cfg.vocab_size, cfg.initializer_range);
        let dense = Linear::load_or_init(&p.pp("transform.dense"), h, h, std)?;
        let norm = LayerNorm::load_or_init(&p.pp("transform.LayerNorm"), h, cfg.layer_norm_eps)?;
        let bias = p.get_or_init(v, "bias", Init::Zeros)?;
        // HF ties `decoder.weight` to the word embeddings and `decoder.bias` to `bias`: one
        // tensor each, neither loaded nor saved under the decoder's name.
        p.discard("decoder.weight");
        p.discard("decoder.bias");
        Ok(BertLMPredictionHead {
            dense,
            norm,
            decoder: Linear::new(table, Some(bias)),
            act: cfg.hidden_act,
        })
    }

    /// Logits `[..., vocab]` of hidden states `[..., hidden]`.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let x = match self.act {
            HiddenAct::Gelu => self.dense.forward_gelu(h, Gelu::Erf)?,
            HiddenAct::GeluNew => self.dense.forward_gelu(h, Gelu::Tanh)?,
            HiddenAct::Relu => self.dense.forward(h)?.relu()?,
        };
        self.decoder.forward(&self.norm.forward(&x)?)
    }
}
