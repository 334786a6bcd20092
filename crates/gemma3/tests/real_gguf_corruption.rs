//! The corruption corpus over the real Gemma3 270M GGUF: its own header, cut on a grid, with
//! bytes flipped in its fields, with oversize or inconsistent metadata and tensor shapes, and
//! with NaN weights. Each case must end in the typed error its class calls for, naming the file,
//! before anything big is allocated.
//!
//! The copies are sparse: the real header followed by a hole of the real data's length, so a
//! case costs the header's few MB on disk, not the 253 MB checkpoint. Fields are located by
//! searching the header bytes for their keys and names, independently of the crate's reader.

use crate::gemma3_common;

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn_int8_gemma3::gguf::{GgufError, GgufFile};
use burn_int8_gemma3::{self as gemma3, Gemma3Error};
use gemma3_common::gemma3_checkpoint;

/// The real file's header (everything before the tensor data) and full length.
struct RealHeader {
    bytes: Vec<u8>,
    file_len: u64,
    data_offset: u64,
}

impl RealHeader {
    fn read(path: &Path) -> Self {
        let file = GgufFile::open(path).expect("the real GGUF opens");
        let data_offset = file.data_offset();
        let mut bytes = vec![0u8; data_offset as usize];
        std::io::Read::read_exact(&mut std::fs::File::open(path).unwrap(), &mut bytes).unwrap();
        Self {
            bytes,
            file_len: file.file_len(),
            data_offset,
        }
    }

    /// Where the value of metadata key `key` starts: after `[u64 len][key][u32 type]`; the type
    /// must be `value_type`.
    fn value_of(&self, key: &str, value_type: u32) -> usize {
        let at = self.after_string(key);
        let found = u32::from_le_bytes(self.bytes[at..at + 4].try_into().unwrap());
        assert_eq!(found, value_type, "GGUF value type of {key}");
        at + 4
    }

    /// Where a tensor's info continues after its name: `[u32 n_dims][u64 dims...][u32 type][u64 offset]`.
    fn tensor_info(&self, name: &str) -> usize {
        self.after_string(name)
    }

    /// The position right after the GGUF string `[u64 len][text]` whose text is `text`.
    fn after_string(&self, text: &str) -> usize {
        let mut pattern = (text.len() as u64).to_le_bytes().to_vec();
        pattern.extend_from_slice(text.as_bytes());
        let at = self
            .bytes
            .windows(pattern.len())
            .position(|window| window == pattern.as_slice());
        at.unwrap_or_else(|| panic!("{text:?} is not in the real header")) + pattern.len()
    }

    /// A sparse copy with `edit` applied to the header, `len` bytes long.
    fn write(&self, path: &Path, len: u64, edit: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = self.bytes.clone();
        edit(&mut bytes);
        bytes.truncate(len as usize);
        let file = std::fs::File::create(path).unwrap();
        std::io::Write::write_all(&mut &file, &bytes).unwrap();
        file.set_len(len).unwrap();
    }
}

