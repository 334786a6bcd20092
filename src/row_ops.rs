//! Float row kernels for the work between the int8 products of a transformer step: RMSNorm
//! and rotate-half RoPE.
//!
//! Each is one Burn op chain on every backend (the generic path, also the tests' oracle) and
//! one pass over host memory on the CPU backends (`cpu/rows.rs`), where a decode step is a
//! chain of many tiny ops and each op's dispatch and allocation cost more than its arithmetic.
//! RoPE is bit-exact with the generic path (the same multiplies and adds, in the same order);
//! RMSNorm sums its squares in a different order, so it agrees to a few ulps.

use burn::tensor::{Tensor, backend::Backend};

use crate::ops::map_rows;

/// RMSNorm over the last axis: `x · rsqrt(mean(x²) + eps) · (weight + weight_offset)`.
///
/// `weight_offset` is `1.0` for Gemma's `(1 + w)` scale and `0.0` for the usual one. Computed in
/// f32 on `x [..., d]` with `weight [d]`.
pub fn rms_norm<B: Backend, const D: usize>(x: Tensor<B, D>, weight: Tensor<B, 1>, weight_offset: f32, eps: f64) -> Tensor<B, D> {
    let d = x.dims()[D - 1];
    map_rows(x, d, |rows| {
        #[cfg(any(feature = "flex", feature = "ndarray"))]
        if let Some(output) = crate::cpu::try_rms_norm(&rows, &weight, weight_offset, eps) {
            return output;
        }
        generic_rms_norm(rows, weight, weight_offset, eps)
    })
}

/// [`rms_norm`] through Burn tensor ops, on every backend.
pub fn generic_rms_norm<B: Backend, const D: usize>(x: Tensor<B, D>, weight: Tensor<B, 1>, weight_offset: f32, eps: f64) -> Tensor<B, D> {
    let inverse_rms = x.clone().powi_scalar(2).mean_dim(D - 1).add_scalar(eps).sqrt().recip();
    let scale = weight.add_scalar(weight_offset).unsqueeze::<D>();
    x.mul(inverse_rms).mul(scale)
}

/// Rotate-half RoPE on `x [batch, seq, heads, head_dim]`: `x·cos + [x₂, x₁]·signed_sin`, where
/// `x₁, x₂` are the two halves of each head and `signed_sin` carries rotate-half's minus sign
/// in its first half. `cos` and `signed_sin` have `x`'s shape, or batch 1 (shared by every row).
pub fn rope_rotate_half<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, signed_sin: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(output) = crate::cpu::try_rope_rotate_half(&x, &cos, &signed_sin) {
        return output;
    }
    generic_rope_rotate_half(x, cos, signed_sin)
}

/// [`rope_rotate_half`] through Burn tensor ops, on every backend.
pub fn generic_rope_rotate_half<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, signed_sin: Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, seq, heads, head_dim] = x.dims();
    let half = head_dim / 2;
    let first = x.clone().slice([0..batch, 0..seq, 0..heads, 0..half]);
    let second = x.clone().slice([0..batch, 0..seq, 0..heads, half..head_dim]);
    let swapped = Tensor::cat(vec![second, first], 3);
    x.mul(cos).add(swapped.mul(signed_sin))
}
