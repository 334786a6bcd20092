//! The generic path: every int8 operation through Burn tensor ops, exact on every backend, and
//! the oracle the direct kernels are tested against.
//!
//! Int8 values are widened to f32 and multiplied in chunks of K ≤ [`EXACT_F32_K_CHUNK`], where
//! every partial sum is an integer below 2^24 and therefore exact in f32 whatever the summation
//! order; chunks are summed in i32. Weights are widened one bounded tile at a time, so no full
//! f32 copy of a large weight is ever made. (`int_matmul` on I8 is not usable: ndarray wraps in
//! i8, flex panics.)

use burn::tensor::{FloatDType, Int, IntDType, Tensor, backend::Backend};

use super::ChannelRows;
use crate::quantizers::{Q8_0_BLOCK, abs_max_quantize_along, q8_0_quantize_activations};
use crate::rotation::block_size;

/// Largest K for which an f32 GEMM of int8 values is exact: 1024 · 127² < 2^24.
pub const EXACT_F32_K_CHUNK: usize = 1024;

/// Most weight elements widened to f32 at once (16 MiB): bounds the temporary per tile.
pub const WEIGHT_TILE_ELEMENTS: usize = 1 << 22;

/// `lhs [M, K] (I8) @ rhs [K, N] (I8)` accumulated exactly in i32 through f32 GEMMs of
/// K ≤ 1024. `rhs` may be any view (a transposed weight, for instance).
pub fn int8_matmul<B: Backend>(
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

/// Keras's quantized dense product through Burn tensor ops: `x [M, K]` quantized per row, the
/// int8 product with the weight's channel rows (through [`super::int8_product`], so the GPU
/// kernels serve it on wgpu and CUDA), `acc / (x_scale · weight_scale) + bias`.
pub(crate) fn quantized_matmul<B: Backend>(
    x: Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let (x_q, x_scale) = abs_max_quantize_along(x, 1);
    let acc = super::int8_product(x_q, &weight.values);
    rescale(acc, x_scale, weight, bias)
}

/// Keras's epilogue of a quantized product: `acc [M, N] / (x_scale [M, 1] · weight_scale) +
/// bias`. Also the GPU convolution's, whose int8 rows come from a kernel.
pub(crate) fn rescale<B: Backend>(
    acc: Tensor<B, 2, Int>,
    x_scale: Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    // The two scales are multiplied first and divided once, as Keras does: dividing twice
    // differs by up to 1.3e-5 relative.
    let scales = x_scale.mul(weight.scale.clone().unsqueeze_dim(0));
    let output = acc.cast(FloatDType::F32).div(scales);
    match bias {
        Some(bias) => output.add(bias.unsqueeze_dim(0)),
        None => output,
    }
}

/// Keras's quantized embedding lookup: `E_q[id] · (1 / scale[id])`, a reciprocal then a
/// multiplication, as Keras computes it. `values [vocab, d]` (I8), `ids [n]`, giving `[n, d]`.
pub(crate) fn embedding_lookup<B: Backend>(
    values: Tensor<B, 2, Int>,
    scale: Tensor<B, 1>,
    ids: Tensor<B, 1, Int>,
) -> Tensor<B, 2> {
    let rows = values.select(0, ids.clone()).cast(FloatDType::F32);
    let scale = scale.select(0, ids);
    let ones = Tensor::ones(scale.shape(), &scale.device());
    rows.mul(ones.div(scale).unsqueeze_dim(1))
}

/// Q8_0's product through Burn tensor ops (the oracle of the CPU kernel): `x [M, K]` quantized
/// per block of 32, then for each block `b` in order, `acc += isum_b · (dx_b · dw_b)` with
/// `isum_b` the exact i32 product of that block, and `acc + bias` at the end.
pub(crate) fn q8_0_matmul<B: Backend>(
    x: Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let [m, k] = x.dims();
    let [n, _] = weight.dims();
    let blocks = k / Q8_0_BLOCK;
    let (x_q, x_scale) = q8_0_quantize_activations(x);
    let w_scale = weight.scale.clone().reshape([n, blocks]);
    let mut acc = Tensor::<B, 2>::zeros([m, n], &w_scale.device());
    for b in 0..blocks {
        let columns = b * Q8_0_BLOCK..(b + 1) * Q8_0_BLOCK;
        let x_block = x_q.clone().slice([0..m, columns.clone()]);
        let w_block = weight.values.clone().slice([0..n, columns]);
        let isum = int8_matmul(x_block, w_block.transpose()).cast(FloatDType::F32);
        let scales = x_scale
            .clone()
            .slice([0..m, b..b + 1])
            .mul(w_scale.clone().slice([0..n, b..b + 1]).transpose());
        acc = acc.add(isum.mul(scales));
    }
    match bias {
        Some(bias) => acc.add(bias.unsqueeze_dim(0)),
        None => acc,
    }
}

/// Q8_0's dequantization of channel rows `values [n, k]` (I8) with their block scales
/// `scale [n · k / 32]`: `q · d` per block, giving `[n, k]`.
pub(crate) fn q8_0_dequantize<B: Backend>(
    values: Tensor<B, 2, Int>,
    scale: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let [n, k] = values.dims();
    let blocks = k / Q8_0_BLOCK;
    values
        .cast(FloatDType::F32)
        .reshape([n, blocks, Q8_0_BLOCK])
        .mul(scale.reshape([n, blocks, 1]))
        .reshape([n, k])
}

/// Q8_0's embedding lookup: the rows `ids [n]` of `values [vocab, d]` (I8) and their block
/// scales (`scale [vocab · d / 32]`), dequantized, giving `[n, d]`.
pub(crate) fn q8_0_embedding_lookup<B: Backend>(
    values: Tensor<B, 2, Int>,
    scale: Tensor<B, 1>,
    ids: Tensor<B, 1, Int>,
) -> Tensor<B, 2> {
    let [vocab, d] = values.dims();
    let blocks = d / Q8_0_BLOCK;
    let [n] = ids.dims();
    let rows = values.select(0, ids.clone());
    let scale = scale.reshape([vocab, blocks]).select(0, ids);
    q8_0_dequantize(rows, scale.reshape([n * blocks]))
}

/// Rotates each row of `x [M, K]` by the block-diagonal Walsh–Hadamard transform through Burn
/// tensor ops: the butterflies of [`crate::rotation::rotate_row`] in the same order, so the
/// same bits, one round of tensor ops per doubling of the stride.
pub(crate) fn rotate_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let [m, k] = x.dims();
    let Some(block) = block_size(k) else {
        return x;
    };
    let groups = m * k / block;
    let mut x = x.reshape([groups, block]);
    let mut half = 1;
    while half < block {
        let pairs = x.reshape([groups, block / (2 * half), 2, half]);
        let lo = pairs.clone().narrow(2, 0, 1);
        let hi = pairs.narrow(2, 1, 1);
        x = Tensor::cat(vec![lo.clone().add(hi.clone()), lo.sub(hi)], 2).reshape([groups, block]);
        half *= 2;
    }
    let norm = (block as f32).sqrt().recip();
    x.mul_scalar(norm).reshape([m, k])
}
