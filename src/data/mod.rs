//! Input readers and batching.

pub mod batch;
pub mod dataset;
pub mod input;
