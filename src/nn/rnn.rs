//! LSTM and GRU as `torch.nn.LSTM` / `torch.nn.GRU` (batch-first) compute them on a packed
//! padded batch: uni- or bidirectional, several layers, dropout between layers in training,
//! weights under torch's state-dict names (`weight_ih_l0`, `weight_hh_l0_reverse`, ...).
//!
//! Padding never changes an answer: each sequence runs over its own length only (the
//! reverse direction starts at its last real token), outputs at padded positions are zero
//! and `h_n` / `c_n` are the states after each sequence's last real token — what
//! `pack_padded_sequence` → RNN → `pad_packed_sequence` gives.
//!
//! On CPU f32 a layer is one fused op (`kernels::rnn_layer`: projection, recurrence and
//! their backward); elsewhere the same math runs as tensor ops step by step.

use super::{Dropout, Init, Params};
use crate::error::{Error, Result};
use crate::kernels::RnnCell;
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

/// Which recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RnnMode {
    /// Long short-term memory: gates i, f, g, o (torch's order).
    Lstm,
    /// Gated recurrent unit: gates r, z, n (torch's order).
    Gru,
}

impl RnnMode {
    fn gates(self) -> usize {
        match self {
            RnnMode::Lstm => 4,
            RnnMode::Gru => 3,
        }
    }
}

/// The shape of a recurrent layer stack, as `torch.nn.LSTM(...)`'s arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RnnConfig {
    /// LSTM or GRU.
    pub mode: RnnMode,
    /// Features per input step.
    pub input_size: usize,
    /// Features of the state (per direction).
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// A second, reversed direction per layer (outputs concatenated).
    pub bidirectional: bool,
    /// Dropout on each layer's output except the last, in training.
    pub dropout: f64,
}

impl RnnConfig {
    /// Features per output step: `hidden_size` × directions.
    pub fn output_size(&self) -> usize {
        self.hidden_size * self.directions()
    }

    fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }
}

