//! Direct int8 kernels for the cubecl backends (wgpu through Vulkan/SPIR-V, CUDA): read the I8
//! storage in place (no widened f32 copy of the weight), multiply and accumulate exactly in i32.
//!
//! Dispatch is by type, as for the CPU kernels (`cpu/`): a cubecl backend's int primitive *is* a
//! `CubeTensor<R>` (also under `Autodiff`, which does not track int tensors), so it is moved
//! across unchanged. Anything the kernels do not cover returns `None` and the generic path runs.
//!
//! Three kernels, all exact:
//! - [`packed_kn_kernel`]: the weight is row-major `[K, N]` (a `Linear` weight). Reads four int8
//!   at a time as one 32-bit word; an invocation owns 4 adjacent output columns of a tile of
//!   rows, and neighbouring invocations read neighbouring words (coalesced along N).
//! - [`packed_nk_kernel`]: the weight is the transpose of a row-major `[N, K]` (the tied
//!   embedding): each output column is a contiguous weight row, read one word at a time.
//! - [`strided_kernel`]: any other layout or alignment (odd K or N): one invocation per output,
//!   one i8 at a time, through the tensors' strides. Only for a few rows (decoding); beyond
//!   that the generic f32 GEMM path is faster.
//!
//! Why words rather than i8 loads: lavapipe (Mesa's CPU Vulkan) compiles every storage-buffer
//! load into a scalar loop over the SIMD lanes, so the cost is the number of loads, not bytes; a word carries four
//! weights per load where an f32 matmul reads one. Bytes are unpacked with shifts (arithmetic
//! right shifts sign-extend), which every backend has. The kernels only need i32 arithmetic;
//! the strided one also needs i8 storage buffers, which is checked.

use std::any::TypeId;

use burn::tensor::{DType, Int, Shape, Tensor, backend::Backend};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::ir::{ElemType, IntKind, StorageType, features::TypeUsage};
use cubecl::prelude::*;

use crate::primitive::same_type;

/// Invocations per cube along the output columns.
const CUBE_DIM_X: u32 = 64;

/// Largest cube count along one axis that every backend accepts.
const MAX_CUBE_COUNT: usize = 65_535;

/// Above this, `u32` indexing (the kernels' address type) could overflow: fall back.
const MAX_ELEMENTS: usize = i32::MAX as usize;

/// `lhs [M, K] @ rhs [K, N]` in i32 when both are I8 tensors of a cubecl backend.
pub(crate) fn try_int8_matmul<B: Backend>(lhs: &Tensor<B, 2, Int>, rhs: &Tensor<B, 2, Int>) -> Option<Tensor<B, 2, Int>> {
    #[cfg(feature = "wgpu")]
    if let Some(product) = try_on_runtime::<B, cubecl::wgpu::WgpuRuntime>(lhs, rhs) {
        return Some(product);
    }
    #[cfg(feature = "cuda")]
    if let Some(product) = try_on_runtime::<B, cubecl::cuda::CudaRuntime>(lhs, rhs) {
        return Some(product);
    }
    None
}

/// The dispatch for one runtime: `None` unless `B`'s int primitive is `CubeTensor<R>`.
fn try_on_runtime<B: Backend, R: CubeRuntime>(lhs: &Tensor<B, 2, Int>, rhs: &Tensor<B, 2, Int>) -> Option<Tensor<B, 2, Int>> {
    if TypeId::of::<B::IntTensorPrimitive>() != TypeId::of::<CubeTensor<R>>() {
        return None;
    }
    let lhs: CubeTensor<R> = same_type(lhs.clone().into_primitive()).ok()?;
    let rhs: CubeTensor<R> = same_type(rhs.clone().into_primitive()).ok()?;
    let product = int8_matmul_cube(lhs, rhs)?;
    let primitive: B::IntTensorPrimitive = same_type(product).ok()?;
    Some(Tensor::from_primitive(primitive))
}

/// How the weight is laid out, which picks the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightLayout {
    /// Row-major `[K, N]`, word-aligned: [`packed_kn_kernel`].
    PackedKn,
    /// Transpose of a row-major `[N, K]`, word-aligned: [`packed_nk_kernel`].
    PackedNk,
    /// Anything else: [`strided_kernel`].
    Strided,
}

