//! Q8_0 blocks as stored, without dequantizing: 32 int8 values and one f16 scale per block
//! (`{ f16 d; i8 qs[32] }`, 34 bytes), the layout llama.cpp writes and reads.
//!
//! Splitting and joining are exact inverses, so a model that keeps Q8_0 values and scales as
//! they were read writes back byte-identical tensors.

use half::f16;

use crate::error::{GgufError, Result};

/// Values per Q8_0 block.
pub const BLOCK_VALUES: usize = 32;
/// Bytes per Q8_0 block: the f16 scale, then the 32 values.
pub const BLOCK_BYTES: usize = 34;

/// Q8_0 data split into its values and its block scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Q8_0Blocks {
    /// The int8 values, in file order (row-major, rows whole numbers of blocks).
    pub values: Vec<i8>,
    /// One scale per 32 consecutive values.
    pub scales: Vec<f16>,
}

/// Splits raw Q8_0 bytes (a whole number of blocks) into values and scales.
pub fn split(raw: &[u8]) -> Result<Q8_0Blocks> {
    if !raw.len().is_multiple_of(BLOCK_BYTES) {
        return Err(GgufError::BlockMismatch {
            values: raw.len() / BLOCK_BYTES * BLOCK_VALUES,
            scales: raw.len().div_ceil(BLOCK_BYTES),
        });
    }
    let n_blocks = raw.len() / BLOCK_BYTES;
    let mut values = Vec::with_capacity(n_blocks * BLOCK_VALUES);
    let mut scales = Vec::with_capacity(n_blocks);
    for block in raw.chunks_exact(BLOCK_BYTES) {
        scales.push(f16::from_le_bytes([block[0], block[1]]));
        values.extend(block[2..].iter().map(|&q| q as i8));
    }
    Ok(Q8_0Blocks { values, scales })
}

/// Writes values and scales back as raw Q8_0 blocks, appending to `out`.
pub fn join_into(values: &[i8], scales: &[f16], out: &mut Vec<u8>) -> Result<()> {
    if values.len() != scales.len() * BLOCK_VALUES {
        return Err(GgufError::BlockMismatch {
            values: values.len(),
            scales: scales.len(),
        });
    }
    out.reserve(scales.len() * BLOCK_BYTES);
    for (scale, block) in scales.iter().zip(values.chunks_exact(BLOCK_VALUES)) {
        out.extend_from_slice(&scale.to_le_bytes());
        out.extend(block.iter().map(|&q| q as u8));
    }
    Ok(())
}

/// Quantizes `x` (a whole number of blocks) to Q8_0 exactly as ggml's
/// `quantize_row_q8_0_ref` does, which is what `llama-quantize` runs: per block
/// `d = amax / 127`, `q = roundf(x * (1 / d))` (half away from zero, with the inverse of the
/// f32 `d`, not of its f16 rounding), then `d` stored as f16. An all-zero block has `d = 0`
/// and zero values. Appends the values and scales to `out`.
pub fn quantize_row_ref(x: &[f32], out: &mut Q8_0Blocks) -> Result<()> {
    if !x.len().is_multiple_of(BLOCK_VALUES) {
        return Err(GgufError::BlockMismatch {
            values: x.len(),
            scales: x.len().div_ceil(BLOCK_VALUES),
        });
    }
    for block in x.chunks_exact(BLOCK_VALUES) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.scales.push(f16::from_f32(d));
        // `as i8` saturates; |x * id| <= 127 up to rounding, as in ggml's C cast.
        out.values
            .extend(block.iter().map(|&v| (v * id).round() as i8));
    }
    Ok(())
}

/// [`join_into`] a new buffer.
pub fn join(values: &[i8], scales: &[f16]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    join_into(values, scales, &mut out)?;
    Ok(out)
}
