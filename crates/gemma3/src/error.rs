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
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("tensor `{name}`: {count} non-finite value(s)")]
    NonFinite { name: String, count: usize },

    /// A Q8_0 tensor holding the value -128, which ggml never writes (its values are
    /// -127..=127) and the int8 kernels cannot negate: it is not loaded as stored.
    #[error(
        "tensor `{name}`: {count} Q8_0 value(s) of -128, outside the -127..=127 that ggml writes and the int8 \
         kernels take; not loaded as stored (the `keras` scheme quantizes it from its dequantized values)"
    )]
    Q8_0MinusOneTwentyEight { name: String, count: usize },

    /// A GGUF file the reader refused, or a key or tensor it lacks; `path` names the file.
    #[error("{}: {source}", path.display())]
    Gguf {
        path: PathBuf,
        #[source]
        source: burn_int8_gguf::GgufError,
    },

    #[error(transparent)]
    Tokenizer(#[from] burn_int8_tokenizer::TokenizerError),

    #[error(transparent)]
    Int8(#[from] burn_int8::Int8Error),

    #[error("the prompt is empty")]
    EmptyPrompt,

    #[error("the prompt has {tokens} tokens (BOS included) but {limit} are allowed ({why})")]
    PromptTooLong {
        tokens: usize,
        limit: usize,
        why: &'static str,
    },

    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange { id: u32, vocab_size: usize },

    #[error("{0}")]
    Preset(String),

    /// A file of a preset does not hash to the xxh3-64 the preset records for it
    /// (`checksums.json`, or for older presets `config.json`'s `burn_int8.weights_xxh3`): it
    /// was corrupted or edited after the save. (The CLI words the remedy as `--no-verify`.)
    #[error(
        "{path} is corrupt or was changed after the save: its xxh3-64 checksum is {found} but the preset records \
         {expected}; save the preset again, or load it with `PresetOptions {{ verify_checksum: false }}` to accept \
         it as it is"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// A model or tokenizer that a GGUF file cannot hold as llama.cpp would read it.
    #[error("GGUF export: {0}")]
    GgufExport(String),

    #[error("eval: {0}")]
    Eval(String),

    #[error("sampling option {option} = {value}: expected {expected}")]
    InvalidSampler {
        option: &'static str,
        value: String,
        expected: &'static str,
    },

    /// A hyper-parameter out of range, checked before anything is allocated. `source_name` is
    /// the file (or `GGUF metadata` of a file, or `Gemma3Config` for a config built in code),
    /// `field` the key as that source spells it.
    #[error("{source_name}: {field} = {value}: expected {expected}")]
    InvalidConfig {
        source_name: String,
        field: String,
        value: String,
        expected: String,
    },

    /// The tokenizer knows more tokens than the embedding table has rows: their ids would have
    /// no embedding. (Fewer is fine: the extra rows are padding.)
    #[error(
        "{source_name}: the tokenizer has {tokenizer} tokens but the embedding table has {embedding} rows; \
         the ids from {embedding} on would have no embedding"
    )]
    VocabMismatch {
        source_name: String,
        tokenizer: usize,
        embedding: usize,
    },

    /// An option asks for more positions than the model has (`max_position_embeddings`).
    #[error(
        "{option} = {value} exceeds the model's context of {context} positions (max_position_embeddings)"
    )]
    ExceedsContext {
        option: &'static str,
        value: usize,
        context: usize,
    },

    /// A preset's `config.json` describes another architecture than its `model.bpk` holds.
    #[error("{path}: config.json says {field} = {config}, but model.bpk has {record}")]
    PresetMismatch {
        path: PathBuf,
        field: &'static str,
        config: String,
        record: String,
    },

    /// The forward pass produced NaN or infinite logits; `layer` is the first part of the model
    /// whose output stopped being finite (`embed_tokens`, `layers.N`, `norm`, or the tied output
    /// projection), found by re-running the pass one layer at a time.
    #[error(
        "the forward pass produced non-finite logits: the output of `{layer}` is the first that is not finite \
         (weights or activations overflow f32)"
    )]
    NonFiniteLogits { layer: String },

    /// A save with overwrite onto a directory that is not a preset: it holds files a preset
    /// never has, which the save would delete.
    #[error(
        "{path} is not a preset (it holds {}), so it is not replaced; remove it yourself or save elsewhere",
        found.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
    )]
    NotAPreset { path: PathBuf, found: Vec<String> },

    /// A checkpoint file too small for the model its config describes.
    #[error(
        "{path}: {bytes} bytes cannot hold the {params} parameters the config describes (at least {needed} bytes \
         expected); the config and the weights disagree"
    )]
    CheckpointTooSmall {
        path: PathBuf,
        bytes: u64,
        params: u64,
        needed: u64,
    },
}

/// Wraps the GGUF reader's errors on `file` with the file's path (its own messages name keys,
/// tensors and offsets, not the file).
pub(crate) fn in_gguf(
    file: &burn_int8_gguf::GgufFile,
) -> impl Fn(burn_int8_gguf::GgufError) -> Gemma3Error + '_ {
    |source| Gemma3Error::Gguf {
        path: file.path().to_path_buf(),
        source,
    }
}

/// A failed atomic write (preset save, HF export): its I/O errors as [`Gemma3Error::Io`], the
/// rest (the path exists, no name to save to) as [`Gemma3Error::Preset`] with its message.
impl From<burn_int8::io::atomic::AtomicError> for Gemma3Error {
    fn from(error: burn_int8::io::atomic::AtomicError) -> Self {
        match error {
            burn_int8::io::atomic::AtomicError::Io { path, source } => io(path, source),
            other => Gemma3Error::Preset(other.to_string()),
        }
    }
}

pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Gemma3Error {
    Gemma3Error::Io {
        path: path.into(),
        source,
    }
}
