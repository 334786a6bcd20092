//! Streaming detokenisation: feed generated ids one at a time, get back only text that is final.
//!
//! A character outside ASCII may arrive as several byte-fallback tokens (`<0xE2>`, `<0x82>`,
//! `<0xAC>` for `€`); printing each token's text on its own would print garbage. The decoder holds
//! back bytes that start a UTF-8 sequence until it completes, so the concatenation of everything
//! [`StreamDecoder::step`] and [`StreamDecoder::finish`] return equals `decode` of all the ids.

use crate::{Tokenizer, TokenizerError};

/// An incremental decoder borrowed from a [`crate::Tokenizer`] (see [`crate::Tokenizer::stream_decoder`]).
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    state: State,
}

#[derive(Debug)]
enum State {
    /// A tokenizer built from a vocabulary decodes by hand (see `spm::piece_bytes`), so its
    /// stream does too: the bytes of an unfinished UTF-8 sequence wait in `pending`.
    Vocab {
        pending: Vec<u8>,
        /// Whether any text byte has been seen (for the dummy-prefix space strip).
        seen_text: bool,
    },
    /// The state of `tokenizers`' `DecodeStream`, held here (and stepped with its
    /// `step_decode_stream`) because `DecodeStream` cannot hand back what it holds at the end.
    HuggingFace {
        /// The ids whose decoding is still needed: context (`..prefix_index`) and unfinished tail.
        ids: Vec<u32>,
        /// The text of `ids[..prefix_index]`, already returned.
        prefix: String,
        prefix_index: usize,
    },
}

impl<'a> StreamDecoder<'a> {
    pub(crate) fn new(tokenizer: &'a Tokenizer) -> Self {
        let state = if tokenizer.vocab().is_some() {
            State::Vocab {
                pending: Vec::new(),
                seen_text: false,
            }
        } else {
            State::HuggingFace {
                ids: Vec::new(),
                prefix: String::new(),
                prefix_index: 0,
            }
        };
        Self { tokenizer, state }
    }

    /// Adds one id; returns the text that became final (often empty for control tokens or the first
    /// bytes of a multi-byte character). An out-of-range id is an error and changes nothing.
    pub fn step(&mut self, id: u32) -> Result<String, TokenizerError> {
        let tokenizer = self.tokenizer;
        match &mut self.state {
            State::Vocab { pending, seen_text } => {
                let bytes = tokenizer.piece_bytes(id)?;
                let mut bytes: &[u8] = &bytes;
                if !bytes.is_empty() && !*seen_text {
                    *seen_text = true;
                    if tokenizer.add_space_prefix() {
                        bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
                    }
                }
                pending.extend_from_slice(bytes);
                Ok(drain_utf8(pending))
            }
            State::HuggingFace {
                ids,
                prefix,
                prefix_index,
            } => {
                tokenizer.check_id(id)?;
                let text = tokenizers::step_decode_stream(
                    tokenizer.inner(),
                    vec![id],
                    true,
                    ids,
                    prefix,
                    prefix_index,
                )
                .map_err(|e| TokenizerError::Hf(format!("stream decoding: {e}")))?;
                Ok(text.unwrap_or_default())
            }
        }
    }

    /// Whether text is held back, waiting for the rest of a character.
    pub fn has_pending(&self) -> bool {
        match &self.state {
            State::Vocab { pending, .. } => !pending.is_empty(),
            State::HuggingFace {
                ids, prefix_index, ..
            } => ids.len() > *prefix_index,
        }
    }

    /// Ends the stream: returns what was held back, an unfinished character as U+FFFD, and resets.
    pub fn finish(&mut self) -> Result<String, TokenizerError> {
        match &mut self.state {
            State::Vocab { pending, seen_text } => {
                let text = String::from_utf8_lossy(pending).into_owned();
                pending.clear();
                *seen_text = false;
                Ok(text)
            }
            State::HuggingFace {
                ids,
                prefix,
                prefix_index,
            } => {
                let text = self.tokenizer.decode_unchecked(ids)?;
                let rest = text
                    .strip_prefix(prefix.as_str())
                    .unwrap_or_default()
                    .to_owned();
                ids.clear();
                prefix.clear();
                *prefix_index = 0;
                Ok(rest)
            }
        }
    }
}

/// Takes the longest prefix of `pending` that is final: valid UTF-8, with each invalid sequence
/// as one U+FFFD (as `String::from_utf8_lossy` does); leaves an unfinished trailing sequence.
fn drain_utf8(pending: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while pos < pending.len() {
        match std::str::from_utf8(&pending[pos..]) {
            Ok(s) => {
                out.push_str(s);
                pos = pending.len();
            }
            Err(e) => {
                let valid = e.valid_up_to();
                if let Ok(s) = std::str::from_utf8(&pending[pos..pos + valid]) {
                    out.push_str(s);
                }
                match e.error_len() {
                    Some(bad) => {
                        out.push('\u{FFFD}');
                        pos += valid + bad;
                    }
                    // An unfinished sequence at the end: wait for more bytes.
                    None => {
                        pos += valid;
                        break;
                    }
                }
            }
        }
    }
    pending.drain(..pos);
    out
}

#[cfg(test)]
mod tests {
    use super::drain_utf8;

    /// Feeding bytes one at a time and flushing gives what `from_utf8_lossy` gives on the whole.
    #[test]
    fn drain_matches_lossy_decoding() {
        let cases: &[&[u8]] = &[
            "h€llo, wörld 🦀".as_bytes(),
            &[0xe2, 0x82],                   // unfinished at the end
            &[0xe2, 0x28, 0xa1, 0x41],       // broken sequence
            &[0x80, 0xff, 0xc3, 0xa9, 0xf0], // stray bytes around a good char
            &[0xf0, 0x9f, 0xa6, 0x80, 0xed, 0xa0, 0x80],
        ];
        for bytes in cases {
            let mut pending = Vec::new();
            let mut got = String::new();
            for &b in *bytes {
                pending.push(b);
                got.push_str(&drain_utf8(&mut pending));
            }
            got.push_str(&String::from_utf8_lossy(&pending));
            assert_eq!(got, String::from_utf8_lossy(bytes), "bytes {bytes:x?}");
        }
    }
}
