//! Gemma 3 tokenizers, two ways behind one type:
//!
//! - [`Tokenizer::SentencePiece`]: SentencePiece BPE over a GGUF-style [`Vocab`] (`tokenizer.ggml.*`),
//!   implemented here so that a GGUF file (or a `tokenizer.vocab.json` beside a preset) is all a model
//!   needs. It reproduces the ids of Keras/SentencePiece for Gemma 3 (tested on the reference prompts);
//!   see [`sentencepiece`] for the exact algorithm and its one deliberate difference (control tokens
//!   written in the text are parsed, as HF `tokenizers` does).
//! - [`Tokenizer::HuggingFace`]: a HF `tokenizer.json` through the `tokenizers` crate.
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
use std::path::Path;

mod error;
mod hf;
pub mod sentencepiece;
mod stream;
mod vocab;

pub use error::TokenizerError;
pub use hf::HfTokenizer;
pub use sentencepiece::SentencePieceBpe;
pub use stream::StreamDecoder;
pub use vocab::{TokenType, VOCAB_FORMAT, VOCAB_FORMAT_VERSION, Vocab};

/// The name under which a preset directory carries its vocabulary (see [`Vocab::save_json`]).
pub const VOCAB_FILE_NAME: &str = "tokenizer.vocab.json";

/// A Gemma tokenizer: SentencePiece BPE over a GGUF vocabulary, or a HF `tokenizer.json`.
// Built once per model and then borrowed: a 256-byte variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Tokenizer {
    SentencePiece(SentencePieceBpe),
    HuggingFace(Box<HfTokenizer>),
}

impl Tokenizer {
    /// A SentencePiece BPE tokenizer over a GGUF-style vocabulary (validated first).
    pub fn from_vocab(vocab: Vocab) -> Result<Self, TokenizerError> {
        Ok(Self::SentencePiece(SentencePieceBpe::new(vocab)?))
    }

    /// [`Tokenizer::from_vocab`] on a vocabulary JSON file (see [`Vocab::load_json`]).
    pub fn from_vocab_json(path: &Path) -> Result<Self, TokenizerError> {
        Self::from_vocab(Vocab::load_json(path)?)
    }

    /// A HF `tokenizer.json`; it must have `<bos>` and `<eos>` tokens (or `<s>` and `</s>`).
    pub fn from_hf_file(path: &Path) -> Result<Self, TokenizerError> {
        Ok(Self::HuggingFace(Box::new(HfTokenizer::from_file(path)?)))
    }

    /// Token ids of `text`, with BOS in front when `add_bos` (nothing else is added). Control
    /// tokens written literally in `text` (`<start_of_turn>`, `<end_of_turn>`, ...) become their ids.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        match self {
            Self::SentencePiece(t) => t.encode(text, add_bos),
            Self::HuggingFace(t) => t.encode(text, add_bos),
        }
    }

    /// The text of `ids`: control tokens give no text, byte tokens are joined into UTF-8 (invalid
    /// sequences become U+FFFD). An id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        match self {
            Self::SentencePiece(t) => t.decode(ids),
            Self::HuggingFace(t) => t.decode(ids),
        }
    }

    /// A decoder for ids that arrive one at a time (generation).
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        match self {
            Self::SentencePiece(t) => StreamDecoder::sentencepiece(t),
            Self::HuggingFace(t) => StreamDecoder::hugging_face(t),
        }
    }

    /// The piece of `id` as the vocabulary stores it (`▁` for space, `<0xNN>` for bytes).
    pub fn id_to_piece(&self, id: u32) -> Option<Cow<'_, str>> {
        match self {
            Self::SentencePiece(t) => t.id_to_piece(id).map(Cow::Borrowed),
            Self::HuggingFace(t) => t.id_to_piece(id).map(Cow::Owned),
        }
    }

    /// The id of a piece as the vocabulary stores it.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        match self {
            Self::SentencePiece(t) => t.token_id(piece),
            Self::HuggingFace(t) => t.token_id(piece),
        }
    }

    /// Number of token ids (including added tokens for HF).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::SentencePiece(t) => t.vocab_size(),
            Self::HuggingFace(t) => t.vocab_size(),
        }
    }

    /// Beginning-of-sequence id (2 for Gemma 3).
    pub fn bos_id(&self) -> u32 {
        match self {
            Self::SentencePiece(t) => t.vocab().bos_id,
            Self::HuggingFace(t) => t.bos_id(),
        }
    }

    /// End-of-sequence id (1 for Gemma 3). Instruction-tuned Gemma also stops at
    /// [`Tokenizer::end_of_turn_id`].
    pub fn eos_id(&self) -> u32 {
        match self {
            Self::SentencePiece(t) => t.vocab().eos_id,
            Self::HuggingFace(t) => t.eos_id(),
        }
    }

    /// Padding id (0 for Gemma 3), if any.
    pub fn padding_id(&self) -> Option<u32> {
        match self {
            Self::SentencePiece(t) => t.vocab().padding_id,
            Self::HuggingFace(t) => t.padding_id(),
        }
    }

    /// Unknown-token id (3 for Gemma 3), if any.
    pub fn unknown_id(&self) -> Option<u32> {
        match self {
            Self::SentencePiece(t) => t.vocab().unknown_id,
            Self::HuggingFace(t) => t.unknown_id(),
        }
    }

    /// The `<end_of_turn>` id (106 for Gemma 3), where a chat turn ends.
    pub fn end_of_turn_id(&self) -> Option<u32> {
        self.token_id("<end_of_turn>")
    }

    /// Whether `id` is a control token, which [`Tokenizer::decode`] renders as no text.
    pub fn is_control(&self, id: u32) -> bool {
        match self {
            Self::SentencePiece(t) => matches!(
                t.token_type(id),
                Some(TokenType::Control | TokenType::Unknown)
            ),
            Self::HuggingFace(t) => t.is_special(id),
        }
    }

    /// Whether the model wants BOS in front of a prompt (GGUF `add_bos_token`; always true for HF,
    /// whose Gemma template adds it).
    pub fn add_bos_default(&self) -> bool {
        match self {
            Self::SentencePiece(t) => t.vocab().add_bos,
            Self::HuggingFace(_) => true,
        }
    }
}
