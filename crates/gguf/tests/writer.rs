//! The GGUF writer: files rewritten through it are byte-identical to the originals (a file
//! built by hand here, and the real checkpoint written by llama.cpp's tooling), Q8_0 blocks
//! read as stored agree with the bit-exact dequantization, and a caller's mistakes are typed
//! errors.

use crate::common;
use burn_int8_testkit::checkpoint;

use std::fs::File;
use std::io::{self, Read, Write};

use burn_int8_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value, q8_0, requantize};
use common::*;
use sha2::{Digest, Sha256};

/// Declares every metadata key and tensor of `src` in a writer, in file order.
fn writer_for(src: &GgufFile) -> GgufWriter {
    let mut w = GgufWriter::new();
    for (key, value) in src.metadata() {
        if key != "general.alignment" {
            w.add_metadata(key, value.clone()).unwrap();
        }
    }
    for t in src.tensors() {
        let info = w.add_tensor(&t.name, t.dims.clone(), t.ggml_type).unwrap();
        assert_eq!(info.offset, t.offset, "offset of {}", t.name);
    }
    w
}

/// A `Write` that compares everything written with a file, chunk by chunk, so a 250 MB
/// checkpoint is compared without holding a copy.
struct SameAs {
    original: io::BufReader<File>,
    offset: u64,
    first_difference: Option<u64>,
}

impl Write for SameAs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut expected = vec![0u8; buf.len()];
        self.original.read_exact(&mut expected)?;
        if self.first_difference.is_none()
            && let Some(i) = buf.iter().zip(&expected).position(|(a, b)| a != b)
        {
            self.first_difference = Some(self.offset + i as u64);
        }
        self.offset += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn rewrite_matches_original(path: &std::path::Path) {
    let src = GgufFile::open(path).unwrap();
    let w = writer_for(&src);
    let mut same = SameAs {
        original: io::BufReader::new(File::open(path).unwrap()),
        offset: 0,
        first_difference: None,
    };
    let len = w
        .write(&mut same, |t, out| {
            out.write_all(&src.read_raw(&t.name).unwrap())
        })
        .unwrap();
    assert_eq!(same.first_difference, None, "first differing byte");
    assert_eq!(len, src.file_len(), "file length");
}

#[test]
fn hand_built_file_is_rewritten_byte_identical() {
    let nested = {
        let mut e = array_payload(T_U8, 2, &[1, 2]);
        e.extend(array_payload(T_I16, 1, &(-3i16).to_le_bytes()));
        e
    };
    let bytes = GgufBuilder::new()
        .kv_str("general.architecture", "test")
        .kv_u32("test.u32", 7)
        .kv_raw("test.u8", T_U8, &[200])
        .kv_raw("test.i8", T_I8, &[0xfe])
        .kv_raw("test.u16", T_U16, &513u16.to_le_bytes())
        .kv_raw("test.i16", T_I16, &(-513i16).to_le_bytes())
        .kv_raw("test.i32", T_I32, &(-7i32).to_le_bytes())
        .kv_f32("test.f32", 1e-6)
        .kv_raw("test.u64", T_U64, &u64::MAX.to_le_bytes())
        .kv_raw("test.i64", T_I64, &i64::MIN.to_le_bytes())
        .kv_raw("test.f64", T_F64, &std::f64::consts::PI.to_le_bytes())
        .kv_bool("test.flag", true)
        .kv_str_array("tokenizer.ggml.tokens", &["<pad>", "a", "é", ""])
        .kv_array("test.bools", T_BOOL, 3, &[1, 0, 1])
        .kv_array("test.f64s", T_F64, 1, &2.5f64.to_le_bytes())
        .kv_array("test.nested", T_ARRAY, 2, &nested)
        .tensor("norm.weight", &[5], 0, &[7u8; 20])
        .tensor("emb.weight", &[32, 3], 8, &[9u8; 3 * 34])
        .tensor("h.weight", &[3], 1, &[1u8; 6])
        .build();
    let path = write_temp("writer-hand-built", &bytes);
    rewrite_matches_original(&path);
    std::fs::remove_file(&path).ok();
}

#[test]
fn real_checkpoint_is_rewritten_byte_identical() {
    let Some(path) = checkpoint::gemma3_gguf() else {
        return;
    };
    rewrite_matches_original(&path);
}

