//! Early exit on a [`SequenceClassifier`] with off-ramps ([`ExitRamps`], DeeBERT): every
//! exit's logits for training, and inference that stops each row at the first layer whose
//! ramp is confident (softmax entropy below a threshold). A row's answer and exit layer do
//! not depend on the other rows of its batch: rows that exit leave the batch, the rest go on.

use super::classify::SequenceClassifier;
use crate::error::{Error, Result};
use crate::kernels;
use crate::models::bert::{EncoderInput, EncoderOutput};
use crate::nn::exit_ramps::{entropy, ExitRamps};
use candle_core::Tensor;

/// Per row: its logits and the number of layers it ran (1-based: 1 = exited after the first).
pub struct EarlyExitOutput {
    /// `[rows][labels]` logits of the exit each row took.
    pub logits: Vec<Vec<f32>>,
    /// Layers each row ran.
    pub layers: Vec<usize>,
}

fn ramps(model: &SequenceClassifier) -> Result<&ExitRamps> {
    model.exit_ramps().ok_or_else(|| {
        Error::Invalid(
            "this model has no early-exit ramps (encoder.highway.*): train them with \
             task.early_exit = \"frozen\" (or \"joint\")"
                .into(),
        )
    })
}

/// The head's logits and every ramp's (`[batch, labels]` each, ramp `i` on layer `i`'s
/// output). `detach`: the ramps read the layers' outputs without a gradient path into the
/// encoder (training the ramps alone).
pub fn forward_with_exits(
    model: &SequenceClassifier,
    input: &EncoderInput,
    train: bool,
    detach: bool,
) -> Result<(Tensor, Vec<Tensor>)> {
    let ramps = ramps(model)?;
    let out = model.encoder().forward(input, train)?;
    let mask = &input.attention_mask;
    let logits = model.head(&model.pool_states(&out, mask, train)?, train)?;
    let exits = (0..ramps.len())
        .map(|i| {
            let h = &out.hidden_states[i + 1];
            let h = if detach { h.detach() } else { h.clone() };
            ramps.forward(i, &h, mask, train)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((logits, exits))
}

/// Inference with early exit: each row stops at the first layer whose ramp's prediction
/// entropy (nats) is below `max_entropy`, else runs every layer and takes the head's answer
/// (`max_entropy` = 0 never exits early). Dropout off.
pub fn predict_early_exit(
    model: &SequenceClassifier,
    input: &EncoderInput,
    max_entropy: f32,
) -> Result<EarlyExitOutput> {
    let ramps = ramps(model)?;
    kernels::on_pool(|| run_with_exits(model, ramps, input, max_entropy))
}

fn run_with_exits(
    model: &SequenceClassifier,
    ramps: &ExitRamps,
    input: &EncoderInput,
    max_entropy: f32,
) -> Result<EarlyExitOutput> {
    let enc = model.encoder();
    let n = input.input_ids.dim(0)?;
    let depth = enc.config().num_hidden_layers;
    let mut out = EarlyExitOutput {
        logits: vec![Vec::new(); n],
        layers: vec![depth; n],
    };
    // Original row of each row still running; its states and mask, compacted as rows exit.
    let mut active: Vec<usize> = (0..n).collect();
    let mut states = vec![enc.embed(input, false)?];
    let mut mask = input.attention_mask.clone();
    for i in 0..depth {
        let h = enc.run_layer(i, &states[i], &mask, false)?;
        states.push(h);
        if i + 1 == depth {
            break;
        }
        let logits = ramps.forward(i, &states[i + 1], &mask, false)?;
        let ent = entropy(&logits)?;
        let rows = logits.to_vec2::<f32>()?;
        let mut keep = Vec::with_capacity(active.len());
        for (pos, (row, e)) in rows.into_iter().zip(ent).enumerate() {
            if e < max_entropy {
                out.logits[active[pos]] = row;
                out.layers[active[pos]] = i + 1;
            } else {
                keep.push(pos);
            }
        }
        if keep.is_empty() {
            return Ok(out);
        }
        if keep.len() < active.len() {
            let idx = Tensor::new(
                keep.iter().map(|&p| p as u32).collect::<Vec<_>>(),
                mask.device(),
            )?;
            states = (states.iter())
                .map(|s| s.index_select(&idx, 0))
                .collect::<candle_core::Result<_>>()?;
            mask = mask.index_select(&idx, 0)?;
            active = keep.iter().map(|&p| active[p]).collect();
        }
    }
    let last = states[depth].clone();
    let enc_out = EncoderOutput {
        pooler_output: enc.pooler_output(&last)?,
        last_hidden_state: last,
        hidden_states: states,
    };
    let logits = model.head(&model.pool_states(&enc_out, &mask, false)?, false)?;
    for (pos, row) in logits.to_vec2::<f32>()?.into_iter().enumerate() {
        out.logits[active[pos]] = row;
    }
    Ok(out)
}
