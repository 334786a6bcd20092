//! `burn-int8`: Keras-exact INT8 post-training quantization for Burn, and Gemma3 on top of it.
//!
//! This facade re-exports the core crate (layers, `Quantize`, records) at its root, Gemma3 as
//! [`gemma3`], and picks backends at run time with [`backend::BackendKind`].

pub use burn_int8_core::*;
pub use burn_int8_gemma3 as gemma3;
pub use burn_int8_gguf as gguf;
pub use burn_int8_tokenizer as tokenizer;

pub mod backend;
