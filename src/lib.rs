//! Keras-exact INT8 post-training quantization for Burn.
//!
//! The crate a Burn user adds: it works with any `burn::nn` model on any backend, and a backend
//! feature (`ndarray`, `flex`, `wgpu`, `cuda`) adds that backend's direct int8 kernels.
//!
//! - [`quantizers`]: the math (`abs_max_quantize` and its inverse), as Keras's `quantizers.py`.
//! - [`rotation`]: the Walsh–Hadamard rotation of a layer's inputs, applied before quantizing.
//! - [`Int8Weight`]: the int8 weight every quantized layer holds (I8 values, per-channel scales,
//!   a declared channel-major layout that survives save and load).
//! - [`layers`]: one file per layer: [`QuantizedLinear`], [`QuantizedEmbedding`],
//!   [`QuantizedConv1d`], [`QuantizedConv2d`], with their swappable float-or-int8 layers
//!   ([`Linear`], [`Embedding`], [`Conv1d`], [`Conv2d`]: Burn's fields and Burn's record while
//!   float) and configs.
//! - [`nn`]: `burn::nn` with the modules that hold those layers replaced, under Burn's paths
//!   and names (`use burn_int8::nn;` instead of `use burn::nn;`).
//! - `quantize/`: [`Quantize`] rewrites a whole model in place (`model.quantize_int8()`), with
//!   a report that ranks the quantized layers by how much int8 changed their weights
//!   ([`LayerError`], per [`LayerKind`]); its config, report, the visitor that finds float
//!   Burn layers inside modules without the derive, and the derive's support.
//! - [`kernels`]: the seam, the one module that knows the backends: every int8 operation picks
//!   its CPU kernel, GPU kernel or generic Burn ops there (`src/kernels/backend.rs` holds the
//!   table from cargo features to backends). Under `Autodiff<B>` the int8 layers pass
//!   straight-through gradients to their inputs (`dx = dy · dequant(W)ᵀ`, Keras's rule) while
//!   their int8 weights and scales stay frozen; biases and every float layer train.
//! - [`transformer_ops`]: the float work between the int8 products of a transformer step
//!   (Gemma3's RMSNorm, RoPE, GELU gate, decode attention, KV-cache writes).
//! - [`io`]: records on disk. [`store`] (also `io::store`): atomic Burnpack saving that keeps
//!   int8 as 1 byte per weight, and checked loading; `io::burnpack_header`: the one reader of
//!   a Burnpack record's tensor table; `io::record`: the tensor names of an int8 record;
//!   `io::burn_record`: how an int8 weight survives Burn's own recorders (I8 and f32 as they
//!   are, whatever the precision settings).

// The derive macro emits `::burn_int8::...` paths; this lets them resolve inside this crate too.
extern crate self as burn_int8;

mod error;
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
pub mod quantizers;
pub mod rotation;
pub mod scheme;

#[doc(hidden)]
pub use quantize::derive_support as __derive;
mod int8_weight;
pub mod io;
// Without a backend feature there is no kernel to dispatch to: the generic paths remain.
#[cfg_attr(
    not(any(
        feature = "flex",
        feature = "ndarray",
        feature = "wgpu",
        feature = "cuda"
    )),
    allow(dead_code, unused_imports, unused_macros, unused_variables)
)]
pub mod kernels;
pub mod layers;
pub mod nn;
mod quantize;

/// Float kernels for the work between the int8 products of a transformer step (RMSNorm,
/// RoPE, the GELU-tanh gate, decode attention, the KV-cache write). Gemma3 is their only
/// user; they are here, behind the seam, because their CPU versions read backend storage.
pub mod transformer_ops {
    pub use crate::kernels::transformer::*;
}

pub use burn_int8_derive::Quantize;
pub use error::Int8Error;
pub use int8_weight::Int8Weight;
pub use io::store;
pub use layers::conv::{Conv1d, Conv2d, QuantizedConv1d, QuantizedConv2d};
pub use layers::{Embedding, Linear, QuantizedEmbedding, QuantizedLinear};
pub use quantize::{
    LayerError, LayerKind, Mode, Quantize, QuantizeConfig, QuantizeContext, QuantizeExt,
    QuantizeReport, SkipReason, param_bytes,
};
pub use quantizers::mse;
pub use scheme::{Int8Format, Rotation, Scheme};

/// Sets the number of CPU threads the CPU backends (flex, ndarray) and their int8 kernels use,
/// through rayon's global pool. Call it once, before any tensor work; a second call is an error.
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub fn set_num_threads(threads: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
}
