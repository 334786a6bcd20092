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

/// Dense layers and embeddings have no per-sample scheme: a dense layer quantizes each row of
/// its input, which already is its sample (Keras's rule). [`crate::Int8Error::UnsupportedFormat`]
/// makes `quantize_int8` give them Keras's scheme and say so.
pub(crate) fn refuse_per_sample(
    format: crate::Int8Format,
    what: &str,
) -> Result<(), crate::Int8Error> {
    if format.scheme == crate::Scheme::Sample {
        return Err(crate::Int8Error::UnsupportedFormat {
            what: what.to_string(),
            format,
            reason: "one activation scale per sample is a convolution scheme (a dense layer \
                     already quantizes each row of its input on its own)"
                .into(),
        });
    }
    Ok(())
}
