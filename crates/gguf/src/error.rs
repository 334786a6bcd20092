//! The error type. Every variant that stems from file contents names the key
//! or tensor involved, so a bad checkpoint can be diagnosed from the message.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while opening or reading a GGUF file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// An I/O error from the operating system.
    #[error("I/O error {context} ({path}): {source}", path = path.display())]
    Io {
        path: PathBuf,
        context: String,
        #[source]
        source: io::Error,
    },

    /// The file does not start with `GGUF`.
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },

    /// The version is not 2 or 3.
    #[error(
        "unsupported GGUF version {0} (supported: 2 and 3; a big-endian file reads as a huge number)"
    )]
    UnsupportedVersion(u32),

    /// A fixed-size field runs past the end of the file.
    #[error(
        "file truncated while reading {context}: need {needed} bytes at offset {offset}, file is {file_len} bytes"
    )]
    Truncated {
        context: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },

    /// A declared string length or array count cannot fit in the bytes that are left.
    #[error(
        "{context}: declared length {len} cannot fit in the {available} bytes left in the file"
    )]
    LengthTooLarge {
        context: String,
        len: u64,
        available: u64,
    },

    /// A string is not valid UTF-8.
    #[error("{context}: string is not valid UTF-8")]
    InvalidUtf8 { context: String },

    /// A metadata value type id that GGUF does not define.
    #[error("metadata key '{key}': unknown value type id {type_id}")]
    InvalidValueType { key: String, type_id: u32 },

    /// A bool byte other than 0 or 1.
    #[error("metadata key '{key}': invalid bool byte {value}")]
    InvalidBool { key: String, value: u8 },

    /// Arrays nested deeper than the reader accepts.
    #[error("metadata key '{key}': arrays nested deeper than {max}")]
    NestingTooDeep { key: String, max: usize },

    /// The same metadata key appears twice.
    #[error("duplicate metadata key '{0}'")]
    DuplicateKey(String),

    /// The same tensor name appears twice.
    #[error("duplicate tensor '{0}'")]
    DuplicateTensor(String),

    /// `general.alignment` is not a non-zero power of two.
    #[error("invalid general.alignment {0}: must be a non-zero power of two")]
    InvalidAlignment(String),

    /// A tensor with more than 4 dimensions (ggml's maximum).
    #[error("tensor '{tensor}': {n_dims} dimensions, at most 4 are allowed")]
    TooManyDims { tensor: String, n_dims: u32 },

    /// A ggml type id this crate does not know.
    #[error("tensor '{tensor}': unknown ggml type id {type_id}")]
    UnknownType { tensor: String, type_id: u32 },

    /// A known ggml type that this crate cannot dequantize.
    #[error("tensor '{tensor}': ggml type {type_name} is not supported for dequantization")]
    UnsupportedType {
        tensor: String,
        type_name: &'static str,
    },

    /// The shape does not fit the type (innermost dim not a whole number of blocks).
    #[error("tensor '{tensor}': invalid shape {dims:?}: {reason}")]
    InvalidShape {
        tensor: String,
        dims: Vec<u64>,
        reason: String,
    },

    /// A size or offset computation overflowed.
    #[error("arithmetic overflow computing {0}")]
    Overflow(String),

    /// A tensor offset that is not a multiple of the alignment.
    #[error("tensor '{tensor}': offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    /// A tensor's data range is not inside the file.
    #[error(
        "tensor '{tensor}': data [{start}, {start}+{size}) lies outside the file of {file_len} bytes"
    )]
    TensorOutOfBounds {
        tensor: String,
        start: u64,
        size: u64,
        file_len: u64,
    },

    /// No tensor with this name.
    #[error("no tensor named '{0}'")]
    TensorNotFound(String),

    /// A requested row range is not inside the tensor.
    #[error("tensor '{tensor}': rows {start}..{end} out of range (tensor has {n_rows} rows)")]
    RowsOutOfRange {
        tensor: String,
        start: usize,
        end: usize,
        n_rows: u64,
    },

    /// An output buffer of the wrong length.
    #[error("tensor '{tensor}': output buffer holds {got} values, {expected} needed")]
    BufferSize {
        tensor: String,
        expected: usize,
        got: usize,
    },

    /// Writing a GGUF file failed.
    #[error("I/O error {context}: {source}")]
    Write {
        context: String,
        #[source]
        source: io::Error,
    },

    /// A tensor's data written by a caller of the writer has the wrong length.
    #[error(
        "tensor '{tensor}': {written} bytes of {ggml_type} data written, its shape needs {expected}"
    )]
    TensorSizeMismatch {
        tensor: String,
        ggml_type: &'static str,
        expected: u64,
        written: u64,
    },

    /// A tensor has another ggml type than the operation needs.
    #[error("tensor '{tensor}' is {found}, expected {expected}")]
    WrongTensorType {
        tensor: String,
        expected: &'static str,
        found: &'static str,
    },

    /// Block values and block scales that do not go together.
    #[error("Q8_0 blocks: {values} values and {scales} scales (need 32 values per scale)")]
    BlockMismatch { values: usize, scales: usize },

    /// The metadata key is absent.
    #[error("missing metadata key '{0}'")]
    MissingKey(String),

    /// The metadata value has another type than requested.
    #[error("metadata key '{key}': expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },

    /// An integer value does not fit the requested integer type.
    #[error("metadata key '{key}': value {value} does not fit in {target}")]
    OutOfRange {
        key: String,
        value: String,
        target: &'static str,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;
