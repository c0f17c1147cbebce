//! Task heads on an encoder.

pub mod classify;
mod classify_loss;
pub mod early_exit;
pub mod embed;
pub mod masked_lm;
pub mod prompt;
pub mod relation;
pub mod token_classify;
