//! Direct int8 kernels for the cubecl backends (wgpu through Vulkan/SPIR-V, CUDA): read the I8
//! storage in place (no widened f32 copy of the weight), multiply and accumulate exactly in i32.
//!
//! The seam's table (`kernels/backend.rs`) names the cubecl runtime; a cubecl backend's int
//! primitive *is* a `CubeTensor<R>` (also under `Autodiff`, which does not track int tensors),
//! so it is moved across unchanged (`launch.rs` picks grid sizes and launches, `kernels.rs`
//! holds the cubecl kernels). Anything the kernels do not cover returns `None` and the generic path runs.
//!
//! Two kernels, both exact, on the weight as channel rows (`[N, K]`, the one layout):
//! - `packed_nk_kernel`: each output column is a contiguous weight row, read one 32-bit word
//!   (four weights) at a time. Needs K a multiple of 4 and word-aligned buffers.
//! - `strided_kernel`: anything else (odd K, an unaligned slice): one invocation per output,
//!   one i8 at a time, through the tensors' strides. Only for a few rows (decoding); beyond
//!   that the generic f32 GEMM path is faster.
//!
//! Why words rather than i8 loads: lavapipe (Mesa's CPU Vulkan) compiles every storage-buffer
//! load into a scalar loop over the SIMD lanes, so the cost is the number of loads, not bytes; a word carries four
//! weights per load where an f32 matmul reads one. Bytes are unpacked with shifts (arithmetic
//! right shifts sign-extend), which every backend has. The kernels only need i32 arithmetic;
//! the strided one also needs i8 storage buffers, which is checked.

mod conv;
mod kernels;
mod launch;

use burn::tensor::{DType, Int, Tensor, backend::Backend};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use super::backend::{KernelBackend, same_type};
use super::{ChannelRows, ConvGeometry};

/// Above this, `u32` indexing (the kernels' address type) could overflow: fall back.
const MAX_ELEMENTS: usize = i32::MAX as usize;

/// Most activation rows for the strided kernel: it loads two bytes per multiply-add, so past a
/// few rows the generic path's f32 GEMM is faster (on lavapipe, 128 rows: 143 ms against 40 ms).
pub const MAX_STRIDED_ROWS: usize = 4;

/// `lhs [M, K] @ weightᵀ` in i32 for I8 `lhs` and I8 channel rows `weight [N, K]` of a cubecl
/// backend; `None` (the generic path runs) for anything the kernels do not cover.
pub fn try_int8_matmul<B: Backend>(
    lhs: &Tensor<B, 2, Int>,
    weight: &Tensor<B, 2, Int>,
) -> Option<Tensor<B, 2, Int>> {
    let m = lhs.dims()[0];
    run(lhs, weight, |kernel| {
        kernel == GpuKernel::Packed || m <= MAX_STRIDED_ROWS
    })
}

/// The kernel [`try_int8_matmul`] picks for these operands, or `None` when it would decline
/// them before choosing (not a cubecl backend, not I8 `[M, K]` against `[N, K]`). For tests.
pub fn kernel_for<B: Backend>(
    lhs: &Tensor<B, 2, Int>,
    weight: &Tensor<B, 2, Int>,
) -> Option<GpuKernel> {
    let mut chosen = None;
    run(lhs, weight, |kernel| {
        chosen = Some(kernel);
        false
    });
    chosen
}

