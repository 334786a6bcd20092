//! The quantized layers, one file each (type, config and swappable float-or-int8 layer
//! together), convolutions in one folder. Each calls the seam (`crate::kernels`) for its
//! products, never a backend's kernels. `swappable.rs` is the `Module` they share, which gives
//! a float layer Burn's record.

pub(crate) mod config_conversions;
pub mod conv;
mod embedding;
mod linear;
pub(crate) mod swappable;

pub use conv::{Conv1dRecord, Conv2dRecord};
pub use embedding::{Embedding, EmbeddingConfig, EmbeddingRecord, QuantizedEmbedding};
pub use linear::{Linear, LinearConfig, LinearRecord, QuantizedLinear};
