//! Streaming detokenisation: feed generated ids one at a time, get back only text that is final.
//!
//! A character outside ASCII may arrive as several byte-fallback tokens (`<0xE2>`, `<0x82>`,
//! `<0xAC>` for `€`); printing each token's text on its own would print garbage. The decoder holds
//! back bytes that start a UTF-8 sequence until it completes, so the concatenation of everything
//! [`StreamDecoder::step`] and [`StreamDecoder::finish`] return equals `decode` of all the ids.

use crate::TokenizerError;
use crate::hf::HfTokenizer;
use crate::sentencepiece::SentencePieceBpe;

/// An incremental decoder borrowed from a [`crate::Tokenizer`] (see [`crate::Tokenizer::stream_decoder`]).
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    state: State<'a>,
}

#[derive(Debug)]
enum State<'a> {
    SentencePiece {
        tokenizer: &'a SentencePieceBpe,
        /// Bytes of an unfinished UTF-8 sequence.
        pending: Vec<u8>,
        /// Whether any text byte has been seen (for the dummy-prefix space strip).
        seen_text: bool,
    },
    /// The prefix-window scheme of `tokenizers`' `DecodeStream`, kept here so that `finish` can flush.
    HuggingFace {
        tokenizer: &'a HfTokenizer,
        /// The ids whose decoding is still needed: context (`..prefix_index`) and unfinished tail.
        ids: Vec<u32>,
        /// The text of `ids[..prefix_index]`, already returned.
        prefix: String,
        prefix_index: usize,
    },
}

impl<'a> StreamDecoder<'a> {
    pub(crate) fn sentencepiece(tokenizer: &'a SentencePieceBpe) -> Self {
        Self {
            state: State::SentencePiece {
                tokenizer,
                pending: Vec::new(),
                seen_text: false,
            },
        }
    }

    pub(crate) fn hugging_face(tokenizer: &'a HfTokenizer) -> Self {
        Self {
            state: State::HuggingFace {
                tokenizer,
                ids: Vec::new(),
                prefix: String::new(),
                prefix_index: 0,
            },
        }
    }

    /// Adds one id; returns the text that became final (often empty for control tokens or the first
    /// bytes of a multi-byte character). An out-of-range id is an error and changes nothing.
    pub fn step(&mut self, id: u32) -> Result<String, TokenizerError> {
        match &mut self.state {
            State::SentencePiece {
                tokenizer,
                pending,
                seen_text,
            } => {
                let bytes = tokenizer.piece_bytes(id)?;
                let mut bytes: &[u8] = &bytes;
                if !bytes.is_empty() && !*seen_text {
                    *seen_text = true;
                    if tokenizer.strips_leading_space() {
                        bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
                    }
                }
                pending.extend_from_slice(bytes);
                Ok(drain_utf8(pending))
            }
            State::HuggingFace {
                tokenizer,
                ids,
                prefix,
                prefix_index,
            } => {
                tokenizer.check_id(id)?;
                if prefix.is_empty() && !ids.is_empty() {
                    let text = tokenizer.decode_unchecked(ids)?;
                    if !text.ends_with('\u{FFFD}') {
                        *prefix = text;
                        *prefix_index = ids.len();
                    }
                }
                ids.push(id);
                let text = tokenizer.decode_unchecked(ids)?;
                if text.len() <= prefix.len() || text.ends_with('\u{FFFD}') {
                    return Ok(String::new());
                }
                let Some(new_text) = text.strip_prefix(prefix.as_str()) else {
                    return Err(TokenizerError::Hf(format!(
                        "stream decoding: the text of the ids so far, {text:?}, does not extend the text already returned, {prefix:?}"
                    )));
                };
                let new_text = new_text.to_owned();
                let new_prefix_index = ids.len() - *prefix_index;
                ids.drain(..*prefix_index);
                *prefix = tokenizer.decode_unchecked(ids)?;
                *prefix_index = new_prefix_index;
                Ok(new_text)
            }
        }
    }

    /// Whether text is held back, waiting for the rest of a character.
    pub fn has_pending(&self) -> bool {
        match &self.state {
            State::SentencePiece { pending, .. } => !pending.is_empty(),
            State::HuggingFace {
                ids, prefix_index, ..
            } => ids.len() > *prefix_index,
        }
    }

    /// Ends the stream: returns what was held back, an unfinished character as U+FFFD, and resets.
    pub fn finish(&mut self) -> Result<String, TokenizerError> {
        match &mut self.state {
            State::SentencePiece {
                pending, seen_text, ..
            } => {
                let text = String::from_utf8_lossy(pending).into_owned();
                pending.clear();
                *seen_text = false;
                Ok(text)
            }
            State::HuggingFace {
                tokenizer,
                ids,
                prefix,
                prefix_index,
            } => {
                let text = tokenizer.decode_unchecked(ids)?;
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
