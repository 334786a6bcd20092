//! The int8 product: the one place every quantized layer multiplies.
//!
//! [`int8_matmul`] is the kernel seam. Its generic implementation uses only Burn tensor ops and
//! is exact on every backend: int8 values are widened to f32 and multiplied in chunks of
//! K ≤ [`EXACT_F32_K_CHUNK`], where every partial sum is an integer below 2^24 and therefore
//! exact in f32 whatever the summation order; chunks are summed in i32. Weights are widened one
//! bounded tile at a time, so no full f32 copy of a large weight is ever made. Fast per-backend
//! kernels (SIMD on CPU, cubecl on GPU) plug in here and must return the same i32 bits.

use burn::tensor::{FloatDType, Int, IntDType, Tensor, backend::Backend};

use crate::Int8Weight;
use crate::quantizers::abs_max_quantize_along;

/// Largest K for which an f32 GEMM of int8 values is exact: 1024 · 127² < 2^24.
pub const EXACT_F32_K_CHUNK: usize = 1024;

/// Most weight elements widened to f32 at once (16 MiB): bounds the temporary per tile.
pub const WEIGHT_TILE_ELEMENTS: usize = 1 << 22;

/// `lhs [M, K] (I8) @ rhs [K, N] (I8)` accumulated exactly in i32, returned as an I32 tensor.
///
/// `rhs` may be a strided view (a transposed embedding, for instance).
pub fn int8_matmul<B: Backend>(
    lhs: Tensor<B, 2, Int>,
    rhs: Tensor<B, 2, Int>,
) -> Tensor<B, 2, Int> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(product) = crate::cpu::try_int8_matmul(&lhs, &rhs) {
        return product;
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(product) = crate::gpu::try_int8_matmul(&lhs, &rhs) {
        return product;
    }
    generic_int8_matmul(lhs, rhs)
}

/// The portable path: exact on every backend, through f32 GEMMs of K ≤ 1024.
pub fn generic_int8_matmul<B: Backend>(
    lhs: Tensor<B, 2, Int>,
    rhs: Tensor<B, 2, Int>,
) -> Tensor<B, 2, Int> {
    let [m, k] = lhs.dims();
    let [k_rhs, n] = rhs.dims();
    debug_assert_eq!(k, k_rhs, "int8_matmul: inner dimensions differ");
    let k_chunk = k.clamp(1, EXACT_F32_K_CHUNK);
    let n_tile = (WEIGHT_TILE_ELEMENTS / k_chunk).clamp(1, n.max(1));
    // Activations are small (M × K); widen them once per call, not per tile.
    let lhs = lhs.cast(FloatDType::F32);

    let mut column_tiles = Vec::with_capacity(n.div_ceil(n_tile));
    for n_start in (0..n).step_by(n_tile) {
        let n_end = (n_start + n_tile).min(n);
        let mut acc: Option<Tensor<B, 2, Int>> = None;
        for k_start in (0..k).step_by(k_chunk) {
            let k_end = (k_start + k_chunk).min(k);
            let weight_tile = rhs
                .clone()
                .slice([k_start..k_end, n_start..n_end])
                .cast(FloatDType::F32);
            let partial = lhs
                .clone()
                .slice([0..m, k_start..k_end])
                .matmul(weight_tile)
                .cast(IntDType::I32);
            acc = Some(match acc {
                None => partial,
                Some(sum) => sum.add(partial),
            });
        }
        if let Some(tile) = acc {
            column_tiles.push(tile);
        }
    }
    if column_tiles.len() == 1 {
        column_tiles.pop().expect("one tile")
    } else {
        Tensor::cat(column_tiles, 1)
    }
}

/// Keras's quantized dense product: dynamic per-row AbsMax quantization of `x [M, K]`, the
/// int8 product with `weight` seen as `[K, N]` (channels last, [`Int8Weight::kn`]), then
/// `acc / (x_scale * weight_scale)`, plus `bias [N]`.
///
/// The two scales are multiplied first and divided once, as Keras does: dividing twice
/// differs by up to 1.3e-5 relative. The one dispatch for every int8 layer: under
/// `Autodiff<B>` a straight-through op around the inner backend's product; on a CPU backend
/// one fused kernel (`cpu/`); elsewhere the generic path, whose [`int8_matmul`] runs the GPU
/// kernels on wgpu and CUDA. Every route gives the same bits.
///
/// Under `Autodiff<B>` the gradient of `x` is Keras's straight-through `dy · dequant(W)ᵀ`; the
/// weight and its scale get none (they are frozen), the bias gets `Σ_rows dy`.
pub fn quantized_matmul<B: Backend>(
    x: Tensor<B, 2>,
    weight: &Int8Weight<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    quantized_matmul_kn(x, weight.kn(), weight.scale(), bias)
}

/// [`quantized_matmul`] on the weight's parts: I8 `weight [K, N]` and `weight_scale [N]`.
pub(crate) fn quantized_matmul_kn<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2, Int>,
    weight_scale: Tensor<B, 1>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    // Under `Autodiff<I>` this records a straight-through op and comes back here on `I`.
    if let Some(output) =
        crate::autodiff::try_quantized_matmul(&x, &weight, &weight_scale, bias.as_ref())
    {
        return output;
    }
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(output) =
        crate::cpu::try_quantized_matmul(&x, &weight, &weight_scale, bias.as_ref())
    {
        return output;
    }
    generic_quantized_matmul_kn(x, weight, weight_scale, bias)
}

/// [`quantized_matmul`] through Burn tensor ops and [`int8_matmul`], on every backend: the
/// oracle the fused kernels are tested against.
pub fn generic_quantized_matmul<B: Backend>(
    x: Tensor<B, 2>,
    weight: &Int8Weight<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    generic_quantized_matmul_kn(x, weight.kn(), weight.scale(), bias)
}

pub(crate) fn generic_quantized_matmul_kn<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2, Int>,
    weight_scale: Tensor<B, 1>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let (x_q, x_scale) = abs_max_quantize_along(x, 1);
    let acc = int8_matmul(x_q, weight);
    let scales = x_scale.mul(weight_scale.unsqueeze_dim(0));
    let output = acc.cast(FloatDType::F32).div(scales);
    match bias {
        Some(bias) => output.add(bias.unsqueeze_dim(0)),
        None => output,
    }
}

/// Applies `f` to `input [..., d]` seen as rows `[rows, d]`, and shapes its `[rows, d_out]`
/// result back to `[..., d_out]`: how every layer here accepts inputs of any rank.
pub(crate) fn map_rows<B: Backend, const D: usize>(
    input: Tensor<B, D>,
    d_out: usize,
    f: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<B, D> {
    let mut dims = input.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product();
    let output = f(input.reshape([rows, d_in]));
    dims[D - 1] = d_out;
    output.reshape(dims)
}
