//! Direct int8 kernels for the CPU backends (burn-flex and burn-ndarray).
//!
//! They read the I8 weight storage in place (no widened copy of the weight), quantize the
//! activation rows once per call, accumulate exactly in i32 with the widest SIMD the CPU has
//! (`gemm.rs`, `x86.rs`), and fuse Keras's rescale and the bias into the output pass.
//!
//! Dispatch is by type: when the backend is `Flex` or `NdArray`, its tensor primitives are
//! moved across unchanged (`same_type`). Other backends, autodiff wrappers, float types other
//! than f32, and weight layouts other than row-major `[K, N]` or its transpose return `None`,
//! and the generic path in `ops.rs` runs instead: never a different answer.

mod gemm;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::any::TypeId;
use std::mem::ManuallyDrop;

use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

pub use gemm::Isa;
use gemm::{Activations, WeightLayout, WeightView, gemm};

/// Moves `value` to type `T` when `A` and `T` are the same type.
fn same_type<A: 'static, T: 'static>(value: A) -> Result<T, A> {
    if TypeId::of::<A>() == TypeId::of::<T>() {
        let value = ManuallyDrop::new(value);
        // SAFETY: `A` and `T` are the same type (checked above), and the original is not dropped.
        Ok(unsafe { std::mem::transmute_copy::<A, T>(&value) })
    } else {
        Err(value)
    }
}

/// Whether `B` is a backend whose I8 storage these kernels can read.
fn has_direct_kernel<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    if TypeId::of::<B>() == TypeId::of::<burn_flex::Flex>() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    if TypeId::of::<B>() == TypeId::of::<burn_ndarray::NdArray>() {
        return true;
    }
    false
}

/// Calls `f` with the weight's I8 bytes, in place, when its layout is one the kernels know.
fn with_weight<B: Backend, R>(weight: &Tensor<B, 2, Int>, f: impl FnOnce(WeightView<'_>) -> R) -> Option<R> {
    let [k, n] = weight.dims();
    let primitive = weight.clone().into_primitive();
    #[cfg(feature = "flex")]
    let primitive = match same_type::<_, burn_flex::FlexTensor>(primitive) {
        Ok(tensor) => {
            if tensor.dtype() != DType::I8 {
                return None;
            }
            let layout = tensor.layout();
            let offset = layout.start_offset();
            let strides = layout.strides().to_vec();
            let bytes = tensor.bytes().get(offset..offset + k * n)?;
            return Some(f(WeightView { data: as_i8(bytes), k, n, layout: weight_layout(&strides, k, n)? }));
        }
        Err(primitive) => primitive,
    };
    #[cfg(feature = "ndarray")]
    if let Ok(burn_ndarray::NdArrayTensor::I8(storage)) = same_type::<_, burn_ndarray::NdArrayTensor>(primitive) {
        let view = storage.view();
        let layout = weight_layout(view.strides(), k, n)?;
        // SAFETY: both accepted layouts are dense with positive strides, so the view's k·n
        // elements are the k·n bytes from its first element on, alive while `storage` is.
        let data = unsafe { std::slice::from_raw_parts(view.as_ptr(), k * n) };
        return Some(f(WeightView { data, k, n, layout }));
    }
    #[cfg(not(feature = "ndarray"))]
    let _ = primitive;
    None
}

/// Which dense layout these strides describe, if any.
fn weight_layout(strides: &[isize], k: usize, n: usize) -> Option<WeightLayout> {
    match strides {
        [s0, 1] if *s0 == n as isize => Some(WeightLayout::KN),
        [1, s1] if *s1 == k as isize => Some(WeightLayout::NK),
        // A dimension of size 1 may carry any stride.
        [_, 1] if k == 1 => Some(WeightLayout::KN),
        [1, _] if n == 1 => Some(WeightLayout::NK),
        _ => None,
    }
}

#[cfg(feature = "flex")]
fn as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

/// Host copy of a small f32 tensor (activations, scales, bias), or `None` for other dtypes.
fn host_f32<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> Option<Vec<f32>> {
    tensor.clone().into_data().into_vec::<f32>().ok()
}

/// Keras's quantized dense product `quantize_rows(x) @ weight / (x_scale · weight_scale) + bias`
/// on a CPU backend; `None` where the generic path must run.
pub(crate) fn try_quantized_matmul<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 2, Int>,
    weight_scale: &Tensor<B, 1>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    if !has_direct_kernel::<B>() {
        return None;
    }
    let [m, k] = x.dims();
    let [k_weight, n] = weight.dims();
    if m == 0 || k == 0 || n == 0 || k != k_weight || weight_scale.dims() != [n] {
        return None;
    }
    let bias = match bias {
        Some(bias) if bias.dims() != [n] => return None,
        Some(bias) => Some(host_f32(bias)?),
        None => None,
    };
    let weight_scale = host_f32(weight_scale)?;
    let (rows, x_scale) = Activations::quantize(&host_f32(x)?, m, k);
    let out = with_weight(weight, |w| {
        gemm(Isa::detect(), &rows, w, |r, j, acc| {
            // As in the generic path: the two scales multiplied first, then one division.
            let y = acc as f32 / (x_scale[r] * weight_scale[j]);
            match &bias {
                Some(bias) => y + bias[j],
                None => y,
            }
        })
    })?;
    Some(Tensor::from_data(TensorData::new(out, [m, n]), &x.device()))
}

/// `lhs [M, K] @ rhs [K, N]` in i32 (dtype I32) when both are I8 on a CPU backend.
pub(crate) fn try_int8_matmul<B: Backend>(lhs: &Tensor<B, 2, Int>, rhs: &Tensor<B, 2, Int>) -> Option<Tensor<B, 2, Int>> {
    try_int8_matmul_with(Isa::detect(), lhs, rhs)
}

/// [`try_int8_matmul`] on a chosen instruction set (one the CPU has: see [`Isa::available`]).
pub fn try_int8_matmul_with<B: Backend>(isa: Isa, lhs: &Tensor<B, 2, Int>, rhs: &Tensor<B, 2, Int>) -> Option<Tensor<B, 2, Int>> {
    if !has_direct_kernel::<B>() || !Isa::available().contains(&isa) {
        return None;
    }
    let [m, k] = lhs.dims();
    let [k_rhs, n] = rhs.dims();
    if m == 0 || k == 0 || n == 0 || k != k_rhs {
        return None;
    }
    let data = lhs.clone().into_data();
    if data.dtype != DType::I8 {
        return None;
    }
    let rows = Activations::new(data.as_slice::<i8>().ok()?, m, k);
    let out = with_weight(rhs, |w| gemm(isa, &rows, w, |_, _, acc| acc))?;
    Some(Tensor::from_data(TensorData::new(out, [m, n]), (&lhs.device(), DType::I32)))
}
