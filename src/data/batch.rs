//! Turning encodings into model batches, and length-sorted batching.

use crate::error::{Error, Result};
use crate::tokenize::Encoding;
use candle_core::{Device, Tensor};

/// A tokenized batch on the model's device: ids, mask and segments, all `[batch, seq]`.
#[derive(Clone, Debug)]
pub struct EncoderInput {
    /// Token ids (u32).
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding (f32).
    pub attention_mask: Tensor,
    /// Segment ids (u32), 0 for the first text and 1 for the pair.
    pub token_type_ids: Tensor,
}

/// Stacks equally long (padded) encodings into `[batch, seq]` tensors.
pub fn to_encoder_input(encs: &[Encoding], device: &Device) -> Result<EncoderInput> {
    let b = encs.len();
    let t = encs.first().map(|e| e.input_ids.len()).unwrap_or(0);
    if b == 0 || t == 0 {
        return Err(Error::Invalid("empty batch".into()));
    }
    if let Some(e) = encs.iter().find(|e| e.input_ids.len() != t) {
        return Err(Error::Invalid(format!(
            "batch rows differ in length ({} vs {t}): pad the batch",
            e.input_ids.len()
        )));
    }
    let cat = |f: fn(&Encoding) -> &Vec<u32>| -> Vec<u32> {
        encs.iter().flat_map(|e| f(e).iter().copied()).collect()
    };
    let ids = Tensor::from_vec(cat(|e| &e.input_ids), (b, t), device)?;
    let types = Tensor::from_vec(cat(|e| &e.token_type_ids), (b, t), device)?;
    let mask: Vec<f32> = cat(|e| &e.attention_mask)
        .into_iter()
        .map(|m| m as f32)
        .collect();
    let mask = Tensor::from_vec(mask, (b, t), device)?;
    Ok(EncoderInput {
        input_ids: ids,
        attention_mask: mask,
        token_type_ids: types,
    })
}

/// Pads encodings of different lengths to the longest, with the model's pad id.
pub fn pad_batch(encs: &[Encoding], pad_id: u32) -> Vec<Encoding> {
    let t = encs.iter().map(|e| e.input_ids.len()).max().unwrap_or(0);
    encs.iter()
        .map(|e| {
            let mut e = e.clone();
            let n = t - e.input_ids.len();
            e.input_ids.extend(std::iter::repeat_n(pad_id, n));
            e.token_type_ids.extend(std::iter::repeat_n(0, n));
            e.attention_mask.extend(std::iter::repeat_n(0, n));
            e.special_tokens_mask.extend(std::iter::repeat_n(1, n));
            e.offsets.extend(std::iter::repeat_n((0, 0), n));
            e
        })
        .collect()
}

/// Groups example indices into batches of similar length (longest first), so padding is
/// minimal; callers put results back in input order with the indices.
pub fn length_sorted_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    order
        .chunks(batch_size.max(1))
        .map(|c| c.to_vec())
        .collect()
}
