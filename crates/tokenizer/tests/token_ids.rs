//! The token-id comparison test: every input below, run through the tokenizer, must give exactly
//! the ids, decoded text and stream chunks recorded in `fixtures/token_ids.json`.
//!
//! The recording was made by the hand-written SentencePiece BPE that this crate had before it
//! built a `tokenizers::Tokenizer` from the vocabulary (commit noted in the fixture's
//! `produced_by`), so this test pins the switch to "nothing changed". Re-record only on purpose:
//! `cargo test --release -p burn-int8-tokenizer -- --ignored record_token_ids`.
//!
//! Inputs: the real Gemma 3 vocabulary on the reference prompts and generations, the GPL-3 text
//! (whole and line by line), tricky strings (control tokens written as text, byte fallback,
//! emoji, CJK, runs of spaces and newlines), a pseudo-random id sequence, and every piece of the
//! vocabulary as text (recorded as a count and an FNV-1a digest, to keep the fixture small); the
//! fuzz fixture vocabularies on the tricky strings; and every file of `fuzz/corpus/tokenizer`
//! (copied to `fixtures/fuzz_tokenizer/`), read as `fuzz/harness.rs` reads it. The Gemma part
//! needs the vocabulary JSON (see `gemma3.rs`): skipped without it, a failure with `CI` set.

use crate::checkpoint;

use std::path::{Path, PathBuf};

use burn_int8_tokenizer::{Tokenizer, TokenizerError, Vocab};
use serde_json::{Value, json};

/// The text `fuzz/harness.rs` runs through every tokenizer it loads.
const SAMPLE_TEXT: &str = "Hello world, ab abc  the\n\t\tcd \u{e9}\u{20ac}\u{1F600} <bos><start_of_turn>user\nhi<end_of_turn>\u{2581}x\u{FFFD}";

fn fixtures() -> PathBuf {
    // The manifest dir at run time: a binary reused from another checkout (shared target dir)
    // must not read the other checkout's fixtures.
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/fixtures")
}

fn tricky_strings() -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        " ",
        "  ",
        "   ",
        "    x",
        "\n",
        "\n\n\n",
        " \n ",
        "\r\n",
        "\t",
        "\t\t\t",
        "  leading spaces",
        "trailing spaces  ",
        "a\u{3000}b",
        "<start_of_turn>user\n",
        "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
        "Hello<eos>world",
        "<bos><bos>",
        "<start_of_turn",
        "<unk>",
        "<pad>x<pad>",
        "<table><tr><td>1</td></tr></table>",
        "\u{a66e}\u{1d518}",
        "\u{1F980}\u{1F980}",
        "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}",
        "\u{65E5}\u{672C}\u{8A9E}\u{306E}\u{30C6}\u{30AD}\u{30B9}\u{30C8}",
        "\u{4E2D}\u{6587}\u{5B57}\u{7B26}\u{6D4B}\u{8BD5}",
        "\u{D55C}\u{AD6D}\u{C5B4}",
        "Gr\u{fc}\u{df}e aus K\u{f6}ln! \u{c7}a va?",
        "e\u{301} \u{fb01} \u{200b}",
        "\u{0}\u{1}\u{7f}",
        "\u{2581}",
        "\u{2581}\u{2581}x",
        "a\u{2581}b",
        "\u{FFFD}",
        "<0x41>",
        "1234567890 3.14159 -42",
        "emoji \u{1F389} mixed",
        "  indented\n\tcode();\n\n\n  ",
        "aaaa bbbb    cccc 1234567890 !!!??? ...",
        "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX.",
        SAMPLE_TEXT,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // Runs of one character: BPE merges among equal pieces, leftmost first.
    for c in [
        'x', '-', '=', '*', '.', '0', 'a', ' ', '\n', '\u{2581}', '\u{e9}',
    ] {
        for n in [2, 3, 5, 8, 13, 31] {
            texts.push(c.to_string().repeat(n));
        }
    }
    texts
}

/// The variant name of an error: paths and messages of other libraries may change.
fn error_kind(e: &TokenizerError) -> String {
    let debug = format!("{e:?}");
    let end = debug
        .find(|c: char| !c.is_alphanumeric() && c != '_')
        .unwrap_or(debug.len());
    debug[..end].to_owned()
}

fn stream_chunks(tok: &Tokenizer, ids: &[u32]) -> Value {
    let mut stream = tok.stream_decoder();
    let mut chunks: Vec<Value> = ids
        .iter()
        .map(|&id| match stream.step(id) {
            Ok(text) => json!(text),
            Err(e) => json!({ "error": error_kind(&e) }),
        })
        .collect();
    chunks.push(match stream.finish() {
        Ok(text) => json!(text),
        Err(e) => json!({ "error": error_kind(&e) }),
    });
    Value::Array(chunks)
}

fn decoded(tok: &Tokenizer, ids: &[u32]) -> Value {
    match tok.decode(ids) {
        Ok(text) => json!(text),
        Err(e) => json!({ "error": error_kind(&e) }),
    }
}

