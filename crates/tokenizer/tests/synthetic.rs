//! A hand-built vocabulary that always runs: merges by score, ties, byte fallback, literal control
//! and user-defined pieces, streaming, the vocabulary file, errors; and the same vocabulary as a
//! hand-written HF `tokenizer.json` (fixtures/tiny_tokenizer.json) through `from_hf_file`.

use std::path::PathBuf;

use burn_int8_tokenizer::{Tokenizer, TokenizerError, Vocab};

// Ids of the synthetic vocabulary.
const PAD: u32 = 0;
const EOS: u32 = 1;
const BOS: u32 = 2;
const UNK: u32 = 3;
const SOT: u32 = 4;
const EOT: u32 = 5;
const NL: u32 = 6;
const TWO_SPACES: u32 = 7;
const B3C: u32 = 8;
const BC3: u32 = 9;
const BE2: u32 = 10;
const B82: u32 = 11;
const BAC: u32 = 12;
const SP: u32 = 13;
const A: u32 = 14;
const B: u32 = 15;
const C: u32 = 16;
const AB: u32 = 17;
const BC_: u32 = 18;
const SP_A: u32 = 19;
const SP_AB: u32 = 20;
const AA: u32 = 21;
const D: u32 = 22;
const CD: u32 = 23;

/// (piece, score, type): control 3, unknown 2, user-defined 4, byte 6, normal 1. Merge scores:
/// cd -1 > ▁ab -2 > ▁a -3 > bc -4 > ab -5 > aa -6. No `é` and no `<0xA9>`: `é` ends in unknown.
const PIECES: &[(&str, f32, i32)] = &[
    ("<pad>", 0.0, 3),
    ("<eos>", 0.0, 3),
    ("<bos>", 0.0, 3),
    ("<unk>", 0.0, 2),
    ("<start_of_turn>", 0.0, 3),
    ("<end_of_turn>", 0.0, 3),
    ("\n", 0.0, 4),
    ("  ", 0.0, 4),
    ("<0x3C>", 0.0, 6),
    ("<0xC3>", 0.0, 6),
    ("<0xE2>", 0.0, 6),
    ("<0x82>", 0.0, 6),
    ("<0xAC>", 0.0, 6),
    ("\u{2581}", -10.0, 1),
    ("a", -11.0, 1),
    ("b", -12.0, 1),
    ("c", -13.0, 1),
    ("ab", -5.0, 1),
    ("bc", -4.0, 1),
    ("\u{2581}a", -3.0, 1),
    ("\u{2581}ab", -2.0, 1),
    ("aa", -6.0, 1),
    ("d", -14.0, 1),
    ("cd", -1.0, 1),
];

fn vocab() -> Vocab {
    Vocab {
        tokens: PIECES.iter().map(|p| p.0.to_owned()).collect(),
        scores: PIECES.iter().map(|p| p.1).collect(),
        token_types: PIECES.iter().map(|p| p.2).collect(),
        bos_id: BOS,
        eos_id: EOS,
        unknown_id: Some(UNK),
        padding_id: Some(PAD),
        add_bos: true,
        add_space_prefix: false,
    }
}

fn spm() -> Tokenizer {
    Tokenizer::from_vocab(vocab()).unwrap()
}

/// The manifest dir at run time: a binary reused from another checkout (shared target dir)
/// must not read the other checkout's fixture.
fn tiny_tokenizer_path() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/fixtures/tiny_tokenizer.json")
}

fn hf() -> Tokenizer {
    let path = tiny_tokenizer_path();
    Tokenizer::from_hf_file(&path).unwrap()
}

