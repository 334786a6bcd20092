//! Gemma 3 tokenizers: one [`Tokenizer`] type wrapping a `tokenizers::Tokenizer`, made one of two
//! ways:
//!
//! - [`Tokenizer::from_vocab`]: built from a GGUF-style SentencePiece [`Vocab`] (`tokenizer.ggml.*`)
//!   as `transformers`' Gemma converter builds it (BPE with merges derived from the pieces' scores,
//!   byte fallback, control and user-defined pieces as added tokens; see [`spm`]), so that a GGUF
//!   file (or a `tokenizer.vocab.json` beside a preset) is all a model needs. It gives the ids of
//!   Keras/SentencePiece for Gemma 3 (tested on the reference prompts), and parses control tokens
//!   written in the text, as HF `tokenizers` does.
//! - [`Tokenizer::from_hf_file`]: a HF `tokenizer.json`.
//!
//! Both give the same contract: `encode(text, add_bos)` puts BOS in front only when asked and adds
//! nothing else; `decode` drops control tokens (BOS, EOS, padding, `<start_of_turn>`, ...) and keeps
//! all text; [`Tokenizer::stream_decoder`] decodes generated ids one at a time without splitting a
//! UTF-8 character that arrives as several byte tokens.
//!
//! ```no_run
//! # fn main() -> Result<(), burn_int8_tokenizer::TokenizerError> {
//! use burn_int8_tokenizer::{Tokenizer, Vocab};
//! let tokenizer = Tokenizer::from_vocab(Vocab::load_json("preset/tokenizer.vocab.json")?)?;
//! let ids = tokenizer.encode("Keras is a", true)?; // [2, 236855, 9840, 563, 496] for Gemma 3
//! let mut stream = tokenizer.stream_decoder();
//! for &id in &ids {
//!     print!("{}", stream.step(id)?);
//! }
//! print!("{}", stream.finish()?);
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

mod error;
mod hf;
pub mod spm;
mod stream;
mod vocab;

pub use error::TokenizerError;
pub use stream::StreamDecoder;
pub use vocab::{TokenType, VOCAB_FORMAT, VOCAB_FORMAT_VERSION, Vocab};

/// The name under which a preset directory carries its vocabulary (see [`Vocab::save_json`]).
pub const VOCAB_FILE_NAME: &str = "tokenizer.vocab.json";

/// A Gemma tokenizer: a `tokenizers::Tokenizer` built from a GGUF vocabulary, or loaded from a HF
/// `tokenizer.json`, with the ids this crate needs looked up once.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    source: Source,
    bos_id: u32,
    eos_id: u32,
    padding_id: Option<u32>,
    unknown_id: Option<u32>,
}

#[derive(Debug, Clone)]
enum Source {
    /// Built from this vocabulary: ids are its token ids, and decoding reads its pieces.
    Vocab(Box<Vocab>),
    /// A `tokenizer.json`, with the ids of its special added tokens.
    HfFile { special_ids: HashSet<u32> },
}

impl Tokenizer {
    /// A tokenizer built from a GGUF-style SentencePiece vocabulary (validated first).
    pub fn from_vocab(vocab: Vocab) -> Result<Self, TokenizerError> {
        vocab.validate()?;
        let inner = spm::build(&vocab)?;
        Ok(Self {
            inner,
            bos_id: vocab.bos_id,
            eos_id: vocab.eos_id,
            padding_id: vocab.padding_id,
            unknown_id: vocab.unknown_id,
            source: Source::Vocab(Box::new(vocab)),
        })
    }

    /// [`Tokenizer::from_vocab`] on a vocabulary JSON file (see [`Vocab::load_json`]).
    pub fn from_vocab_json(path: &Path) -> Result<Self, TokenizerError> {
        Self::from_vocab(Vocab::load_json(path)?)
    }

    /// A HF `tokenizer.json`; it must have `<bos>` and `<eos>` tokens (or `<s>` and `</s>`).
    pub fn from_hf_file(path: &Path) -> Result<Self, TokenizerError> {
        Self::from_hf(hf::load_file(path)?)
    }

    /// Wraps a `tokenizers` tokenizer made elsewhere, as [`Tokenizer::from_hf_file`] does.
    pub fn from_hf(inner: tokenizers::Tokenizer) -> Result<Self, TokenizerError> {
        let (bos_id, eos_id, padding_id, unknown_id) = hf::special_ids(&inner)?;
        let special_ids = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .collect();
        Ok(Self {
            inner,
            source: Source::HfFile { special_ids },
            bos_id,
            eos_id,
            padding_id,
            unknown_id,
        })
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The vocabulary this tokenizer was built from; `None` for a `tokenizer.json`.
    pub fn vocab(&self) -> Option<&Vocab> {
        match &self.source {
            Source::Vocab(vocab) => Some(vocab),
            Source::HfFile { .. } => None,
        }
    }

    /// The SentencePiece type of `id`; `None` for a `tokenizer.json` or an id out of range.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.vocab()?.token_type(id)
    }

