//! bf16 weight storage for the encoder: a [`crate::models::hub::WeightStorage::Bf16`] load
//! reads the matrices of the embeddings, the blocks and the pooler as bf16 straight from the
//! file; [`crate::nn::Linear`] and [`crate::nn::Embedding`] widen each value to f32 as they
//! read it, so LayerNorm, biases and all arithmetic stay f32.

use super::BertModel;

impl BertModel {
    /// True when the blocks' linear layers hold bf16 weights.
    pub fn is_bf16(&self) -> bool {
        (self.layers.first()).is_some_and(|l| l.intermediate.dense.is_bf16())
    }
}
