//! Valid and malformed hand-built GGUF files: every metadata value type
//! round-trips, and every kind of corruption yields the right typed error
//! (never a panic), with a message naming the key or tensor.

use crate::common;

use burn_int8_gguf::{Array, GgmlType, GgufError, GgufFile, Value};
use common::*;

fn open_bytes(tag: &str, bytes: &[u8]) -> Result<GgufFile, GgufError> {
    let path = write_temp(tag, bytes);
    let r = GgufFile::open(&path);
    std::fs::remove_file(&path).ok();
    r
}

/// Q8_0 block data: `n_blocks` blocks with scale 0.5 and quants 0..32.
fn q8_0_data(n_blocks: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..n_blocks {
        v.extend_from_slice(&0x3800u16.to_le_bytes()); // f16 0.5
        v.extend((0..32).map(|i| (i as i8 - 16) as u8));
    }
    v
}

fn f32_data(vals: &[f32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A small valid file with metadata of every kind and three tensors.
fn valid() -> GgufBuilder {
    GgufBuilder::new()
        .kv_str("general.architecture", "test")
        .kv_u32("test.block_count", 2)
        .kv_f32("test.eps", 1e-6)
        .kv_bool("test.flag", true)
        .kv_str_array("tokenizer.ggml.tokens", &["<pad>", "a", "é"])
        .kv_array(
            "tokenizer.ggml.scores",
            T_F32,
            3,
            &f32_data(&[0.0, -1.5, 2.0]),
        )
        .kv_array(
            "tokenizer.ggml.token_type",
            T_I32,
            3,
            &[3i32, 1, 1]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        )
        .tensor("norm.weight", &[4], 0, &f32_data(&[1.0, 2.0, 3.0, 4.0]))
        .tensor("emb.weight", &[32, 3], 8, &q8_0_data(3))
        .tensor("w.weight", &[64, 2], 8, &q8_0_data(4))
}

#[test]
fn valid_file_round_trips() {
    let b = valid();
    let f = open_bytes("valid", &b.build()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset() % 32, 0);
    assert_eq!(
        f.data_offset(),
        (b.header_len() as u64).next_multiple_of(32)
    );
    assert_eq!(f.get_str("general.architecture").unwrap(), "test");
    assert_eq!(f.get_u32("test.block_count").unwrap(), 2);
    assert_eq!(f.get_f32("test.eps").unwrap(), 1e-6);
    assert!(f.get_bool("test.flag").unwrap());
    assert_eq!(
        f.get_string_array("tokenizer.ggml.tokens").unwrap(),
        ["<pad>", "a", "é"]
    );
    assert_eq!(
        f.get_f32_array("tokenizer.ggml.scores").unwrap(),
        [0.0, -1.5, 2.0]
    );
    assert_eq!(
        f.get_i32_array("tokenizer.ggml.token_type").unwrap(),
        [3, 1, 1]
    );
    let names: Vec<&str> = f.tensors().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["norm.weight", "emb.weight", "w.weight"]);
    assert_eq!(f.read_f32("norm.weight").unwrap(), [1.0, 2.0, 3.0, 4.0]);
    let emb = f.tensor_info("emb.weight").unwrap();
    assert_eq!(emb.shape_row_major(), [3, 32]);
    assert_eq!(emb.byte_size(), 3 * 34);
    let row = f.read_f32_rows("emb.weight", 2..3).unwrap();
    assert_eq!(
        row,
        (0..32).map(|i| (i as f32 - 16.0) * 0.5).collect::<Vec<_>>()
    );
    assert_eq!(f.read_f32("w.weight").unwrap().len(), 128);
    assert!(f.tensor_info("missing").is_none());
}

#[test]
fn gguf_file_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GgufFile>();
    check::<GgufError>();
}

#[test]
fn version_2_is_accepted() {
    let mut b = valid();
    b.version = 2;
    assert_eq!(open_bytes("v2", &b.build()).unwrap().version(), 2);
}

