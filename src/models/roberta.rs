//! RoBERTa ([Liu et al., 2019](https://arxiv.org/abs/1907.11692)): BERT's blocks with
//! position ids that start after the padding index, as HF
//! `create_position_ids_from_input_ids` makes them.

use crate::error::Result;
use candle_core::{DType, Tensor};

/// Real tokens get `pad + 1, pad + 2, ...`; padding tokens get `pad`.
pub fn position_ids(input_ids: &Tensor, pad: u32) -> Result<Tensor> {
    let (b, t) = input_ids.dims2()?;
    let ids = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    let mut out = Vec::with_capacity(b * t);
    for row in ids {
        let mut count = 0u32;
        for id in row {
            if id != pad {
                count += 1;
                out.push(pad + count);
            } else {
                out.push(pad);
            }
        }
    }
    Ok(Tensor::from_vec(out, (b, t), input_ids.device())?)
}
