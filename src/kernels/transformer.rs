//! `burn_int8::transformer_ops`: float row kernels for the work between the int8 products of a
//! transformer step (Gemma3's, today its only user). They live in the library, not in the Gemma3
//! crate, because their CPU versions read backend storage in place, which only this seam may
//! do; they are public so that a model crate can call them. RMSNorm
//! (alone, or added back to a residual stream), rotate-half RoPE, the GELU-tanh gate of a
//! GeGLU feed-forward, and attention where no key needs masking (a decode step over its cache).
//!
//! Each is one Burn op chain on every backend (the generic path, also the tests' oracle) and
//! one pass over host memory on the CPU backends (`cpu/rows.rs`), where a decode step is a
//! chain of many tiny ops and each op's dispatch and allocation cost more than its arithmetic.
//! RoPE is bit-exact with the generic path (the same multiplies and adds, in the same order);
//! RMSNorm sums its squares in a different order, and the GELU gate's `exp` is the standard
//! library's, so they agree to a few ulps.

use std::ops::Range;

use burn::tensor::{Tensor, backend::Backend};

use super::map_rows;

/// RMSNorm over the last axis: `x · rsqrt(mean(x²) + eps) · (weight + weight_offset)`.
///
/// `weight_offset` is `1.0` for Gemma's `(1 + w)` scale and `0.0` for the usual one. Computed in
/// f32 on `x [..., d]` with `weight [d]`.
pub fn rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    weight_offset: f32,
    eps: f64,
) -> Tensor<B, D> {
    let d = x.dims()[D - 1];
    map_rows(x, d, |rows| {
        #[cfg(any(feature = "flex", feature = "ndarray"))]
        if let Some(output) = super::cpu::try_rms_norm(&rows, &weight, weight_offset, eps) {
            return output;
        }
        generic_rms_norm(rows, weight, weight_offset, eps)
    })
}

/// [`rms_norm`] through Burn tensor ops, on every backend.
pub fn generic_rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    weight_offset: f32,
    eps: f64,
) -> Tensor<B, D> {
    let inverse_rms = x
        .clone()
        .powi_scalar(2)
        .mean_dim(D - 1)
        .add_scalar(eps)
        .sqrt()
        .recip();
    let scale = weight.add_scalar(weight_offset).unsqueeze::<D>();
    x.mul(inverse_rms).mul(scale)
}

/// `residual + rms_norm(x)`: a normed branch added back to the residual stream (Gemma's
/// post-attention and post-feed-forward norms), one pass on the CPU backends.
pub fn add_rms_norm<B: Backend, const D: usize>(
    residual: Tensor<B, D>,
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    weight_offset: f32,
    eps: f64,
) -> Tensor<B, D> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if residual.dims() == x.dims() {
        let dims = x.dims();
        let rows = [dims[..D - 1].iter().product(), dims[D - 1]];
        let (residual_rows, x_rows) = (residual.clone().reshape(rows), x.clone().reshape(rows));
        if let Some(output) =
            super::cpu::try_add_rms_norm(&residual_rows, &x_rows, &weight, weight_offset, eps)
        {
            return output.reshape(dims);
        }
    }
    residual.add(rms_norm(x, weight, weight_offset, eps))
}

/// [`add_rms_norm`] through Burn tensor ops, on every backend.
pub fn generic_add_rms_norm<B: Backend, const D: usize>(
    residual: Tensor<B, D>,
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    weight_offset: f32,
    eps: f64,
) -> Tensor<B, D> {
    residual.add(generic_rms_norm(x, weight, weight_offset, eps))
}

/// `softmax(q·Kᵀ)·V` per head, every query seeing every key (no mask): `query [batch, seq, heads,
/// head_dim]` over `keys, values [batch, kv_heads, len, head_dim]`, query head `h` reading kv head
/// `h / (heads / kv_heads)` (grouped-query attention; scale `query` beforehand). Returns
/// `[batch, seq, heads · head_dim]`.
///
/// A decode step's one new position sees its whole cache (local layers keep only their window),
/// so it needs no mask; that case (`seq == 1`) is one host pass on the CPU backends, reading
/// the keys and values in place even as views into a larger cache buffer.
pub fn attend_unmasked<B: Backend>(
    query: Tensor<B, 4>,
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
) -> Tensor<B, 3> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(output) = super::cpu::try_attend_one_query(&query, &keys, &values) {
        return output;
    }
    generic_attend_unmasked(query, keys, values)
}

