//! A SentencePiece vocabulary as GGUF carries it (`tokenizer.ggml.*`), as a plain struct, plus the
//! JSON file format that lets a preset directory carry it without the GGUF file.
//!
//! # The `tokenizer.vocab.json` format (version 1)
//!
//! One JSON object, UTF-8, with exactly these keys:
//!
//! | key | JSON type | meaning (GGUF key) |
//! | --- | --- | --- |
//! | `format` | string | always `"burn-int8-tokenizer/vocab"` |
//! | `version` | integer | always `1`; a reader refuses other versions |
//! | `tokens` | array of strings | the piece of each id (`tokenizer.ggml.tokens`), `▁` (U+2581) for space |
//! | `scores` | array of numbers | the BPE merge score of each id (`tokenizer.ggml.scores`), as f32 |
//! | `token_types` | array of integers | SentencePiece type of each id (`tokenizer.ggml.token_type`), see [`TokenType`] |
//! | `bos_id`, `eos_id` | integer | `tokenizer.ggml.bos_token_id`, `tokenizer.ggml.eos_token_id` |
//! | `unknown_id`, `padding_id` | integer or null | `tokenizer.ggml.unknown_token_id`, `tokenizer.ggml.padding_token_id` |
//! | `add_bos` | bool | `tokenizer.ggml.add_bos_token` |
//! | `add_space_prefix` | bool | `tokenizer.ggml.add_space_prefix` |
//!
//! The three arrays have one entry per token id, in id order. `crates/tokenizer/tests/export_vocab.py`
//! writes this format from a GGUF file.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TokenizerError;

/// The value of the `format` key of a vocabulary JSON file.
pub const VOCAB_FORMAT: &str = "burn-int8-tokenizer/vocab";
/// The version of the vocabulary JSON format that this crate writes and reads.
pub const VOCAB_FORMAT_VERSION: u32 = 1;

/// SentencePiece token types, as GGUF's `tokenizer.ggml.token_type` stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum TokenType {
    /// Type 0; treated as [`TokenType::Normal`].
    Undefined = 0,
    /// An ordinary piece that BPE merges can produce.
    Normal = 1,
    /// The unknown token.
    Unknown = 2,
    /// A control token (`<bos>`, `<eos>`, `<start_of_turn>`, ...): matched literally in text, no text when decoded.
    Control = 3,
    /// A user-defined piece (`\n`, runs of spaces or tabs, `<table>`, ...): matched literally in text,
    /// never merged with its neighbours, decoded as its text.
    UserDefined = 4,
    /// A piece that is in the vocabulary but unused by the model.
    Unused = 5,
    /// A byte-fallback token `<0xNN>`.
    Byte = 6,
}

impl TokenType {
    /// The type for a raw GGUF value; values outside 0..=6 count as [`TokenType::Undefined`].
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// A GGUF-style SentencePiece vocabulary. A plain struct so that a GGUF reader fills it directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// The piece of each token id; spaces inside normal pieces are `▁` (U+2581).
    pub tokens: Vec<String>,
    /// The merge score of each token id; BPE merges the pair whose result scores highest.
    pub scores: Vec<f32>,
    /// The raw [`TokenType`] of each token id.
    pub token_types: Vec<i32>,
    pub bos_id: u32,
    pub eos_id: u32,
    pub unknown_id: Option<u32>,
    pub padding_id: Option<u32>,
    /// Whether the model expects BOS in front of a prompt (informational: `encode` takes `add_bos`).
    pub add_bos: bool,
    /// Whether a `▁` is put in front of the text (SentencePiece's dummy prefix); false for Gemma 3.
    pub add_space_prefix: bool,
}

/// The file layout, borrowed for writing so that saving does not copy the vocabulary.
#[derive(Serialize)]
struct VocabFileRef<'a> {
    format: &'a str,
    version: u32,
    tokens: &'a [String],
    scores: &'a [f32],
    token_types: &'a [i32],
    bos_id: u32,
    eos_id: u32,
    unknown_id: Option<u32>,
    padding_id: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabFile {
    format: String,
    version: u32,
    tokens: Vec<String>,
    scores: Vec<f32>,
    token_types: Vec<i32>,
    bos_id: u32,
    eos_id: u32,
    unknown_id: Option<u32>,
    padding_id: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
}

