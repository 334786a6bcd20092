//! Keras-exact INT8 post-training quantization for Burn.
//!
//! - [`quantizers`]: the math (`abs_max_quantize` and its inverse), as Keras's `quantizers.py`.
//! - [`ops`]: the one int8×int8→int32 product every quantized layer calls (the kernel seam).
//! - Layers, each in its own file: [`QuantizedLinear`], [`QuantizedEmbedding`],
//!   [`QuantizedConv1d`], [`QuantizedConv2d`], plus swappable float-or-int8 enums
//!   ([`Linear`], [`Embedding`], [`Conv1d`], [`Conv2d`]).
//! - [`Quantize`]: rewrites a whole model in place (`model.quantize_int8()`), with a report.
//! - [`store`]: atomic Burnpack saving that keeps int8 as 1 byte per weight.

// The derive macro emits `::burn_int8::...` paths; this lets them resolve inside this crate too.
extern crate self as burn_int8;

mod error;
pub mod ops;
pub mod quantizers;

mod conv;
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub mod cpu;
#[cfg(any(feature = "flex", feature = "ndarray", feature = "wgpu", feature = "cuda"))]
mod primitive;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu_kernels;
mod conv1d;
mod conv2d;
mod embedding;
mod linear;
mod quantize;
pub mod store;

pub use burn_int8_derive::Quantize;
pub use conv1d::{Conv1d, QuantizedConv1d};
pub use conv2d::{Conv2d, QuantizedConv2d};
pub use embedding::{Embedding, QuantizedEmbedding};
pub use error::Int8Error;
pub use linear::{Linear, QuantizedLinear};
pub use quantize::{
    Mode, Quantize, QuantizeConfig, QuantizeContext, QuantizeExt, QuantizeReport, SkipReason,
    param_bytes,
};
pub use quantizers::mse;
