//! SentencePiece BPE "by scores", as SentencePiece's `bpe_model.cc` and llama.cpp's
//! `llm_tokenizer_spm` run it for Gemma (GGUF `tokenizer.ggml.model = "llama"`).
//!
//! Encoding, in order:
//! 1. **Literal pieces.** The text is scanned left to right; where a user-defined piece (type 4:
//!    `\n`, runs of newlines, spaces or tabs, `<table>`, `<start_of_image>`, ...) or a control token
//!    (type 3: `<bos>`, `<start_of_turn>`, ...; and type 2, unknown) starts, the longest such piece is
//!    emitted whole as its id. User-defined pieces are what SentencePiece itself does (its prefix
//!    matcher freezes them). Control tokens are *not* matched by SentencePiece (nor by Keras); we match
//!    them as HF `tokenizers` and llama.cpp with `parse_special` do, so that chat templates written
//!    as text (`<start_of_turn>user\n...`) get their control ids.
//! 2. **Normalisation** of each stretch of text between literal pieces: spaces become `▁` (U+2581);
//!    with `add_space_prefix` (false for Gemma 3) a `▁` goes in front, as llama.cpp does, after every
//!    literal piece.
//! 3. **BPE.** Start from the UTF-8 characters as symbols; repeatedly merge the adjacent pair whose
//!    concatenation is a mergeable piece (normal, unused or undefined type) with the highest score,
//!    leftmost on ties — a priority queue of candidate pairs, stale entries skipped when popped.
//! 4. **Byte fallback.** A final symbol that is not a piece becomes the byte tokens `<0xNN>` of its
//!    UTF-8 bytes; a missing byte token becomes the unknown token.
//!
//! Decoding: `▁` becomes a space, byte tokens are joined back into UTF-8 (invalid sequences become
//! U+FFFD), control and unknown tokens produce no text, user-defined pieces produce their text.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::TokenizerError;
use crate::vocab::{TokenType, Vocab};

/// The space marker of SentencePiece pieces.
const SPACE_MARK: char = '\u{2581}';

/// A SentencePiece BPE tokenizer over a GGUF-style [`Vocab`]. Build once: it indexes the vocabulary.
#[derive(Debug, Clone)]
pub struct SentencePieceBpe {
    vocab: Vocab,
    kinds: Vec<TokenType>,
    /// Every piece to its id (for `token_id`); on duplicate pieces the lowest id wins.
    piece_to_id: HashMap<String, u32>,
    /// Pieces matched literally in text (control, unknown and user-defined types), to their id.
    literals: HashMap<String, u32>,
    /// For each first byte, the byte lengths of the literal pieces starting with it, longest first.
    literal_lens: Vec<Vec<usize>>,
    /// The `<0xNN>` token of each byte value (256 entries; boxed to keep the type small).
    byte_ids: Box<[Option<u32>; 256]>,
}

