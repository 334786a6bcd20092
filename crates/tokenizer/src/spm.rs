//! A `tokenizers::Tokenizer` built from a SentencePiece [`Vocab`] (GGUF `tokenizer.ggml.*`), the way
//! `transformers`' `convert_slow_tokenizer.py` (`GemmaConverter`) builds a Gemma tokenizer:
//!
//! - **Model:** BPE over the pieces, `byte_fallback` on, the unknown piece as `unk_token`. The
//!   merges are derived from the vocabulary as the converter's `generate_merges` does: every split
//!   of a mergeable piece (normal, unused or undefined type) into two pieces that BPE can hold,
//!   ranked by the merged piece's score, best first (on equal scores the longer left part first).
//! - **Normalizer:** spaces become `▁` (U+2581); with `add_space_prefix` (false for Gemma 3) a `▁`
//!   is prepended to each stretch of text between added tokens, as llama.cpp does.
//! - **No pre-tokenizer:** a stretch of text between added tokens is one BPE word.
//! - **Added tokens:** control and unknown pieces as special tokens, user-defined pieces (`\n`,
//!   runs of spaces or tabs, `<table>`, ...) as ordinary ones, none normalized: both are matched
//!   literally in the text, longest first, before BPE (so `<start_of_turn>` written in a chat
//!   template is its control id).
//! - **Decoder:** `Replace("▁", " ")`, `ByteFallback`, `Fuse` (and `Strip` of the dummy prefix).
//!
//! Two things stay here by hand, because `tokenizers` does them differently from SentencePiece
//! and from what this crate did before it used `tokenizers` (the token-id fixture pins both):
//!
//! - **A missing byte token.** `tokenizers` falls back per character: a character with any byte
//!   lacking its `<0xNN>` token becomes one unknown token (or vanishes without one). SentencePiece
//!   falls back per byte. So every byte name is put in the BPE vocabulary: a missing one as the
//!   unknown id, or, without an unknown token, as an id past the vocabulary that
//!   [`crate::Tokenizer::encode`] reports as [`TokenizerError::Untokenizable`]. Gemma has all 256.
//! - **Decoding** (`piece_bytes`): `ByteFallback` turns a run of byte tokens that is not valid
//!   UTF-8 into one U+FFFD per byte, losing the valid characters in the run; SentencePiece joins
//!   all bytes and replaces only the invalid sequences. The stream decoder follows the same rule.
//!
//! Equal to the former hand-written BPE on every vocabulary whose pieces are unique and whose
//! mergeable pieces have distinct scores (Gemma 3's): it merged the leftmost of two equally scored
//! pairs, `tokenizers` the better ranked one.

use std::borrow::Cow;
use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper};

use crate::TokenizerError;
use crate::vocab::{TokenType, Vocab};

/// The space marker of SentencePiece pieces.
const SPACE_MARK: &str = "\u{2581}";

/// Pieces that BPE may produce: SentencePiece's normal pieces (normal, unused), plus undefined
/// for vocabularies without types.
fn is_mergeable(kind: TokenType) -> bool {
    matches!(
        kind,
        TokenType::Normal | TokenType::Unused | TokenType::Undefined
    )
}

/// Pieces matched literally in the text before BPE (added tokens).
fn is_literal(kind: TokenType) -> bool {
    matches!(
        kind,
        TokenType::Control | TokenType::Unknown | TokenType::UserDefined
    )
}

