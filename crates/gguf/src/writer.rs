//! Writing GGUF v3 files: the inverse of [`crate::reader`], for exporting a model that
//! llama.cpp loads.
//!
//! The header (metadata and tensor infos, with every offset) is laid out before any tensor
//! data is written, so tensor bytes are streamed to the output one tensor at a time by a
//! caller's closure: exporting a model never holds a second copy of its weights. Each
//! tensor's byte count is checked against its declared type and shape, so a caller's mistake
//! is a typed error, never a file that llama.cpp would misread.
//!
//! The writer writes to any [`Write`]; making the file appear atomically (temporary file and
//! rename) is the caller's job, as it is for every other file this project writes.

use std::collections::HashSet;
use std::io::{self, Write};

use crate::error::{GgufError, Result};
use crate::reader::{DEFAULT_ALIGNMENT, MAX_DIMS, TensorInfo};
use crate::types::GgmlType;
use crate::value::{Array, Value, ValueType};

/// The GGUF version this writer produces.
pub const WRITE_VERSION: u32 = 3;

/// A GGUF file being assembled: metadata and tensor infos first, data streamed by
/// [`GgufWriter::write`].
#[derive(Debug, Clone, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<TensorInfo>,
    names: HashSet<String>,
    /// Bytes of data laid out so far (the next tensor's offset before alignment).
    data_len: u64,
}

impl GgufWriter {
    /// An empty file (alignment 32, ggml's default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata key. `general.alignment` is rejected: this writer always uses the
    /// default alignment, which every GGUF reader assumes when the key is absent.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: Value) -> Result<()> {
        let key = key.into();
        if key == "general.alignment" {
            return Err(GgufError::InvalidAlignment(format!(
                "{value} (the writer always aligns to {DEFAULT_ALIGNMENT}; leave the key out)"
            )));
        }
        if !self.keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey(key));
        }
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds a key, replacing its value if it is already there (for copying metadata from
    /// another file and then changing a few keys, such as `general.file_type`).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: Value) -> Result<()> {
        let key = key.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                *v = value;
                Ok(())
            }
            None => self.add_metadata(key, value),
        }
    }

    /// Declares a tensor: `dims` innermost first, as ggml and [`TensorInfo::dims`] order
    /// them (a row-major `[rows, cols]` matrix is `[cols, rows]`). Tensors are written in the
    /// order they are added.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: Vec<u64>,
        ggml_type: GgmlType,
    ) -> Result<&TensorInfo> {
        let name = name.into();
        if dims.len() > MAX_DIMS as usize {
            return Err(GgufError::TooManyDims {
                tensor: name,
                n_dims: dims.len() as u32,
            });
        }
        if self.names.contains(&name) {
            return Err(GgufError::DuplicateTensor(name));
        }
        let offset = self
            .data_len
            .checked_next_multiple_of(DEFAULT_ALIGNMENT)
            .ok_or_else(|| GgufError::Overflow(format!("the data offset of tensor '{name}'")))?;
        let info = TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        };
        let (_, size) = info.checked_sizes()?;
        self.data_len = offset.checked_add(size).ok_or_else(|| {
            GgufError::Overflow(format!("the data end of tensor '{}'", info.name))
        })?;
        self.names.insert(info.name.clone());
        self.tensors.push(info);
        Ok(self.tensors.last().expect("just pushed"))
    }

    /// The tensors declared so far, with the offsets they will have.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Writes the whole file to `out`. `write_tensor` is called once per tensor, in the order
    /// they were added, and must write exactly [`TensorInfo::byte_size`] bytes of that
    /// tensor's data; padding between tensors is the writer's. Returns the file's length.
    pub fn write<W: Write>(
        &self,
        out: W,
        mut write_tensor: impl FnMut(&TensorInfo, &mut dyn Write) -> io::Result<()>,
    ) -> Result<u64> {
        let io_err = |context: String| {
            move |source| GgufError::Write {
                context: context.clone(),
                source,
            }
        };
        let mut out = CountingWriter { inner: out, len: 0 };
        self.write_header(&mut out)
            .map_err(io_err("writing the header".into()))?;
        pad_to(&mut out, DEFAULT_ALIGNMENT).map_err(io_err("padding the header".into()))?;
        let data_start = out.len;
        for info in &self.tensors {
            pad_to(&mut out, DEFAULT_ALIGNMENT)
                .map_err(io_err(format!("padding before tensor '{}'", info.name)))?;
            debug_assert_eq!(out.len - data_start, info.offset);
            let before = out.len;
            write_tensor(info, &mut out).map_err(io_err(format!(
                "writing the data of tensor '{}'",
                info.name
            )))?;
            let expected = info.byte_size();
            let written = out.len - before;
            if written != expected {
                return Err(GgufError::TensorSizeMismatch {
                    tensor: info.name.clone(),
                    ggml_type: info.ggml_type.name(),
                    expected,
                    written,
                });
            }
        }
        out.flush().map_err(io_err("flushing the file".into()))?;
        Ok(out.len)
    }

    fn write_header(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(b"GGUF")?;
        out.write_all(&WRITE_VERSION.to_le_bytes())?;
        out.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        out.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            write_string(out, key)?;
            out.write_all(&(value.value_type() as u32).to_le_bytes())?;
            write_value(out, value)?;
        }
        for t in &self.tensors {
            write_string(out, &t.name)?;
            out.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                out.write_all(&d.to_le_bytes())?;
            }
            out.write_all(&t.ggml_type.id().to_le_bytes())?;
            out.write_all(&t.offset.to_le_bytes())?;
        }
        Ok(())
    }
}

