use std::path::PathBuf;

/// Every failure of the Gemma3 crate; messages name the file, tensor or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum Gemma3Error {
    #[error("config: {0}")]
    Config(String),

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },

    #[error("checkpoint lacks tensor `{0}`")]
    MissingTensor(String),

    #[error("checkpoint has unexpected tensor(s): {0:?}")]
    UnexpectedTensors(Vec<String>),

    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },

    #[error("tensor `{name}`: {count} non-finite value(s)")]
    NonFinite { name: String, count: usize },

    #[error(transparent)]
    Gguf(#[from] burn_int8_gguf::GgufError),

    #[error(transparent)]
    Tokenizer(#[from] burn_int8_tokenizer::TokenizerError),

    #[error(transparent)]
    Int8(#[from] burn_int8::Int8Error),

    #[error("the prompt is empty")]
    EmptyPrompt,

    #[error("the prompt has {tokens} tokens (BOS included) but {limit} are allowed ({why})")]
    PromptTooLong { tokens: usize, limit: usize, why: &'static str },

    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange { id: u32, vocab_size: usize },

    #[error("{0}")]
    Preset(String),

    #[error("eval: {0}")]
    Eval(String),

    #[error("sampling option {option} = {value}: expected {expected}")]
    InvalidSampler { option: &'static str, value: String, expected: &'static str },
}

pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Gemma3Error {
    Gemma3Error::Io { path: path.into(), source }
}
