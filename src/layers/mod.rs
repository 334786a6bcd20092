//! The quantized layers, one file each (type, config and swappable float-or-int8 enum
//! together), convolutions in one folder. Each calls the seam (`crate::kernels`) for its
//! products, never a backend's kernels.

pub mod conv;
mod embedding;
mod linear;

pub use embedding::{Embedding, EmbeddingConfig, QuantizedEmbedding};
pub use linear::{Linear, LinearConfig, QuantizedLinear};
