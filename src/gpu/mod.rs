//! Direct int8 kernels for the cubecl backends (wgpu through Vulkan/SPIR-V, CUDA): read the I8
//! storage in place (no widened f32 copy of the weight), multiply and accumulate exactly in i32.
//!
//! Dispatch is by type, as for the CPU kernels (`cpu/`; this module is the dispatch, `launch.rs` picks grid sizes and
//! launches, `kernels.rs` holds the cubecl kernels): a cubecl backend's int primitive *is* a
//! `CubeTensor<R>` (also under `Autodiff`, which does not track int tensors), so it is moved
//! across unchanged. Anything the kernels do not cover returns `None` and the generic path runs.
//!
//! Three kernels, all exact:
//! - `packed_kn_kernel`: the weight is row-major `[K, N]` (a `Linear` weight). Reads four int8
//!   at a time as one 32-bit word; an invocation owns 4 adjacent output columns of a tile of
//!   rows, and neighbouring invocations read neighbouring words (coalesced along N).
//! - `packed_nk_kernel`: the weight is the transpose of a row-major `[N, K]` (the tied
//!   embedding): each output column is a contiguous weight row, read one word at a time.
//! - `strided_kernel`: any other layout or alignment (odd K or N): one invocation per output,
//!   one i8 at a time, through the tensors' strides. Only for a few rows (decoding); beyond
//!   that the generic f32 GEMM path is faster.
//!
//! Why words rather than i8 loads: lavapipe (Mesa's CPU Vulkan) compiles every storage-buffer
//! load into a scalar loop over the SIMD lanes, so the cost is the number of loads, not bytes; a word carries four
//! weights per load where an f32 matmul reads one. Bytes are unpacked with shifts (arithmetic
//! right shifts sign-extend), which every backend has. The kernels only need i32 arithmetic;
//! the strided one also needs i8 storage buffers, which is checked.

mod kernels;
mod launch;

use std::any::TypeId;

use burn::tensor::{DType, Int, Tensor, backend::Backend};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use crate::primitive::same_type;

/// Above this, `u32` indexing (the kernels' address type) could overflow: fall back.
const MAX_ELEMENTS: usize = i32::MAX as usize;

/// Most activation rows for the strided kernel: it loads two bytes per multiply-add, so past a
/// few rows the generic path's f32 GEMM is faster (on lavapipe, 128 rows: 143 ms against 40 ms).
pub const MAX_STRIDED_ROWS: usize = 4;

/// The runtimes compiled in, tried in turn: runs `$body` with `$R` the runtime whose
/// `CubeTensor<$R>` is `B`'s int primitive (also under `Autodiff`, which does not track int
/// tensors), and gives `None` when there is none.
macro_rules! on_cube_runtime {
    ($B:ident, |$R:ident| $body:expr) => {{
        #[cfg(feature = "wgpu")]
        {
            type $R = cubecl::wgpu::WgpuRuntime;
            if TypeId::of::<$B::IntTensorPrimitive>() == TypeId::of::<CubeTensor<$R>>() {
                return $body;
            }
        }
        #[cfg(feature = "cuda")]
        {
            type $R = cubecl::cuda::CudaRuntime;
            if TypeId::of::<$B::IntTensorPrimitive>() == TypeId::of::<CubeTensor<$R>>() {
                return $body;
            }
        }
        None
    }};
}

/// `lhs [M, K] @ rhs [K, N]` in i32 when both are I8 tensors of a cubecl backend; `None` (the
/// generic path runs) for anything the kernels do not cover.
pub fn try_int8_matmul<B: Backend>(
    lhs: &Tensor<B, 2, Int>,
    rhs: &Tensor<B, 2, Int>,
) -> Option<Tensor<B, 2, Int>> {
    on_cube_runtime!(B, |R| {
        let (lhs, rhs) = cube_operands::<B, R>(lhs, rhs)?;
        let m = lhs.meta.shape()[0];
        // Activations are small: one contiguous copy at most, so rows are `K` bytes apart.
        let lhs = into_contiguous(lhs);
        let layout = weight_layout(&lhs, &rhs);
        if layout == WeightLayout::Strided && m > MAX_STRIDED_ROWS {
            return None;
        }
        from_cube::<B, R>(launch::launch(lhs, rhs, layout)?)
    })
}

