//! Keras-exact INT8 post-training quantization for Burn.
//!
//! The crate a Burn user adds: it works with any `burn::nn` model on any backend, and a backend
//! feature (`ndarray`, `flex`, `wgpu`, `cuda`) adds that backend's direct int8 kernels.
//!
//! - [`quantizers`]: the math (`abs_max_quantize` and its inverse), as Keras's `quantizers.py`.
//! - [`ops`]: the one int8×int8→int32 product every quantized layer calls (the kernel seam).
//! - [`row_ops`]: the float work between the products of a transformer step (RMSNorm, alone or
//!   added to the residual, RoPE, the GELU-tanh gate, unmasked attention of a decode step), one
//!   host pass each on the CPU backends.
//! - [`Int8Weight`]: the int8 weight every quantized layer holds (I8 values, per-channel scales,
//!   a declared channel-major layout that survives save and load).
//! - Layers, each in its own file: [`QuantizedLinear`], [`QuantizedEmbedding`],
//!   [`QuantizedConv1d`], [`QuantizedConv2d`], plus swappable float-or-int8 enums
//!   ([`Linear`], [`Embedding`], [`Conv1d`], [`Conv2d`]).
//! - [`Quantize`]: rewrites a whole model in place (`model.quantize_int8()`), with a report
//!   that ranks the quantized layers by how much int8 changed their weights ([`LayerError`]).
//! - [`store`]: atomic Burnpack saving that keeps int8 as 1 byte per weight.
//! - Training after quantizing: under `Autodiff<B>` the int8 layers pass straight-through
//!   gradients to their inputs (`dx = dy · dequant(W)ᵀ`, Keras's rule) while their int8 weights
//!   and scales stay frozen; biases and every float layer train (`autodiff.rs`).

// The derive macro emits `::burn_int8::...` paths; this lets them resolve inside this crate too.
extern crate self as burn_int8;

mod error;
pub mod ops;
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
pub mod quantizers;

// Without a backend feature there is no kernel to dispatch to: the generic paths remain.
#[doc(hidden)]
#[path = "derive_support.rs"]
pub mod __derive;
#[cfg_attr(
    not(any(
        feature = "flex",
        feature = "ndarray",
        feature = "wgpu",
        feature = "cuda"
    )),
    allow(dead_code, unused_imports, unused_macros)
)]
mod autodiff;
mod conv;
mod conv1d;
mod conv2d;
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub mod cpu;
mod embedding;
/// The int8 kernels of the cubecl backends (wgpu, cuda): dispatch, launch, kernels.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod gpu;
mod int8_weight;
pub mod io;
mod linear;
pub mod nn;
#[cfg_attr(
    not(any(
        feature = "flex",
        feature = "ndarray",
        feature = "wgpu",
        feature = "cuda"
    )),
    allow(dead_code)
)]
mod primitive;
mod quantize;
mod record_header;
pub mod row_ops;
pub mod store;
mod weight_error;

pub use burn_int8_derive::Quantize;
pub use conv1d::{Conv1d, QuantizedConv1d};
pub use conv2d::{Conv2d, QuantizedConv2d};
pub use embedding::{Embedding, QuantizedEmbedding};
pub use error::Int8Error;
pub use int8_weight::Int8Weight;
pub use linear::{Linear, QuantizedLinear};
pub use quantize::{
    Mode, Quantize, QuantizeConfig, QuantizeContext, QuantizeExt, QuantizeReport, SkipReason,
    param_bytes,
};
pub use quantizers::mse;
pub use weight_error::LayerError;

/// Sets the number of CPU threads the CPU backends (flex, ndarray) and their int8 kernels use,
/// through rayon's global pool. Call it once, before any tensor work; a second call is an error.
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub fn set_num_threads(threads: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
}
