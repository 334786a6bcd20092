//! Tests on the real Gemma3 270M Q4_K_M checkpoint, compared with gguf-py
//! (tests/fixtures/real.*, made by make_reference.py). Skipped, loudly, when
//! the checkpoint is not installed, and failed instead when `CI` is set.

use crate::common;
use burn_int8_testkit::checkpoint;

use std::time::Instant;

use burn_int8_gguf::{GgmlType, GgufError, GgufFile, Value};
use common::*;

/// The real checkpoint, opened; `None` (after a SKIPPED banner) when it is missing outside CI
/// (see `burn_int8_testkit::checkpoint`: with `CI` set, missing is a failure).
fn open_real() -> Option<GgufFile> {
    let path = checkpoint::gemma3_gguf()?;
    Some(GgufFile::open(&path).expect("opening the real checkpoint"))
}

fn records(kind: &str) -> Vec<Record> {
    read_index("real.txt")
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect()
}

#[test]
fn header_and_metadata() {
    let Some(f) = open_real() else { return };
    let file = &records("file")[0];
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), file.u64("alignment"));
    assert_eq!(f.data_offset(), file.u64("data_offset"));
    assert_eq!(f.file_len(), file.u64("file_len"));
    assert_eq!(f.tensor_count() as u64, file.u64("n_tensors"));
    assert_eq!(f.metadata().len() as u64, file.u64("n_kv"));

    assert_eq!(f.get_str("general.architecture").unwrap(), "gemma3");
    assert_eq!(f.get_u32("gemma3.embedding_length").unwrap(), 640);
    assert_eq!(f.get_u32("gemma3.block_count").unwrap(), 18);
    assert_eq!(f.get_u32("gemma3.context_length").unwrap(), 32768);
    assert_eq!(f.get_u32("gemma3.feed_forward_length").unwrap(), 2048);
    assert_eq!(f.get_u32("gemma3.attention.head_count").unwrap(), 4);
    assert_eq!(f.get_u32("gemma3.attention.head_count_kv").unwrap(), 1);
    assert_eq!(f.get_u32("gemma3.attention.key_length").unwrap(), 256);
    assert_eq!(f.get_u32("gemma3.attention.value_length").unwrap(), 256);
    assert_eq!(f.get_u32("gemma3.attention.sliding_window").unwrap(), 512);
    assert_eq!(f.get_u64("gemma3.attention.sliding_window").unwrap(), 512);
    assert_eq!(f.get_f32("gemma3.rope.freq_base").unwrap(), 1_000_000.0);
    assert_eq!(
        f.get_f32("gemma3.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-6f32
    );

    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "llama");
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), "default");
    assert_eq!(f.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 2);
    assert_eq!(f.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 1);
    assert_eq!(f.get_u32("tokenizer.ggml.unknown_token_id").unwrap(), 3);
    assert_eq!(f.get_u32("tokenizer.ggml.padding_token_id").unwrap(), 0);
    assert!(f.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(!f.get_bool("tokenizer.ggml.add_eos_token").unwrap());
    assert_eq!(f.get_string_array("general.tags").unwrap()[0], "gemma3");

    let tokens = f.get_string_array("tokenizer.ggml.tokens").unwrap();
    let scores = f.get_f32_array("tokenizer.ggml.scores").unwrap();
    let types = f.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(tokens.len(), 262144);
    assert_eq!(scores.len(), 262144);
    assert_eq!(types.len(), 262144);
    for t in records("token") {
        let id = t.usize("id");
        let want: Vec<u8> = (0..t.str("hex").len() / 2)
            .map(|i| u8::from_str_radix(&t.str("hex")[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(tokens[id].as_bytes(), want, "token {id}");
        assert_eq!(
            scores[id].to_bits() as u64,
            t.u64("score_bits"),
            "score {id}"
        );
        assert_eq!(
            types[id] as i64,
            t.str("type").parse::<i64>().unwrap(),
            "type {id}"
        );
    }

    // Typed errors on real keys.
    assert!(matches!(
        f.get_str("gemma3.block_count"),
        Err(GgufError::WrongType { ref key, expected: "string", ref found })
            if key == "gemma3.block_count" && found == "u32"
    ));
    assert!(matches!(
        f.get_u32("tokenizer.ggml.tokens"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(
        matches!(f.get_u32("gemma3.no_such_key"), Err(GgufError::MissingKey(k)) if k == "gemma3.no_such_key")
    );
    assert!(matches!(f.get("tokenizer.ggml.scores"), Some(Value::Array(a)) if a.len() == 262144));

    // Summary for the report.
    for (k, v) in f.metadata() {
        println!("{k}: {v}");
    }
}

#[test]
fn tensor_infos_match_gguf_py() {
    let Some(f) = open_real() else { return };
    let want = records("tensor");
    assert_eq!(f.tensor_count(), want.len());
    for (t, w) in f.tensors().zip(&want) {
        assert_eq!(t.name, w.str("name"));
        assert_eq!(t.ggml_type.id() as u64, w.u64("type"), "{}", t.name);
        let dims: Vec<u64> = w
            .str("dims")
            .split(',')
            .map(|d| d.parse().unwrap())
            .collect();
        assert_eq!(t.dims, dims, "{}", t.name);
        assert_eq!(t.offset, w.u64("offset"), "{}", t.name);
        assert_eq!(f.tensor_info(&t.name), Some(t));
    }
    let emb = f.tensor_info("token_embd.weight").unwrap();
    assert_eq!(emb.ggml_type, GgmlType::Q8_0);
    assert_eq!(emb.dims, [640, 262144]);
    assert_eq!(emb.shape_row_major(), [262144, 640]);
    assert_eq!(emb.n_rows(), 262144);
    assert_eq!(emb.byte_size(), 262144 * 20 * 34);
    let mut counts = std::collections::BTreeMap::new();
    for t in f.tensors() {
        *counts.entry(t.ggml_type.name()).or_insert(0) += 1;
    }
    println!("tensor types: {counts:?}");
    assert_eq!(counts["F32"], 109);
    assert_eq!(counts["Q5_0"], 81);
    assert_eq!(counts["Q4_K"], 27);
    assert_eq!(counts["Q8_0"], 10);
    assert_eq!(counts["Q6_K"], 9);
}

struct Sums {
    xor: u32,
    wsum: u64,
    sum: f64,
    n: u64,
}

impl Sums {
    fn new() -> Self {
        Sums {
            xor: 0,
            wsum: 0,
            sum: 0.0,
            n: 0,
        }
    }
    fn add(&mut self, vals: &[f32]) {
        for v in vals {
            self.n += 1;
            let b = v.to_bits();
            self.xor ^= b;
            self.wsum = self.wsum.wrapping_add((b as u64).wrapping_mul(self.n));
            self.sum += *v as f64;
        }
    }
}

/// Every tensor (and some row ranges) dequantized and compared with gguf-py:
/// exact bit-pattern checksums over all values, and the stored prefixes
/// bit for bit. Large tensors are streamed in row chunks.
#[test]
fn dequantization_matches_gguf_py() {
    let Some(f) = open_real() else { return };
    let bin = read_fixture_bin("real.bin");
    let checks = records("check");
    assert!(checks.len() > 236);
    let mut buf = Vec::new();
    for c in checks {
        let name = c.str("name");
        let info = f.tensor_info(name).unwrap();
        let (a, b) = c.str("rows").split_once("..").unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let row_len = info.row_len() as usize;
        let step = (1 << 20) / row_len + 1;
        let mut sums = Sums::new();
        let mut first = Vec::new();
        let stored = c.usize("stored");
        let mut r = a;
        while r < b {
            let r1 = (r + step).min(b);
            buf.resize((r1 - r) * row_len, 0.0);
            f.read_f32_rows_into(name, r..r1, &mut buf).unwrap();
            sums.add(&buf);
            let take = stored.saturating_sub(first.len()).min(buf.len());
            first.extend_from_slice(&buf[..take]);
            r = r1;
        }
        let what = format!("{name} rows {a}..{b}");
        assert_eq!(sums.n, c.u64("n"), "{what}: count");
        let off = c.usize("exp_off");
        assert_bits_eq(&first, &f32s(&bin[off..off + 4 * stored]), &what);
        assert_eq!(sums.xor as u64, c.u64("xor"), "{what}: xor of bits");
        assert_eq!(sums.wsum, c.u64("wsum"), "{what}: weighted sum of bits");
        let want_sum: f64 = c.str("sum").parse().unwrap();
        let tol = 1e-9 * sums.n as f64 + 1e-9 * want_sum.abs();
        assert!(
            (sums.sum - want_sum).abs() <= tol,
            "{what}: sum {} vs {want_sum}",
            sums.sum
        );
    }
}

/// Whole-tensor `read_f32` of the token embedding agrees with streamed rows,
/// and its speed is printed (run with --nocapture to see it).
#[test]
fn token_embd_whole_read_and_speed() {
    let t0 = Instant::now();
    let Some(f) = open_real() else { return };
    println!(
        "GgufFile::open (header of {} bytes, 262144-token vocabulary): {:.1} ms",
        f.data_offset(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let info = f.tensor_info("token_embd.weight").unwrap();
    let t0 = Instant::now();
    let all = f.read_f32("token_embd.weight").unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(all.len(), 262144 * 640);
    println!(
        "token_embd.weight (Q8_0, {} MB raw -> {} MB f32): read_f32 {:.3} s = {:.0} MB/s raw, {:.0} MB/s f32 out",
        info.byte_size() / 1_000_000,
        all.len() * 4 / 1_000_000,
        secs,
        info.byte_size() as f64 / 1e6 / secs,
        all.len() as f64 * 4.0 / 1e6 / secs
    );
    let rows = f
        .read_f32_rows("token_embd.weight", 131_000..131_010)
        .unwrap();
    assert_bits_eq(&rows, &all[131_000 * 640..131_010 * 640], "token_embd rows");
    // Row-range errors are typed.
    assert!(matches!(
        f.read_f32_rows("token_embd.weight", 262_000..262_145),
        Err(GgufError::RowsOutOfRange { n_rows: 262144, .. })
    ));
}