/// Runs `kernel` whatever the row count ([`try_int8_matmul`] declines the strided one past
/// [`MAX_STRIDED_ROWS`] rows). `None` where [`kernel_for`] is, or when the operands cannot take
/// `kernel` (any operands can take [`GpuKernel::Strided`]). For tests.
pub fn int8_matmul_with_kernel<B: Backend>(
    lhs: &Tensor<B, 2, Int>,
    weight: &Tensor<B, 2, Int>,
    kernel: GpuKernel,
) -> Option<Tensor<B, 2, Int>> {
    match KernelBackend::of::<B>()? {
        #[cfg(feature = "wgpu")]
        KernelBackend::Vulkan => forced_on::<B, cubecl::wgpu::WgpuRuntime>(lhs, weight, kernel),
        #[cfg(feature = "cuda")]
        KernelBackend::Cuda => forced_on::<B, cubecl::cuda::CudaRuntime>(lhs, weight, kernel),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Which kernel reads the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuKernel {
    /// Whole 32-bit words: `packed_nk_kernel`.
    Packed,
    /// One byte at a time through strides: `strided_kernel`.
    Strided,
}

/// Picks the runtime from the seam's table, the kernel from the operands' alignment, and runs
/// it when `accept(kernel)`.
fn run<B: Backend>(
    lhs: &Tensor<B, 2, Int>,
    weight: &Tensor<B, 2, Int>,
    accept: impl FnMut(GpuKernel) -> bool,
) -> Option<Tensor<B, 2, Int>> {
    match KernelBackend::of::<B>()? {
        #[cfg(feature = "wgpu")]
        KernelBackend::Vulkan => run_on::<B, cubecl::wgpu::WgpuRuntime>(lhs, weight, accept),
        #[cfg(feature = "cuda")]
        KernelBackend::Cuda => run_on::<B, cubecl::cuda::CudaRuntime>(lhs, weight, accept),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn run_on<B: Backend, R: CubeRuntime>(
    lhs: &Tensor<B, 2, Int>,
    weight: &Tensor<B, 2, Int>,
    mut accept: impl FnMut(GpuKernel) -> bool,
) -> Option<Tensor<B, 2, Int>> {
    let (lhs, rhs) = cube_operands::<B, R>(lhs, &weight.clone().transpose())?;
    // Activations are small: one contiguous copy at most, so rows are `K` bytes apart.
    let lhs = into_contiguous(lhs);
    let kernel = kernel_of(&lhs, &rhs);
    if !accept(kernel) {
        return None;
    }
    from_cube::<B, R>(launch::launch(lhs, rhs, kernel)?)
}

fn forced_on<B: Backend, R: CubeRuntime>(
    lhs: &Tensor<B, 2, Int>,
    weight: &Tensor<B, 2, Int>,
    kernel: GpuKernel,
) -> Option<Tensor<B, 2, Int>> {
    let (lhs, rhs) = cube_operands::<B, R>(lhs, &weight.clone().transpose())?;
    let lhs = into_contiguous(lhs);
    if kernel != GpuKernel::Strided && kernel != kernel_of(&lhs, &rhs) {
        return None;
    }
    from_cube::<B, R>(launch::launch(lhs, rhs, kernel)?)
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

/// Which kernel reads `rhs` (the transpose of channel rows): the packed one needs whole
/// 4-byte words, K a multiple of 4 and word-aligned buffers, both in the weight and in the
/// (contiguous) activations; and dense channel rows, which a slice of columns is not.
fn kernel_of<R: CubeRuntime>(lhs: &CubeTensor<R>, rhs: &CubeTensor<R>) -> GpuKernel {
    let (k, n) = (rhs.meta.shape()[0], rhs.meta.shape()[1]);
    let aligned = |t: &CubeTensor<R>, len: usize| {
        t.handle.offset_start.unwrap_or(0).is_multiple_of(4)
            && t.handle.size_in_used() >= len as u64
    };
    let strides = rhs.meta.strides();
    // The stride of a dimension of size 1 is never used: any value matches.
    let dense = (k == 1 || strides[0] == 1) && (n == 1 || strides[1] == k);
    if k.is_multiple_of(4) && dense && aligned(lhs, lhs.meta.num_elements()) && aligned(rhs, k * n)
    {
        GpuKernel::Packed
    } else {
        GpuKernel::Strided
    }
}

/// Keras's int8 convolution of `input [batch, c_in, h, w]` with `weight [c_out, c_in / groups,
/// kh, kw]` by the direct cubecl kernels (`conv.rs`: no im2col tensor); `None` where the generic
/// path must run. Public for the kernel tests, which check it against the generic path.
pub fn try_quantized_conv2d<B: Backend>(
    input: &Tensor<B, 4>,
    weight: &crate::Int8Weight<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    geometry: ConvGeometry,
) -> Option<Tensor<B, 4>> {
    let [_, _, kh, kw] = weight.dims();
    try_conv2d(input, &weight.channel_rows(), [kh, kw], bias, geometry)
}

/// [`try_quantized_conv2d`] on channel rows `[c_out, c_in / groups · kh · kw]`.
pub(crate) fn try_conv2d<B: Backend>(
    input: &Tensor<B, 4>,
    weight: &ChannelRows<B>,
    kernel_size: [usize; 2],
    bias: Option<&Tensor<B, 1>>,
    geometry: ConvGeometry,
) -> Option<Tensor<B, 4>> {
    let out_size = geometry.direct_out_size(input, weight, kernel_size, bias)?;
    if B::ad_enabled(&input.device())
        || !matches!(
            weight.format.scheme,
            crate::Scheme::Keras | crate::Scheme::Sample
        )
    {
        return None;
    }
    let plan = conv::ConvPlan::new(
        input.dims(),
        weight.dims()[0],
        kernel_size,
        out_size,
        geometry,
    )?;
    match KernelBackend::of::<B>()? {
        #[cfg(feature = "wgpu")]
        KernelBackend::Vulkan => {
            conv_on::<B, cubecl::wgpu::WgpuRuntime>(input, weight, bias, &plan)
        }
        #[cfg(feature = "cuda")]
        KernelBackend::Cuda => conv_on::<B, cubecl::cuda::CudaRuntime>(input, weight, bias, &plan),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn conv_on<B: Backend, R: CubeRuntime>(
    input: &Tensor<B, 4>,
    weight: &ChannelRows<B>,
    bias: Option<&Tensor<B, 1>>,
    plan: &conv::ConvPlan,
) -> Option<Tensor<B, 4>> {
    fn float<B: Backend, R: CubeRuntime, const D: usize>(
        tensor: &Tensor<B, D>,
    ) -> Option<CubeTensor<R>> {
        same_type(tensor.clone().into_primitive().tensor()).ok()
    }
    let [batch, ..] = input.dims();
    // `Scheme::Sample`: each image's scale (the generic path's ops) for each of its windows,
    // computed once for whichever kernel takes the call.
    let sample_scales: Option<CubeTensor<R>> = match weight.format.scheme {
        crate::Scheme::Sample => {
            let windows = plan.windows_per_image();
            let scales = super::conv::sample_scales(input)
                .expand([batch, windows])
                .reshape([batch * windows, 1]);
            Some(float::<B, R, 2>(&scales)?)
        }
        _ => None,
    };

    // Int8 im2col rows onto the packed product, finished by the generic path's epilogue and
    // layout (the same Burn ops in the same order as the im2col path).
    if let Some((rows, x_scale)) =
        conv::quantized_rows(float::<B, R, 4>(input)?, plan, sample_scales.clone())
    {
        let rows = Tensor::<B, 2, Int>::from_primitive(same_type(rows).ok()?);
        if let Some(acc) = try_int8_matmul(&rows, &weight.values) {
            let x_scale = Tensor::<B, 2>::from_primitive(burn::tensor::TensorPrimitive::Float(
                same_type(x_scale).ok()?,
            ));
            let output = super::generic::rescale(acc, x_scale, weight, bias.cloned());
            return Some(super::conv::rows_to_nchw(output, batch, plan.out_size));
        }
    }

    let values: CubeTensor<R> = same_type(weight.values.clone().into_primitive()).ok()?;
    let bias = match bias {
        Some(bias) => Some(float::<B, R, 1>(bias)?),
        None => None,
    };
    let output = conv::direct(
        float::<B, R, 4>(input)?,
        values,
        float::<B, R, 1>(&weight.scale)?,
        bias,
        plan,
        sample_scales,
    )?;
    let primitive: B::FloatTensorPrimitive = same_type(output).ok()?;
    Some(Tensor::from_primitive(
        burn::tensor::TensorPrimitive::Float(primitive),
    ))
}
