//! Reusable layers shared by models, task heads and the trainer.

pub mod contrastive;
pub mod crf;
mod dropout;
mod embedding;
pub mod exit_ramps;
mod layer_norm;
mod linear;
pub mod losses;
pub mod norm;
pub mod params;
pub mod pooling;
pub mod positions;
pub mod rnn;
pub mod textcnn;
pub mod window_pooling;

pub use crf::{Constraints, Crf, Reduction};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use exit_ramps::ExitRamps;
pub use layer_norm::LayerNorm;
pub use linear::{cat_rows, is_shape_only, shape_only, Linear};
pub use params::{Init, Params};
pub use pooling::{Pooler, Pooling};
pub use rnn::{Rnn, RnnConfig, RnnMode, RnnOutput};
pub use textcnn::TextCnn;
pub use window_pooling::{WindowPool, WindowPooler};
