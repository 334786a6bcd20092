//! Shared test helpers: fixture index parsing, a tiny GGUF writer for
//! building valid and malformed files, and temp files under Cargo's
//! per-target temp dir.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fixtures of this checkout: the manifest dir at run time, since a test binary reused
/// from another checkout of the workspace (a shared target dir) carries that checkout's path.
pub fn fixture_dir() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/fixtures")
}

/// One line of a fixture index: a leading word and `key=value` pairs.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: String,
    pub fields: HashMap<String, String>,
}

impl Record {
    pub fn str(&self, k: &str) -> &str {
        self.fields
            .get(k)
            .unwrap_or_else(|| panic!("fixture line {:?} lacks '{k}'", self.kind))
    }
    pub fn u64(&self, k: &str) -> u64 {
        self.str(k).parse().unwrap()
    }
    pub fn usize(&self, k: &str) -> usize {
        self.str(k).parse().unwrap()
    }
}

/// Parses an index file; lines without a leading word (only pairs) get
/// kind "".
pub fn read_index(name: &str) -> Vec<Record> {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut kind = String::new();
            let mut fields = HashMap::new();
            for w in l.split_whitespace() {
                match w.split_once('=') {
                    Some((k, v)) => {
                        fields.insert(k.to_owned(), v.to_owned());
                    }
                    None => kind = w.to_owned(),
                }
            }
            Record { kind, fields }
        })
        .collect()
}

pub fn read_fixture_bin(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap()
}

pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Asserts bitwise equality, reporting the first mismatch.
pub fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: value {i} differs: got {} ({:#010x}), want {} ({:#010x})",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

/// A synthetic dequantization case from synthetic.txt/bin.
pub struct SynthCase {
    pub name: String,
    pub type_id: u32,
    pub raw: Vec<u8>,
    pub expected: Vec<f32>,
}

pub fn synthetic_cases() -> Vec<SynthCase> {
    let bin = read_fixture_bin("synthetic.bin");
    read_index("synthetic.txt")
        .into_iter()
        .map(|r| {
            let (ro, rl, eo, n) = (
                r.usize("raw_off"),
                r.usize("raw_len"),
                r.usize("exp_off"),
                r.usize("n"),
            );
            SynthCase {
                name: r.str("name").to_owned(),
                type_id: r.u64("type") as u32,
                raw: bin[ro..ro + rl].to_vec(),
                expected: f32s(&bin[eo..eo + 4 * n]),
            }
        })
        .collect()
}

// ------------------------------------------------------------- temp files

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Writes `bytes` to a fresh file under Cargo's target temp dir.
pub fn write_temp(tag: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("burn-int8-gguf-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{tag}-{}-{n}.gguf", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

// ------------------------------------------------------------ GGUF writer

pub const T_U8: u32 = 0;
pub const T_I8: u32 = 1;
pub const T_U16: u32 = 2;
pub const T_I16: u32 = 3;
pub const T_U32: u32 = 4;
pub const T_I32: u32 = 5;
pub const T_F32: u32 = 6;
pub const T_BOOL: u32 = 7;
pub const T_STRING: u32 = 8;
pub const T_ARRAY: u32 = 9;
pub const T_U64: u32 = 10;
pub const T_I64: u32 = 11;
pub const T_F64: u32 = 12;

pub fn gguf_string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// Encoded array payload (after the value type): elem type, count, elements.
pub fn array_payload(elem_type: u32, count: u64, elems: &[u8]) -> Vec<u8> {
    let mut v = elem_type.to_le_bytes().to_vec();
    v.extend_from_slice(&count.to_le_bytes());
    v.extend_from_slice(elems);
    v
}

pub struct TensorSpec {
    pub name: Vec<u8>,
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
    /// Overrides the offset written in the tensor info.
    pub offset: Option<u64>,
    /// Overrides the n_dims field (dims are still written).
    pub n_dims: Option<u32>,
}

/// A minimal GGUF writer: metadata is appended as raw encoded values so that
/// tests can also write invalid ones.
pub struct GgufBuilder {
    pub magic: [u8; 4],
    pub version: u32,
    pub n_kv_override: Option<u64>,
    pub n_tensors_override: Option<u64>,
    pub kv: Vec<u8>,
    pub n_kv: u64,
    pub tensors: Vec<TensorSpec>,
    pub alignment: u64,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufBuilder {
    pub fn new() -> Self {
        GgufBuilder {
            magic: *b"GGUF",
            version: 3,
            n_kv_override: None,
            n_tensors_override: None,
            kv: Vec::new(),
            n_kv: 0,
            tensors: Vec::new(),
            alignment: 32,
        }
    }

    /// Appends a key with a raw value type id and encoded value bytes.
    pub fn kv_raw(mut self, key: &str, type_id: u32, value: &[u8]) -> Self {
        self.kv.extend(gguf_string(key.as_bytes()));
        self.kv.extend_from_slice(&type_id.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.n_kv += 1;
        self
    }

    pub fn kv_u32(self, key: &str, v: u32) -> Self {
        self.kv_raw(key, T_U32, &v.to_le_bytes())
    }
    pub fn kv_f32(self, key: &str, v: f32) -> Self {
        self.kv_raw(key, T_F32, &v.to_le_bytes())
    }
    pub fn kv_str(self, key: &str, v: &str) -> Self {
        self.kv_raw(key, T_STRING, &gguf_string(v.as_bytes()))
    }
    pub fn kv_bool(self, key: &str, v: bool) -> Self {
        self.kv_raw(key, T_BOOL, &[v as u8])
    }
    pub fn kv_array(self, key: &str, elem_type: u32, count: u64, elems: &[u8]) -> Self {
        self.kv_raw(key, T_ARRAY, &array_payload(elem_type, count, elems))
    }
    pub fn kv_str_array(self, key: &str, items: &[&str]) -> Self {
        let elems: Vec<u8> = items
            .iter()
            .flat_map(|s| gguf_string(s.as_bytes()))
            .collect();
        self.kv_array(key, T_STRING, items.len() as u64, &elems)
    }

    /// Sets the alignment and writes `general.alignment` (u32).
    pub fn alignment(mut self, a: u32) -> Self {
        self.alignment = a as u64;
        self.kv_u32("general.alignment", a)
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, data: &[u8]) -> Self {
        self.tensors.push(TensorSpec {
            name: name.as_bytes().to_vec(),
            dims: dims.to_vec(),
            type_id,
            data: data.to_vec(),
            offset: None,
            n_dims: None,
        });
        self
    }

    pub fn last_tensor(&mut self) -> &mut TensorSpec {
        self.tensors.last_mut().unwrap()
    }

    /// Header length (everything before the alignment padding).
    pub fn header_len(&self) -> usize {
        self.build_parts().0.len()
    }

    fn build_parts(&self) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        let n_t = self.n_tensors_override.unwrap_or(self.tensors.len() as u64);
        out.extend_from_slice(&n_t.to_le_bytes());
        out.extend_from_slice(&self.n_kv_override.unwrap_or(self.n_kv).to_le_bytes());
        out.extend_from_slice(&self.kv);
        let mut offsets = Vec::new();
        let mut next = 0u64;
        for t in &self.tensors {
            out.extend(gguf_string(&t.name));
            out.extend_from_slice(&t.n_dims.unwrap_or(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            offsets.push(next);
            out.extend_from_slice(&t.offset.unwrap_or(next).to_le_bytes());
            next = (next + t.data.len() as u64).next_multiple_of(self.alignment);
        }
        (out, offsets)
    }

    pub fn build(&self) -> Vec<u8> {
        let (mut out, offsets) = self.build_parts();
        let data_start = out.len().next_multiple_of(self.alignment as usize);
        out.resize(data_start, 0);
        for (t, off) in self.tensors.iter().zip(offsets) {
            let at = data_start + off as usize;
            out.resize(at, 0);
            out.extend_from_slice(&t.data);
        }
        out
    }
}
