//! `burn-int8`: Keras-exact INT8 post-training quantization for Burn, and Gemma3 on top of it.
//!
//! This facade re-exports the core crate (layers, `Quantize`, records) at its root, Gemma3 as
//! [`gemma3`], and picks backends at run time with [`backend::BackendKind`].

pub use burn_int8_core::*;
pub use burn_int8_gemma3 as gemma3;
pub use burn_int8_gguf as gguf;
pub use burn_int8_tokenizer as tokenizer;

pub mod backend;

/// Sets the number of CPU threads the CPU backends (flex, ndarray) use, through rayon's global
/// pool. Call it once, before any tensor work; a second call is an error.
pub fn set_num_threads(threads: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()
}