#[test]
fn all_value_types_round_trip() {
    let le = |v: &[u8]| v.to_vec();
    let nested = {
        // array<array<u8>> with two inner arrays [1,2] and [3]
        let mut e = array_payload(T_U8, 2, &[1, 2]);
        e.extend(array_payload(T_U8, 1, &[3]));
        e
    };
    let b = GgufBuilder::new()
        .kv_raw("u8", T_U8, &[200])
        .kv_raw("i8", T_I8, &le(&(-5i8).to_le_bytes()))
        .kv_raw("u16", T_U16, &le(&60000u16.to_le_bytes()))
        .kv_raw("i16", T_I16, &le(&(-300i16).to_le_bytes()))
        .kv_raw("u32", T_U32, &le(&4_000_000_000u32.to_le_bytes()))
        .kv_raw("i32", T_I32, &le(&(-7i32).to_le_bytes()))
        .kv_raw("f32", T_F32, &le(&1.5f32.to_le_bytes()))
        .kv_raw("bool", T_BOOL, &[0])
        .kv_raw("string", T_STRING, &gguf_string(b"hi"))
        .kv_raw("u64", T_U64, &le(&u64::MAX.to_le_bytes()))
        .kv_raw("i64", T_I64, &le(&i64::MIN.to_le_bytes()))
        .kv_raw("f64", T_F64, &le(&2.25f64.to_le_bytes()))
        .kv_array("arr_u8", T_U8, 3, &[1, 2, 3])
        .kv_array(
            "arr_u64",
            T_U64,
            2,
            &[1u64.to_le_bytes(), (1u64 << 40).to_le_bytes()].concat(),
        )
        .kv_array(
            "arr_i16",
            T_I16,
            2,
            &[(-1i16).to_le_bytes(), 7i16.to_le_bytes()].concat(),
        )
        .kv_array("arr_bool", T_BOOL, 2, &[1, 0])
        .kv_array("arr_f64", T_F64, 1, &0.5f64.to_le_bytes())
        .kv_array("arr_empty", T_STRING, 0, &[])
        .kv_array("nested", T_ARRAY, 2, &nested);
    let f = open_bytes("values", &b.build()).unwrap();
    assert_eq!(f.get("u8"), Some(&Value::U8(200)));
    assert_eq!(f.get("i8"), Some(&Value::I8(-5)));
    assert_eq!(f.get("u16"), Some(&Value::U16(60000)));
    assert_eq!(f.get("i16"), Some(&Value::I16(-300)));
    assert_eq!(f.get("u32"), Some(&Value::U32(4_000_000_000)));
    assert_eq!(f.get("i32"), Some(&Value::I32(-7)));
    assert_eq!(f.get("f32"), Some(&Value::F32(1.5)));
    assert_eq!(f.get("bool"), Some(&Value::Bool(false)));
    assert_eq!(f.get("string"), Some(&Value::String("hi".into())));
    assert_eq!(f.get("u64"), Some(&Value::U64(u64::MAX)));
    assert_eq!(f.get("i64"), Some(&Value::I64(i64::MIN)));
    assert_eq!(f.get("f64"), Some(&Value::F64(2.25)));
    assert_eq!(
        f.get("arr_u8"),
        Some(&Value::Array(Array::U8(vec![1, 2, 3])))
    );
    assert_eq!(
        f.get("arr_bool"),
        Some(&Value::Array(Array::Bool(vec![true, false])))
    );
    assert_eq!(f.get("arr_f64"), Some(&Value::Array(Array::F64(vec![0.5]))));
    assert_eq!(
        f.get("arr_empty"),
        Some(&Value::Array(Array::String(vec![])))
    );
    assert_eq!(
        f.get("nested"),
        Some(&Value::Array(Array::Array(vec![
            Array::U8(vec![1, 2]),
            Array::U8(vec![3])
        ])))
    );

    // Integers of any type convert with range checks.
    assert_eq!(f.get_u32("u8").unwrap(), 200);
    assert_eq!(f.get_u32("u16").unwrap(), 60000);
    assert_eq!(f.get_i64("i8").unwrap(), -5);
    assert_eq!(f.get_u64("u64").unwrap(), u64::MAX);
    assert!(
        matches!(f.get_u32("i8"), Err(GgufError::OutOfRange { ref key, target: "u32", .. }) if key == "i8")
    );
    assert!(matches!(
        f.get_u32("u64"),
        Err(GgufError::OutOfRange { .. })
    ));
    assert!(matches!(
        f.get_i64("u64"),
        Err(GgufError::OutOfRange { .. })
    ));
    assert_eq!(f.get_i32_array("arr_u8").unwrap(), [1, 2, 3]);
    assert_eq!(f.get_i32_array("arr_i16").unwrap(), [-1, 7]);
    let e = f.get_i32_array("arr_u64").unwrap_err();
    assert!(
        matches!(e, GgufError::OutOfRange { ref key, .. } if key == "arr_u64[1]"),
        "{e}"
    );
    assert!(f.get_i32_array("arr_empty").is_err());

    // Wrong types and missing keys.
    for (r, found) in [
        (f.get_f32("f64").map(|_| ()), "f64"),
        (f.get_u32("f32").map(|_| ()), "f32"),
        (f.get_str("u8").map(|_| ()), "u8"),
        (f.get_bool("u8").map(|_| ()), "u8"),
        (f.get_string_array("arr_u8").map(|_| ()), "array<u8>"),
        (f.get_f32_array("arr_f64").map(|_| ()), "array<f64>"),
        (f.get_i32_array("string").map(|_| ()), "string"),
    ] {
        match r {
            Err(GgufError::WrongType { found: ref got, .. }) if got == found => {}
            other => panic!("expected WrongType found={found}, got {other:?}"),
        }
    }
    let e = f.get_u32("absent.key").unwrap_err();
    assert!(matches!(e, GgufError::MissingKey(ref k) if k == "absent.key"));
    assert!(e.to_string().contains("absent.key"));
}

