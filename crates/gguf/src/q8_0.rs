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

/// [`join_into`] a new buffer.
pub fn join(values: &[i8], scales: &[f16]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    join_into(values, scales, &mut out)?;
    Ok(out)
}