#[test]
fn q8_0_blocks_as_stored_agree_with_dequantization() {
    let Some(path) = checkpoint::gemma3_gguf() else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    let q8: Vec<String> = f
        .tensors()
        .filter(|t| t.ggml_type == GgmlType::Q8_0)
        .map(|t| t.name.clone())
        .collect();
    assert!(!q8.is_empty(), "the checkpoint has Q8_0 tensors");
    for name in q8 {
        let blocks = f.read_q8_0(&name).unwrap();
        let dequantized = f.read_f32(&name).unwrap();
        assert_eq!(blocks.values.len(), dequantized.len(), "{name}");
        assert_eq!(blocks.scales.len() * q8_0::BLOCK_VALUES, dequantized.len());
        for (i, (&q, &want)) in blocks.values.iter().zip(&dequantized).enumerate() {
            let d = blocks.scales[i / q8_0::BLOCK_VALUES].to_f32();
            assert_eq!((q as f32 * d).to_bits(), want.to_bits(), "{name}[{i}]");
        }
        // Quantizing what Q8_0 dequantizes to gives the same blocks back (ggml's rule is
        // idempotent on its own output): checks `quantize_row_ref` on 10 real tensors.
        let mut requantized = q8_0::Q8_0Blocks {
            values: Vec::new(),
            scales: Vec::new(),
        };
        q8_0::quantize_row_ref(&dequantized, &mut requantized).unwrap();
        assert!(requantized == blocks, "{name}: requantized blocks differ");
        // A range of rows is the same slice of the blocks.
        let info = f.tensor_info(&name).unwrap();
        let (row_len, n_rows) = (info.row_len() as usize, info.n_rows() as usize);
        let rows = (n_rows / 3)..(n_rows / 3 + 2);
        let part = f.read_q8_0_rows(&name, rows.clone()).unwrap();
        assert_eq!(
            part.values,
            blocks.values[rows.start * row_len..rows.end * row_len]
        );
        let per_row = row_len / q8_0::BLOCK_VALUES;
        assert_eq!(
            part.scales,
            blocks.scales[rows.start * per_row..rows.end * per_row]
        );
        assert!(matches!(
            f.read_q8_0_rows(&name, 0..n_rows + 1),
            Err(GgufError::RowsOutOfRange { .. })
        ));
        let joined = q8_0::join(&blocks.values, &blocks.scales).unwrap();
        assert!(
            joined == f.read_raw(&name).unwrap(),
            "{name}: join(split(raw)) != raw"
        );
    }
    let f32_tensor = f
        .tensors()
        .find(|t| t.ggml_type == GgmlType::F32)
        .unwrap()
        .name
        .clone();
    assert!(matches!(
        f.read_q8_0(&f32_tensor),
        Err(GgufError::WrongTensorType {
            expected: "Q8_0",
            found: "F32",
            ..
        })
    ));
}

#[test]
fn caller_mistakes_are_typed_errors() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("t".into()))
        .unwrap();
    assert!(matches!(
        w.add_metadata("general.architecture", Value::U32(1)),
        Err(GgufError::DuplicateKey(k)) if k == "general.architecture"
    ));
    assert!(matches!(
        w.add_metadata("general.alignment", Value::U32(64)),
        Err(GgufError::InvalidAlignment(_))
    ));
    w.set_metadata("general.architecture", Value::String("u".into()))
        .unwrap();
    w.add_tensor("a", vec![64, 2], GgmlType::Q8_0).unwrap();
    assert!(matches!(
        w.add_tensor("a", vec![4], GgmlType::F32),
        Err(GgufError::DuplicateTensor(_))
    ));
    assert!(matches!(
        w.add_tensor("b", vec![33], GgmlType::Q8_0),
        Err(GgufError::InvalidShape { .. })
    ));
    assert!(matches!(
        w.add_tensor("c", vec![1, 1, 1, 1, 1], GgmlType::F32),
        Err(GgufError::TooManyDims { .. })
    ));
    let short = w.write(Vec::new(), |_, out| out.write_all(&[0u8; 4 * 34 - 1]));
    assert!(matches!(
        short,
        Err(GgufError::TensorSizeMismatch {
            expected: 136,
            written: 135,
            ..
        })
    ));
    let mut bytes = Vec::new();
    w.write(&mut bytes, |_, out| out.write_all(&[0u8; 4 * 34]))
        .unwrap();
    let path = write_temp("writer-small", &bytes);
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.get_str("general.architecture").unwrap(), "u");
    assert_eq!(f.read_q8_0("a").unwrap().values, vec![0i8; 128]);
    std::fs::remove_file(&path).ok();
    let full = w.write(FullDisk, |_, out| out.write_all(&[0u8; 4 * 34]));
    assert!(matches!(full, Err(GgufError::Write { .. })));
}

