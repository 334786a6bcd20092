//! Dequantization of every supported type against gguf-py, bit for bit, on
//! synthetic blocks (tests/fixtures/synthetic.*, made by make_reference.py).
//! Needs no model file.

use crate::common;

use burn_int8_gguf::{GgmlType, GgufFile, dequant};
use common::*;

#[test]
fn every_supported_type_has_synthetic_vectors() {
    let cases = synthetic_cases();
    for ty in GgmlType::ALL.into_iter().filter(|t| t.can_dequantize()) {
        assert!(
            cases.iter().any(|c| c.type_id == ty.id()),
            "no synthetic case for {ty}"
        );
    }
}

#[test]
fn dequantizers_match_gguf_py_bitwise() {
    for c in synthetic_cases() {
        let ty = GgmlType::from_id(c.type_id).unwrap();
        let f = dequant::dequantizer(ty).unwrap();
        assert_eq!(
            c.raw.len() / ty.type_size() * ty.block_size(),
            c.expected.len(),
            "{}",
            c.name
        );
        let mut out = vec![f32::NAN; c.expected.len()];
        f(&c.raw, &mut out);
        assert_bits_eq(&out, &c.expected, &c.name);
    }
}

/// The same vectors, written as tensors of a GGUF file and read back through
/// `read_f32`, `read_f32_rows` and `read_raw`.
#[test]
fn synthetic_vectors_through_a_gguf_file() {
    let cases = synthetic_cases();
    let mut b = GgufBuilder::new().kv_str("general.architecture", "test");
    for c in &cases {
        let ty = GgmlType::from_id(c.type_id).unwrap();
        // Two rows per tensor where the length allows whole blocks per row.
        let n = c.expected.len() as u64;
        let dims = if (n / 2).is_multiple_of(ty.block_size() as u64) {
            vec![n / 2, 2]
        } else {
            vec![n]
        };
        b = b.tensor(&c.name, &dims, c.type_id, &c.raw);
    }
    let path = write_temp("synthetic", &b.build());
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.tensor_count(), cases.len());
    for c in &cases {
        let info = f.tensor_info(&c.name).unwrap();
        assert_eq!(info.byte_size(), c.raw.len() as u64, "{}", c.name);
        assert_eq!(info.n_elements(), c.expected.len() as u64);
        assert_eq!(f.read_raw(&c.name).unwrap(), c.raw, "{}", c.name);
        assert_bits_eq(&f.read_f32(&c.name).unwrap(), &c.expected, &c.name);
        if info.dims.len() == 2 {
            let half = c.expected.len() / 2;
            let second = f.read_f32_rows(&c.name, 1..2).unwrap();
            assert_bits_eq(&second, &c.expected[half..], &c.name);
            assert!(f.read_f32_rows(&c.name, 1..1).unwrap().is_empty());
        }
    }
    std::fs::remove_file(path).ok();
}

/// A tensor larger than the reader's 1 MiB read chunk, with chunk
/// boundaries falling inside rows: streamed and whole reads must agree
/// with the reference.
#[test]
fn large_tensor_is_read_in_chunks_correctly() {
    let cases = synthetic_cases();
    for name in ["q8_0_random", "q6_k_random", "f32_random"] {
        let c = cases.iter().find(|c| c.name == name).unwrap();
        let rows = 700u64;
        let raw: Vec<u8> = c.raw.repeat(rows as usize);
        let expected: Vec<f32> = c.expected.repeat(rows as usize);
        let row_len = c.expected.len() as u64;
        let path = write_temp(
            "large",
            &GgufBuilder::new()
                .tensor("big", &[row_len, rows], c.type_id, &raw)
                .build(),
        );
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(
            f.tensor_info("big").unwrap().shape_row_major(),
            [rows as usize, row_len as usize]
        );
        assert_bits_eq(&f.read_f32("big").unwrap(), &expected, name);
        let rl = row_len as usize;
        assert_bits_eq(
            &f.read_f32_rows("big", 311..699).unwrap(),
            &expected[311 * rl..699 * rl],
            name,
        );
        let mut buf = vec![0.0f32; 3 * rl];
        f.read_f32_rows_into("big", 697..700, &mut buf).unwrap();
        assert_bits_eq(&buf, &expected[697 * rl..], name);
        drop(f);
        std::fs::remove_file(path).ok();
    }
}