fn stream_all(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut stream = tok.stream_decoder();
    let mut out: Vec<String> = ids.iter().map(|&id| stream.step(id).unwrap()).collect();
    out.push(stream.finish().unwrap());
    out
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("burn-int8-tokenizer-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Encodings that both tokenizers (ours on the vocab, `tokenizers` on the JSON) must produce.
const CASES: &[(&str, &[u32])] = &[
    // bc (-4) beats ab (-5): [a, bc], not [ab, c].
    ("abc", &[A, BC_]),
    // cd (-1) first, then ab (-5); "abcd" is no piece.
    ("abcd", &[AB, CD]),
    // Equal scores: the leftmost pair merges first.
    ("aaa", &[AA, A]),
    // ▁a (-3) beats ab (-5), then ▁a + b = ▁ab.
    (" ab", &[SP_AB]),
    ("ab ab", &[AB, SP_AB]),
    // No ▁ in front of the first word (add_space_prefix = false).
    ("a", &[A]),
    (" a", &[SP_A]),
    ("cb dc", &[C, B, SP, D, C]),
    // € is not a piece: its three UTF-8 bytes.
    ("a€", &[A, BE2, B82, BAC]),
    // é: <0xC3> exists, <0xA9> does not, so unknown.
    ("é", &[BC3, UNK]),
    // Control tokens and user-defined pieces written in the text are single ids.
    ("<start_of_turn>ab<end_of_turn>\n", &[SOT, AB, EOT, NL]),
    ("a  b", &[A, TWO_SPACES, B]),
    ("a   b", &[A, TWO_SPACES, SP, B]),
    ("a\n\nb", &[A, NL, NL, B]),
    ("<bos>", &[BOS]),
    ("", &[]),
];

#[test]
fn merges_by_score_byte_fallback_and_literals() {
    let tok = spm();
    for &(text, expected) in CASES {
        assert_eq!(tok.encode(text, false).unwrap(), expected, "{text:?}");
    }
    assert_eq!(tok.encode("abc", true).unwrap(), [BOS, A, BC_]);
    // A partial control token is ordinary text: `<` falls back to its byte token.
    let ids = tok.encode("<start_of", false).unwrap();
    assert_eq!(ids[0], B3C);
    assert!(!ids.contains(&SOT));
}

#[test]
fn accessors() {
    let tok = spm();
    assert_eq!(tok.vocab_size(), PIECES.len());
    assert_eq!((tok.bos_id(), tok.eos_id()), (BOS, EOS));
    assert_eq!(tok.padding_id(), Some(PAD));
    assert_eq!(tok.unknown_id(), Some(UNK));
    assert_eq!(tok.end_of_turn_id(), Some(EOT));
    assert_eq!(tok.token_id("\u{2581}ab"), Some(SP_AB));
    assert_eq!(tok.token_id("zzz"), None);
    assert_eq!(tok.id_to_piece(CD).as_deref(), Some("cd"));
    assert_eq!(tok.id_to_piece(999), None);
    assert!(
        tok.is_control(BOS) && tok.is_control(UNK) && !tok.is_control(NL) && !tok.is_control(A)
    );
}

#[test]
fn decode_skips_control_tokens_and_keeps_text() {
    let tok = spm();
    assert_eq!(
        tok.decode(&[BOS, SOT, A, EOT, NL, SP_AB, TWO_SPACES, PAD, EOS])
            .unwrap(),
        "a\n ab  "
    );
    assert_eq!(tok.decode(&[BE2, B82, BAC]).unwrap(), "€");
    // An incomplete byte sequence is U+FFFD, not a panic.
    assert_eq!(tok.decode(&[BE2, A]).unwrap(), "\u{FFFD}a");
    assert_eq!(tok.decode(&[A, BE2, B82]).unwrap(), "a\u{FFFD}");
    for &(text, ids) in CASES {
        if !text.contains('<') && !text.contains('é') {
            assert_eq!(tok.decode(ids).unwrap(), text);
        }
    }
    match tok.decode(&[A, 24]) {
        Err(TokenizerError::IdOutOfRange {
            id: 24,
            vocab_size: 24,
        }) => {}
        other => panic!("expected IdOutOfRange, got {other:?}"),
    }
}

#[test]
fn stream_decoder_holds_back_partial_characters() {
    let tok = spm();
    assert_eq!(
        stream_all(&tok, &[BOS, A, BE2, B82, BAC, SP_AB, EOS]),
        ["", "a", "", "", "€", " ab", "", ""]
    );
    // Control tokens inside a byte sequence do not break it (decode skips them too).
    assert_eq!(
        stream_all(&tok, &[BE2, EOT, B82, BAC]),
        ["", "", "", "€", ""]
    );
    // Broken and dangling sequences become U+FFFD, as in decode.
    assert_eq!(
        stream_all(&tok, &[BE2, A, BE2]),
        ["", "\u{FFFD}a", "", "\u{FFFD}"]
    );
    let mut stream = tok.stream_decoder();
    assert!(matches!(
        stream.step(1000),
        Err(TokenizerError::IdOutOfRange { id: 1000, .. })
    ));
    assert_eq!(stream.step(A).unwrap(), "a");
}

#[test]
fn space_prefix_when_the_vocab_asks_for_it() {
    let tok = Tokenizer::from_vocab(Vocab {
        add_space_prefix: true,
        ..vocab()
    })
    .unwrap();
    assert_eq!(tok.encode("ab", true).unwrap(), [BOS, SP_AB]);
    // As llama.cpp: a ▁ after every literal piece too.
    assert_eq!(
        tok.encode("<start_of_turn>ab", false).unwrap(),
        [SOT, SP_AB]
    );
    // The dummy prefix is removed again when decoding.
    assert_eq!(tok.decode(&[BOS, SP_AB, SP_AB]).unwrap(), "ab ab");
    assert_eq!(stream_all(&tok, &[BOS, SP_AB, SP_AB]).concat(), "ab ab");
    // Only one space goes, from the first piece with text (cargo-fuzz, 2026-12-05: decode
    // stripped every leading piece's space while its output was empty; the stream one).
    assert_eq!(tok.decode(&[BOS, SP, SP_AB]).unwrap(), " ab");
    assert_eq!(stream_all(&tok, &[BOS, SP, SP_AB]).concat(), " ab");
}

#[test]
fn invalid_vocabularies_are_typed_errors() {
    let empty = Vocab {
        tokens: vec![],
        scores: vec![],
        token_types: vec![],
        ..vocab()
    };
    assert!(matches!(
        Tokenizer::from_vocab(empty),
        Err(TokenizerError::EmptyVocab)
    ));

    let mut short = vocab();
    short.scores.pop();
    assert!(matches!(
        Tokenizer::from_vocab(short),
        Err(TokenizerError::LengthMismatch {
            tokens: 24,
            scores: 23,
            token_types: 24
        })
    ));

    let bad_bos = Vocab {
        bos_id: 24,
        ..vocab()
    };
    assert!(matches!(
        Tokenizer::from_vocab(bad_bos),
        Err(TokenizerError::SpecialIdOutOfRange {
            what: "BOS",
            id: 24,
            ..
        })
    ));

    // Without an unknown token, a byte with no <0xNN> piece cannot be encoded.
    let tok = Tokenizer::from_vocab(Vocab {
        unknown_id: None,
        ..vocab()
    })
    .unwrap();
    assert!(matches!(
        tok.encode("é", false),
        Err(TokenizerError::Untokenizable { byte: 0xa9 })
    ));
}

#[test]
fn vocab_json_round_trips_and_rejects_bad_files() {
    let dir = temp_dir("vocab-json");
    let path = dir.join("tokenizer.vocab.json");
    let v = vocab();
    v.save_json(&path).unwrap();
    assert_eq!(Vocab::load_json(&path).unwrap(), v);
    // Saving again replaces the file; no temporary file is left behind.
    v.save_json(&path).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tokenizer.vocab.json"]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["format"], "burn-int8-tokenizer/vocab");
    assert_eq!(json["version"], 1);
    assert_eq!(json["tokens"][20], "\u{2581}ab");
    assert_eq!(json["unknown_id"], 3);

    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let garbage = write("garbage.json", "{not json");
    assert!(matches!(
        Vocab::load_json(&garbage),
        Err(TokenizerError::InvalidVocabJson { .. })
    ));
    let other_format = write(
        "other.json",
        &json
            .to_string()
            .replace("burn-int8-tokenizer/vocab", "something-else"),
    );
    assert!(matches!(
        Vocab::load_json(&other_format),
        Err(TokenizerError::InvalidVocabJson { .. })
    ));
    let mismatched = write(
        "mismatched.json",
        &json.to_string().replace("\"scores\":[0.0,", "\"scores\":["),
    );
    assert!(matches!(
        Vocab::load_json(&mismatched),
        Err(TokenizerError::LengthMismatch { .. })
    ));
    // 1e39 is a valid JSON number but overflows f32 to inf, which JSON could not write back.
    let overflowing = write(
        "overflowing.json",
        &json
            .to_string()
            .replacen("\"scores\":[0.0,", "\"scores\":[1e39,", 1),
    );
    assert!(matches!(
        Vocab::load_json(&overflowing),
        Err(TokenizerError::NonFiniteScore { id: 0, score }) if score == f32::INFINITY
    ));
    let nan_scores = Vocab {
        scores: vocab().scores.iter().map(|_| f32::NAN).collect(),
        ..vocab()
    };
    assert!(matches!(
        nan_scores.save_json(dir.join("nan.json")),
        Err(TokenizerError::NonFiniteScore { id: 0, .. })
    ));
    assert!(!dir.join("nan.json").exists());
    assert!(matches!(
        Vocab::load_json(dir.join("missing.json")),
        Err(TokenizerError::Io { .. })
    ));
    // Saving an invalid vocabulary fails before touching the disk.
    let empty = Vocab {
        tokens: vec![],
        scores: vec![],
        token_types: vec![],
        ..vocab()
    };
    assert!(empty.save_json(dir.join("empty.json")).is_err());
    assert!(!dir.join("empty.json").exists());

    let tok = Tokenizer::from_vocab_json(&path).unwrap();
    assert_eq!(tok.encode("abcd", false).unwrap(), [AB, CD]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The hand-written `tokenizer.json` of the same vocabulary loads, encodes and decodes like the
/// SentencePiece path (its post-processor's BOS is replaced by `add_bos`).
#[test]
fn hf_tokenizer_json_matches_the_sentencepiece_path() {
    let tok = hf();
    assert!(tok.vocab().is_none());
    assert_eq!((tok.bos_id(), tok.eos_id()), (BOS, EOS));
    assert_eq!(tok.padding_id(), Some(PAD));
    assert_eq!(tok.vocab_size(), PIECES.len());
    assert_eq!(tok.token_id("cd"), Some(CD));
    assert_eq!(tok.id_to_piece(SP_AB).as_deref(), Some("\u{2581}ab"));
    assert!(tok.is_control(EOT) && !tok.is_control(NL));
    for &(text, expected) in CASES {
        if text == "é" {
            continue;
        }
        assert_eq!(tok.encode(text, false).unwrap(), expected, "{text:?}");
    }
    // `tokenizers` falls back per character, not per byte: one unknown for the whole `é` since
    // <0xA9> is missing (a vocabulary with all 256 byte tokens, like Gemma's, never sees this).
    assert_eq!(tok.encode("é", false).unwrap(), [UNK]);
    assert_eq!(tok.encode("abc", true).unwrap(), [BOS, A, BC_]);
    assert_eq!(
        tok.decode(&[BOS, SOT, A, EOT, NL, SP_AB, TWO_SPACES, PAD, EOS])
            .unwrap(),
        "a\n ab  "
    );
    assert_eq!(tok.decode(&[BE2, B82, BAC]).unwrap(), "€");
    assert!(matches!(
        tok.decode(&[A, 24]),
        Err(TokenizerError::IdOutOfRange { id: 24, .. })
    ));
    let streamed = stream_all(&tok, &[BOS, A, BE2, B82, BAC, SP_AB, EOS]);
    assert_eq!(streamed, ["", "a", "", "", "€", " ab", "", ""]);
    assert_eq!(stream_all(&tok, &[A, BE2]).concat(), "a\u{FFFD}");
}

#[test]
fn bad_hf_files_are_typed_errors() {
    let dir = temp_dir("hf-bad");
    let garbage = dir.join("tokenizer.json");
    std::fs::write(&garbage, "{\"model\": 3}").unwrap();
    assert!(matches!(
        Tokenizer::from_hf_file(&garbage),
        Err(TokenizerError::InvalidHfTokenizer { .. })
    ));
    assert!(matches!(
        Tokenizer::from_hf_file(&dir.join("missing.json")),
        Err(TokenizerError::Io { .. })
    ));
    // A tokenizer without <bos>/<s> is refused.
    let tiny = std::fs::read_to_string(tiny_tokenizer_path()).unwrap();
    // A syntax error inside the `decoder` object (the cargo-fuzz finding: `tokenizers` 0.22
    // panics there) is a typed error with the place, not a panic.
    let decoder_at = tiny
        .find("\"decoder\"")
        .expect("the tiny tokenizer has a decoder");
    let broken = format!(
        "{}\"decoder\": {{\"type\": \"Sequence\", \"decoders\": [{{\"type\": {}",
        &tiny[..decoder_at],
        &tiny[decoder_at + 40..]
    );
    let broken_path = dir.join("broken_decoder.json");
    std::fs::write(&broken_path, broken).unwrap();
    match Tokenizer::from_hf_file(&broken_path) {
        Err(TokenizerError::InvalidHfTokenizer { path, message }) => {
            assert_eq!(path, broken_path);
            assert!(
                message.starts_with("not valid JSON") && message.contains("line"),
                "{message}"
            );
        }
        other => panic!("expected InvalidHfTokenizer, got {other:?}"),
    }
    // Strings inside the decoder that the syntax alone does not reject (the second cargo-fuzz
    // finding, 2026-12-05): bytes that are not UTF-8, and an escape of half a surrogate pair.
    let fuse_at = tiny
        .find("{\"type\": \"Fuse\"}")
        .expect("the tiny tokenizer fuses");
    let bad_strings: [(&str, Vec<u8>); 2] = [
        (
            "not_utf8",
            [
                &tiny.as_bytes()[..fuse_at + 14],
                &[0xbe, 0xff],
                &tiny.as_bytes()[fuse_at + 14..],
            ]
            .concat(),
        ),
        (
            "lone_surrogate",
            format!("{}\\ud800{}", &tiny[..fuse_at + 14], &tiny[fuse_at + 14..]).into_bytes(),
        ),
    ];
    for (name, bytes) in bad_strings {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, bytes).unwrap();
        match Tokenizer::from_hf_file(&path) {
            Err(TokenizerError::InvalidHfTokenizer {
                path: reported,
                message,
            }) => {
                assert_eq!(reported, path);
                assert!(
                    message.starts_with("not valid JSON") && message.contains("line 26"),
                    "{name}: {message}"
                );
            }
            other => panic!("{name}: expected InvalidHfTokenizer, got {other:?}"),
        }
    }
    let no_bos = dir.join("no_bos.json");
    std::fs::write(&no_bos, tiny.replace("<bos>", "<begin>")).unwrap();
    assert!(matches!(
        Tokenizer::from_hf_file(&no_bos),
        Err(TokenizerError::MissingSpecialToken { what: "BOS", .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
