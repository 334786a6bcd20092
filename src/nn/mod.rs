//! `burn_int8::nn`: `burn::nn`, with the modules that hold a `Linear`, `Embedding` or
//! convolution replaced by int8-capable ones under the same paths and names (and
//! `pool::{MaxPool1d, MaxPool2d}` by ones with a direct kernel on flex, the same bits), and everything
//! else re-exported from Burn. Switching a model is one `use` line plus `#[derive(Quantize)]`
//! on every struct that holds layers:
//!
//! ```text
//! use burn::nn;                                   // before (or the prelude's `nn`)
//! use burn_int8::nn;                              // after: nn::Linear, nn::conv::Conv2d, nn::Dropout, ...
//! use burn::nn::{Linear, LinearConfig, Lstm};     // before
//! use burn_int8::nn::{Linear, LinearConfig, Lstm}; // after
//! ```
//!
//! - Each config has Burn's fields and defaults; its `init` builds Burn's own module (so the
//!   random initialisation is Burn's, draw for draw) and converts it. `From` converts configs
//!   both ways (`burn_config.into()`).
//! - A float layer has Burn's fields and Burn's record, so Burn's checkpoints load with Burn's
//!   own `load_file`/`load_record` and burn-store (`crate::Linear` explains the int8 side).
//! - `From<burn::nn::X>` converts a trained Burn module in memory:
//!   `let ours: burn_int8::nn::Lstm<B> = burn_lstm.into();`.
//! - In float mode every module gives exactly Burn's outputs (`tests/nn_*.rs`,
//!   `tests/burn_examples/`); after `quantize_int8()` every linear inside is int8.
//! - Types whose fields are all public in Burn (`LstmState`, `MhaOutput`, mask helpers) are
//!   Burn's own, re-exported. `nn::lstm::…` and `nn::gru::…` (Burn's submodule paths) are
//!   Burn's modules; the replacements are at the root (`nn::Lstm`, `nn::Gru`).

// Everything of `burn::nn` that is not replaced below, under Burn's paths (`Dropout`,
// `LayerNorm`, `BatchNorm`, `RmsNorm`, activations, `pool::AvgPool2d`, `loss::CrossEntropyLoss`,
// `Initializer`, padding configs, ...): `use burn_int8::nn;` replaces `use burn::nn;` (or the
// prelude's `nn`). A glob is shadowed by the names this module spells out, which is why the
// replacements below are named one by one, never re-exported by glob.
pub use burn::nn::*;

pub mod attention;
pub mod pool;
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