    /// Token ids of `text`, with BOS in front when `add_bos` (nothing else is added). Control
    /// tokens written literally in `text` (`<start_of_turn>`, `<end_of_turn>`, ...) become their ids.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        // Without the post-processor (`false`): BOS goes in by `add_bos`, whatever a
        // `tokenizer.json`'s template says.
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Hf(e.to_string()))?;
        let ids = encoding.get_ids();
        if let Some(vocab) = self.vocab()
            && let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab.len())
        {
            // The stand-in of a missing byte token when there is no unknown token (see `spm`).
            return Err(TokenizerError::Untokenizable {
                byte: (id as usize - vocab.len()) as u8,
            });
        }
        let mut out = Vec::with_capacity(ids.len() + 1);
        if add_bos {
            out.push(self.bos_id);
        }
        out.extend_from_slice(ids);
        Ok(out)
    }

    /// The text of `ids`: control tokens give no text, byte tokens are joined into UTF-8 (invalid
    /// sequences become U+FFFD). An id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        if self.vocab().is_none() {
            for &id in ids {
                self.check_id(id)?;
            }
            return self.decode_unchecked(ids);
        }
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        // One space goes, from the first piece with any bytes (control tokens have none), as
        // SentencePiece and the stream decoder do: `▁ ▁hello` is " hello", not "hello".
        let mut seen_text = false;
        for &id in ids {
            let piece = self.piece_bytes(id)?;
            if !seen_text
                && !piece.is_empty()
                && self.add_space_prefix()
                && let Some(rest) = piece.strip_prefix(b" ")
            {
                bytes.extend_from_slice(rest);
            } else {
                bytes.extend_from_slice(&piece);
            }
            seen_text |= !piece.is_empty();
        }
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The bytes `id` adds to decoded text (a tokenizer built from a vocabulary only).
    pub(crate) fn piece_bytes(&self, id: u32) -> Result<Cow<'_, [u8]>, TokenizerError> {
        self.vocab()
            .and_then(|vocab| spm::piece_bytes(vocab, id))
            .ok_or(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.vocab_size(),
            })
    }

    /// Whether a decoded text loses its first space (SentencePiece's dummy prefix).
    pub(crate) fn add_space_prefix(&self) -> bool {
        self.vocab().is_some_and(|v| v.add_space_prefix)
    }

    pub(crate) fn check_id(&self, id: u32) -> Result<(), TokenizerError> {
        // `tokenizers` silently drops unknown ids when decoding.
        match self.inner.id_to_token(id) {
            Some(_) => Ok(()),
            None => Err(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.vocab_size(),
            }),
        }
    }

    /// `tokenizers`' decoding, skipping special tokens (a `tokenizer.json` only).
    pub(crate) fn decode_unchecked(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| TokenizerError::Hf(e.to_string()))
    }

    /// A decoder for ids that arrive one at a time (generation).
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }

    /// The piece of `id` as the vocabulary stores it (`▁` for space, `<0xNN>` for bytes).
    pub fn id_to_piece(&self, id: u32) -> Option<Cow<'_, str>> {
        match &self.source {
            Source::Vocab(vocab) => vocab
                .tokens
                .get(id as usize)
                .map(|p| Cow::Borrowed(p.as_str())),
            Source::HfFile { .. } => self.inner.id_to_token(id).map(Cow::Owned),
        }
    }

    /// The id of a piece as the vocabulary stores it (the lowest id if it holds a piece twice).
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        let found = self.inner.token_to_id(piece);
        match &self.source {
            Source::Vocab(vocab) => match found {
                Some(id) if vocab.tokens.get(id as usize).is_some_and(|p| p == piece) => Some(id),
                // The BPE vocabulary spells byte tokens as `tokenizers` looks them up and leaves
                // out byte-typed pieces otherwise (see `spm`): the pieces themselves decide.
                _ => vocab
                    .tokens
                    .iter()
                    .position(|p| p == piece)
                    .map(|id| id as u32),
            },
            Source::HfFile { .. } => found,
        }
    }

    /// Number of token ids (including added tokens for HF).
    pub fn vocab_size(&self) -> usize {
        match &self.source {
            Source::Vocab(vocab) => vocab.len(),
            Source::HfFile { .. } => self.inner.get_vocab_size(true),
        }
    }

    /// Beginning-of-sequence id (2 for Gemma 3).
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// End-of-sequence id (1 for Gemma 3). Instruction-tuned Gemma also stops at
    /// [`Tokenizer::end_of_turn_id`].
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Padding id (0 for Gemma 3), if any.
    pub fn padding_id(&self) -> Option<u32> {
        self.padding_id
    }

    /// Unknown-token id (3 for Gemma 3), if any.
    pub fn unknown_id(&self) -> Option<u32> {
        self.unknown_id
    }

    /// The `<end_of_turn>` id (106 for Gemma 3), where a chat turn ends.
    pub fn end_of_turn_id(&self) -> Option<u32> {
        self.token_id("<end_of_turn>")
    }

    /// Whether `id` is a control token (a special added token of a `tokenizer.json`), which
    /// [`Tokenizer::decode`] renders as no text.
    pub fn is_control(&self, id: u32) -> bool {
        match &self.source {
            Source::Vocab(vocab) => matches!(
                vocab.token_type(id),
                Some(TokenType::Control | TokenType::Unknown)
            ),
            Source::HfFile { special_ids } => special_ids.contains(&id),
        }
    }

    /// Whether the model wants BOS in front of a prompt (GGUF `add_bos_token`; always true for HF,
    /// whose Gemma template adds it).
    pub fn add_bos_default(&self) -> bool {
        self.vocab().is_none_or(|v| v.add_bos)
    }
}