impl SentencePieceBpe {
    /// Indexes `vocab` after [`Vocab::validate`].
    pub fn new(vocab: Vocab) -> Result<Self, TokenizerError> {
        vocab.validate()?;
        let kinds: Vec<TokenType> = vocab
            .token_types
            .iter()
            .map(|&t| TokenType::from_raw(t))
            .collect();
        let mut piece_to_id = HashMap::with_capacity(vocab.tokens.len());
        let mut literals = HashMap::new();
        let mut literal_lens = vec![Vec::new(); 256];
        let mut byte_ids = Box::new([None; 256]);
        for (id, (piece, &kind)) in vocab.tokens.iter().zip(&kinds).enumerate() {
            // validate() checked that every id fits u32.
            let id = id as u32;
            piece_to_id.entry(piece.clone()).or_insert(id);
            match kind {
                TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
                    if let Some(&first) = piece.as_bytes().first() {
                        literals.entry(piece.clone()).or_insert(id);
                        literal_lens[first as usize].push(piece.len());
                    }
                }
                TokenType::Byte => {
                    if let Some(b) = parse_byte_piece(piece) {
                        byte_ids[b as usize].get_or_insert(id);
                    }
                }
                _ => {}
            }
        }
        for lens in &mut literal_lens {
            lens.sort_unstable_by(|a, b| b.cmp(a));
            lens.dedup();
        }
        tracing::debug!(
            tokens = vocab.tokens.len(),
            literals = literals.len(),
            byte_tokens = byte_ids.iter().flatten().count(),
            "indexed SentencePiece vocabulary"
        );
        Ok(Self {
            vocab,
            kinds,
            piece_to_id,
            literals,
            literal_lens,
            byte_ids,
        })
    }

    /// The vocabulary this tokenizer was built from.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab.tokens.len()
    }

    /// The piece of `id` as stored (spaces as `▁`, bytes as `<0xNN>`).
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a piece as stored in the vocabulary.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.piece_to_id.get(piece).copied()
    }

    /// The [`TokenType`] of `id`.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.kinds.get(id as usize).copied()
    }

    /// Encodes `text`, with BOS in front when `add_bos`.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos {
            out.push(self.vocab.bos_id);
        }
        let mut scratch = Scratch::default();
        let mut prev_literal = true;
        let mut seg_start = 0;
        let mut pos = 0;
        while let Some(c) = text[pos..].chars().next() {
            if let Some((id, len)) = self.match_literal(text, pos) {
                if seg_start < pos {
                    self.encode_segment(
                        &text[seg_start..pos],
                        prev_literal,
                        &mut scratch,
                        &mut out,
                    )?;
                }
                out.push(id);
                prev_literal = true;
                pos += len;
                seg_start = pos;
            } else {
                pos += c.len_utf8();
            }
        }
        if seg_start < text.len() {
            self.encode_segment(&text[seg_start..], prev_literal, &mut scratch, &mut out)?;
        }
        Ok(out)
    }

    /// The longest literal piece starting at byte `pos` (a char boundary), as (id, byte length).
    fn match_literal(&self, text: &str, pos: usize) -> Option<(u32, usize)> {
        let first = *text.as_bytes().get(pos)?;
        self.literal_lens[first as usize].iter().find_map(|&len| {
            let candidate = text.get(pos..pos + len)?;
            self.literals.get(candidate).map(|&id| (id, len))
        })
    }

    /// Normalises and BPE-encodes one stretch of text that holds no literal piece.
    fn encode_segment(
        &self,
        raw: &str,
        prev_literal: bool,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let text = &mut scratch.text;
        text.clear();
        if self.vocab.add_space_prefix && prev_literal {
            text.push(SPACE_MARK);
        }
        for c in raw.chars() {
            text.push(if c == ' ' { SPACE_MARK } else { c });
        }
        let text = &scratch.text;
        let symbols = &mut scratch.symbols;
        symbols.clear();
        for (start, c) in text.char_indices() {
            let idx = symbols.len();
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: idx.checked_sub(1),
                next: Some(idx + 1),
            });
        }
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }

        let heap = &mut scratch.heap;
        heap.clear();
        for left in 1..symbols.len() {
            self.push_pair(text, symbols, heap, left - 1, left);
        }
        while let Some(pair) = heap.pop() {
            let (l, r) = (pair.left, pair.right);
            // Stale: one side was merged away, or grew, since this pair was queued.
            if symbols[l].len == 0
                || symbols[r].len == 0
                || symbols[l].len + symbols[r].len != pair.len
                || symbols[l].next != Some(r)
            {
                continue;
            }
            symbols[l].len += symbols[r].len;
            symbols[r].len = 0;
            symbols[l].next = symbols[r].next;
            if let Some(n) = symbols[r].next {
                symbols[n].prev = Some(l);
            }
            if let Some(p) = symbols[l].prev {
                self.push_pair(text, symbols, heap, p, l);
            }
            if let Some(n) = symbols[l].next {
                self.push_pair(text, symbols, heap, l, n);
            }
        }

        let mut cur = if symbols.is_empty() { None } else { Some(0) };
        while let Some(i) = cur {
            let sym = symbols[i];
            let piece = &text[sym.start..sym.start + sym.len];
            match self.piece_to_id.get(piece) {
                Some(&id)
                    if self.is_mergeable(id)
                        || self.kinds[id as usize] == TokenType::UserDefined =>
                {
                    out.push(id)
                }
                _ => self.push_bytes(piece, out)?,
            }
            cur = sym.next;
        }
        Ok(())
    }

    /// Queues the merge of adjacent symbols `left` and `right` if their concatenation is mergeable.
    fn push_pair(
        &self,
        text: &str,
        symbols: &[Symbol],
        heap: &mut BinaryHeap<Pair>,
        left: usize,
        right: usize,
    ) {
        let start = symbols[left].start;
        let len = symbols[left].len + symbols[right].len;
        let Some(piece) = text.get(start..start + len) else {
            return;
        };
        if let Some(&id) = self.piece_to_id.get(piece)
            && self.is_mergeable(id)
        {
            heap.push(Pair {
                score: self.vocab.scores[id as usize],
                left,
                right,
                len,
            });
        }
    }

    /// Pieces that BPE may produce: SentencePiece's "normal" pieces (normal, unused), plus
    /// undefined for vocabularies without types. Control, unknown and byte tokens are never merge
    /// results; user-defined pieces are matched literally before BPE.
    fn is_mergeable(&self, id: u32) -> bool {
        matches!(
            self.kinds[id as usize],
            TokenType::Normal | TokenType::Unused | TokenType::Undefined
        )
    }

    /// Byte fallback for a symbol that is not a piece.
    fn push_bytes(&self, piece: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        for &b in piece.as_bytes() {
            match self.byte_ids[b as usize].or(self.vocab.unknown_id) {
                Some(id) => out.push(id),
                None => return Err(TokenizerError::Untokenizable { byte: b }),
            }
        }
        Ok(())
    }

    /// The bytes that `id` contributes to decoded text (see the module docs).
    pub(crate) fn piece_bytes(&self, id: u32) -> Result<Cow<'_, [u8]>, TokenizerError> {
        let Some(piece) = self.vocab.tokens.get(id as usize) else {
            return Err(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.vocab_size(),
            });
        };
        Ok(match self.kinds[id as usize] {
            TokenType::Control | TokenType::Unknown => Cow::Borrowed(&[]),
            TokenType::Byte => match parse_byte_piece(piece) {
                Some(b) => Cow::Owned(vec![b]),
                None => Cow::Borrowed(piece.as_bytes()),
            },
            _ if piece.contains(SPACE_MARK) => {
                Cow::Owned(piece.replace(SPACE_MARK, " ").into_bytes())
            }
            _ => Cow::Borrowed(piece.as_bytes()),
        })
    }

    /// Whether a decoded text should lose its first space (SentencePiece's dummy prefix).
    pub(crate) fn strips_leading_space(&self) -> bool {
        self.vocab.add_space_prefix
    }

    /// Decodes `ids` to text (see the module docs).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        // One space goes, from the first piece with any bytes (control tokens have none), as
        // SentencePiece and the stream decoder do: `▁ ▁hello` is " hello", not "hello".
        let mut seen_text = false;
        for &id in ids {
            let piece = self.piece_bytes(id)?;
            if !seen_text
                && !piece.is_empty()
                && self.strips_leading_space()
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
}

/// The byte of a `<0xNN>` piece.
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// A run of the normalised segment: `text[start..start + len]`; `len == 0` once merged away.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of symbols `left` and `right`, of total byte length `len`.
#[derive(Debug, Clone, Copy)]
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Ord for Pair {
    /// Highest score first; on equal scores the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}

/// Buffers reused across the segments of one `encode` call.
#[derive(Default)]
struct Scratch {
    text: String,
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Pair>,
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

    #[test]
    fn pair_order_is_score_then_leftmost() {
        let mut heap = BinaryHeap::new();
        for (score, left) in [(1.0, 5), (3.0, 7), (3.0, 2), (-1.0, 0)] {
            heap.push(Pair {
                score,
                left,
                right: left + 1,
                len: 2,
            });
        }
        let order: Vec<(f32, usize)> =
            std::iter::from_fn(|| heap.pop().map(|p| (p.score, p.left))).collect();
        assert_eq!(order, vec![(3.0, 2), (3.0, 7), (1.0, 5), (-1.0, 0)]);
    }
}
