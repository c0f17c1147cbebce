//! Fused CPU kernels with hand-written backward passes.
//!
//! candle's own fused LayerNorm and softmax are built with `apply_op*_no_bwd`, so gradients
//! silently stop at them; its composite versions are correct but make several passes over
//! memory. These kernels do one pass each on CPU, pick AVX-512 / AVX2 at run time (see
//! `simd.rs`), use every core through rayon, and fall back to composite candle ops on other
//! devices so the CUDA build keeps working.

mod attention;
mod attention_train;
mod bf16;
mod common;
mod dropout;
mod gelu;
pub mod gemm;
mod greedy_head;
mod int8;
mod kv_attention;
mod layer_norm;
mod linear;
pub mod qgemm;
mod rnn;
mod short_attention;
mod short_attention_bf16;
pub mod simd;
mod softmax;
mod sparse_attention;

pub use attention::{fused_attention, AttentionProducts};
pub use attention_train::attention_train;
pub use bf16::{with_bf16_bits, Bf16Panels};
pub use common::{on_pool, with_f32};
pub use dropout::DropMask;
pub use gelu::{gelu_erf, gelu_tanh, Gelu};
pub use greedy_head::GreedyScreen;
pub use int8::Int8Weight;
pub use kv_attention::{cached_causal_attention, KvBuffer, KvDtype};
pub use layer_norm::{add_layer_norm, layer_norm, layer_norm_composite};
pub use linear::{linear_frozen, linear_train, prepare_frozen_weight, Epilogue};
pub use qgemm::CodeWidth;
pub use rnn::{rnn_layer, RnnCell};
pub use softmax::{masked_softmax, masked_softmax_composite};
pub use sparse_attention::{leading_padding, sparse_allowed, sparse_attention, sparse_positions};