impl Vocab {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The [`TokenType`] of `id`, or `None` when out of range.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.token_types
            .get(id as usize)
            .map(|&raw| TokenType::from_raw(raw))
    }

    /// Checks what the tokenizer relies on: a non-empty vocabulary, arrays of one length, ids that fit
    /// `u32`, finite scores (BPE compares them, and JSON cannot store an infinity), and special ids in
    /// range.
    pub fn validate(&self) -> Result<(), TokenizerError> {
        let n = self.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if self.scores.len() != n || self.token_types.len() != n {
            return Err(TokenizerError::LengthMismatch {
                tokens: n,
                scores: self.scores.len(),
                token_types: self.token_types.len(),
            });
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::VocabTooLarge(n));
        }
        if let Some((id, &score)) = self.scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(TokenizerError::NonFiniteScore { id, score });
        }
        let specials = [
            ("BOS", Some(self.bos_id)),
            ("EOS", Some(self.eos_id)),
            ("unknown", self.unknown_id),
            ("padding", self.padding_id),
        ];
        for (what, id) in specials {
            if let Some(id) = id
                && id as usize >= n
            {
                return Err(TokenizerError::SpecialIdOutOfRange {
                    what,
                    id,
                    vocab_size: n,
                });
            }
        }
        Ok(())
    }

    /// Writes the vocabulary as JSON (format in the module docs), atomically: a temporary file in
    /// the same directory, flushed to disk, then renamed over `path`, so a reader never sees half a file.
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<(), TokenizerError> {
        let path = path.as_ref();
        self.validate()?;
        let file = VocabFileRef {
            format: VOCAB_FORMAT,
            version: VOCAB_FORMAT_VERSION,
            tokens: &self.tokens,
            scores: &self.scores,
            token_types: &self.token_types,
            bos_id: self.bos_id,
            eos_id: self.eos_id,
            unknown_id: self.unknown_id,
            padding_id: self.padding_id,
            add_bos: self.add_bos,
            add_space_prefix: self.add_space_prefix,
        };
        let tmp = temp_path(path);
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| TokenizerError::Io { path: p, source }
        };
        let result = (|| {
            let f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
            let mut w = BufWriter::new(f);
            serde_json::to_writer(&mut w, &file).map_err(|e| TokenizerError::Io {
                path: tmp.clone(),
                source: e.into(),
            })?;
            w.flush().map_err(io_err(&tmp))?;
            let f = w.into_inner().map_err(|e| TokenizerError::Io {
                path: tmp.clone(),
                source: e.into_error(),
            })?;
            f.sync_all().map_err(io_err(&tmp))?;
            fs::rename(&tmp, path).map_err(io_err(path))
        })();
        if result.is_err() {
            // Best effort: the temporary file is garbage once the write failed.
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Reads a vocabulary written by [`Vocab::save_json`] (or `tests/export_vocab.py`) and validates it.
    pub fn load_json(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| TokenizerError::InvalidVocabJson {
            path: path.to_path_buf(),
            message,
        };
        let file: VocabFile = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if file.format != VOCAB_FORMAT {
            return Err(invalid(format!(
                "format is {:?}, expected {VOCAB_FORMAT:?}",
                file.format
            )));
        }
        if file.version != VOCAB_FORMAT_VERSION {
            return Err(invalid(format!(
                "version {} is not supported (this crate reads version {VOCAB_FORMAT_VERSION})",
                file.version
            )));
        }
        let vocab = Vocab {
            tokens: file.tokens,
            scores: file.scores,
            token_types: file.token_types,
            bos_id: file.bos_id,
            eos_id: file.eos_id,
            unknown_id: file.unknown_id,
            padding_id: file.padding_id,
            add_bos: file.add_bos,
            add_space_prefix: file.add_space_prefix,
        };
        vocab.validate()?;
        Ok(vocab)
    }
}

/// `dir/.name.tmp-<pid>`: same directory (so rename is atomic), hidden, unique per process.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vocab.json".to_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_type_from_raw() {
        assert_eq!(TokenType::from_raw(3), TokenType::Control);
        assert_eq!(TokenType::from_raw(6), TokenType::Byte);
        assert_eq!(TokenType::from_raw(42), TokenType::Undefined);
        assert_eq!(TokenType::from_raw(-1), TokenType::Undefined);
    }

    #[test]
    fn temp_path_is_a_hidden_sibling() {
        let t = temp_path(Path::new("/a/b/tokenizer.vocab.json"));
        assert_eq!(t.parent(), Some(Path::new("/a/b")));
        assert!(t.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .starts_with(".tokenizer.vocab.json.tmp-")
        }));
    }
}