#[test]
fn custom_alignment_is_honoured() {
    let b = GgufBuilder::new()
        .alignment(64)
        .tensor("a", &[3], 0, &f32_data(&[1.0, 2.0, 3.0]))
        .tensor("b", &[2], 0, &f32_data(&[4.0, 5.0]));
    let f = open_bytes("align64", &b.build()).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    assert_eq!(f.tensor_info("b").unwrap().offset, 64);
    assert_eq!(f.read_f32("b").unwrap(), [4.0, 5.0]);
}

// ------------------------------------------------------------ corruptions

#[test]
fn bad_magic() {
    let mut bytes = valid().build();
    bytes[..4].copy_from_slice(b"GGML");
    let e = open_bytes("magic", &bytes).unwrap_err();
    assert!(
        matches!(e, GgufError::BadMagic { found } if &found == b"GGML"),
        "{e}"
    );
}

#[test]
fn unsupported_versions() {
    for v in [0u32, 1, 4, 0x0300_0000] {
        let mut b = valid();
        b.version = v;
        let e = open_bytes("version", &b.build()).unwrap_err();
        assert!(
            matches!(e, GgufError::UnsupportedVersion(x) if x == v),
            "{e}"
        );
    }
}

#[test]
fn empty_and_tiny_files_are_truncated() {
    for bytes in [&b""[..], b"GG", b"GGUF", b"GGUF\x03\x00\x00\x00\x00"] {
        let e = open_bytes("tiny", bytes).unwrap_err();
        assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    }
}

/// Every proper prefix of the header fails with Truncated/LengthTooLarge.
#[test]
fn every_truncated_header_is_an_error() {
    let b = valid();
    let bytes = b.build();
    for len in 0..b.header_len() {
        match open_bytes("prefix", &bytes[..len]) {
            Err(GgufError::Truncated { .. } | GgufError::LengthTooLarge { .. }) => {}
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn truncated_tensor_data() {
    let bytes = valid().build();
    let e = open_bytes("data", &bytes[..bytes.len() - 1]).unwrap_err();
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { ref tensor, .. } if tensor == "w.weight"),
        "{e}"
    );
    assert!(e.to_string().contains("w.weight"));
}

#[test]
fn tensor_offset_beyond_the_file() {
    let mut b = valid();
    b.last_tensor().offset = Some(1 << 40);
    let e = open_bytes("offset", &b.build()).unwrap_err();
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { ref tensor, .. } if tensor == "w.weight"),
        "{e}"
    );

    // An offset so large that data_start + offset overflows.
    b.last_tensor().offset = Some(u64::MAX - 31);
    let e = open_bytes("offset", &b.build()).unwrap_err();
    assert!(
        matches!(e, GgufError::Overflow(ref m) if m.contains("w.weight")),
        "{e}"
    );
}

#[test]
fn misaligned_tensor_offset() {
    let mut b = valid();
    b.last_tensor().offset = Some(8);
    let e = open_bytes("misaligned", &b.build()).unwrap_err();
    assert!(
        matches!(e, GgufError::MisalignedOffset { ref tensor, offset: 8, alignment: 32 } if tensor == "w.weight"),
        "{e}"
    );
}

#[test]
fn absurd_array_lengths() {
    for (elem, count) in [
        (T_U8, 1u64 << 40),
        (T_F32, u64::MAX / 2),
        (T_STRING, 1 << 60),
        (T_STRING, u64::MAX),
        (T_ARRAY, 1 << 62),
    ] {
        let b = valid().kv_array("tokenizer.ggml.huge", elem, count, &[0; 16]);
        let e = open_bytes("array", &b.build()).unwrap_err();
        assert!(
            matches!(e, GgufError::LengthTooLarge { len, .. } if len == count),
            "{e}"
        );
        assert!(e.to_string().contains("tokenizer.ggml.huge"), "{e}");
    }
    // A plausible count whose elements are not all there.
    let b = valid().kv_array("short", T_U32, 10, &[0; 12]);
    assert!(open_bytes("array", &b.build()).is_err());
}

