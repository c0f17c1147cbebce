//! The masked-LM micro-batch: masked sequences padded into encoder input, with the scored
//! positions and their original ids (and the sentence-pair labels for NSP / SOP).

use crate::data::batch::EncoderInput;
use crate::data::masking::{Masked, IGNORE};
use crate::data::pretrain::Pair;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};

/// A masked micro-batch: the encoder input and the scored positions.
pub struct MlmBatch {
    /// Masked ids, attention mask (padding), segment ids 0.
    pub input: EncoderInput,
    /// Flattened positions (`row · seq + t`) that are scored.
    pub rows: Tensor,
    /// The original ids at those positions.
    pub targets: Tensor,
    /// How many positions are scored.
    pub scored: usize,
    /// NSP / SOP labels `[batch]` (HF's `next_sentence_label`), for pair blocks.
    pub next_labels: Option<Tensor>,
}

impl MlmBatch {
    /// Pads `masked` sequences with `pad_id` and collects the labelled positions.
    pub fn new(masked: &[Masked], pad_id: u32, device: &Device) -> Result<Self> {
        Self::with_pairs(masked, &[], pad_id, device)
    }

    /// As [`Self::new`], for sentence-pair blocks: `pairs[i]` gives row `i`'s token types
    /// and label (all rows or none; empty: no pairs).
    pub fn with_pairs(
        masked: &[Masked],
        pairs: &[Pair],
        pad_id: u32,
        device: &Device,
    ) -> Result<Self> {
        let (b, t) = (
            masked.len(),
            masked.iter().map(|m| m.input_ids.len()).max().unwrap_or(0),
        );
        if b == 0 || t == 0 {
            return Err(Error::Invalid("an empty masked-LM batch".into()));
        }
        if !pairs.is_empty() && pairs.len() != b {
            return Err(Error::Invalid(format!(
                "{} sentence pairs for {b} masked rows",
                pairs.len()
            )));
        }
        let mut ids = vec![pad_id; b * t];
        let mut mask = vec![0u32; b * t];
        let mut types = vec![0u32; b * t];
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for (r, m) in masked.iter().enumerate() {
            let b_start = pairs.get(r).map_or(usize::MAX, |p| p.b_start);
            for (j, (&id, &label)) in m.input_ids.iter().zip(&m.labels).enumerate() {
                ids[r * t + j] = id;
                mask[r * t + j] = 1;
                types[r * t + j] = u32::from(j >= b_start);
                if label != IGNORE {
                    rows.push((r * t + j) as u32);
                    targets.push(label as u32);
                }
            }
        }
        let scored = rows.len();
        let next_labels = match pairs.is_empty() {
            true => None,
            false => {
                let labels: Vec<u32> = pairs.iter().map(|p| p.label).collect();
                Some(Tensor::from_vec(labels, b, device)?)
            }
        };
        Ok(MlmBatch {
            input: EncoderInput {
                input_ids: Tensor::from_vec(ids, (b, t), device)?,
                attention_mask: Tensor::from_vec(mask, (b, t), device)?,
                token_type_ids: Tensor::from_vec(types, (b, t), device)?,
            },
            rows: Tensor::from_vec(rows, scored, device)?,
            targets: Tensor::from_vec(targets, scored, device)?,
            scored,
            next_labels,
        })
    }
}
