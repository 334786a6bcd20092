//! HF checkpoints: `config.json` + `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`), bf16/f16/f32, memory-mapped: tensors are converted to f32
//! one at a time, never two full copies of the model.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::WeightSource;
use crate::error::{Gemma3Error, io};

/// The safetensors files of an HF directory, memory-mapped.
pub struct HfSource {
    files: Vec<(PathBuf, Mmap)>,
    /// Tensor name → index in `files`.
    index: BTreeMap<String, usize>,
}

impl HfSource {
    pub fn open(dir: &Path) -> Result<Self, Gemma3Error> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let paths = if single.is_file() {
            vec![single]
        } else if index_path.is_file() {
            let text = std::fs::read_to_string(&index_path).map_err(|e| io(&index_path, e))?;
            let index: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Gemma3Error::Format {
                    path: index_path.clone(),
                    message: e.to_string(),
                })?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Gemma3Error::Format {
                    path: index_path.clone(),
                    message: "no `weight_map` object".into(),
                })?;
            let mut files: Vec<PathBuf> = map
                .values()
                .filter_map(|v| v.as_str())
                .map(|file| dir.join(file))
                .collect();
            files.sort();
            files.dedup();
            files
        } else {
            return Err(Gemma3Error::Format {
                path: dir.to_path_buf(),
                message: "neither model.safetensors nor model.safetensors.index.json".into(),
            });
        };
        let mut source = Self {
            files: Vec::new(),
            index: BTreeMap::new(),
        };
        for path in paths {
            let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
            // SAFETY: the file is opened read-only and only read through the map; a concurrent
            // writer truncating it is outside what any loader can defend against.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| io(&path, e))?;
            let names = SafeTensors::deserialize(&map)
                .map_err(|e| safetensors_error(&path, &map, e))?
                .names()
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>();
            let file_index = source.files.len();
            for name in names {
                source.index.insert(name, file_index);
            }
            source.files.push((path, map));
        }
        Ok(source)
    }

    fn with_view<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Path, &safetensors::tensor::TensorView<'_>) -> Result<T, Gemma3Error>,
    ) -> Result<T, Gemma3Error> {
        let file = *self
            .index
            .get(name)
            .ok_or_else(|| Gemma3Error::MissingTensor(name.into()))?;
        let (path, map) = &self.files[file];
        let tensors = SafeTensors::deserialize(map).map_err(|e| safetensors_error(path, map, e))?;
        let view = tensors
            .tensor(name)
            .map_err(|e| safetensors_error(path, map, e))?;
        f(path, &view)
    }
}

/// safetensors' error on `path`, said as what the file should have been. Its own wording for a
/// file cut short ("incomplete metadata, file not fully covered") names neither the cause nor
/// the sizes; the header tells how long the file should be.
fn safetensors_error(
    path: &Path,
    bytes: &[u8],
    error: safetensors::SafeTensorError,
) -> Gemma3Error {
    let message = match (expected_length(bytes), bytes.len()) {
        (Some(expected), found) if expected != found as u64 => format!(
            "not a complete safetensors file: its header describes {expected} bytes but the file has {found} \
             (truncated, or written by an interrupted save?): {error}"
        ),
        _ => format!("not a valid safetensors file: {error}"),
    };
    Gemma3Error::Format {
        path: path.to_path_buf(),
        message,
    }
}

/// The length a safetensors file's header implies (8 + header + the last tensor's end), when
/// the header itself is there and parses.
fn expected_length(bytes: &[u8]) -> Option<u64> {
    let header_length = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header_end = 8usize.checked_add(usize::try_from(header_length).ok()?)?;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..header_end)?).ok()?;
    let data_end = header
        .as_object()?
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .filter_map(|(_, tensor)| tensor.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    (header_end as u64).checked_add(data_end)
}

fn to_f32(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, Gemma3Error> {
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(Gemma3Error::Format {
                path: path.to_path_buf(),
                message: format!(
                    "tensor `{name}` has dtype {other:?}; only f32, bf16 and f16 are supported"
                ),
            });
        }
    })
}

impl WeightSource for HfSource {
    fn shape(&self, name: &str) -> Result<Vec<usize>, Gemma3Error> {
        self.with_view(name, |_, view| Ok(view.shape().to_vec()))
    }

    fn read(&mut self, name: &str) -> Result<Vec<f32>, Gemma3Error> {
        self.with_view(name, |path, view| {
            to_f32(path, name, view.dtype(), view.data())
        })
    }

    fn read_rows(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, Gemma3Error> {
        self.with_view(name, |path, view| {
            let shape = view.shape();
            let row_elements: usize = shape.iter().skip(1).product();
            let element_bytes = view.dtype().bitsize() / 8;
            if rows.end > shape.first().copied().unwrap_or(0) || rows.start > rows.end {
                return Err(Gemma3Error::ShapeMismatch {
                    name: name.into(),
                    expected: vec![rows.end],
                    found: shape.to_vec(),
                });
            }
            let bytes = &view.data()[rows.start * row_elements * element_bytes
                ..rows.end * row_elements * element_bytes];
            to_f32(path, name, view.dtype(), bytes)
        })
    }

    fn names(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
    }
}