#[test]
fn absurd_string_length() {
    let mut v = (u64::MAX - 3).to_le_bytes().to_vec();
    v.extend_from_slice(b"abc");
    let e = open_bytes(
        "string",
        &valid().kv_raw("general.name", T_STRING, &v).build(),
    )
    .unwrap_err();
    assert!(
        matches!(e, GgufError::LengthTooLarge { ref context, .. } if context.contains("general.name")),
        "{e}"
    );
}

#[test]
fn absurd_counts() {
    let mut b = valid();
    b.n_kv_override = Some(u64::MAX);
    assert!(matches!(
        open_bytes("nkv", &b.build()),
        Err(GgufError::LengthTooLarge { .. })
    ));
    let mut b = valid();
    b.n_tensors_override = Some(1 << 50);
    assert!(matches!(
        open_bytes("nt", &b.build()),
        Err(GgufError::LengthTooLarge { .. })
    ));
}

#[test]
fn unknown_ggml_type_id() {
    for id in [4u32, 31, 99, u32::MAX] {
        let b = valid().tensor("odd.weight", &[32], id, &[0; 64]);
        let e = open_bytes("type", &b.build()).unwrap_err();
        assert!(
            matches!(e, GgufError::UnknownType { ref tensor, type_id } if tensor == "odd.weight" && type_id == id),
            "{e}"
        );
        assert!(e.to_string().contains("odd.weight"));
    }
}

