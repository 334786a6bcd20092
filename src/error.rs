use std::path::PathBuf;

/// Every failure of this crate. Messages say what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum Int8Error {
    #[error("{what} holds {count} non-finite value(s) (NaN or Inf); refusing to quantize")]
    NonFinite { what: String, count: usize },

    /// [`crate::QuantizeConfig::skip`] named a path with no layer at or under it.
    #[error(
        "skip `{path}` names no layer of the model (paths are dot-separated field names and match \
         a layer or everything under a module; `*` stands for one whole segment); closest: {}",
        closest.join(", ")
    )]
    UnknownSkip { path: String, closest: Vec<String> },

    /// [`crate::QuantizeConfig::scheme_for`] named a path with no layer at or under it.
    #[error(
        "scheme_for `{path}` names no layer of the model (paths are dot-separated field names and \
         match a layer or everything under a module; `*` stands for one whole segment); closest: {}",
        closest.join(", ")
    )]
    UnknownSchemePath { path: String, closest: Vec<String> },

    /// A weight whose shape the asked int8 format cannot hold (Q8_0 needs whole blocks).
    #[error("{what}: {format} cannot quantize it: {reason}")]
    UnsupportedFormat {
        what: String,
        format: crate::Int8Format,
        reason: String,
    },

    #[error("axis {axis} is out of range for a rank-{rank} tensor")]
    AxisOutOfRange { axis: usize, rank: usize },

    #[error("{what} is empty (shape {shape:?}); nothing to quantize")]
    EmptyTensor { what: String, shape: Vec<usize> },

    #[error("{what}: expected dtype {expected:?}, got {found:?}")]
    WrongDType {
        what: String,
        expected: burn::tensor::DType,
        found: burn::tensor::DType,
    },

    #[error("{what}: expected shape {expected}, got {found:?}")]
    ShapeMismatch {
        what: String,
        expected: String,
        found: Vec<usize>,
    },

    #[error("layer `{path}`: {source}")]
    Layer {
        path: String,
        #[source]
        source: Box<Int8Error>,
    },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("record {path}: {message}")]
    Record { path: PathBuf, message: String },

    #[error(
        "record {path} holds {found} layers (e.g. `{example}`) but the model expects {expected}; \
         {hint}"
    )]
    PrecisionMismatch {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
        example: String,
        hint: &'static str,
    },
}

impl Int8Error {
    /// Attaches the module path of the layer that failed.
    pub(crate) fn at_layer(self, path: &str) -> Self {
        Int8Error::Layer {
            path: path.to_string(),
            source: Box::new(self),
        }
    }
}