/// The `tokenizers` tokenizer of a validated `vocab` (see the module docs).
pub(crate) fn build(vocab: &Vocab) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let n = vocab.len();
    let kind = |id: usize| TokenType::from_raw(vocab.token_types[id]);
    let hf = |e: tokenizers::Error| TokenizerError::Hf(e.to_string());

    // Every piece to its lowest id, as SentencePiece looks pieces up. Byte tokens go in below
    // under the spelling `tokenizers` looks for, so that text spelling `<0x41>` stays text.
    let mut ids: HashMap<&str, u32> = HashMap::with_capacity(n + 256);
    let mut byte_ids: [Option<u32>; 256] = [None; 256];
    for (id, piece) in vocab.tokens.iter().enumerate() {
        // validate() checked that every id fits u32.
        let id32 = id as u32;
        if kind(id) == TokenType::Byte {
            if let Some(b) = parse_byte_piece(piece) {
                byte_ids[b as usize].get_or_insert(id32);
            }
        } else {
            ids.entry(piece.as_str()).or_insert(id32);
        }
    }
    let mut model_vocab: tokenizers::models::bpe::Vocab =
        ids.iter().map(|(&p, &id)| (p.to_owned(), id)).collect();
    for (b, id) in byte_ids.iter().enumerate() {
        let id = match (*id, vocab.unknown_id) {
            (Some(id), _) | (None, Some(id)) => id,
            // Past the vocabulary: `encode` turns it into `Untokenizable`.
            (None, None) => u32::try_from(n + b).map_err(|_| TokenizerError::VocabTooLarge(n))?,
        };
        model_vocab.insert(format!("<0x{b:02X}>"), id);
    }

    // A piece BPE can hold as a symbol: a character it starts from, or a merge result.
    let symbol = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(_), None) => model_vocab.contains_key(s),
            _ => ids
                .get(s)
                .is_some_and(|&id| is_mergeable(kind(id as usize))),
        }
    };
    // (score, left chars, right chars, merged id, left, right), best first.
    let mut merges: Vec<(f32, usize, usize, u32, &str, &str)> = Vec::new();
    for (id, piece) in vocab.tokens.iter().enumerate() {
        if !is_mergeable(kind(id)) || ids.get(piece.as_str()) != Some(&(id as u32)) {
            continue;
        }
        for (at, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(at);
            if symbol(left) && symbol(right) {
                let chars = left.chars().count();
                merges.push((
                    vocab.scores[id],
                    chars,
                    piece.chars().count() - chars,
                    id as u32,
                    left,
                    right,
                ));
            }
        }
    }
    merges.sort_unstable_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(&a.2))
            .then(a.3.cmp(&b.3))
    });
    let merges: Vec<(String, String)> = merges
        .into_iter()
        .map(|m| (m.4.to_owned(), m.5.to_owned()))
        .collect();

    let mut builder = BPE::builder()
        .vocab_and_merges(model_vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = vocab.unknown_id {
        builder = builder.unk_token(vocab.tokens[unk as usize].clone());
    }
    let model = builder.build().map_err(hf)?;

    let mut tokenizer = tokenizers::Tokenizer::new(model);
    let space = NormalizerWrapper::Replace(Replace::new(" ", SPACE_MARK).map_err(hf)?);
    let normalizer = if vocab.add_space_prefix {
        NormalizerWrapper::Sequence(NormalizerSequence::new(vec![
            NormalizerWrapper::Prepend(Prepend::new(SPACE_MARK.into())),
            space,
        ]))
    } else {
        space
    };
    tokenizer.with_normalizer(Some(normalizer));
    let mut decoders = vec![
        DecoderWrapper::Replace(Replace::new(SPACE_MARK, " ").map_err(hf)?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if vocab.add_space_prefix {
        decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    tokenizer.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(
        decoders,
    ))));

    let added: Vec<AddedToken> = (0..n)
        .filter(|&id| is_literal(kind(id)) && !vocab.tokens[id].is_empty())
        .map(|id| {
            AddedToken::from(vocab.tokens[id].clone(), kind(id) != TokenType::UserDefined)
                .normalized(false)
        })
        .collect();
    tokenizer.add_tokens(&added);
    tracing::debug!(
        tokens = n,
        added = added.len(),
        "built the tokenizers BPE of a SentencePiece vocabulary"
    );
    Ok(tokenizer)
}

/// The bytes that `id` contributes to decoded text: none for control and unknown tokens, the
/// byte of a byte token, else the piece with `▁` as space. `None` past the vocabulary.
pub(crate) fn piece_bytes(vocab: &Vocab, id: u32) -> Option<Cow<'_, [u8]>> {
    let piece = vocab.tokens.get(id as usize)?;
    Some(match vocab.token_type(id)? {
        TokenType::Control | TokenType::Unknown => Cow::Borrowed(&[]),
        TokenType::Byte => match parse_byte_piece(piece) {
            Some(b) => Cow::Owned(vec![b]),
            None => Cow::Borrowed(piece.as_bytes()),
        },
        _ if piece.contains(SPACE_MARK) => Cow::Owned(piece.replace(SPACE_MARK, " ").into_bytes()),
        _ => Cow::Borrowed(piece.as_bytes()),
    })
}

/// The byte of a `<0xNN>` piece.
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_pieces_parse() {
        assert_eq!(parse_byte_piece("<0x0A>"), Some(0x0a));
        assert_eq!(parse_byte_piece("<0xff>"), Some(0xff));
        assert_eq!(parse_byte_piece("<0xFFF>"), None);
        assert_eq!(parse_byte_piece("<0x+1>"), None);
        assert_eq!(parse_byte_piece("0x0A"), None);
    }
}