#[test]
fn known_but_unsupported_type() {
    // Q2_K: 256 values in 84 bytes. The file is valid; dequantizing is not supported.
    let b = valid().tensor("q2k.weight", &[256, 2], GgmlType::Q2_K.id(), &[0; 168]);
    let f = open_bytes("q2k", &b.build()).unwrap();
    assert_eq!(f.read_raw("q2k.weight").unwrap().len(), 168);
    let e = f.read_f32("q2k.weight").unwrap_err();
    assert!(
        matches!(e, GgufError::UnsupportedType { ref tensor, type_name: "Q2_K" } if tensor == "q2k.weight"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("q2k.weight") && msg.contains("Q2_K"), "{msg}");
}

#[test]
fn too_many_dims() {
    let mut b = valid().tensor("t5", &[1, 1, 1, 1, 1], 0, &[0; 4]);
    let e = open_bytes("dims", &b.build()).unwrap_err();
    assert!(
        matches!(e, GgufError::TooManyDims { ref tensor, n_dims: 5 } if tensor == "t5"),
        "{e}"
    );
    // A huge n_dims must not allocate or read dims.
    b.last_tensor().n_dims = Some(u32::MAX);
    let e = open_bytes("dims", &b.build()).unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::TooManyDims {
                n_dims: u32::MAX,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn invalid_shapes() {
    // Q8_0 row of 48 values: not whole blocks.
    let e = open_bytes("shape", &valid().tensor("bad", &[48], 8, &[0; 68]).build()).unwrap_err();
    assert!(
        matches!(e, GgufError::InvalidShape { ref tensor, .. } if tensor == "bad"),
        "{e}"
    );
    // Element count overflow.
    let e = open_bytes(
        "shape",
        &valid()
            .tensor("big", &[1 << 32, 1 << 32, 4], 0, &[])
            .build(),
    )
    .unwrap_err();
    assert!(
        matches!(e, GgufError::Overflow(ref m) if m.contains("big")),
        "{e}"
    );
    // A dimension beyond ggml's int64.
    let e = open_bytes("shape", &valid().tensor("neg", &[u64::MAX], 0, &[]).build()).unwrap_err();
    assert!(
        matches!(e, GgufError::InvalidShape { ref tensor, .. } if tensor == "neg"),
        "{e}"
    );
    // Byte size overflow (count fits i64, bytes do not).
    let e = open_bytes(
        "shape",
        &valid().tensor("wide", &[1 << 31, 1 << 31], 0, &[]).build(),
    )
    .unwrap_err();
    assert!(
        matches!(e, GgufError::Overflow(ref m) if m.contains("wide")),
        "{e}"
    );
}

#[test]
fn zero_sized_tensor_is_fine() {
    let f = open_bytes("zero", &valid().tensor("empty", &[32, 0], 8, &[]).build()).unwrap();
    assert_eq!(f.tensor_info("empty").unwrap().byte_size(), 0);
    assert!(f.read_f32("empty").unwrap().is_empty());
}

#[test]
fn invalid_metadata_values() {
    let e = open_bytes("vt", &valid().kv_raw("x.type", 13, &[0; 8]).build()).unwrap_err();
    assert!(
        matches!(e, GgufError::InvalidValueType { ref key, type_id: 13 } if key == "x.type"),
        "{e}"
    );
    let e = open_bytes("vt", &valid().kv_array("x.arr", 77, 1, &[0; 8]).build()).unwrap_err();
    assert!(
        matches!(e, GgufError::InvalidValueType { ref key, type_id: 77 } if key == "x.arr"),
        "{e}"
    );
    let e = open_bytes("bool", &valid().kv_raw("x.bool", T_BOOL, &[2]).build()).unwrap_err();
    assert!(
        matches!(e, GgufError::InvalidBool { ref key, value: 2 } if key == "x.bool"),
        "{e}"
    );
    let e = open_bytes(
        "bool",
        &valid().kv_array("x.bools", T_BOOL, 2, &[1, 9]).build(),
    )
    .unwrap_err();
    assert!(matches!(e, GgufError::InvalidBool { value: 9, .. }), "{e}");
    let e = open_bytes(
        "utf8",
        &valid()
            .kv_raw("x.s", T_STRING, &gguf_string(&[0xff, 0xfe]))
            .build(),
    )
    .unwrap_err();
    assert!(
        matches!(e, GgufError::InvalidUtf8 { ref context } if context.contains("x.s")),
        "{e}"
    );
    let e = open_bytes("dup", &valid().kv_u32("test.block_count", 3).build()).unwrap_err();
    assert!(
        matches!(e, GgufError::DuplicateKey(ref k) if k == "test.block_count"),
        "{e}"
    );
    let e = open_bytes(
        "dup",
        &valid().tensor("norm.weight", &[1], 0, &[0; 4]).build(),
    )
    .unwrap_err();
    assert!(
        matches!(e, GgufError::DuplicateTensor(ref k) if k == "norm.weight"),
        "{e}"
    );
    let e = open_bytes("utf8", &valid().tensor("\u{0}ok", &[1], 0, &[0; 4]).build());
    assert!(e.is_ok(), "NUL is valid UTF-8");
}

#[test]
fn deeply_nested_arrays() {
    let mut payload = array_payload(T_U8, 0, &[]);
    for _ in 0..20 {
        payload = array_payload(T_ARRAY, 1, &payload);
    }
    let e = open_bytes("nest", &valid().kv_raw("x.deep", T_ARRAY, &payload).build()).unwrap_err();
    assert!(
        matches!(e, GgufError::NestingTooDeep { ref key, .. } if key == "x.deep"),
        "{e}"
    );
}

#[test]
fn invalid_alignment() {
    for a in [0u32, 3, 48] {
        let mut b = valid().kv_u32("general.alignment", a);
        b.alignment = 32;
        let e = open_bytes("align", &b.build()).unwrap_err();
        assert!(matches!(e, GgufError::InvalidAlignment(_)), "{a}: {e}");
    }
    let e = open_bytes("align", &valid().kv_str("general.alignment", "32").build()).unwrap_err();
    assert!(matches!(e, GgufError::InvalidAlignment(_)), "{e}");
}

#[test]
fn read_errors_are_typed() {
    let f = open_bytes("reads", &valid().build()).unwrap();
    assert!(matches!(f.read_f32("nope"), Err(GgufError::TensorNotFound(ref n)) if n == "nope"));
    assert!(matches!(
        f.read_raw("nope"),
        Err(GgufError::TensorNotFound(_))
    ));
    assert!(matches!(
        f.read_f32_rows("emb.weight", 2..4),
        Err(GgufError::RowsOutOfRange { ref tensor, start: 2, end: 4, n_rows: 3 }) if tensor == "emb.weight"
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 2..1;
    assert!(matches!(
        f.read_f32_rows("emb.weight", reversed),
        Err(GgufError::RowsOutOfRange { .. })
    ));
    let mut buf = vec![0.0; 31];
    assert!(matches!(
        f.read_f32_rows_into("emb.weight", 0..1, &mut buf),
        Err(GgufError::BufferSize {
            expected: 32,
            got: 31,
            ..
        })
    ));
}

/// Random byte flips in a valid file never panic.
#[test]
fn corrupted_bytes_never_panic() {
    let bytes = valid().build();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        if let Ok(f) = open_bytes("fuzz", &b) {
            let names: Vec<String> = f.tensors().map(|t| t.name.clone()).collect();
            for n in names {
                let _ = f.read_f32(&n);
            }
        }
    }
}
