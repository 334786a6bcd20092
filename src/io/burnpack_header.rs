//! Reads a Burnpack record's tensor table from its header ([`TensorTable`]), and checks it
//! against the model before burn-store reads a tensor.
//!
//! burn-store 0.21 trusts each tensor's byte range, and backends build arrays from it without
//! checking its length against the shape (burn-ndarray's `from_shape_vec_unchecked`), or panic
//! on a dtype they lack while the module is half rebuilt. A corrupt or foreign record must be
//! an error instead, so every tensor the model will take is checked here first: its dtype and
//! shape are the model's, its byte range holds exactly shape × dtype bytes, and it lies inside
//! the file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::tensor::DType;
use serde::Deserialize;

/// The Burnpack layout (burn-store's `burnpack/base.rs`, format version 1): a 10-byte header
/// (magic, version, CBOR metadata length), the metadata, then the data section at the next
/// 256-byte boundary; tensor offsets are relative to it.
const MAGIC: u32 = 0x4255_524E;
const MAX_VERSION: u16 = 1;
const HEADER_LEN: usize = 10;
const DATA_ALIGNMENT: u64 = 256;
/// burn-store's own limit on the metadata length.
const MAX_METADATA_LEN: u32 = 100 * 1024 * 1024;

#[derive(Deserialize)]
struct Metadata {
    tensors: BTreeMap<String, Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    dtype: DType,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Why a record's header could not be read; the message says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HeaderError(String);

/// One tensor of a Burnpack record, as the header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// The tensor's bytes, `start..end` from the start of the data section, as the header
    /// claims them: checked only by [`TensorTable::mismatches`].
    pub data_offsets: (u64, u64),
}

/// The tensor table of a Burnpack record: every tensor's name, dtype, shape and byte range,
/// read from the header without reading any tensor data.
#[derive(Debug, Clone)]
pub struct TensorTable {
    /// Tensor path (`layers.0.mlp.up_proj.Int8.weight.values`) → its entry.
    pub tensors: BTreeMap<String, TensorEntry>,
    /// Where the data section starts in the file.
    data_start: u64,
    file_len: u64,
}

impl TensorTable {
    /// Reads the header of the record at `path`: an error names what makes it unreadable (not
    /// a Burnpack file, a newer format version, metadata past the end of the file, ...).
    pub fn read(path: &Path) -> Result<Self, HeaderError> {
        let error = HeaderError;
        let mut file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
        let file_len = file.metadata().map_err(|e| error(e.to_string()))?.len();
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header)
            .map_err(|_| error(format!("{file_len} bytes: too short for a Burnpack header")))?;
        let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let version = u16::from_le_bytes([header[4], header[5]]);
        let metadata_len = u32::from_le_bytes([header[6], header[7], header[8], header[9]]);
        if magic != MAGIC {
            return Err(error("not a Burnpack file (bad magic number)".into()));
        }
        if version > MAX_VERSION {
            return Err(error(format!(
                "Burnpack format version {version}; this build reads up to {MAX_VERSION}"
            )));
        }
        if metadata_len > MAX_METADATA_LEN || HEADER_LEN as u64 + u64::from(metadata_len) > file_len
        {
            return Err(error(format!(
                "its header claims {metadata_len} bytes of metadata in a {file_len}-byte file"
            )));
        }
        let mut metadata = vec![0u8; metadata_len as usize];
        file.read_exact(&mut metadata)
            .map_err(|e| error(e.to_string()))?;
        let metadata: Metadata = ciborium::from_reader(metadata.as_slice())
            .map_err(|e| error(format!("unreadable metadata: {e}")))?;
        let data_start =
            (HEADER_LEN as u64 + u64::from(metadata_len)).div_ceil(DATA_ALIGNMENT) * DATA_ALIGNMENT;
        let mut tensors = BTreeMap::new();
        for (name, descriptor) in metadata.tensors {
            let shape = descriptor
                .shape
                .iter()
                .map(|&dim| usize::try_from(dim))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    error(format!(
                        "`{name}`: shape {:?} does not fit this machine",
                        descriptor.shape
                    ))
                })?;
            let entry = TensorEntry {
                dtype: descriptor.dtype,
                shape,
                data_offsets: descriptor.data_offsets,
            };
            tensors.insert(name, entry);
        }
        Ok(Self {
            tensors,
            data_start,
            file_len,
        })
    }

    /// The size of the record's file, in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The problems of this record for a model holding `expected` (full tensor paths), one
    /// line each. Tensors the model does not hold are left to burn-store, which reports them
    /// as unexpected without reading them.
    pub(crate) fn mismatches(&self, expected: &BTreeMap<String, ExpectedTensor>) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, stored) in &self.tensors {
            let Some(wanted) = expected.get(name) else {
                continue;
            };
            if let Some(problem) = mismatch(stored, wanted, self.data_start, self.file_len) {
                problems.push(format!("`{name}`: {problem}"));
            }
        }
        problems
    }
}

/// What the model holds under one tensor path.
pub(crate) struct ExpectedTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

fn mismatch(
    stored: &TensorEntry,
    wanted: &ExpectedTensor,
    data_start: u64,
    file_len: u64,
) -> Option<String> {
    if stored.dtype != wanted.dtype {
        return Some(format!(
            "stored as {:?}, the model holds {:?}",
            stored.dtype, wanted.dtype
        ));
    }
    if stored.shape != wanted.shape {
        return Some(format!(
            "shape {:?} in the file, {:?} in the model",
            stored.shape, wanted.shape
        ));
    }
    let (start, end) = stored.data_offsets;
    let needed = wanted
        .shape
        .iter()
        .try_fold(stored.dtype.size() as u64, |bytes, &dim| {
            bytes.checked_mul(dim as u64)
        });
    let held = end.checked_sub(start);
    if held.is_none() || held != needed {
        return Some(format!(
            "bytes {start}..{end} of the data section cannot hold {:?} {:?}",
            stored.dtype, wanted.shape
        ));
    }
    match data_start.checked_add(end) {
        Some(last) if last <= file_len => None,
        _ => Some(format!(
            "its data ends past the end of the file ({file_len} bytes)"
        )),
    }
}