/// A writer that fails as a full disk does.
struct FullDisk;

impl Write for FullDisk {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(28))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// ggml's rounding, checked by hand: `roundf` rounds halves away from zero, the scale is
/// amax / 127 stored as f16, and the inverse is taken of the f32 scale.
#[test]
fn q8_0_quantization_follows_ggml_reference() {
    let mut x = vec![0.0f32; 32];
    x[0] = 127.0; // d = 1 exactly: values are rounded as given
    x[1] = 0.5;
    x[2] = -2.5;
    x[3] = 1.4999;
    x[4] = -127.0;
    let mut zeros = vec![0.0f32; 32];
    zeros[31] = -0.0;
    let mut scaled = vec![0.0f32; 32];
    scaled[0] = 1.0; // d = 1/127: f16 rounds it, the values use the f32 inverse
    scaled[1] = -0.5;
    let mut blocks = q8_0::Q8_0Blocks {
        values: Vec::new(),
        scales: Vec::new(),
    };
    for row in [&x, &zeros, &scaled] {
        q8_0::quantize_row_ref(row, &mut blocks).unwrap();
    }
    assert_eq!(&blocks.values[..5], &[127, 1, -3, 1, -127]);
    assert_eq!(blocks.scales[0].to_f32(), 1.0);
    assert_eq!(blocks.scales[1].to_f32(), 0.0);
    assert!(blocks.values[32..64].iter().all(|&q| q == 0));
    assert_eq!(&blocks.values[64..66], &[127, -64]); // -63.5 rounds away from zero
    assert_eq!(blocks.scales[2], half::f16::from_f32(1.0 / 127.0));
    assert!(matches!(
        q8_0::quantize_row_ref(&[1.0; 31], &mut blocks),
        Err(GgufError::BlockMismatch { .. })
    ));
}

/// Our Q8_0 quantization is llama.cpp's, byte for byte: requantizing every tensor of the real
/// checkpoint with `requantize::write_tensor_q8_0` (`quantize_row_ref` on rows streamed, never a
/// whole f32 copy of the 262144-row embedding) gives the SHA-256 that `llama-quantize --allow-requantize … Q8_0` wrote, listed in
/// `fixtures/llama_quantize_q8_0.txt` (made by `make_llama_quantize_fixture.py`); tensors
/// llama-quantize keeps in F32 are copied as they are.
#[test]
fn requantizing_matches_llama_quantize() {
    let Some(path) = checkpoint::gemma3_gguf() else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    let fixture = std::fs::read_to_string(fixture_dir().join("llama_quantize_q8_0.txt")).unwrap();
    let expected: Vec<(String, String, String)> = fixture
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let field = |k: &str| {
                line.split(' ')
                    .find_map(|kv| kv.strip_prefix(k))
                    .unwrap_or_else(|| panic!("no {k} in {line}"))
                    .to_owned()
            };
            (field("name="), field("type="), field("sha256="))
        })
        .collect();
    assert_eq!(expected.len(), f.tensor_count(), "tensor count");
    let mut requantized = 0;
    for (name, ty, sha256) in expected {
        let info = f
            .tensor_info(&name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let mut hasher = Sha256::new();
        // The shared helper that tests elsewhere (the Gemma3 round trip) make Q8_0 files with.
        let want = match ty.as_str() {
            "Q8_0" => GgmlType::Q8_0,
            "F32" => GgmlType::F32,
            other => panic!("{name}: llama-quantize wrote {other}, the test expects Q8_0 or F32"),
        };
        assert_eq!(requantize::q8_0_type(info), want, "{name}: type");
        if want == GgmlType::Q8_0 {
            requantized += 1;
        } else {
            assert_eq!(info.ggml_type, GgmlType::F32, "{name}");
        }
        requantize::write_tensor_q8_0(&f, info, &mut HashWriter(&mut hasher)).unwrap();
        let got: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, sha256, "{name} ({ty})");
    }
    assert!(requantized > 100, "{requantized} tensors requantized");
}

/// Feeds everything written to a SHA-256.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
