//! Input readers and batching.

pub mod batch;
pub mod corpora;
pub mod dataset;
pub mod input;
pub mod labelled;
pub mod text;
