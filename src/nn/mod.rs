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

// Everything of `burn::nn` that is not replaced below, under Burn's paths (`Dropout`,
// `LayerNorm`, `BatchNorm`, `RmsNorm`, activations, `pool::MaxPool2d`, `loss::CrossEntropyLoss`,
// `Initializer`, padding configs, ...): `use burn_int8::nn;` replaces `use burn::nn;` (or the
// prelude's `nn`). A glob is shadowed by the names this module spells out, which is why the
// replacements below are named one by one, never re-exported by glob.
pub use burn::nn::*;

pub mod attention;
pub mod transformer;

mod rnn;
mod swiglu;

/// `burn::nn::conv`: Burn's convolutions, with [`Conv1d`](conv::Conv1d) and
/// [`Conv2d`](conv::Conv2d) (and their configs) replaced by the swappable ones.
pub mod conv {
    pub use burn::nn::conv::*;

    pub use crate::layers::conv::{
        Conv1d, Conv1dConfig, Conv1dRecord, Conv2d, Conv2dConfig, Conv2dRecord, QuantizedConv1d,
        QuantizedConv2d,
    };
}

pub use crate::layers::{
    Embedding, EmbeddingConfig, EmbeddingRecord, Linear, LinearConfig, LinearRecord,
};
pub use rnn::{
    BiGru, BiGruConfig, BiGruRecord, BiLstm, BiLstmConfig, BiLstmRecord, GateController,
    GateControllerRecord, Gru, GruConfig, GruRecord, Lstm, LstmConfig, LstmRecord, LstmState,
};
pub use swiglu::{SwiGlu, SwiGluConfig, SwiGluRecord};

/// Burn's `burn::nn::cache` (its one item, the autoregressive caches' tensor type, is this
/// crate's attention's).
pub mod cache {
    pub use super::attention::TensorCache;
}