/// A directory of one test's own (the tests run in parallel).
fn scratch(test: &str) -> PathBuf {
    let root =
        std::env::temp_dir().join(format!("burn-int8-real-gguf-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn load(path: &Path) -> Result<(), Gemma3Error> {
    gemma3::load_model::<Flex>(path, false, &Default::default(), |_| {}).map(drop)
}

/// The reader's error, checking that the message names the file.
fn gguf_error(case: &str, path: &Path, result: Result<(), Gemma3Error>) -> GgufError {
    match result {
        Err(error @ Gemma3Error::Gguf { .. }) => {
            let message = error.to_string();
            assert!(
                message.starts_with(&path.display().to_string()),
                "{case}: the message names no file: {message}"
            );
            let Gemma3Error::Gguf { source, .. } = error else {
                unreachable!()
            };
            source
        }
        other => panic!("{case}: expected a GGUF reader error, got {other:?}"),
    }
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn truncations_of_the_real_file_on_a_grid_are_typed_errors() {
    let Some(real) = gemma3_checkpoint() else {
        return;
    };
    let header = RealHeader::read(&real);
    let root = scratch("cuts");
    let path = root.join("cut.gguf");
    let header_len = header.data_offset;
    let mut cuts: Vec<u64> = vec![0, 1, 3, 4, 7, 8, 15, 16, 23, 24, 25];
    cuts.extend((1..64).map(|i| 24 + (header_len - 24) * i / 64));
    cuts.extend([
        header_len - 1,
        header_len,
        header_len + 1,
        (header_len + header.file_len) / 2,
        header.file_len - 1,
    ]);
    for cut in cuts {
        let case = format!("cut at {cut} of {}", header.file_len);
        header.write(&path, cut, |_| {});
        let result = load(&path);
        if cut < 4 {
            // Too short for a magic: an I/O error (unexpected end of file) naming the file.
            assert!(
                matches!(&result, Err(Gemma3Error::Io { path: p, .. }) if p == &path),
                "{case}: {result:?}"
            );
            continue;
        }
        let error = gguf_error(&case, &path, result);
        if cut < header_len {
            // Inside the header: a field or a declared length runs past the end, or (in the
            // alignment padding before the data) the first tensor does.
            let expected = match &error {
                GgufError::Truncated { file_len, .. }
                | GgufError::TensorOutOfBounds { file_len, .. } => *file_len == cut,
                GgufError::LengthTooLarge { .. } => true,
                _ => false,
            };
            assert!(expected, "{case}: {error}");
        } else {
            // The header is whole: the tensor data is not.
            assert!(
                matches!(error, GgufError::TensorOutOfBounds { file_len, .. } if file_len == cut),
                "{case}: {error}"
            );
        }
    }
    // The whole header with its data (a hole here) opens: the cases above failed for their cut.
    header.write(&path, header.file_len, |_| {});
    GgufFile::open(&path).expect("the uncut sparse copy opens");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn flipped_header_fields_of_the_real_file_are_typed_errors() {
    let Some(real) = gemma3_checkpoint() else {
        return;
    };
    let header = RealHeader::read(&real);
    let root = scratch("flips");
    let path = root.join("flipped.gguf");
    let first_key = 24; // [magic][version][tensor count][kv count], then the first key
    let embedding = header.tensor_info("token_embd.weight");
    let query = header.tensor_info("blk.0.attn_q.weight");
    let token = header.after_string("tokenizer.ggml.tokens") + 4 + 4 + 8; // [type ARRAY][type STRING][count]
    // (what, byte to flip, what the reader must say)
    type Expect = fn(&GgufError) -> bool;
    let cases: [(&str, usize, Expect); 11] = [
        ("version", 4, |e| {
            matches!(e, GgufError::UnsupportedVersion(_))
        }),
        ("tensor count, high byte", 15, |e| {
            matches!(e, GgufError::LengthTooLarge { .. })
        }),
        ("metadata count, high byte", 23, |e| {
            matches!(e, GgufError::LengthTooLarge { .. })
        }),
        ("first key's length, high byte", first_key + 7, |e| {
            matches!(e, GgufError::LengthTooLarge { .. })
        }),
        ("a token's text, first byte", token + 8, |e| {
            matches!(e, GgufError::InvalidUtf8 { .. })
        }),
        (
            "token_embd n_dims",
            embedding,
            |e| matches!(e, GgufError::TooManyDims { tensor, .. } if tensor == "token_embd.weight"),
        ),
        (
            "token_embd ne0, low byte",
            embedding + 4,
            |e| matches!(e, GgufError::InvalidShape { tensor, .. } if tensor == "token_embd.weight"),
        ),
        (
            "token_embd type",
            embedding + 4 + 16,
            |e| matches!(e, GgufError::UnknownType { tensor, .. } if tensor == "token_embd.weight"),
        ),
        (
            "token_embd offset, low byte",
            embedding + 4 + 16 + 4,
            |e| matches!(e, GgufError::MisalignedOffset { tensor, .. } if tensor == "token_embd.weight"),
        ),
        (
            "token_embd offset, high byte",
            embedding + 4 + 16 + 4 + 7,
            |e| {
                matches!(e, GgufError::TensorOutOfBounds { tensor, .. } if tensor == "token_embd.weight")
                    || matches!(e, GgufError::Overflow(_))
            },
        ),
        (
            "blk.0.attn_q ne0, low byte",
            query + 4,
            |e| matches!(e, GgufError::InvalidShape { tensor, .. } if tensor == "blk.0.attn_q.weight"),
        ),
    ];
    for (what, at, expected) in cases {
        header.write(&path, header.file_len, |bytes| bytes[at] ^= 0xFF);
        let error = gguf_error(what, &path, load(&path));
        assert!(expected(&error), "{what} (byte {at} flipped): {error}");
    }
    // The magic: not a GGUF file at all.
    header.write(&path, header.file_len, |bytes| bytes[0] ^= 0xFF);
    let result = load(&path);
    assert!(
        matches!(&result, Err(Gemma3Error::Format { path: p, .. }) if p == &path),
        "magic: {result:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn oversize_and_inconsistent_metadata_of_the_real_file_are_refused_before_allocating() {
    let Some(real) = gemma3_checkpoint() else {
        return;
    };
    let header = RealHeader::read(&real);
    let root = scratch("oversize");
    let path = root.join("patched.gguf");
    const UINT32: u32 = 4;
    const FLOAT32: u32 = 6;
    let u32_cases: [(&str, u32); 7] = [
        ("gemma3.block_count", u32::MAX),
        ("gemma3.embedding_length", 1 << 31),
        ("gemma3.attention.head_count", 0),
        ("gemma3.attention.head_count_kv", u32::MAX),
        ("gemma3.feed_forward_length", u32::MAX),
        ("gemma3.context_length", 0),
        ("gemma3.attention.sliding_window", 0),
    ];
    let float_cases: [(&str, f32); 3] = [
        ("gemma3.attention.layer_norm_rms_epsilon", f32::NAN),
        ("gemma3.attention.layer_norm_rms_epsilon", 1e30),
        ("gemma3.rope.freq_base", f32::INFINITY),
    ];
    let cases = u32_cases
        .iter()
        .map(|&(key, value)| (key, value.to_string(), UINT32, value.to_le_bytes()))
        .chain(
            float_cases
                .iter()
                .map(|&(key, value)| (key, value.to_string(), FLOAT32, value.to_le_bytes())),
        );
    for (key, value, value_type, bytes) in cases {
        let at = header.value_of(key, value_type);
        header.write(&path, header.file_len, |header| {
            header[at..at + 4].copy_from_slice(&bytes)
        });
        match load(&path) {
            Err(Gemma3Error::InvalidConfig {
                source_name, field, ..
            }) => {
                assert_eq!(field, key, "{key} = {value}");
                assert!(
                    source_name.contains(&path.display().to_string()),
                    "{key} = {value}: names {source_name}"
                );
            }
            other => panic!("{key} = {value}: expected InvalidConfig, got {other:?}"),
        }
    }

    // Heads 2^30 wide, keys and values alike (a key width alone is refused for disagreeing with
    // the value width).
    let (key_at, value_at) = (
        header.value_of("gemma3.attention.key_length", UINT32),
        header.value_of("gemma3.attention.value_length", UINT32),
    );
    header.write(&path, header.file_len, |bytes| {
        put_u32(bytes, key_at, 1 << 30);
        put_u32(bytes, value_at, 1 << 30);
    });
    match load(&path) {
        Err(Gemma3Error::InvalidConfig { field, .. }) => {
            assert_eq!(field, "gemma3.attention.key_length")
        }
        other => panic!("head width 2^30: expected InvalidConfig, got {other:?}"),
    }
    header.write(&path, header.file_len, |bytes| put_u32(bytes, key_at, 128));
    match load(&path) {
        Err(Gemma3Error::InvalidConfig { field, .. }) => {
            assert_eq!(field, "gemma3.attention.value_length")
        }
        other => {
            panic!("key width 128 under value width 256: expected InvalidConfig, got {other:?}")
        }
    }

    // Query projections of 512 rows where the metadata's 4 heads of 256 need 1024: the
    // tensors disagree with the metadata, found before any tensor is read.
    let query = header.tensor_info("blk.0.attn_q.weight");
    header.write(&path, header.file_len, |bytes| {
        assert_eq!(bytes[query..query + 4], 2u32.to_le_bytes());
        assert_eq!(bytes[query + 12..query + 20], 1024u64.to_le_bytes());
        put_u64(bytes, query + 12, 512);
    });
    match load(&path) {
        Err(Gemma3Error::ShapeMismatch {
            name,
            expected,
            found,
        }) => {
            assert_eq!(name, "model.layers.0.self_attn.q_proj.weight");
            assert_eq!((expected, found), (vec![1024, 640], vec![512, 640]));
        }
        other => panic!("q_proj of 512 rows: expected ShapeMismatch, got {other:?}"),
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_real_embedding_shorter_than_the_vocabulary_is_a_mismatch() {
    let Some(real) = gemma3_checkpoint() else {
        return;
    };
    let header = RealHeader::read(&real);
    let root = scratch("vocab");
    let path = root.join("short-embedding.gguf");
    // 262,016 embedding rows under the 262,144-token vocabulary (the case): ids from
    // 262,016 on would have looked up zero rows.
    let embedding = header.tensor_info("token_embd.weight");
    header.write(&path, header.file_len, |bytes| {
        assert_eq!(
            bytes[embedding + 12..embedding + 20],
            262_144u64.to_le_bytes()
        );
        put_u64(bytes, embedding + 12, 262_016);
    });
    match load(&path) {
        Err(Gemma3Error::VocabMismatch {
            source_name,
            tokenizer,
            embedding,
        }) => {
            assert_eq!((tokenizer, embedding), (262_144, 262_016));
            assert!(
                source_name.contains(&path.display().to_string()),
                "{source_name}"
            );
        }
        other => panic!("expected VocabMismatch, got {other:?}"),
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn nan_weights_in_the_real_file_are_named() {
    let Some(real) = gemma3_checkpoint() else {
        return;
    };
    let header = RealHeader::read(&real);
    let file = GgufFile::open(&real).unwrap();
    let info = file.tensor_info("blk.0.attn_q.weight").unwrap();
    let start = header.data_offset + info.offset;
    let root = scratch("nan");
    let path = root.join("nan.gguf");
    header.write(&path, header.file_len, |_| {});
    // The first 256 bytes of q_proj's data as f16 NaNs (0x7E00, little-endian): every block
    // scale there (`d` of Q4_K at byte 0, of Q6_K at byte 208, of Q8_0 at byte 0) is NaN.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(start)).unwrap();
        file.write_all(&[0x00, 0x7E].repeat(128)).unwrap();
    }
    match load(&path) {
        Err(Gemma3Error::NonFinite { name, count }) => {
            assert_eq!(name, "model.layers.0.self_attn.q_proj.weight");
            assert!(count > 0);
        }
        other => panic!("expected NonFinite, got {:?}", other.map(|_| "a model")),
    }
    std::fs::remove_dir_all(&root).unwrap();
}
