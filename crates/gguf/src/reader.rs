//! Parsing of the GGUF header, metadata and tensor infos, and positional
//! reads of tensor data.
//!
//! Layout of a GGUF v2/v3 file (all little-endian):
//!
//! ```text
//! "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//! n_kv       × { string key | u32 value_type | value }
//! n_tensors  × { string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset }
//! padding to `general.alignment` (default 32)
//! tensor data; each tensor at data_start + offset
//! ```
//!
//! Only the header is read at open time (through a small buffered reader);
//! tensor data is read on demand with positional reads into per-chunk buffers
//! so that loading a model never holds the whole file in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::dequant::dequantizer;
use crate::error::{GgufError, Result};
use crate::types::GgmlType;
use crate::value::{Array, Value, ValueType};

/// Maximum number of tensor dimensions (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Deepest accepted nesting of metadata arrays (guards the recursion).
const MAX_ARRAY_DEPTH: usize = 8;
/// Raw bytes read per positional read while dequantizing: large enough for
/// efficient I/O, small enough not to matter for peak memory.
const CHUNK_BYTES: usize = 1 << 20;

/// Where a tensor lives and how it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions innermost first, exactly as in the file (ggml `ne`).
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of values (1 for zero dimensions). Saturates instead of
    /// overflowing; infos from [`GgufFile`] are validated not to overflow.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// Values per ggml row: the innermost dimension.
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of ggml rows: the product of all but the innermost dimension.
    /// For a 2-D tensor these are the rows of the row-major matrix
    /// [`shape_row_major`](Self::shape_row_major).
    pub fn n_rows(&self) -> u64 {
        self.dims
            .iter()
            .skip(1)
            .fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// Bytes per ggml row (rows are whole numbers of blocks).
    pub fn row_bytes(&self) -> u64 {
        let t = self.ggml_type;
        (self.row_len() / t.block_size() as u64).saturating_mul(t.type_size() as u64)
    }

    /// Bytes of tensor data in the file.
    pub fn byte_size(&self) -> u64 {
        self.n_rows().saturating_mul(self.row_bytes())
    }

    /// Row-major shape (outermost first): GGUF `[640, 262144]` is `[262144, 640]`.
    pub fn shape_row_major(&self) -> Vec<usize> {
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }

    /// Checks the shape against the type and returns `(n_elements, byte_size)`
    /// computed without overflow.
    pub(crate) fn checked_sizes(&self) -> Result<(u64, u64)> {
        let t = self.ggml_type;
        let invalid = |reason: String| GgufError::InvalidShape {
            tensor: self.name.clone(),
            dims: self.dims.clone(),
            reason,
        };
        let overflow = || GgufError::Overflow(format!("the size of tensor '{}'", self.name));
        if let Some(&d) = self.dims.iter().find(|&&d| d > i64::MAX as u64) {
            return Err(invalid(format!("dimension {d} exceeds i64::MAX")));
        }
        let row_len = self.row_len();
        let block = t.block_size() as u64;
        if !row_len.is_multiple_of(block) {
            return Err(invalid(format!(
                "innermost dimension {row_len} is not a multiple of the {t} block size {block}"
            )));
        }
        let mut n = 1u64;
        for &d in &self.dims {
            n = n.checked_mul(d).ok_or_else(overflow)?;
        }
        if n > i64::MAX as u64 {
            return Err(overflow());
        }
        let mut n_rows = 1u64;
        for &d in self.dims.iter().skip(1) {
            n_rows = n_rows.checked_mul(d).ok_or_else(overflow)?;
        }
        let bytes = (row_len / block)
            .checked_mul(t.type_size() as u64)
            .and_then(|row_bytes| row_bytes.checked_mul(n_rows))
            .ok_or_else(overflow)?;
        Ok((n, bytes))
    }
}

