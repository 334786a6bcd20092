//! Grid sizes and launches of the kernels in `kernels.rs` on checked inputs.

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::ir::{ElemType, IntKind, StorageType, features::TypeUsage};
use cubecl::prelude::*;

use super::GpuKernel;
use super::kernels::{packed_nk_kernel, strided_kernel};

/// Invocations per cube along the output columns.
const CUBE_DIM_X: u32 = 64;

/// Largest cube count along one axis that every backend accepts.
const MAX_CUBE_COUNT: usize = 65_535;

/// Runs `kernel` on checked inputs (I8, `[M, K] @ [K, N]` with `rhs` the transpose of dense
/// channel rows, `lhs` contiguous, `kernel` from `kernel_for`). `None` when the device lacks what the kernel needs.
pub(super) fn launch<R: CubeRuntime>(
    lhs: CubeTensor<R>,
    rhs: CubeTensor<R>,
    kernel: GpuKernel,
) -> Option<CubeTensor<R>> {
    let (m, k, n) = (
        lhs.meta.shape()[0],
        lhs.meta.shape()[1],
        rhs.meta.shape()[1],
    );
    let rows = rows_per_invocation(m);
    let cols = NK_COLS_PER_INVOCATION;
    let cube_count = match kernel {
        GpuKernel::Packed => cube_count(n.div_ceil(cols), m.div_ceil(rows))?,
        GpuKernel::Strided if supports_i8_buffers(&lhs.client) => cube_count(n, m)?,
        GpuKernel::Strided => return None,
    };
    let cube_dim = CubeDim::new_2d(CUBE_DIM_X, 1);
    let client = lhs.client.clone();
    let output = empty_device_contiguous_dtype(
        client.clone(),
        lhs.device.clone(),
        Shape::new([m, n]),
        DType::I32,
    );
    // SAFETY (all three): array lengths are the buffers' own (in whole words for the packed
    // kernels), and every index the kernels form is below them: rows past `m` and weight rows
    // past `n` are clamped to the last one, output columns are checked, and the packed layouts
    // have `K` (and `N` for row-major weights) a multiple of 4, so whole words never straddle
    // rows. The strided kernel indexes through the views' own shapes and strides.
    unsafe {
        let out = ArrayArg::from_raw_parts(output.handle.clone(), m * n);
        match kernel {
            GpuKernel::Packed => packed_nk_kernel::launch_unchecked::<R>(
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
            GpuKernel::Strided => strided_kernel::launch_unchecked::<R>(
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
///
/// # Safety
/// The kernel must only read words that lie inside the tensor.
unsafe fn word_array<R: CubeRuntime>(tensor: &CubeTensor<R>) -> ArrayArg<R> {
    let words = tensor.handle.size_in_used() as usize / 4;
    // SAFETY: `words` whole words lie inside the handle's used range.
    unsafe { ArrayArg::from_raw_parts(tensor.handle.clone(), words) }
}

/// Whether the device can hold i8 in storage buffers (for [`strided_kernel`]).
pub(super) fn supports_i8_buffers<R: CubeRuntime>(client: &ComputeClient<R>) -> bool {
    let i8_type = StorageType::Scalar(ElemType::Int(IntKind::I8));
    client
        .properties()
        .type_usage(i8_type)
        .contains(TypeUsage::Buffer)
}
