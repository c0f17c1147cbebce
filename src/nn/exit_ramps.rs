//! Off-ramps for early exit (DeeBERT, Xin et al., 2020): a small classifier — an "off-ramp" — after every
//! encoder layer but the last, so inference can stop at the first layer whose prediction is
//! confident (softmax entropy below a threshold) and skip the remaining layers.
//!
//! Each ramp is DeeBERT's `BertHighway`: the layer's output pooled (the `[CLS]` state for a
//! classifier pooled by `cls` / `pooler`, the masked mean otherwise), `tanh(dense(·))`,
//! dropout, then a linear classifier; weights under DeeBERT's names
//! `encoder.highway.{i}.pooler.dense.*` and `encoder.highway.{i}.classifier.*`. The last
//! layer's exit is the classifier's own head.

use super::losses::log_softmax;
use super::pooling::masked_mean;
use super::{Dropout, Linear, Params};
use crate::error::Result;
use candle_core::{Tensor, D};

/// Name of ramp `i`'s parameters inside the encoder's scope.
pub fn ramp_scope(i: usize) -> String {
    format!("encoder.highway.{i}")
}

/// True for the parameters of the ramps (by HF name, any prefix).
pub fn is_ramp_param(name: &str) -> bool {
    name.contains("encoder.highway.")
}

struct Ramp {
    dense: Linear,
    classifier: Linear,
}

/// One off-ramp per encoder layer except the last.
pub struct ExitRamps {
    ramps: Vec<Ramp>,
    /// Pool the `[CLS]` state (else the masked mean).
    cls: bool,
    dropout: Dropout,
}

impl ExitRamps {
    /// The ramps of a checkpoint (`p`: the encoder's scope), or `None` when it has none.
    pub fn load_if_present(
        p: &Params,
        layers: usize,
        hidden: usize,
        n_out: usize,
        cls: bool,
        dropout: f64,
    ) -> Result<Option<Self>> {
        if !p.pp(&ramp_scope(0)).pp("classifier").contains("weight") {
            return Ok(None);
        }
        Self::load_or_init(p, layers, hidden, n_out, cls, dropout, 0.0).map(Some)
    }

    /// The ramps of `p` where it has them, else new ones (normal(0, `std`) weights, zero
    /// biases, as HF initialises a linear layer).
    pub fn load_or_init(
        p: &Params,
        layers: usize,
        hidden: usize,
        n_out: usize,
        cls: bool,
        dropout: f64,
        std: f64,
    ) -> Result<Self> {
        let ramps = (0..layers.saturating_sub(1))
            .map(|i| {
                let r = p.pp(&ramp_scope(i));
                Ok(Ramp {
                    dense: Linear::load_or_init(&r.pp("pooler.dense"), hidden, hidden, std)?,
                    classifier: Linear::load_or_init(&r.pp("classifier"), hidden, n_out, std)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ExitRamps {
            ramps,
            cls,
            dropout: Dropout::new(dropout),
        })
    }

    /// Ramps (layers − 1).
    pub fn len(&self) -> usize {
        self.ramps.len()
    }

    /// True for a one-layer model (no ramp).
    pub fn is_empty(&self) -> bool {
        self.ramps.is_empty()
    }

    /// Logits `[batch, labels]` of ramp `i` on layer `i`'s output `h` `[batch, seq, hidden]`
    /// with `mask` `[batch, seq]`.
    pub fn forward(&self, i: usize, h: &Tensor, mask: &Tensor, train: bool) -> Result<Tensor> {
        let ramp = &self.ramps[i];
        let pooled = if self.cls {
            h.narrow(1, 0, 1)?.squeeze(1)?
        } else {
            masked_mean(h, &mask.to_dtype(h.dtype())?)?
        };
        let x = ramp.dense.forward(&pooled)?.tanh()?;
        ramp.classifier.forward(&self.dropout.forward(&x, train)?)
    }
}

/// Entropy (nats) of the softmax of each row of `logits` `[batch, labels]`: DeeBERT's exit
/// criterion.
pub fn entropy(logits: &Tensor) -> Result<Vec<f32>> {
    let logp = log_softmax(logits)?;
    let h = (logp.exp()? * &logp)?.sum(D::Minus1)?.neg()?;
    Ok(h.to_vec1::<f32>()?)
}