/// An open GGUF file: parsed header, metadata and tensor infos, plus the file
/// handle for reading tensor data on demand.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    file: PositionalFile,
    file_len: u64,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl GgufFile {
    /// Opens and validates a GGUF file. Reads only the header; every length,
    /// count and tensor range is checked against the file size.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let io_err = |context: &str, source| GgufError::Io {
            path: path.clone(),
            context: context.to_owned(),
            source,
        };
        let file = File::open(&path).map_err(|e| io_err("opening the file", e))?;
        let file_len = file
            .metadata()
            .map_err(|e| io_err("reading the file size", e))?
            .len();

        let mut p = Parser {
            r: BufReader::with_capacity(1 << 16, &file),
            pos: 0,
            len: file_len,
            path: &path,
        };
        let header = p.header()?;
        drop(p);

        let alignment = match header.key_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => {
                let v = &header.metadata[i].1;
                match v.as_integer() {
                    Some(a) if a > 0 && a <= u32::MAX as i128 && (a as u64).is_power_of_two() => {
                        a as u64
                    }
                    _ => {
                        return Err(GgufError::InvalidAlignment(format!(
                            "{v} ({})",
                            v.type_description()
                        )));
                    }
                }
            }
        };
        let data_offset = header
            .end
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| GgufError::Overflow("the data section offset".into()))?;

        for t in &header.tensors {
            let (_, size) = t.checked_sizes()?;
            if !t.offset.is_multiple_of(alignment) {
                return Err(GgufError::MisalignedOffset {
                    tensor: t.name.clone(),
                    offset: t.offset,
                    alignment,
                });
            }
            let start = data_offset.checked_add(t.offset).ok_or_else(|| {
                GgufError::Overflow(format!("the data offset of tensor '{}'", t.name))
            })?;
            let end = start.checked_add(size).ok_or_else(|| {
                GgufError::Overflow(format!("the data end of tensor '{}'", t.name))
            })?;
            if end > file_len {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    start,
                    size,
                    file_len,
                });
            }
        }

        tracing::debug!(
            path = %path.display(),
            version = header.version,
            n_kv = header.metadata.len(),
            n_tensors = header.tensors.len(),
            alignment,
            data_offset,
            "opened GGUF file"
        );

        Ok(GgufFile {
            file: PositionalFile::new(file),
            path,
            file_len,
            version: header.version,
            alignment,
            data_offset,
            metadata: header.metadata,
            key_index: header.key_index,
            tensors: header.tensors,
            tensor_index: header.tensor_index,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File size in bytes at open time.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    // ---------------------------------------------------------------- metadata

    /// All metadata key/values, in file order.
    pub fn metadata(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    fn wrong_type(key: &str, expected: &'static str, v: &Value) -> GgufError {
        GgufError::WrongType {
            key: key.to_owned(),
            expected,
            found: v.type_description(),
        }
    }

    fn get_int<T: TryFrom<i128>>(&self, key: &str, target: &'static str) -> Result<T> {
        let v = self.require(key)?;
        let i = v
            .as_integer()
            .ok_or_else(|| Self::wrong_type(key, "an integer", v))?;
        T::try_from(i).map_err(|_| GgufError::OutOfRange {
            key: key.to_owned(),
            value: i.to_string(),
            target,
        })
    }

    /// An integer key (of any GGUF integer type) as u32, range-checked.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_int(key, "u32")
    }

    /// An integer key (of any GGUF integer type) as u64, range-checked.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_int(key, "u64")
    }

    /// An integer key (of any GGUF integer type) as i64, range-checked.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.get_int(key, "i64")
    }

    /// An f32 key.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        match self.require(key)? {
            Value::F32(v) => Ok(*v),
            v => Err(Self::wrong_type(key, "f32", v)),
        }
    }

    /// A bool key.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            Value::Bool(v) => Ok(*v),
            v => Err(Self::wrong_type(key, "bool", v)),
        }
    }

    /// A string key.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            v => Err(Self::wrong_type(key, "string", v)),
        }
    }

    /// An array-of-strings key (e.g. `tokenizer.ggml.tokens`).
    pub fn get_string_array(&self, key: &str) -> Result<&[String]> {
        match self.require(key)? {
            Value::Array(Array::String(a)) => Ok(a),
            v => Err(Self::wrong_type(key, "array<string>", v)),
        }
    }

    /// An array-of-f32 key (e.g. `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        match self.require(key)? {
            Value::Array(Array::F32(a)) => Ok(a),
            v => Err(Self::wrong_type(key, "array<f32>", v)),
        }
    }

    /// An array of any integer type as i32, every element range-checked
    /// (e.g. `tokenizer.ggml.token_type`).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let v = self.require(key)?;
        let a = match v {
            Value::Array(a) if a.is_integer() => a,
            v => return Err(Self::wrong_type(key, "an integer array", v)),
        };
        if let Array::I32(a) = a {
            return Ok(a.clone());
        }
        (0..a.len())
            .map(|i| {
                let x = a.integer_at(i).unwrap_or_default();
                i32::try_from(x).map_err(|_| GgufError::OutOfRange {
                    key: format!("{key}[{i}]"),
                    value: x.to_string(),
                    target: "i32",
                })
            })
            .collect()
    }

    // ----------------------------------------------------------------- tensors

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = &TensorInfo> {
        self.tensors.iter()
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// The info of a tensor.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_info(name)
            .ok_or_else(|| GgufError::TensorNotFound(name.to_owned()))
    }

    /// The raw bytes of a tensor as stored in the file.
    pub fn read_raw(&self, name: &str) -> Result<Vec<u8>> {
        let t = self.require_tensor(name)?;
        let len = to_usize(t.byte_size(), name)?;
        let mut buf = vec![0u8; len];
        self.read_at(&mut buf, self.data_offset + t.offset, name)?;
        Ok(buf)
    }

    /// A Q8_0 tensor's int8 values and f16 block scales exactly as stored (no dequantizing),
    /// row-major like [`read_f32`](Self::read_f32).
    pub fn read_q8_0(&self, name: &str) -> Result<crate::q8_0::Q8_0Blocks> {
        let t = self.require_tensor(name)?;
        let n_rows = to_usize(t.n_rows(), name)?;
        self.read_q8_0_rows(name, 0..n_rows)
    }

    /// Rows `rows` of a Q8_0 tensor as stored (see [`read_f32_rows`](Self::read_f32_rows) for
    /// what a row is): a large tensor, such as a token embedding, read a few rows at a time.
    pub fn read_q8_0_rows(
        &self,
        name: &str,
        rows: Range<usize>,
    ) -> Result<crate::q8_0::Q8_0Blocks> {
        let t = self.require_tensor(name)?;
        if t.ggml_type != GgmlType::Q8_0 {
            return Err(GgufError::WrongTensorType {
                tensor: name.to_owned(),
                expected: GgmlType::Q8_0.name(),
                found: t.ggml_type.name(),
            });
        }
        self.check_rows(t, &rows)?;
        let overflow = || GgufError::Overflow(format!("the byte range of tensor '{name}'"));
        let len = (rows.len() as u64)
            .checked_mul(t.row_bytes())
            .ok_or_else(overflow)?;
        // In range: validated at open that the whole tensor lies in the file.
        let start = (rows.start as u64)
            .checked_mul(t.row_bytes())
            .and_then(|o| o.checked_add(self.data_offset + t.offset))
            .ok_or_else(overflow)?;
        let mut raw = vec![0u8; to_usize(len, name)?];
        self.read_at(&mut raw, start, name)?;
        crate::q8_0::split(&raw)
    }

    /// The whole tensor dequantized to f32, row-major (see
    /// [`TensorInfo::shape_row_major`]).
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.require_tensor(name)?;
        let n_rows = to_usize(t.n_rows(), name)?;
        self.read_f32_rows(name, 0..n_rows)
    }

    /// Rows `rows` of the tensor dequantized to f32. A row is the innermost
    /// dimension (`dims[0]` values), i.e. for a 2-D tensor a row of the
    /// row-major matrix; rows of every supported type are whole blocks, so
    /// large tensors can be streamed in chunks of rows.
    pub fn read_f32_rows(&self, name: &str, rows: Range<usize>) -> Result<Vec<f32>> {
        let t = self.require_tensor(name)?;
        let n = rows
            .end
            .saturating_sub(rows.start)
            .checked_mul(to_usize(t.row_len(), name)?)
            .ok_or_else(|| GgufError::Overflow(format!("the row count of tensor '{name}'")))?;
        self.check_rows(t, &rows)?;
        let mut out = vec![0.0f32; n];
        self.read_f32_rows_into(name, rows, &mut out)?;
        Ok(out)
    }

    /// Like [`read_f32_rows`](Self::read_f32_rows) into a caller-provided
    /// buffer of exactly `rows.len() * row_len` values.
    pub fn read_f32_rows_into(
        &self,
        name: &str,
        rows: Range<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        let t = self.require_tensor(name)?;
        let ty = t.ggml_type;
        let dequant = dequantizer(ty).ok_or_else(|| GgufError::UnsupportedType {
            tensor: name.to_owned(),
            type_name: ty.name(),
        })?;
        self.check_rows(t, &rows)?;
        let overflow = || GgufError::Overflow(format!("the byte range of tensor '{name}'"));
        let row_len = to_usize(t.row_len(), name)?;
        let n_rows = rows.end - rows.start;
        let expected = n_rows.checked_mul(row_len).ok_or_else(overflow)?;
        if out.len() != expected {
            return Err(GgufError::BufferSize {
                tensor: name.to_owned(),
                expected,
                got: out.len(),
            });
        }
        if expected == 0 {
            return Ok(());
        }
        // In range: validated at open that the whole tensor lies in the file.
        let start = (rows.start as u64)
            .checked_mul(t.row_bytes())
            .and_then(|o| o.checked_add(self.data_offset + t.offset))
            .ok_or_else(overflow)?;

        let (block, type_size) = (ty.block_size(), ty.type_size());
        let blocks_per_chunk = (CHUNK_BYTES / type_size).max(1);
        let mut buf = vec![0u8; blocks_per_chunk.min(expected / block) * type_size];
        let mut pos = start;
        for dst in out.chunks_mut(blocks_per_chunk * block) {
            let raw = &mut buf[..dst.len() / block * type_size];
            self.read_at(raw, pos, name)?;
            dequant(raw, dst);
            pos += raw.len() as u64;
        }
        tracing::trace!(tensor = name, rows = ?rows, "dequantized");
        Ok(())
    }

    fn check_rows(&self, t: &TensorInfo, rows: &Range<usize>) -> Result<()> {
        if rows.start > rows.end || rows.end as u64 > t.n_rows() {
            return Err(GgufError::RowsOutOfRange {
                tensor: t.name.clone(),
                start: rows.start,
                end: rows.end,
                n_rows: t.n_rows(),
            });
        }
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, tensor: &str) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| GgufError::Io {
                path: self.path.clone(),
                context: format!(
                    "reading {} bytes at offset {offset} for tensor '{tensor}'",
                    buf.len()
                ),
                source,
            })
    }
}

