//! Log-probability of a given continuation under the model (the notes' `sequence_logprob`):
//! `Σ log p(continuation[i] | prompt, continuation[..i])`, from one forward pass.

use super::processors::log_softmax;
use crate::error::{Error, Result};
use crate::models::gpt2::Gpt2LMHeadModel;
use candle_core::Tensor;

/// The score of one continuation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SequenceScore {
    /// Sum of the continuation tokens' log-probabilities.
    pub logprob: f64,
    /// Log-probability of each continuation token.
    pub token_logprobs: Vec<f32>,
}

/// Scores `continuation` after `prompt` (both token ids; the prompt must be non-empty).
/// Pairs are scored together in one left-padded batch; padding does not change a score.
pub fn sequence_logprob(
    model: &Gpt2LMHeadModel,
    pairs: &[(Vec<u32>, Vec<u32>)],
) -> Result<Vec<SequenceScore>> {
    let n_pos = model.config().n_positions;
    let vocab = model.config().vocab_size;
    let mut rows = Vec::with_capacity(pairs.len());
    for (i, (p, c)) in pairs.iter().enumerate() {
        if p.is_empty() || c.is_empty() {
            return Err(Error::Invalid(format!(
                "pair {i}: prompt and continuation must both have at least one token"
            )));
        }
        if p.len() + c.len() > n_pos {
            return Err(Error::Invalid(format!(
                "pair {i}: {} tokens exceed the model's n_positions ({n_pos})",
                p.len() + c.len()
            )));
        }
        if let Some(bad) = p.iter().chain(c).find(|&&t| t as usize >= vocab) {
            return Err(Error::Invalid(format!(
                "pair {i}: token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        rows.push([p.as_slice(), c.as_slice()].concat());
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, mask) = super::left_pad(&rows, 0);
    let (b, t) = (ids.len(), ids[0].len());
    let dev = model.params().device();
    let ids_t = Tensor::from_vec(ids.concat(), (b, t), &dev)?;
    let mask_t = Tensor::from_vec(mask.concat(), (b, t), &dev)?;
    let logits = model.forward(&ids_t, &mask_t, false)?;
    pairs
        .iter()
        .zip(&rows)
        .enumerate()
        .map(|(r, ((_, c), row))| {
            // Only the positions that predict the continuation leave the tensor.
            let start = t - c.len() - 1;
            let lg: Vec<Vec<f32>> = logits.get(r)?.narrow(0, start, c.len())?.to_vec2()?;
            let first = row.len() - c.len();
            let token_logprobs: Vec<f32> = lg
                .iter()
                .zip(&row[first..])
                .map(|(l, &tok)| log_softmax(l)[tok as usize])
                .collect();
            Ok(SequenceScore {
                logprob: token_logprobs.iter().map(|&x| x as f64).sum(),
                token_logprobs,
            })
        })
        .collect()
}
