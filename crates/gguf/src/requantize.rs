//! A Q8_0 GGUF from any GGUF, as `llama-quantize --allow-requantize IN OUT Q8_0` makes it:
//! every matrix whose rows are whole Q8_0 blocks requantized with ggml's reference quantizer
//! ([`q8_0::quantize_row_ref`]), every other tensor (norms, vectors) copied as stored, the
//! metadata copied with `general.file_type` set to Q8_0's.
//!
//! Byte-identical with llama-quantize on the Gemma3 270M checkpoint (the test
//! `writer::requantizing_matches_llama_quantize`); it is how tests make a Q8_0 GGUF without
//! llama.cpp. Rows are streamed, so no whole f32 copy of a large tensor is ever held.

use std::io::{self, Write};

use crate::error::Result;
use crate::q8_0::{self, BLOCK_VALUES, Q8_0Blocks};
use crate::reader::{GgufFile, TensorInfo};
use crate::types::GgmlType;
use crate::value::Value;
use crate::writer::GgufWriter;

/// llama.cpp's `LLAMA_FTYPE_MOSTLY_Q8_0`, the `general.file_type` of a Q8_0 file.
pub const FILE_TYPE_MOSTLY_Q8_0: u32 = 7;

/// Rows dequantized and requantized at a time.
const ROWS_AT_ONCE: usize = 1024;

/// The type llama-quantize's Q8_0 gives `info`: Q8_0 for a tensor of two or more dimensions
/// whose rows are whole blocks, its own type for the rest (1-D tensors are never quantized).
pub fn q8_0_type(info: &TensorInfo) -> GgmlType {
    if info.dims.len() >= 2 && info.row_len().is_multiple_of(BLOCK_VALUES as u64) {
        GgmlType::Q8_0
    } else {
        info.ggml_type
    }
}

/// Writes the data of `src`'s tensor `info` as [`q8_0_type`] says: requantized to Q8_0 (from
/// its dequantized rows, streamed) or copied as stored.
pub fn write_tensor_q8_0(src: &GgufFile, info: &TensorInfo, out: &mut dyn Write) -> Result<()> {
    let write = |out: &mut dyn Write, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|source| crate::GgufError::Write {
                context: format!("writing the data of tensor '{}'", info.name),
                source,
            })
    };
    if q8_0_type(info) != GgmlType::Q8_0 {
        return write(out, &src.read_raw(&info.name)?);
    }
    let rows = usize::try_from(info.n_rows())
        .map_err(|_| crate::GgufError::Overflow(format!("the rows of tensor '{}'", info.name)))?;
    let mut bytes = Vec::new();
    for start in (0..rows).step_by(ROWS_AT_ONCE) {
        let x = src.read_f32_rows(&info.name, start..(start + ROWS_AT_ONCE).min(rows))?;
        let mut blocks = Q8_0Blocks {
            values: Vec::with_capacity(x.len()),
            scales: Vec::with_capacity(x.len() / BLOCK_VALUES),
        };
        q8_0::quantize_row_ref(&x, &mut blocks)?;
        bytes.clear();
        q8_0::join_into(&blocks.values, &blocks.scales, &mut bytes)?;
        write(out, &bytes)?;
    }
    Ok(())
}

/// Writes `src` as llama-quantize's Q8_0 of it to `out` (tensors in the same order, metadata
/// copied, `general.file_type` = [`FILE_TYPE_MOSTLY_Q8_0`]). Returns the file's length.
pub fn requantize_q8_0(src: &GgufFile, out: impl Write) -> Result<u64> {
    let mut writer = GgufWriter::new();
    for (key, value) in src.metadata() {
        // The writer always uses the default alignment, which it rejects as a key.
        if key != "general.alignment" {
            writer.add_metadata(key, value.clone())?;
        }
    }
    writer.set_metadata("general.file_type", Value::U32(FILE_TYPE_MOSTLY_Q8_0))?;
    for info in src.tensors() {
        writer.add_tensor(&info.name, info.dims.clone(), q8_0_type(info))?;
    }
    writer.write(out, |info, out| {
        // Declared from the source's own tensors, so always found.
        let source = src
            .tensor_info(&info.name)
            .ok_or_else(|| io::Error::other(format!("tensor '{}' left the source", info.name)))?;
        write_tensor_q8_0(src, source, out).map_err(io::Error::other)
    })
}