fn to_usize(v: u64, tensor: &str) -> Result<usize> {
    usize::try_from(v)
        .map_err(|_| GgufError::Overflow(format!("the size of tensor '{tensor}' as usize")))
}

// ------------------------------------------------------------ positional I/O

/// A file read at explicit offsets, so that `&GgufFile` can serve reads
/// without a cursor (and from several threads on Unix).
#[derive(Debug)]
struct PositionalFile {
    file: File,
    #[cfg(not(unix))]
    lock: std::sync::Mutex<()>,
}

impl PositionalFile {
    fn new(file: File) -> Self {
        PositionalFile {
            file,
            #[cfg(not(unix))]
            lock: std::sync::Mutex::new(()),
        }
    }

    #[cfg(unix)]
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    /// Portable fallback: seek + read under a lock.
    #[cfg(not(unix))]
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

// ------------------------------------------------------------------ parsing

struct Header {
    version: u32,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    /// Offset just past the tensor infos.
    end: u64,
}

/// A bounds-checked little-endian reader: every read first checks that the
/// bytes exist, so a malformed file yields `Truncated`/`LengthTooLarge`
/// before any large allocation.
struct Parser<'a, R> {
    r: R,
    pos: u64,
    len: u64,
    path: &'a Path,
}

/// Lazily built context for error messages (most reads never fail).
type Ctx<'c> = &'c dyn Fn() -> String;

