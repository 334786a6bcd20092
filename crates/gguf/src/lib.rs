//! A GGUF (v2/v3) reader and v3 writer for llama.cpp model files, with dequantization to f32
//! that is bit-exact with ggml's reference `dequantize_row_*` and gguf-py.
//!
//! Why this shape:
//! - **Untrusted input.** Every length, count, offset and size computation in
//!   the header is checked against the file size before it is used or
//!   allocated, and every failure is a typed [`GgufError`] naming the key or
//!   tensor involved. File data never causes a panic.
//! - **Low peak memory.** [`GgufFile::open`] reads only the header; tensor data
//!   is read with positional reads into per-chunk buffers, and
//!   [`GgufFile::read_f32_rows`] lets a caller stream a large tensor (e.g. a
//!   262144 × 640 token embedding) a few rows at a time.
//! - **Bit-exact dequantization** of F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
//!   Q8_0, Q4_K and Q6_K (see [`dequant`]); other types are reported as
//!   [`GgufError::UnsupportedType`].
//!
//! ```no_run
//! use burn_int8_gguf::GgufFile;
//! let f = GgufFile::open("gemma-3-270m-q4_k_m.gguf")?;
//! let d_model = f.get_u32("gemma3.embedding_length")?;
//! let emb = f.tensor_info("token_embd.weight").unwrap();
//! assert_eq!(emb.shape_row_major(), [262144, d_model as usize]);
//! let first_rows = f.read_f32_rows("token_embd.weight", 0..8)?;
//! # Ok::<(), burn_int8_gguf::GgufError>(())
//! ```

pub mod dequant;
mod error;
pub mod q8_0;
mod reader;
pub mod requantize;
mod types;
mod value;
mod writer;

pub use error::{GgufError, Result};
pub use reader::{DEFAULT_ALIGNMENT, GgufFile, MAX_DIMS, TensorInfo};
pub use types::GgmlType;
pub use value::{Array, Value, ValueType};
pub use writer::{GgufWriter, WRITE_VERSION};