/// [`attend_unmasked`] through Burn tensor ops, on every backend.
pub fn generic_attend_unmasked<B: Backend>(
    query: Tensor<B, 4>,
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
) -> Tensor<B, 3> {
    let [batch, seq, heads, head_dim] = query.dims();
    let kv_heads = keys.dims()[1];
    let group = heads / kv_heads;
    // The query heads sharing a kv head become rows (position, head) of one matrix, so one
    // batched matmul serves each kv head (no repeated keys in memory).
    let query = query
        .reshape([batch, seq, kv_heads, group * head_dim])
        .swap_dims(1, 2)
        .reshape([batch, kv_heads, seq * group, head_dim]);
    let probabilities = burn::tensor::activation::softmax(query.matmul(keys.transpose()), 3);
    probabilities
        .matmul(values)
        .reshape([batch, kv_heads, seq, group * head_dim])
        .swap_dims(1, 2)
        .reshape([batch, seq, heads * head_dim])
}

/// `gelu_tanh(gate) · up`: the gate of a GeGLU feed-forward (Gemma's MLP), one pass on the CPU
/// backends instead of nine elementwise ops.
pub fn gelu_tanh_mul<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Tensor<B, D> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if gate.dims() == up.dims() {
        let dims = gate.dims();
        let rows = [dims[..D - 1].iter().product(), dims[D - 1]];
        if let Some(output) =
            super::cpu::try_gelu_tanh_mul(&gate.clone().reshape(rows), &up.clone().reshape(rows))
        {
            return output.reshape(dims);
        }
    }
    generic_gelu_tanh_mul(gate, up)
}

/// [`gelu_tanh_mul`] through Burn tensor ops, on every backend.
pub fn generic_gelu_tanh_mul<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Tensor<B, D> {
    gelu_tanh(gate).mul(up)
}

/// `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`, the "gelu_pytorch_tanh" of Gemma, through
/// Burn tensor ops.
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    // `x³` as `x·x·x`: what JAX's `x ** 3` (integer_pow) computes, and no `powf` per element.
    let cube = x.clone().mul(x.clone()).mul(x.clone());
    let inner = x
        .clone()
        .add(cube.mul_scalar(GELU_CUBE))
        .mul_scalar(SQRT_2_OVER_PI);
    // `0.5 (1 + tanh(u)) = sigmoid(2u)`: one `exp` per element instead of `tanh`'s `expm1`
    // and division (the same value to a few ulps; the Keras parity tests hold).
    x.mul(burn::tensor::activation::sigmoid(inner.mul_scalar(2.0)))
}

/// The cubic term's coefficient in [`gelu_tanh`].
pub(crate) const GELU_CUBE: f32 = 0.044715;
/// `sqrt(2 / π)` in f32, as Burn's scalar ops round it.
pub(crate) const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// Rotate-half RoPE on `x [batch, seq, heads, head_dim]`: `x·cos + [x₂, x₁]·signed_sin`, where
/// `x₁, x₂` are the two halves of each head and `signed_sin` carries rotate-half's minus sign
/// in its first half. `cos` and `signed_sin` have `x`'s shape, or batch 1 (shared by every row).
pub fn rope_rotate_half<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    signed_sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(output) = super::cpu::try_rope_rotate_half(&x, &cos, &signed_sin) {
        return output;
    }
    generic_rope_rotate_half(x, cos, signed_sin)
}

/// [`rope_rotate_half`] through Burn tensor ops, on every backend.
pub fn generic_rope_rotate_half<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    signed_sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [batch, seq, heads, head_dim] = x.dims();
    let half = head_dim / 2;
    let first = x.clone().slice([0..batch, 0..seq, 0..heads, 0..half]);
    let second = x
        .clone()
        .slice([0..batch, 0..seq, 0..heads, half..head_dim]);
    let swapped = Tensor::cat(vec![second, first], 3);
    x.mul(cos).add(swapped.mul(signed_sin))
}

/// `buffer.slice_assign(ranges, value)`, written in place where the backend allows: on flex, a
/// dense f32 buffer no other handle shares (a KV cache's buffer). burn-flex 0.21's own
/// `slice_assign` copies the whole destination first, which made a decode step copy every
/// layer's cache to append one position. Elsewhere, and for a shared buffer (whose other
/// handles keep their values), Burn's `slice_assign`.
pub fn slice_assign<B: Backend, const D: usize>(
    buffer: Tensor<B, D>,
    ranges: [Range<usize>; D],
    value: Tensor<B, D>,
) -> Tensor<B, D> {
    super::write_block(buffer, ranges, value)
}