/// Encoding (without BOS: `encode_checks` asserts that BOS only goes in front), decoding and
/// stream chunks of `text`; the stream chunks are left out for long texts.
fn encoded(tok: &Tokenizer, text: &str, with_stream: bool) -> Value {
    let ids = match tok.encode(text, false) {
        Ok(ids) => ids,
        Err(e) => return json!({ "error": error_kind(&e) }),
    };
    let with_bos = tok.encode(text, true).expect("encode with BOS");
    assert_eq!(with_bos[0], tok.bos_id(), "{text:?}");
    assert_eq!(with_bos[1..], ids, "{text:?}");
    let mut result = json!({ "ids": ids, "decoded": decoded(tok, &ids) });
    if with_stream {
        result["stream"] = stream_chunks(tok, &ids);
    }
    result
}

fn describe(tok: &Tokenizer) -> Value {
    let n = tok.vocab_size();
    json!({
        "vocab_size": n,
        "bos": tok.bos_id(),
        "eos": tok.eos_id(),
        "padding": tok.padding_id(),
        "unknown": tok.unknown_id(),
        "end_of_turn": tok.end_of_turn_id(),
        "add_bos_default": tok.add_bos_default(),
        "control": (0..n.min(512) as u32).filter(|&id| tok.is_control(id)).collect::<Vec<_>>(),
        "pieces": (0..n.min(512) as u32)
            .map(|id| tok.id_to_piece(id).map(|p| p.into_owned()))
            .collect::<Vec<_>>(),
        "out_of_range": decoded(tok, &[n as u32]),
    })
}

/// What `exercise_tokenizer` in `fuzz/harness.rs` does with a loaded tokenizer.
fn exercised(tok: &Tokenizer) -> Value {
    let mut result = describe(tok);
    result["sample"] = encoded(tok, SAMPLE_TEXT, true);
    result
}

fn load_vocab(path: &Path) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_vocab(Vocab::load_json(path)?)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-int8-tokenizer-ids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A fuzz corpus file, read as `harness::tokenizer` reads it.
fn fuzz_case(round_trip: &Tokenizer, name: &str, data: &[u8]) -> Value {
    let Some((&mode, rest)) = data.split_first() else {
        return Value::Null;
    };
    match mode % 3 {
        0 => {
            let path = scratch(&format!("{name}.vocab.json"));
            std::fs::write(&path, rest).unwrap();
            match load_vocab(&path) {
                Ok(tok) => exercised(&tok),
                Err(e) => json!({ "error": error_kind(&e) }),
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            let n = round_trip.vocab_size() as u32;
            let arbitrary: Vec<u32> = rest
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])) % (n + 8))
                .collect();
            json!({
                "text": encoded(round_trip, &text, true),
                "arbitrary_ids": arbitrary,
                "arbitrary_decoded": decoded(round_trip, &arbitrary),
                "arbitrary_stream": stream_chunks(round_trip, &arbitrary),
            })
        }
        _ => {
            let path = scratch(&format!("{name}.tokenizer.json"));
            std::fs::write(&path, rest).unwrap();
            match Tokenizer::from_hf_file(&path) {
                Ok(tok) => exercised(&tok),
                Err(e) => json!({ "error": error_kind(&e) }),
            }
        }
    }
}

