//! `burn_int8::nn`: int8-capable counterparts of the `burn::nn` modules that hold a `Linear`,
//! `Embedding` or convolution, under the same paths and names. Switching a model is a change of
//! `use` lines plus `#[derive(Quantize)]`:
//!
//! ```text
//! use burn::nn::{Linear, LinearConfig, Lstm, LstmConfig};          // before
//! use burn::nn::attention::{MultiHeadAttention, MhaInput};
//! use burn_int8::nn::{Linear, LinearConfig, Lstm, LstmConfig};     // after
//! use burn_int8::nn::attention::{MultiHeadAttention, MhaInput};
//! ```
//!
//! - Each config has Burn's fields and defaults; its `init` builds Burn's own module (so the
//!   random initialisation is Burn's, draw for draw) and converts it.
//! - `From<burn::nn::X>` converts a trained Burn module, or a float checkpoint loaded into the
//!   Burn model, without retraining: `let ours: burn_int8::nn::Lstm<B> = burn_lstm.into();`.
//! - In float mode every module gives exactly Burn's outputs (`tests/nn_*.rs`); after
//!   `quantize_int8()` every linear inside is int8.
//! - Types whose fields are all public in Burn (`LstmState`, `MhaOutput`, mask helpers) are
//!   Burn's own, re-exported.

pub mod attention;
pub mod transformer;

mod rnn;
mod swiglu;

pub use crate::layers::conv;
pub use crate::layers::{Embedding, EmbeddingConfig, Linear, LinearConfig};
pub use rnn::*;
pub use swiglu::*;

/// Burn's `burn::nn::cache`, for the autoregressive caches' tensors.
pub mod cache {
    pub use super::attention::TensorCache;
}
