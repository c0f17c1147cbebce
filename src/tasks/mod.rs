//! Task heads on an encoder.

pub mod classify;
pub mod embed;
