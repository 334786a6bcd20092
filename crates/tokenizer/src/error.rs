//! The one error type of this crate: every failure on user data (a vocabulary, a file, an id) is a
//! typed [`TokenizerError`], never a panic.

use std::path::PathBuf;

/// Everything that can go wrong when building a tokenizer or using it.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A vocabulary with no tokens cannot encode anything.
    #[error("the vocabulary is empty")]
    EmptyVocab,

    /// `tokens`, `scores` and `token_types` must describe the same tokens.
    #[error(
        "vocabulary arrays differ in length: {tokens} tokens, {scores} scores, {token_types} token types"
    )]
    LengthMismatch {
        tokens: usize,
        scores: usize,
        token_types: usize,
    },

    /// Token ids are `u32`; a larger vocabulary cannot be addressed.
    #[error("the vocabulary has {0} tokens, more than a u32 id can address")]
    VocabTooLarge(usize),

    /// A merge score that is NaN or infinite (a JSON number such as `1e39` overflows f32).
    #[error("the score of token {id} is {score}, not a finite f32")]
    NonFiniteScore { id: usize, score: f32 },

    /// A special id of the vocabulary (BOS, EOS, unknown, padding) names no token.
    #[error("{what} id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    SpecialIdOutOfRange {
        what: &'static str,
        id: u32,
        vocab_size: usize,
    },

    /// An id given to `decode` (or a stream decoder) names no token.
    #[error("token id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    IdOutOfRange { id: u32, vocab_size: usize },

    /// Text needed a byte-fallback token `<0xNN>` that the vocabulary lacks, and the
    /// vocabulary has no unknown token to stand in for it.
    #[error("cannot tokenize byte {byte:#04x}: no <0x{byte:02X}> token and no unknown token")]
    Untokenizable { byte: u8 },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A vocabulary JSON file that does not parse, or is not in the format of [`crate::Vocab`].
    #[error("{path}: invalid vocabulary JSON: {message}")]
    InvalidVocabJson { path: PathBuf, message: String },

    /// A HF `tokenizer.json` that the `tokenizers` crate cannot load.
    #[error("{path}: cannot load HF tokenizer.json: {message}")]
    InvalidHfTokenizer { path: PathBuf, message: String },

    /// A HF tokenizer lacks a token this crate needs (BOS or EOS).
    #[error("the tokenizer has no {what} token (looked for {candidates:?})")]
    MissingSpecialToken {
        what: &'static str,
        candidates: &'static [&'static str],
    },

    /// The `tokenizers` crate failed while encoding or decoding.
    #[error("HF tokenizer: {0}")]
    Hf(String),
}