impl<R: Read> Parser<'_, R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn fill(&mut self, buf: &mut [u8], ctx: Ctx) -> Result<()> {
        let n = buf.len() as u64;
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                context: ctx(),
                offset: self.pos,
                needed: n,
                file_len: self.len,
            });
        }
        self.r.read_exact(buf).map_err(|source| GgufError::Io {
            path: self.path.to_path_buf(),
            context: format!("reading {} at offset {}", ctx(), self.pos),
            source,
        })?;
        self.pos += n;
        Ok(())
    }

    fn arr<const N: usize>(&mut self, ctx: Ctx) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b, ctx)?;
        Ok(b)
    }

    fn u32(&mut self, ctx: Ctx) -> Result<u32> {
        self.arr(ctx).map(u32::from_le_bytes)
    }

    fn u64(&mut self, ctx: Ctx) -> Result<u64> {
        self.arr(ctx).map(u64::from_le_bytes)
    }

    /// Reads `len` bytes after checking they exist.
    fn bytes(&mut self, len: u64, ctx: Ctx) -> Result<Vec<u8>> {
        if len > self.remaining() {
            return Err(GgufError::LengthTooLarge {
                context: ctx(),
                len,
                available: self.remaining(),
            });
        }
        let n = usize::try_from(len).map_err(|_| GgufError::Overflow(ctx()))?;
        let mut buf = vec![0u8; n];
        self.fill(&mut buf, ctx)?;
        Ok(buf)
    }

    fn string(&mut self, ctx: Ctx) -> Result<String> {
        let len = self.u64(ctx)?;
        let bytes = self.bytes(len, ctx)?;
        String::from_utf8(bytes).map_err(|_| GgufError::InvalidUtf8 { context: ctx() })
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in
    /// the rest of the file; returns the count as usize.
    fn check_count(&self, count: u64, min_size: u64, ctx: Ctx) -> Result<usize> {
        let fits = count
            .checked_mul(min_size)
            .is_some_and(|b| b <= self.remaining());
        if !fits {
            return Err(GgufError::LengthTooLarge {
                context: ctx(),
                len: count,
                available: self.remaining(),
            });
        }
        usize::try_from(count).map_err(|_| GgufError::Overflow(ctx()))
    }

    fn header(&mut self) -> Result<Header> {
        let magic: [u8; 4] = self.arr(&|| "the magic".into())?;
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = self.u32(&|| "the version".into())?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = self.u64(&|| "the tensor count".into())?;
        let n_kv = self.u64(&|| "the metadata key/value count".into())?;

        // Smallest possible key/value: empty key (8) + type (4) + u8 (1).
        let n_kv = self.check_count(n_kv, 13, &|| "the metadata key/value count".into())?;
        // Smallest possible tensor info: empty name (8) + n_dims (4) + type (4) + offset (8).
        let tensors_ctx = || "the tensor count".to_owned();
        self.check_count(n_tensors, 24, &tensors_ctx)?;

        let mut metadata = Vec::with_capacity(n_kv);
        let mut key_index = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = self.string(&|| format!("the name of metadata key #{i}"))?;
            let ty_id = self.u32(&|| format!("the value type of metadata key '{key}'"))?;
            let value = self.value(&key, ty_id, 0)?;
            if key_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey(key));
            }
            metadata.push((key, value));
        }

        let n_tensors = self.check_count(n_tensors, 24, &tensors_ctx)?;
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = self.string(&|| format!("the name of tensor #{i}"))?;
            let n_dims = self.u32(&|| format!("the dimension count of tensor '{name}'"))?;
            if n_dims > MAX_DIMS {
                return Err(GgufError::TooManyDims {
                    tensor: name,
                    n_dims,
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(self.u64(&|| format!("the dimensions of tensor '{name}'"))?);
            }
            let type_id = self.u32(&|| format!("the type of tensor '{name}'"))?;
            let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownType {
                tensor: name.clone(),
                type_id,
            })?;
            let offset = self.u64(&|| format!("the data offset of tensor '{name}'"))?;
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(GgufError::DuplicateTensor(name));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }

        Ok(Header {
            version,
            metadata,
            key_index,
            tensors,
            tensor_index,
            end: self.pos,
        })
    }

    fn value(&mut self, key: &str, type_id: u32, depth: usize) -> Result<Value> {
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::InvalidValueType {
            key: key.to_owned(),
            type_id,
        })?;
        let ctx = || format!("the value of metadata key '{key}'");
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.arr(&ctx)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.arr(&ctx)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.arr(&ctx)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.arr(&ctx)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.arr(&ctx)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.arr(&ctx)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.arr(&ctx)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.arr(&ctx)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.arr(&ctx)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.arr(&ctx)?)),
            ValueType::Bool => {
                let [b] = self.arr(&ctx)?;
                Value::Bool(to_bool(key, b)?)
            }
            ValueType::String => Value::String(self.string(&ctx)?),
            ValueType::Array => Value::Array(self.array(key, depth)?),
        })
    }

    fn array(&mut self, key: &str, depth: usize) -> Result<Array> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::NestingTooDeep {
                key: key.to_owned(),
                max: MAX_ARRAY_DEPTH,
            });
        }
        let ctx = || format!("the array header of metadata key '{key}'");
        let type_id = self.u32(&ctx)?;
        let elem = ValueType::from_id(type_id).ok_or_else(|| GgufError::InvalidValueType {
            key: key.to_owned(),
            type_id,
        })?;
        let count = self.u64(&ctx)?;
        let n = self.check_count(count, elem.min_encoded_size(), &|| {
            format!(
                "metadata key '{key}': array of {count} {} elements",
                elem.name()
            )
        })?;
        let ctx = || format!("the elements of metadata key '{key}'");

        /// Reads `n` fixed-size little-endian numbers in one bounds-checked read.
        macro_rules! numbers {
            ($variant:ident, $t:ty) => {{
                const W: usize = std::mem::size_of::<$t>();
                let raw = self.bytes((n * W) as u64, &ctx)?;
                Array::$variant(
                    raw.chunks_exact(W)
                        .map(|c| {
                            let mut b = [0u8; W];
                            b.copy_from_slice(c);
                            <$t>::from_le_bytes(b)
                        })
                        .collect(),
                )
            }};
        }

        Ok(match elem {
            ValueType::U8 => Array::U8(self.bytes(n as u64, &ctx)?),
            ValueType::I8 => numbers!(I8, i8),
            ValueType::U16 => numbers!(U16, u16),
            ValueType::I16 => numbers!(I16, i16),
            ValueType::U32 => numbers!(U32, u32),
            ValueType::I32 => numbers!(I32, i32),
            ValueType::F32 => numbers!(F32, f32),
            ValueType::U64 => numbers!(U64, u64),
            ValueType::I64 => numbers!(I64, i64),
            ValueType::F64 => numbers!(F64, f64),
            ValueType::Bool => Array::Bool(
                self.bytes(n as u64, &ctx)?
                    .into_iter()
                    .map(|b| to_bool(key, b))
                    .collect::<Result<_>>()?,
            ),
            ValueType::String => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.string(&|| format!("element {i} of metadata key '{key}'"))?);
                }
                Array::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array(key, depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }
}

fn to_bool(key: &str, b: u8) -> Result<bool> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::InvalidBool {
            key: key.to_owned(),
            value,
        }),
    }
}
