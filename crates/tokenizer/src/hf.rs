//! A HF `tokenizer.json`, run by the `tokenizers` crate, with the ids this crate needs looked up
//! once at load time.

use std::collections::HashSet;
use std::path::Path;

use crate::TokenizerError;

const BOS_NAMES: &[&str] = &["<bos>", "<s>"];
const EOS_NAMES: &[&str] = &["<eos>", "</s>"];
const PAD_NAMES: &[&str] = &["<pad>"];
const UNK_NAMES: &[&str] = &["<unk>"];

/// A `tokenizers::Tokenizer` plus its BOS/EOS/padding/unknown ids and its special (control) ids.
#[derive(Debug, Clone)]
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    bos_id: u32,
    eos_id: u32,
    padding_id: Option<u32>,
    unknown_id: Option<u32>,
    special_ids: HashSet<u32>,
}

impl HfTokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        // `tokenizers` reports a missing file as a generic error: keep the io::Error typed.
        let json = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| TokenizerError::InvalidHfTokenizer {
            path: path.to_path_buf(),
            message,
        };
        // `tokenizers` 0.22 unwraps the result of parsing a `decoder` object, so a JSON error
        // inside one panics: a syntax error (found by the mutation pass and cargo-fuzz), or a
        // string that is not UTF-8 or escapes no valid code point (found by cargo-fuzz later).
        // Parsing the whole file as a JSON value first meets every such error with its line
        // and column; skipping it (`IgnoredAny`) checks syntax but not strings. The
        // `catch_unwind` stays as a net for builds that unwind (cargo-fuzz's abort).
        serde_json::from_slice::<serde_json::Value>(&json)
            .map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(&json));
        let inner = match parsed {
            Ok(result) => result.map_err(|e| invalid(e.to_string()))?,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the tokenizers crate panicked while parsing it".into());
                return Err(invalid(message));
            }
        };
        Self::new(inner)
    }

    /// Wraps a tokenizer built in code. BOS is `<bos>` (or `<s>`), EOS `<eos>` (or `</s>`).
    pub fn new(inner: tokenizers::Tokenizer) -> Result<Self, TokenizerError> {
        let find = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
        let bos_id = find(BOS_NAMES).ok_or(TokenizerError::MissingSpecialToken {
            what: "BOS",
            candidates: BOS_NAMES,
        })?;
        let eos_id = find(EOS_NAMES).ok_or(TokenizerError::MissingSpecialToken {
            what: "EOS",
            candidates: EOS_NAMES,
        })?;
        let special_ids = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .collect();
        Ok(Self {
            padding_id: find(PAD_NAMES),
            unknown_id: find(UNK_NAMES),
            inner,
            bos_id,
            eos_id,
            special_ids,
        })
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    pub fn padding_id(&self) -> Option<u32> {
        self.padding_id
    }

    pub fn unknown_id(&self) -> Option<u32> {
        self.unknown_id
    }

    /// Whether `id` is a special added token (skipped when decoding).
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn id_to_piece(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.inner.token_to_id(piece)
    }

    /// Encodes without the file's post-processor (whatever it adds), then puts BOS in front when
    /// `add_bos`: the same contract as the SentencePiece path, whatever the JSON's template says.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Hf(e.to_string()))?;
        let ids = encoding.get_ids();
        let mut out = Vec::with_capacity(ids.len() + 1);
        if add_bos {
            out.push(self.bos_id);
        }
        out.extend_from_slice(ids);
        Ok(out)
    }

    /// Decodes, skipping special tokens; an id the tokenizer does not know is an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        for &id in ids {
            self.check_id(id)?;
        }
        self.decode_unchecked(ids)
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

    pub(crate) fn decode_unchecked(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| TokenizerError::Hf(e.to_string()))
    }
}