/// One direction of one layer.
struct Cell {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

/// What the stack returns.
pub struct RnnOutput {
    /// Last layer's outputs `[batch, seq, directions·hidden]`, zero at padding.
    pub output: Tensor,
    /// Final hidden state per layer and direction `[layers·directions, batch, hidden]`.
    pub h_n: Tensor,
    /// Final cell state (LSTM only), shaped like `h_n`.
    pub c_n: Option<Tensor>,
}

/// A stack of LSTM or GRU layers.
pub struct Rnn {
    cfg: RnnConfig,
    /// `cells[layer][direction]`.
    cells: Vec<Vec<Cell>>,
    dropout: Dropout,
}

impl Rnn {
    /// Loads the weights under `p` (torch's names), initialising missing ones as torch does:
    /// Uniform(−1/√hidden, 1/√hidden).
    pub fn load(p: &Params, cfg: &RnnConfig) -> Result<Self> {
        if cfg.num_layers == 0 || cfg.hidden_size == 0 || cfg.input_size == 0 {
            return Err(Error::Invalid(format!(
                "{}: an RNN needs input_size, hidden_size and num_layers ≥ 1 (got {cfg:?})",
                p.full_name("")
            )));
        }
        let (h, g) = (cfg.hidden_size, cfg.mode.gates());
        let init = Init::Uniform(1.0 / (h as f64).sqrt());
        let mut cells = Vec::new();
        for layer in 0..cfg.num_layers {
            let in_dim = if layer == 0 {
                cfg.input_size
            } else {
                cfg.output_size()
            };
            let mut dirs = Vec::new();
            for dir in 0..cfg.directions() {
                let sfx = format!("l{layer}{}", if dir == 1 { "_reverse" } else { "" });
                dirs.push(Cell {
                    w_ih: p.get_or_init((g * h, in_dim), &format!("weight_ih_{sfx}"), init)?,
                    w_hh: p.get_or_init((g * h, h), &format!("weight_hh_{sfx}"), init)?,
                    b_ih: p.get_or_init(g * h, &format!("bias_ih_{sfx}"), init)?,
                    b_hh: p.get_or_init(g * h, &format!("bias_hh_{sfx}"), init)?,
                });
            }
            cells.push(dirs);
        }
        Ok(Rnn {
            cfg: cfg.clone(),
            cells,
            dropout: Dropout::new(cfg.dropout),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RnnConfig {
        &self.cfg
    }

    /// Runs the stack over `x [batch, seq, input_size]`; `mask [batch, seq]` (1 = token,
    /// 0 = padding; padding must follow the tokens) gives each sequence's length.
    pub fn forward(&self, x: &Tensor, mask: &Tensor, train: bool) -> Result<RnnOutput> {
        let (b, t, in_dim) = x.dims3()?;
        if in_dim != self.cfg.input_size || mask.dims() != [b, t] {
            return Err(Error::Invalid(format!(
                "RNN input {:?} with mask {:?}: expected [batch, seq, {}] and [batch, seq]",
                x.dims(),
                mask.dims(),
                self.cfg.input_size
            )));
        }
        check_right_padded(mask)?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let mut input = x.clone();
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        for (layer, dirs) in self.cells.iter().enumerate() {
            if layer > 0 {
                input = self.dropout.forward(&input, train)?;
            }
            if let Some((out, h, c)) = self.fused(dirs, &input, mask)? {
                input = out;
                h_n.extend(h);
                c_n.extend(c);
                continue;
            }
            let mut outs = Vec::new();
            for (dir, cell) in dirs.iter().enumerate() {
                let run = self.run(cell, &input, &m, dir == 1)?;
                outs.push(run.0);
                h_n.push(run.1);
                c_n.extend(run.2);
            }
            input = Tensor::cat(&outs, D::Minus1)?;
        }
        Ok(RnnOutput {
            output: input,
            h_n: Tensor::stack(&h_n, 0)?,
            c_n: match c_n.is_empty() {
                true => None,
                false => Some(Tensor::stack(&c_n, 0)?),
            },
        })
    }

    /// One layer through the fused kernel (CPU f32): outputs `[b, t, dirs·h]` and each
    /// direction's final `h` (and, for the LSTM, `c`); `None` where the kernel does not run.
    #[allow(clippy::type_complexity)]
    fn fused(
        &self,
        dirs: &[Cell],
        x: &Tensor,
        mask: &Tensor,
    ) -> Result<Option<(Tensor, Vec<Tensor>, Vec<Tensor>)>> {
        let (b, t, _) = x.dims3()?;
        let hs = self.cfg.hidden_size;
        let lstm = self.cfg.mode == RnnMode::Lstm;
        // The projection's bias: all of b_hh for the LSTM; for the GRU only its r and z
        // parts (the reset gate scales W_hn·h + b_hn, so b_hn stays in the recurrence).
        let bias_of = |c: &Cell| -> Result<Tensor> {
            Ok(match lstm {
                true => (&c.b_ih + &c.b_hh)?,
                false => {
                    let zero = Tensor::zeros(hs, DType::F32, x.device())?;
                    (&c.b_ih + Tensor::cat(&[c.b_hh.narrow(0, 0, 2 * hs)?, zero], 0)?)?
                }
            })
        };
        let w_ih = dirs
            .iter()
            .map(|c| Ok(Tensor::cat(&[&c.w_ih, &bias_of(c)?.unsqueeze(1)?], 1)?))
            .collect::<Result<Vec<_>>>()?;
        let w_hh = dirs
            .iter()
            .map(|c| match lstm {
                true => Ok(c.w_hh.clone()),
                false => Ok(Tensor::cat(
                    &[&c.w_hh, &c.b_hh.narrow(0, 2 * hs, hs)?.unsqueeze(0)?],
                    0,
                )?),
            })
            .collect::<Result<Vec<_>>>()?;
        let cell = match lstm {
            true => RnnCell::Lstm,
            false => RnnCell::Gru,
        };
        let (w_ih, w_hh) = (Tensor::cat(&w_ih, 0)?, Tensor::stack(&w_hh, 0)?);
        let Some(out) = crate::kernels::rnn_layer(cell, x, &w_ih, &w_hh, mask)? else {
            return Ok(None);
        };
        // Flat: the outputs [b, t, dirs·h], then the final h and c [b, dirs·h] each.
        let ow = dirs.len() * hs;
        let outputs = out.narrow(0, 0, b * t * ow)?.reshape((b, t, ow))?;
        let final_of = |k: usize| -> Result<Vec<Tensor>> {
            let s = out
                .narrow(0, (b * t + k * b) * ow, b * ow)?
                .reshape((b, ow))?;
            (0..dirs.len())
                .map(|d| Ok(s.narrow(1, d * hs, hs)?))
                .collect()
        };
        let c = if lstm { final_of(1)? } else { Vec::new() };
        Ok(Some((outputs, final_of(0)?, c)))
    }

    /// One direction over the whole sequence: outputs `[b, t, h]`, last `h`, last `c`.
    fn run(
        &self,
        cell: &Cell,
        x: &Tensor,
        m: &Tensor,
        reverse: bool,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let (b, t, in_dim) = x.dims3()?;
        let hs = self.cfg.hidden_size;
        let proj = x
            .reshape((b * t, in_dim))?
            .matmul(&cell.w_ih.t()?)?
            .broadcast_add(&cell.b_ih)?
            .reshape((b, t, ()))?;
        let w_hh_t = cell.w_hh.t()?;
        let mut h = Tensor::zeros((b, hs), DType::F32, x.device())?;
        let mut c = h.clone();
        let mut outs = vec![h.clone(); t];
        let order: Vec<usize> = match reverse {
            true => (0..t).rev().collect(),
            false => (0..t).collect(),
        };
        for step in order {
            let xt = proj.narrow(1, step, 1)?.squeeze(1)?;
            let mt = m.narrow(1, step, 1)?.squeeze(1)?;
            let hh = h.matmul(&w_hh_t)?.broadcast_add(&cell.b_hh)?;
            let (h_new, c_new) = match self.cfg.mode {
                RnnMode::Lstm => lstm_cell(&xt, &hh, &c)?,
                RnnMode::Gru => (gru_cell(&xt, &hh, &h)?, c.clone()),
            };
            // Padded steps keep the state: exact for a 0/1 mask (1·new + 0·old).
            let keep = (1.0 - &mt)?;
            h = (h_new.broadcast_mul(&mt)? + h.broadcast_mul(&keep)?)?;
            if self.cfg.mode == RnnMode::Lstm {
                c = (c_new.broadcast_mul(&mt)? + c.broadcast_mul(&keep)?)?;
            }
            outs[step] = h_new.broadcast_mul(&mt)?;
        }
        let c_last = (self.cfg.mode == RnnMode::Lstm).then_some(c);
        Ok((Tensor::stack(&outs, 1)?, h, c_last))
    }
}

/// `i, f, g, o = chunks(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)`; `c' = σf·c + σi·tanh g`,
/// `h' = σo·tanh c'`.
fn lstm_cell(xt: &Tensor, hh: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
    let gates = (xt + hh)?.chunk(4, 1)?;
    let sig = candle_nn::ops::sigmoid;
    let (i, f) = (sig(&gates[0])?, sig(&gates[1])?);
    let (g, o) = (gates[2].tanh()?, sig(&gates[3])?);
    let c_new = ((f * c)? + (i * g)?)?;
    let h_new = (o * c_new.tanh()?)?;
    Ok((h_new, c_new))
}

/// `r = σ(x_r + h_r)`, `z = σ(x_z + h_z)`, `n = tanh(x_n + r·h_n)`, `h' = (1 − z)·n + z·h`
/// (torch's GRU: the reset gate scales `W_hn·h + b_hn`).
fn gru_cell(xt: &Tensor, hh: &Tensor, h: &Tensor) -> Result<Tensor> {
    let x = xt.chunk(3, 1)?;
    let g = hh.chunk(3, 1)?;
    let sig = candle_nn::ops::sigmoid;
    let r = sig(&(&x[0] + &g[0])?)?;
    let z = sig(&(&x[1] + &g[1])?)?;
    let n = (&x[2] + (r * &g[2])?)?.tanh()?;
    Ok((((1.0 - &z)? * n)? + (z * h)?)?)
}

/// Errors unless every row of `mask` is ones then zeros (right padding, as the tokenizer
/// pads), and every sequence has at least one token.
fn check_right_padded(mask: &Tensor) -> Result<()> {
    for (row, m) in mask
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?
        .iter()
        .enumerate()
    {
        let len = m.iter().take_while(|&&v| v > 0.5).count();
        if len == 0 || m[len..].iter().any(|&v| v > 0.5) {
            return Err(Error::Invalid(format!(
                "RNN mask row {row} is not a non-empty run of 1s followed by 0s: {m:?}"
            )));
        }
    }
    Ok(())
}