/// 64-bit FNV-1a, to record the ids of every piece of the vocabulary in a few bytes.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn gemma_cases(tok: &Tokenizer, cases: &mut Vec<(String, Value)>) {
    cases.push(("gemma3/facts".into(), describe(tok)));
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("gemma3_reference.json")).unwrap(),
    )
    .unwrap();
    for p in reference["prompts"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let text = p["text"].as_str().unwrap();
        cases.push((format!("gemma3/prompt/{name}"), encoded(tok, text, true)));
    }
    for g in reference["generations"].as_array().unwrap() {
        let name = g["name"].as_str().unwrap();
        let ids: Vec<u32> = serde_json::from_value(g["token_ids"].clone()).unwrap();
        cases.push((
            format!("gemma3/generation/{name}"),
            json!({ "decoded": decoded(tok, &ids), "stream": stream_chunks(tok, &ids) }),
        ));
    }
    let gpl = std::fs::read_to_string(fixtures().join("GPL-3.txt")).unwrap();
    cases.push(("gemma3/GPL-3".into(), encoded(tok, &gpl, false)));
    let lines: Vec<Value> = gpl
        .split_inclusive('\n')
        .map(|line| encoded(tok, line, false)["ids"].clone())
        .collect();
    cases.push(("gemma3/GPL-3-lines".into(), Value::Array(lines)));
    for (i, text) in tricky_strings().iter().enumerate() {
        cases.push((format!("gemma3/tricky/{i}"), encoded(tok, text, true)));
    }
    // Ids a model might emit: byte tokens out of order, control tokens, out-of-range ids.
    let n = tok.vocab_size() as u64;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u32> = (0..3000)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Every third id is near the byte tokens (ids 238..=493 are <0x00>..<0xFF> in Gemma 3).
            let range = if i % 3 == 0 { 300 } else { n + 8 };
            (state % range) as u32 + if i % 3 == 0 { 220 } else { 0 }
        })
        .collect();
    let valid: Vec<u32> = random
        .iter()
        .copied()
        .filter(|&id| u64::from(id) < n)
        .collect();
    cases.push((
        "gemma3/random-ids".into(),
        json!({
            "decoded": decoded(tok, &random),
            "valid_decoded": decoded(tok, &valid),
            "valid_stream": stream_chunks(tok, &valid),
        }),
    ));
    // Every piece as text (▁ as space), and every two neighbouring pieces joined.
    let pieces: Vec<String> = (0..n as u32)
        .map(|id| tok.id_to_piece(id).unwrap().replace('\u{2581}', " "))
        .collect();
    let mut count = 0usize;
    let mut ids_digest = Fnv::new();
    let mut text_digest = Fnv::new();
    let mut add = |text: &str| {
        let ids = tok.encode(text, false).unwrap();
        count += ids.len();
        for id in &ids {
            ids_digest.bytes(&id.to_le_bytes());
        }
        ids_digest.bytes(&[0xff; 4]);
        text_digest.bytes(tok.decode(&ids).unwrap().as_bytes());
        text_digest.bytes(&[0xff]);
    };
    for piece in &pieces {
        add(piece);
    }
    for pair in pieces.windows(2) {
        add(&format!("{}{}", pair[0], pair[1]));
    }
    cases.push((
        "gemma3/every-piece".into(),
        json!({
            "ids": count,
            "ids_fnv1a64": format!("{:016x}", ids_digest.0),
            "decoded_fnv1a64": format!("{:016x}", text_digest.0),
        }),
    ));
}

/// Every case: (name, result). The Gemma cases only when `gemma` is given.
fn run_all(gemma: Option<&Tokenizer>) -> Vec<(String, Value)> {
    let mut cases = Vec::new();
    if let Some(tok) = gemma {
        gemma_cases(tok, &mut cases);
    }
    let dir = fixtures().join("fuzz_tokenizer");
    let round_trip = load_vocab(&dir.join("round_trip.vocab.json")).unwrap();
    let loader = load_vocab(&dir.join("loader.vocab.json")).unwrap();
    for (name, tok) in [("round_trip", &round_trip), ("loader", &loader)] {
        cases.push((format!("{name}/facts"), describe(tok)));
        for (i, text) in tricky_strings().iter().enumerate() {
            cases.push((format!("{name}/tricky/{i}"), encoded(tok, text, true)));
        }
    }
    let mut corpus: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    corpus.sort();
    assert_eq!(
        corpus.len(),
        8,
        "the fuzz corpus files in {}",
        dir.display()
    );
    for path in corpus {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        cases.push((format!("fuzz/{name}"), fuzz_case(&round_trip, &name, &data)));
    }
    let _ = std::fs::remove_dir_all(scratch("x").parent().unwrap());
    cases
}

fn gemma() -> Option<Tokenizer> {
    let path = checkpoint::gemma3_vocab_json()?;
    Some(load_vocab(&path).expect("the Gemma 3 vocabulary"))
}

const FIXTURE: &str = "token_ids.json";

/// Writes the fixture from the tokenizer as it is now (see the module docs).
#[test]
#[ignore = "records the fixture; run on purpose only"]
fn record_token_ids() {
    let tok = gemma().expect("recording needs the Gemma 3 vocabulary");
    let cases: serde_json::Map<String, Value> = run_all(Some(&tok)).into_iter().collect();
    let produced_by = std::env::var("TOKEN_IDS_PRODUCED_BY")
        .expect("set TOKEN_IDS_PRODUCED_BY to a note naming the implementation and its commit");
    let fixture = json!({ "produced_by": produced_by, "cases": cases });
    let mut text = serde_json::to_string(&fixture).unwrap();
    text.push('\n');
    std::fs::write(fixtures().join(FIXTURE), text).unwrap();
}

#[test]
fn token_ids_match_the_recording() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(FIXTURE)).expect("the token-id fixture"),
    )
    .unwrap();
    let recorded = fixture["cases"].as_object().unwrap();
    let tok = gemma();
    let cases = run_all(tok.as_ref());
    let mut checked = 0;
    for (name, result) in &cases {
        let expected = recorded
            .get(name)
            .unwrap_or_else(|| panic!("{name}: not in the fixture"));
        assert!(
            result == expected,
            "{name}: got\n{result}\nrecorded\n{expected}"
        );
        checked += 1;
    }
    let expected_cases = if tok.is_some() {
        recorded.len()
    } else {
        recorded
            .keys()
            .filter(|k| !k.starts_with("gemma3/"))
            .count()
    };
    assert_eq!(checked, expected_cases, "cases run vs recorded");
}
