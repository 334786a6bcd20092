//! Loading a HF `tokenizer.json` into the `tokenizers` crate without letting it panic, and
//! finding the ids this crate needs in it.

use std::path::Path;

use crate::TokenizerError;

const BOS_NAMES: &[&str] = &["<bos>", "<s>"];
const EOS_NAMES: &[&str] = &["<eos>", "</s>"];
const PAD_NAMES: &[&str] = &["<pad>"];
const UNK_NAMES: &[&str] = &["<unk>"];

/// Loads a `tokenizer.json`.
pub(crate) fn load_file(path: &Path) -> Result<tokenizers::Tokenizer, TokenizerError> {
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
    Ok(inner)
}

/// The BOS, EOS, padding and unknown ids of a `tokenizer.json`, by their usual names.
pub(crate) fn special_ids(
    inner: &tokenizers::Tokenizer,
) -> Result<(u32, u32, Option<u32>, Option<u32>), TokenizerError> {
    let find = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
    let bos_id = find(BOS_NAMES).ok_or(TokenizerError::MissingSpecialToken {
        what: "BOS",
        candidates: BOS_NAMES,
    })?;
    let eos_id = find(EOS_NAMES).ok_or(TokenizerError::MissingSpecialToken {
        what: "EOS",
        candidates: EOS_NAMES,
    })?;
    Ok((bos_id, eos_id, find(PAD_NAMES), find(UNK_NAMES)))
}
