//! Transformer encoder, decoder and feed-forward blocks: Burn's `burn::nn::transformer`
//! modules, with swappable float-or-int8 linear layers.

mod decoder;
mod encoder;
mod pwff;

// Globs, as Burn does: they also re-export the records `#[derive(Module)]` generates.
pub use decoder::*;
pub use encoder::*;
pub use pwff::*;
