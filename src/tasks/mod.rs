//! Task heads on an encoder.

pub mod classify;
pub mod embed;
pub mod masked_lm;
pub mod relation;
pub mod token_classify;
