//! Input readers and batching.

pub mod batch;
pub mod input;