/// The exact product on the tensors' device, or `None` when the inputs are not I8 2-D
/// matrices of matching inner size (or too large for 32-bit indexing).
pub(crate) fn int8_matmul_cube<R: CubeRuntime>(lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> Option<CubeTensor<R>> {
    if lhs.dtype != DType::I8 || rhs.dtype != DType::I8 || lhs.qparams.is_some() || rhs.qparams.is_some() {
        return None;
    }
    if lhs.meta.num_dims() != 2 || rhs.meta.num_dims() != 2 || lhs.device != rhs.device {
        return None;
    }
    let (m, k) = (lhs.meta.shape()[0], lhs.meta.shape()[1]);
    let (k_rhs, n) = (rhs.meta.shape()[0], rhs.meta.shape()[1]);
    if k != k_rhs || m == 0 || n == 0 || k == 0 {
        return None;
    }
    if [m.checked_mul(k)?, k.checked_mul(n)?, m.checked_mul(n)?].into_iter().any(|len| len > MAX_ELEMENTS) {
        return None;
    }

    // Activations are small: one contiguous copy at most, so rows are `K` bytes apart.
    let lhs = into_contiguous(lhs);
    let layout = weight_layout(&lhs, &rhs, k, n);
    if layout == WeightLayout::Strided && m > MAX_STRIDED_ROWS {
        return None;
    }
    launch(lhs, rhs, layout)
}

/// Runs `layout`'s kernel on checked inputs (I8, `[M, K] @ [K, N]`, `lhs` contiguous, `layout`
/// from [`weight_layout`]). `None` when the device lacks what the kernel needs.
fn launch<R: CubeRuntime>(lhs: CubeTensor<R>, rhs: CubeTensor<R>, layout: WeightLayout) -> Option<CubeTensor<R>> {
    let (m, k, n) = (lhs.meta.shape()[0], lhs.meta.shape()[1], rhs.meta.shape()[1]);
    let rows = rows_per_invocation(m);
    let cols = NK_COLS_PER_INVOCATION;
    let cube_count = match layout {
        WeightLayout::PackedKn => cube_count(n / 4, m.div_ceil(rows))?,
        WeightLayout::PackedNk => cube_count(n.div_ceil(cols), m.div_ceil(rows))?,
        WeightLayout::Strided if supports_i8_buffers(&lhs.client) => cube_count(n, m)?,
        WeightLayout::Strided => return None,
    };
    let cube_dim = CubeDim::new_2d(CUBE_DIM_X, 1);
    let client = lhs.client.clone();
    let output = empty_device_contiguous_dtype(client.clone(), lhs.device.clone(), Shape::new([m, n]), DType::I32);
    // SAFETY (all three): array lengths are the buffers' own (in whole words for the packed
    // kernels), and every index the kernels form is below them: rows past `m` and weight rows
    // past `n` are clamped to the last one, output columns are checked, and the packed layouts
    // have `K` (and `N` for row-major weights) a multiple of 4, so whole words never straddle
    // rows. The strided kernel indexes through the views' own shapes and strides.
    unsafe {
        let out = ArrayArg::from_raw_parts(output.handle.clone(), m * n);
        match layout {
            WeightLayout::PackedKn => packed_kn_kernel::launch_unchecked::<R>(
                &client,
                cube_count,
                cube_dim,
                word_array(&lhs),
                word_array(&rhs),
                out,
                m,
                k / 4,
                n / 4,
                rows,
            ),
            WeightLayout::PackedNk => packed_nk_kernel::launch_unchecked::<R>(
                &client,
                cube_count,
                cube_dim,
                word_array(&lhs),
                word_array(&rhs),
                out,
                m,
                k / 4,
                n,
                rows,
                cols,
            ),
            WeightLayout::Strided => strided_kernel::launch_unchecked::<R>(
                &client,
                cube_count,
                cube_dim,
                lhs.into_tensor_arg(),
                rhs.into_tensor_arg(),
                out,
                n,
            ),
        }
    }
    Some(output)
}

/// Most activation rows for [`strided_kernel`]: it loads two bytes per multiply-add, so past a
/// few rows the generic path's f32 GEMM is faster (on lavapipe, 128 rows: 143 ms against 40 ms).
const MAX_STRIDED_ROWS: usize = 4;

/// Output columns (weight rows) per invocation in [`packed_nk_kernel`]: each activation word is
/// loaded once for four weight words.
const NK_COLS_PER_INVOCATION: usize = 4;

/// Activation rows per invocation: every weight word loaded is used for this many rows. One
/// row for decoding (M = 1) keeps all invocations busy; prefill reuses each weight word 8 times.
fn rows_per_invocation(m: usize) -> usize {
    match m {
        1 => 1,
        2 => 2,
        3..=4 => 4,
        _ => 8,
    }
}

/// Cubes of [`CUBE_DIM_X`] invocations along `x` (output columns), one per row tile along `y`.
fn cube_count(x_units: usize, y_units: usize) -> Option<CubeCount> {
    let x = x_units.div_ceil(CUBE_DIM_X as usize);
    if x > MAX_CUBE_COUNT || y_units > MAX_CUBE_COUNT {
        return None;
    }
    Some(CubeCount::Static(x as u32, y_units as u32, 1))
}

/// Which kernel reads `rhs`: the packed ones need 4-byte-aligned rows of whole words, both in
/// the weight and in the (contiguous) activations.
fn weight_layout<R: CubeRuntime>(lhs: &CubeTensor<R>, rhs: &CubeTensor<R>, k: usize, n: usize) -> WeightLayout {
    let aligned = |t: &CubeTensor<R>, len: usize| {
        t.handle.offset_start.unwrap_or(0).is_multiple_of(4) && t.handle.size_in_used() >= len as u64
    };
    if !k.is_multiple_of(4) || !aligned(lhs, lhs.meta.num_elements()) || !aligned(rhs, k * n) {
        return WeightLayout::Strided;
    }
    let strides = rhs.meta.strides();
    // The stride of a dimension of size 1 is never used: any value matches.
    let stride_is = |dim: usize, size: usize, expected: usize| size == 1 || strides[dim] == expected;
    if n.is_multiple_of(4) && stride_is(0, k, n) && stride_is(1, n, 1) {
        WeightLayout::PackedKn
    } else if stride_is(0, k, 1) && stride_is(1, n, k) {
        WeightLayout::PackedNk
    } else {
        WeightLayout::Strided
    }
}

/// The tensor's bytes seen as 32-bit words (it is contiguous and 4-byte aligned).
///
/// # Safety
/// The kernel must only read words that lie inside the tensor.
unsafe fn word_array<R: CubeRuntime>(tensor: &CubeTensor<R>) -> ArrayArg<R> {
    let words = tensor.handle.size_in_used() as usize / 4;
    // SAFETY: `words` whole words lie inside the handle's used range.
    unsafe { ArrayArg::from_raw_parts(tensor.handle.clone(), words) }
}

/// Whether the device can hold i8 in storage buffers (for [`strided_kernel`]).
fn supports_i8_buffers<R: CubeRuntime>(client: &ComputeClient<R>) -> bool {
    let i8_type = StorageType::Scalar(ElemType::Int(IntKind::I8));
    client.properties().type_usage(i8_type).contains(TypeUsage::Buffer)
}

/// Byte `index` (0 = lowest) of a little-endian word, sign-extended.
#[cube]
fn byte(word: i32, #[comptime] index: u32) -> i32 {
    let shl = comptime!(24 - 8 * index) as i32;
    (word << shl) >> 24i32
}

/// Weight row-major `[K, N]`: invocation `x` owns output columns `4x..4x+4` (one weight word per
/// K row, neighbours on neighbouring words), cube `y` owns `rows` output rows. Per word of K:
/// `rows` activation loads and 4 weight loads feed `16 · rows` multiply-adds.
#[cube(launch_unchecked)]
fn packed_kn_kernel(
    lhs: &Array<i32>,
    rhs: &Array<i32>,
    out: &mut Array<i32>,
    m: usize,
    k_words: usize,
    n_words: usize,
    #[comptime] rows: usize,
) {
    let col_word = ABSOLUTE_POS_X as usize;
    if col_word >= n_words {
        terminate!();
    }
    let row0 = CUBE_POS_Y as usize * rows;

    let mut acc = Array::<i32>::new(comptime!(rows * 4));
    #[unroll]
    for i in 0..comptime!(rows * 4) {
        acc[i] = 0i32;
    }
    // Rows past `m` (the last tile) recompute row `m - 1` and are not written.
    let mut lhs_row = Array::<usize>::new(rows);
    #[unroll]
    for r in 0..rows {
        lhs_row[r] = min(row0 + r, m - 1) * k_words;
    }
    let mut x = Array::<i32>::new(rows);

    for kw in 0..k_words {
        #[unroll]
        for r in 0..rows {
            x[r] = lhs[lhs_row[r] + kw];
        }
        let base = kw * 4 * n_words + col_word;
        #[unroll]
        for q in 0..4u32 {
            let w = rhs[base + q as usize * n_words];
            let w0 = byte(w, 0u32);
            let w1 = byte(w, 1u32);
            let w2 = byte(w, 2u32);
            let w3 = byte(w, 3u32);
            #[unroll]
            for r in 0..rows {
                let xv = byte(x[r], q);
                acc[r * 4] += xv * w0;
                acc[r * 4 + 1] += xv * w1;
                acc[r * 4 + 2] += xv * w2;
                acc[r * 4 + 3] += xv * w3;
            }
        }
    }

    let n = n_words * 4;
    #[unroll]
    for r in 0..rows {
        let row = row0 + r;
        if row < m {
            let o = row * n + col_word * 4;
            out[o] = acc[r * 4];
            out[o + 1] = acc[r * 4 + 1];
            out[o + 2] = acc[r * 4 + 2];
            out[o + 3] = acc[r * 4 + 3];
        }
    }
}

/// Weight = transpose of a row-major `[N, K]`: output column `j` is the dot product of an
/// activation row with weight row `j`, both contiguous. Invocation `x` owns `cols` adjacent
/// columns, cube `y` owns `rows` rows; per word of K, `rows + cols` loads feed
/// `4 · rows · cols` multiply-adds.
#[cube(launch_unchecked)]
fn packed_nk_kernel(
    lhs: &Array<i32>,
    rhs: &Array<i32>,
    out: &mut Array<i32>,
    m: usize,
    k_words: usize,
    n: usize,
    #[comptime] rows: usize,
    #[comptime] cols: usize,
) {
    let col0 = ABSOLUTE_POS_X as usize * cols;
    if col0 >= n {
        terminate!();
    }
    let row0 = CUBE_POS_Y as usize * rows;

    let mut acc = Array::<i32>::new(comptime!(rows * cols));
    #[unroll]
    for i in 0..comptime!(rows * cols) {
        acc[i] = 0i32;
    }
    // Rows and columns past the edge recompute the last one and are not written.
    let mut lhs_row = Array::<usize>::new(rows);
    #[unroll]
    for r in 0..rows {
        lhs_row[r] = min(row0 + r, m - 1) * k_words;
    }
    let mut rhs_row = Array::<usize>::new(cols);
    #[unroll]
    for c in 0..cols {
        rhs_row[c] = min(col0 + c, n - 1) * k_words;
    }
    let mut x = Array::<i32>::new(comptime!(rows * 4));
    let mut w = Array::<i32>::new(comptime!(cols * 4));

    for kw in 0..k_words {
        #[unroll]
        for r in 0..rows {
            let word = lhs[lhs_row[r] + kw];
            x[r * 4] = byte(word, 0u32);
            x[r * 4 + 1] = byte(word, 1u32);
            x[r * 4 + 2] = byte(word, 2u32);
            x[r * 4 + 3] = byte(word, 3u32);
        }
        #[unroll]
        for c in 0..cols {
            let word = rhs[rhs_row[c] + kw];
            w[c * 4] = byte(word, 0u32);
            w[c * 4 + 1] = byte(word, 1u32);
            w[c * 4 + 2] = byte(word, 2u32);
            w[c * 4 + 3] = byte(word, 3u32);
        }
        #[unroll]
        for r in 0..rows {
            #[unroll]
            for c in 0..cols {
                acc[r * cols + c] += x[r * 4] * w[c * 4]
                    + x[r * 4 + 1] * w[c * 4 + 1]
                    + x[r * 4 + 2] * w[c * 4 + 2]
                    + x[r * 4 + 3] * w[c * 4 + 3];
            }
        }
    }

    #[unroll]
    for r in 0..rows {
        let row = row0 + r;
        if row < m {
            #[unroll]
            for c in 0..cols {
                let col = col0 + c;
                if col < n {
                    out[row * n + col] = acc[r * cols + c];
                }
            }
        }
    }
}

/// Any layout: invocation `x` is output column `x`, cube `y` is output row `y`; a plain loop
/// over K through the strides, one i8 at a time (neighbours read neighbouring columns).
#[cube(launch_unchecked)]
fn strided_kernel(lhs: &cubecl::prelude::Tensor<i8>, rhs: &cubecl::prelude::Tensor<i8>, out: &mut Array<i32>, n: usize) {
    let col = ABSOLUTE_POS_X as usize;
    if col >= n {
        terminate!();
    }
    let row = CUBE_POS_Y as usize;
    let k = lhs.shape(1);
    let (lhs_stride, rhs_stride) = (lhs.stride(1), rhs.stride(0));
    let mut lhs_at = row * lhs.stride(0);
    let mut rhs_at = col * rhs.stride(1);
    let mut acc = 0i32;
    for _ in 0..k {
        acc += i32::cast_from(lhs[lhs_at]) * i32::cast_from(rhs[rhs_at]);
        lhs_at += lhs_stride;
        rhs_at += rhs_stride;
    }
    out[row * n + col] = acc;
}

#[cfg(all(test, feature = "wgpu"))]
mod tests {
    use super::*;
    use crate::ops::generic_int8_matmul;
    use burn::backend::Vulkan;
    use burn::backend::wgpu::WgpuDevice;
    use burn::tensor::{FloatDType, IntDType, TensorData};

    type B = Vulkan;

    /// Deterministic int8 values covering the full range, extremes included.
    fn random_i8(len: usize, seed: u64) -> Vec<i8> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                match i % 17 {
                    0 => -128,
                    1 => 127,
                    _ => (state >> 56) as u8 as i8,
                }
            })
            .collect()
    }

    fn int8_tensor(values: Vec<i8>, shape: [usize; 2], device: &WgpuDevice) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(values, shape), (device, DType::I8))
    }

    fn operands(m: usize, k: usize, n: usize, transposed: bool, device: &WgpuDevice) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
        let seed = (m * 1_000_003 + k * 1009 + n) as u64;
        let lhs = int8_tensor(random_i8(m * k, seed), [m, k], device);
        let rhs = if transposed {
            int8_tensor(random_i8(n * k, seed + 1), [n, k], device).transpose()
        } else {
            int8_tensor(random_i8(k * n, seed + 1), [k, n], device)
        };
        (lhs, rhs)
    }

    fn assert_same(actual: Tensor<B, 2, Int>, expected: Tensor<B, 2, Int>, what: &str) {
        assert_eq!(actual.dtype(), DType::I32, "{what}");
        assert_eq!(actual.dims(), expected.dims(), "{what}");
        let (actual, expected) = (actual.into_data(), expected.into_data());
        assert_eq!(actual.as_slice::<i32>().unwrap(), expected.as_slice::<i32>().unwrap(), "{what}");
    }

    /// The kernel's product equals the generic path's, bit for bit; it declines only the
    /// strided layouts past [`MAX_STRIDED_ROWS`], whose kernel is then checked directly.
    fn check(m: usize, k: usize, n: usize, transposed: bool, device: &WgpuDevice) {
        let what = format!("{m}x{k} @ {k}x{n} (transposed: {transposed})");
        let (lhs, rhs) = operands(m, k, n, transposed, device);
        let expected = generic_int8_matmul(lhs.clone(), rhs.clone());
        let layout = weight_layout(&lhs.clone().into_primitive(), &rhs.clone().into_primitive(), k, n);
        match try_int8_matmul(&lhs, &rhs) {
            Some(actual) => assert_same(actual, expected, &what),
            None => {
                assert!(layout == WeightLayout::Strided && m > MAX_STRIDED_ROWS, "declined {what}");
                let actual = launch(lhs.into_primitive(), rhs.into_primitive(), layout).expect("strided kernel");
                assert_same(Tensor::from_primitive(actual), expected, &what);
            }
        }
    }

    #[test]
    fn matches_generic_on_odd_shapes() {
        let device = WgpuDevice::Cpu;
        for m in [1, 3, 17, 128] {
            for k in [1, 5, 640, 1031] {
                for n in [1, 7, 33, 2049] {
                    check(m, k, n, false, &device);
                    check(m, k, n, true, &device);
                }
            }
        }
    }

    /// Int tensors are not tracked by `Autodiff`: its int primitive is the inner backend's.
    #[test]
    fn works_under_autodiff() {
        type A = burn::backend::Autodiff<B>;
        let device = WgpuDevice::Cpu;
        let (lhs, rhs) = operands(3, 64, 40, false, &device);
        let expected = generic_int8_matmul(lhs.clone(), rhs.clone());
        let lhs = Tensor::<A, 2, Int>::from_primitive(lhs.into_primitive());
        let rhs = Tensor::<A, 2, Int>::from_primitive(rhs.into_primitive());
        let actual = try_int8_matmul(&lhs, &rhs).expect("kernel under autodiff");
        assert_same(Tensor::from_primitive(actual.into_primitive()), expected, "autodiff");
    }

    /// Shapes that take the packed kernels (K, and N for row-major weights, multiples of 4),
    /// with row and column tails.
    #[test]
    fn packed_kernels_match_generic() {
        let device = WgpuDevice::Cpu;
        for m in [1, 2, 3, 4, 5, 9, 17] {
            for (k, n) in [(4, 4), (8, 12), (640, 36), (644, 2052), (1032, 5)] {
                let lhs = int8_tensor(vec![0; m * k], [m, k], &device);
                let kn = int8_tensor(vec![0; k * n], [k, n], &device);
                let nk = int8_tensor(vec![0; n * k], [n, k], &device).transpose();
                let kn_layout = weight_layout(&lhs.into_primitive(), &kn.into_primitive(), k, n);
                let lhs = int8_tensor(vec![0; m * k], [m, k], &device);
                let nk_layout = weight_layout(&lhs.into_primitive(), &nk.into_primitive(), k, n);
                assert_eq!(nk_layout, WeightLayout::PackedNk, "{k}x{n}");
                assert_eq!(kn_layout == WeightLayout::PackedKn, n.is_multiple_of(4), "{k}x{n}");
                check(m, k, n, false, &device);
                check(m, k, n, true, &device);
            }
        }
    }

    /// All-extreme values: the largest magnitudes a row can sum to.
    #[test]
    fn extremes_are_exact() {
        let device = WgpuDevice::Cpu;
        // K = 1024 takes the packed kernels, K = 1023 the strided one.
        for (a, b, k) in [(-128i8, -128i8, 1024), (-128, 127, 1024), (127, 127, 1024), (-128, -128, 1023)] {
            let (m, n) = (2, 8);
            let lhs = int8_tensor(vec![a; m * k], [m, k], &device);
            for rhs in [
                int8_tensor(vec![b; k * n], [k, n], &device),
                int8_tensor(vec![b; n * k], [n, k], &device).transpose(),
            ] {
                let actual = try_int8_matmul(&lhs, &rhs).expect("kernel").into_data();
                let expected = vec![a as i32 * b as i32 * k as i32; m * n];
                assert_eq!(actual.as_slice::<i32>().unwrap(), expected.as_slice());
            }
        }
    }

    /// A weight view that is neither layout (the left columns of a wider matrix: rows `2N`
    /// apart) still gives the exact product, through the strided kernel.
    #[test]
    fn other_strided_views() {
        let device = WgpuDevice::Cpu;
        // N = 256 keeps the slice's end offset aligned, so Burn makes a view, not a copy.
        let (m, k, n) = (3, 40, 256);
        let lhs = int8_tensor(random_i8(m * k, 7), [m, k], &device);
        let full = int8_tensor(random_i8(k * 2 * n, 8), [k, 2 * n], &device);
        let rhs = full.slice([0..k, 0..n]);
        let layout = weight_layout(&lhs.clone().into_primitive(), &rhs.clone().into_primitive(), k, n);
        assert_eq!(layout, WeightLayout::Strided);
        let expected = generic_int8_matmul(lhs.clone(), rhs.clone());
        assert_same(try_int8_matmul(&lhs, &rhs).expect("kernel"), expected, "column slice");
    }

    #[test]
    fn declines_other_dtypes_and_backends() {
        let device = WgpuDevice::Cpu;
        let lhs = int8_tensor(random_i8(6, 1), [2, 3], &device);
        let rhs = int8_tensor(random_i8(12, 2), [3, 4], &device);
        assert!(try_int8_matmul(&lhs.clone().cast(IntDType::I32), &rhs).is_none());
        assert!(try_int8_matmul(&lhs, &rhs.clone().cast(IntDType::I32)).is_none());
        assert!(try_int8_matmul(&lhs, &rhs).is_some());

        type Cpu = burn::backend::NdArray;
        let cpu = Default::default();
        let lhs = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(vec![1i8; 6], [2, 3]), (&cpu, DType::I8));
        let rhs = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(vec![1i8; 12], [3, 4]), (&cpu, DType::I8));
        assert!(try_int8_matmul(&lhs, &rhs).is_none());
    }

    /// Milliseconds per call of `f`, the device synced by reading the result back.
    fn time_ms<K>(iters: usize, f: &mut dyn FnMut() -> Tensor<B, 2, K>) -> f64
    where
        K: burn::tensor::TensorKind<B> + burn::tensor::BasicOps<B>,
    {
        let start = std::time::Instant::now();
        for _ in 0..iters {
            let _ = f().into_data();
        }
        start.elapsed().as_secs_f64() * 1e3 / iters as f64
    }

    /// Timings on lavapipe: `cargo test --release -p burn-int8 --features wgpu
    /// gpu_kernels::tests::bench -- --ignored --nocapture`. The methods are interleaved over
    /// rounds and the best round is kept, so a busy machine skews them alike.
    #[test]
    #[ignore]
    fn bench() {
        let device = WgpuDevice::Cpu;
        let lhs = int8_tensor(vec![0; 4], [1, 4], &device);
        let client = &lhs.into_primitive().client;
        println!("largest buffer: {} MiB", client.properties().memory.max_page_size >> 20);
        // The [262144, 640] embedding (160 MiB of int8, 640 MiB as f32) is over lavapipe's
        // 128 MiB buffer limit: 49152 rows is the most whose f32 copy fits.
        let cases: [(&str, usize, usize, usize, bool); 7] = [
            ("[1x640]x[640x2048]", 1, 640, 2048, false),
            ("[1x2048]x[2048x640]", 1, 2048, 640, false),
            ("[1x640]x[640x49152]^T", 1, 640, 49_152, true),
            ("[128x640]x[640x2048]", 128, 640, 2048, false),
            ("[1x640]x[640x2049] (strided)", 1, 640, 2049, false),
            ("[1x642]x[642x2048] (strided)", 1, 642, 2048, false),
            ("[4x642]x[642x2048] (strided)", 4, 642, 2048, false),
        ];
        for (name, m, k, n, transposed) in cases {
            let lhs = int8_tensor(random_i8(m * k, 1), [m, k], &device);
            let rhs = if transposed {
                int8_tensor(random_i8(n * k, 2), [n, k], &device).transpose()
            } else {
                int8_tensor(random_i8(k * n, 2), [k, n], &device)
            };
            let rhs_f32 = rhs.clone().cast(FloatDType::F32);
            let mut kernel = || try_int8_matmul(&lhs, &rhs).expect("kernel");
            let mut f32_only = || lhs.clone().cast(FloatDType::F32).matmul(rhs_f32.clone());
            let mut f32_cast = || lhs.clone().cast(FloatDType::F32).matmul(rhs.clone().cast(FloatDType::F32));
            let mut generic = || generic_int8_matmul(lhs.clone(), rhs.clone());
            let mut best = [f64::INFINITY; 4];
            for round in 0..4 {
                let iters = if round == 0 { 1 } else { 5 }; // round 0 compiles and warms up
                let times = [
                    time_ms(iters, &mut kernel),
                    time_ms(iters, &mut f32_only),
                    time_ms(iters, &mut f32_cast),
                    time_ms(iters, &mut generic),
                ];
                if round > 0 {
                    for (b, t) in best.iter_mut().zip(times) {
                        *b = b.min(t);
                    }
                }
            }
            let [kernel, f32_only, f32_cast, generic] = best;
            println!(
                "{name:>32}: int8 kernel {kernel:7.2} ms | f32 matmul, f32 weights {f32_only:7.2} ms | \
                 cast both + f32 matmul {f32_cast:7.2} ms | generic int8 {generic:7.2} ms"
            );
        }

        // The full tied embedding, as 4 weight buffers of 65536 rows (40 MiB each).
        let lhs = int8_tensor(random_i8(640, 1), [1, 640], &device);
        let parts: Vec<_> =
            (0..4).map(|i| int8_tensor(random_i8(65_536 * 640, 3 + i), [65_536, 640], &device).transpose()).collect();
        let mut full = || {
            let outs: Vec<_> = parts.iter().map(|rhs| try_int8_matmul(&lhs, rhs).expect("kernel")).collect();
            Tensor::cat(outs, 1)
        };
        let _ = time_ms(1, &mut full);
        println!("{:>32}: int8 kernel {:7.2} ms", "[1x640]x[640x262144]^T (4 parts)", time_ms(5, &mut full));
    }
}