/// Counts the bytes written, for offsets, padding and the per-tensor size check.
struct CountingWriter<W> {
    inner: W,
    len: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad_to<W: Write>(out: &mut CountingWriter<W>, alignment: u64) -> io::Result<()> {
    let padding = out.len.next_multiple_of(alignment) - out.len;
    out.write_all(&vec![0u8; padding as usize])
}

fn write_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn write_value(out: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        Value::U8(v) => out.write_all(&v.to_le_bytes()),
        Value::I8(v) => out.write_all(&v.to_le_bytes()),
        Value::U16(v) => out.write_all(&v.to_le_bytes()),
        Value::I16(v) => out.write_all(&v.to_le_bytes()),
        Value::U32(v) => out.write_all(&v.to_le_bytes()),
        Value::I32(v) => out.write_all(&v.to_le_bytes()),
        Value::F32(v) => out.write_all(&v.to_le_bytes()),
        Value::U64(v) => out.write_all(&v.to_le_bytes()),
        Value::I64(v) => out.write_all(&v.to_le_bytes()),
        Value::F64(v) => out.write_all(&v.to_le_bytes()),
        Value::Bool(v) => out.write_all(&[u8::from(*v)]),
        Value::String(s) => write_string(out, s),
        Value::Array(a) => write_array(out, a),
    }
}

/// An array: element type, count, elements. Nested arrays each carry their own header.
fn write_array(out: &mut impl Write, array: &Array) -> io::Result<()> {
    macro_rules! numbers {
        ($ty:expr, $values:expr) => {{
            out.write_all(&($ty as u32).to_le_bytes())?;
            out.write_all(&($values.len() as u64).to_le_bytes())?;
            for v in $values {
                out.write_all(&v.to_le_bytes())?;
            }
            Ok(())
        }};
    }
    match array {
        Array::U8(v) => numbers!(ValueType::U8, v),
        Array::I8(v) => numbers!(ValueType::I8, v),
        Array::U16(v) => numbers!(ValueType::U16, v),
        Array::I16(v) => numbers!(ValueType::I16, v),
        Array::U32(v) => numbers!(ValueType::U32, v),
        Array::I32(v) => numbers!(ValueType::I32, v),
        Array::F32(v) => numbers!(ValueType::F32, v),
        Array::U64(v) => numbers!(ValueType::U64, v),
        Array::I64(v) => numbers!(ValueType::I64, v),
        Array::F64(v) => numbers!(ValueType::F64, v),
        Array::Bool(v) => {
            out.write_all(&(ValueType::Bool as u32).to_le_bytes())?;
            out.write_all(&(v.len() as u64).to_le_bytes())?;
            out.write_all(&v.iter().map(|&b| u8::from(b)).collect::<Vec<_>>())
        }
        Array::String(v) => {
            out.write_all(&(ValueType::String as u32).to_le_bytes())?;
            out.write_all(&(v.len() as u64).to_le_bytes())?;
            v.iter().try_for_each(|s| write_string(out, s))
        }
        Array::Array(v) => {
            out.write_all(&(ValueType::Array as u32).to_le_bytes())?;
            out.write_all(&(v.len() as u64).to_le_bytes())?;
            v.iter().try_for_each(|a| write_array(out, a))
        }
    }
}
