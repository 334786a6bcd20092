//! Direct int8 kernels for burn-flex: read the I8 storage in place (no widened copy of the
//! weight), accumulate exactly in i32, multithreaded over output channels.
//!
//! Dispatch is by type: when the backend is `Flex` the tensor primitives *are* `FlexTensor`s,
//! so they are moved across unchanged. Layouts the kernels do not cover (strided views other
//! than row-major `[K, N]` or its transpose), and more than [`MAX_ROWS`] activation rows, return
//! `None`, and the generic path in `ops.rs` runs instead: never a different answer.

use std::any::TypeId;
use std::mem::ManuallyDrop;

use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

/// Above this many activation rows (prefill) the f32-GEMM generic path is used.
pub const MAX_ROWS: usize = 16;

/// Output channels per parallel task.
const CHANNELS_PER_TASK: usize = 256;

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

/// `lhs [M, K] @ rhs [K, N]` in i32 when both are I8 Flex tensors in a supported layout.
pub(crate) fn try_int8_matmul<B: Backend>(lhs: &Tensor<B, 2, Int>, rhs: &Tensor<B, 2, Int>) -> Option<Tensor<B, 2, Int>> {
    if TypeId::of::<B>() != TypeId::of::<Flex>() {
        return None;
    }
    let lhs: FlexTensor = same_type(lhs.clone().into_primitive()).ok()?;
    let rhs: FlexTensor = same_type(rhs.clone().into_primitive()).ok()?;
    if lhs.dtype() != DType::I8 || rhs.dtype() != DType::I8 {
        return None;
    }
    let (m, k) = (lhs.layout().shape()[0], lhs.layout().shape()[1]);
    let (k_rhs, n) = (rhs.layout().shape()[0], rhs.layout().shape()[1]);
    if m == 0 || m > MAX_ROWS || k != k_rhs || n == 0 || k == 0 {
        return None;
    }
    let lhs = lhs.to_contiguous();
    let x: &[i8] = bytemuck_i8(&lhs.bytes()[lhs.layout().start_offset()..][..m * k]);
    let layout = rhs.layout();
    let strides = layout.strides();
    let offset = layout.start_offset();
    let bytes = rhs.bytes();
    if bytes.len() < offset + k * n {
        return None;
    }
    let w = bytemuck_i8(&bytes[offset..offset + k * n]);
    let mut out = vec![0i32; m * n];
    if strides == [n as isize, 1] {
        rows_times_kn(x, w, m, k, n, &mut out);
    } else if strides == [1, k as isize] {
        rows_times_nk(x, w, m, k, n, &mut out);
    } else {
        return None;
    }
    let result = FlexTensor::from_data(TensorData::new(out, [m, n]));
    let primitive: B::IntTensorPrimitive = same_type(result).ok()?;
    Some(Tensor::from_primitive(primitive))
}

fn bytemuck_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

/// Weight rows are input channels (`w[k * n + j]`): each task owns a column range and
/// accumulates `x[r, k] * w[k, cols]` down the rows.
fn rows_times_kn(x: &[i8], w: &[i8], m: usize, k: usize, n: usize, out: &mut [i32]) {
    let tasks: Vec<Vec<i32>> = (0..n)
        .step_by(CHANNELS_PER_TASK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| {
            let end = (start + CHANNELS_PER_TASK).min(n);
            let mut acc = vec![0i32; m * (end - start)];
            for row in 0..m {
                let acc = &mut acc[row * (end - start)..(row + 1) * (end - start)];
                for (p, &xv) in x[row * k..(row + 1) * k].iter().enumerate() {
                    if xv != 0 {
                        axpy(acc, xv, &w[p * n + start..p * n + end]);
                    }
                }
            }
            acc
        })
        .collect();
    scatter_columns(tasks, m, n, out);
}

/// Weight rows are output channels (`w[j * k + p]`, a transposed view such as the tied
/// embedding): one dot product per output.
fn rows_times_nk(x: &[i8], w: &[i8], m: usize, k: usize, n: usize, out: &mut [i32]) {
    let columns: Vec<Vec<i32>> = (0..n)
        .step_by(CHANNELS_PER_TASK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| {
            let end = (start + CHANNELS_PER_TASK).min(n);
            let mut acc = Vec::with_capacity(m * (end - start));
            for row in 0..m {
                let xr = &x[row * k..(row + 1) * k];
                acc.extend((start..end).map(|j| dot(xr, &w[j * k..(j + 1) * k])));
            }
            acc
        })
        .collect();
    scatter_columns(columns, m, n, out);
}

/// Writes each task's `[m, width]` block (tasks in column order, [`CHANNELS_PER_TASK`] wide)
/// into its columns of `out [m, n]`.
fn scatter_columns(tasks: Vec<Vec<i32>>, m: usize, n: usize, out: &mut [i32]) {
    for (task, acc) in tasks.into_iter().enumerate() {
        let start = task * CHANNELS_PER_TASK;
        let width = acc.len() / m;
        for row in 0..m {
            out[row * n + start..row * n + start + width].copy_from_slice(&acc[row * width..(row + 1) * width]);
        }
    }
}

/// `acc += xv * w`, widened to i32; dispatched to the widest vector unit the CPU has.
fn axpy(acc: &mut [i32], xv: i8, w: &[i8]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has AVX-512BW (checked above).
            return unsafe { axpy_avx512(acc, xv, w) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { axpy_avx2(acc, xv, w) };
        }
    }
    axpy_portable(acc, xv, w)
}

/// `Σ x·w` in i32; dispatched like [`axpy`].
fn dot(x: &[i8], w: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has AVX-512BW (checked above).
            return unsafe { dot_avx512(x, w) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { dot_avx2(x, w) };
        }
    }
    dot_portable(x, w)
}

#[inline(always)]
fn axpy_portable(acc: &mut [i32], xv: i8, w: &[i8]) {
    let xv = xv as i16;
    for (a, &b) in acc.iter_mut().zip(w) {
        // |x·w| ≤ 127² fits i16; the sum goes to i32.
        *a += (xv * b as i16) as i32;
    }
}

#[inline(always)]
fn dot_portable(x: &[i8], w: &[i8]) -> i32 {
    x.iter().zip(w).map(|(&a, &b)| (a as i16 * b as i16) as i32).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn axpy_avx512(acc: &mut [i32], xv: i8, w: &[i8]) {
    axpy_portable(acc, xv, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn axpy_avx2(acc: &mut [i32], xv: i8, w: &[i8]) {
    axpy_portable(acc, xv, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn dot_avx512(x: &[i8], w: &[i8]) -> i32 {
    dot_portable(x, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2(x: &[i8], w: &[i8]) -> i32 {
    dot_portable(x, w)
}
