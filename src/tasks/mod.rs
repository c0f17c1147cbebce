//! Task heads on an encoder.

pub mod embed;
