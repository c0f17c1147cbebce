//! Input readers and batching.

pub mod aligned;
pub mod batch;
pub mod corpora;
pub mod dataset;
pub mod input;
pub mod labelled;
pub mod masking;
pub mod mlm_batch;
pub mod prefetch;
pub mod pretrain;
pub mod relation;
pub mod sentence_pairs;
pub mod tagged;
pub mod tags;
pub mod text;
pub mod windows;