/// The layout [`try_int8_matmul`] picks for `rhs`, or `None` when it would decline the operands
/// before choosing (not a cubecl backend, not I8 `[M, K] @ [K, N]`). For tests and diagnostics.
pub fn weight_layout_of<B: Backend>(
    lhs: &Tensor<B, 2, Int>,
    rhs: &Tensor<B, 2, Int>,
) -> Option<WeightLayout> {
    on_cube_runtime!(B, |R| {
        let (lhs, rhs) = cube_operands::<B, R>(lhs, rhs)?;
        Some(weight_layout(&into_contiguous(lhs), &rhs))
    })
}

/// Runs `layout`'s kernel whatever the row count ([`try_int8_matmul`] declines the strided one
/// past [`MAX_STRIDED_ROWS`] rows). `None` where [`weight_layout_of`] is, or when `rhs` cannot
/// take `layout` (any operands can take [`WeightLayout::Strided`]). For tests.
pub fn int8_matmul_with_layout<B: Backend>(
    lhs: &Tensor<B, 2, Int>,
    rhs: &Tensor<B, 2, Int>,
    layout: WeightLayout,
) -> Option<Tensor<B, 2, Int>> {
    on_cube_runtime!(B, |R| {
        let (lhs, rhs) = cube_operands::<B, R>(lhs, rhs)?;
        let lhs = into_contiguous(lhs);
        if layout != WeightLayout::Strided && layout != weight_layout(&lhs, &rhs) {
            return None;
        }
        from_cube::<B, R>(launch::launch(lhs, rhs, layout)?)
    })
}

/// How the weight is laid out, which picks the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// Row-major `[K, N]`, word-aligned: `packed_kn_kernel`.
    PackedKn,
    /// Transpose of a row-major `[N, K]`, word-aligned: `packed_nk_kernel`.
    PackedNk,
    /// Anything else: `strided_kernel`.
    Strided,
}

/// The operands as `R`'s tensors when they are I8 2-D matrices of matching inner size on one
/// device, small enough for 32-bit indexing; else `None`.
fn cube_operands<B: Backend, R: CubeRuntime>(
    lhs: &Tensor<B, 2, Int>,
    rhs: &Tensor<B, 2, Int>,
) -> Option<(CubeTensor<R>, CubeTensor<R>)> {
    let lhs: CubeTensor<R> = same_type(lhs.clone().into_primitive()).ok()?;
    let rhs: CubeTensor<R> = same_type(rhs.clone().into_primitive()).ok()?;
    if lhs.dtype != DType::I8
        || rhs.dtype != DType::I8
        || lhs.qparams.is_some()
        || rhs.qparams.is_some()
    {
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
    if [m.checked_mul(k)?, k.checked_mul(n)?, m.checked_mul(n)?]
        .into_iter()
        .any(|len| len > MAX_ELEMENTS)
    {
        return None;
    }
    Some((lhs, rhs))
}

fn from_cube<B: Backend, R: CubeRuntime>(product: CubeTensor<R>) -> Option<Tensor<B, 2, Int>> {
    let primitive: B::IntTensorPrimitive = same_type(product).ok()?;
    Some(Tensor::from_primitive(primitive))
}

/// Which kernel reads `rhs`: the packed ones need 4-byte-aligned rows of whole words, both in
/// the weight and in the (contiguous) activations.
fn weight_layout<R: CubeRuntime>(lhs: &CubeTensor<R>, rhs: &CubeTensor<R>) -> WeightLayout {
    let (k, n) = (rhs.meta.shape()[0], rhs.meta.shape()[1]);
    let aligned = |t: &CubeTensor<R>, len: usize| {
        t.handle.offset_start.unwrap_or(0).is_multiple_of(4)
            && t.handle.size_in_used() >= len as u64
    };
    if !k.is_multiple_of(4) || !aligned(lhs, lhs.meta.num_elements()) || !aligned(rhs, k * n) {
        return WeightLayout::Strided;
    }
    let strides = rhs.meta.strides();
    // The stride of a dimension of size 1 is never used: any value matches.
    let stride_is =
        |dim: usize, size: usize, expected: usize| size == 1 || strides[dim] == expected;
    if n.is_multiple_of(4) && stride_is(0, k, n) && stride_is(1, n, 1) {
        WeightLayout::PackedKn
    } else if stride_is(0, k, 1) && stride_is(1, n, k) {
        WeightLayout::PackedNk
    } else {
        WeightLayout::Strided
    }
}
