//! Task heads on an encoder.

pub mod classify;
pub mod embed;
pub mod token_classify;
