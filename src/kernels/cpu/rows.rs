//! Host-memory row kernels for `kernels/transformer.rs` on the CPU backends: one pass, one allocation.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rayon::prelude::*;

use super::{Host, host_f32, host_rows, host_vector};
use crate::kernels::transformer::{GELU_CUBE, SQRT_2_OVER_PI};

/// Rows at least this long (elements in all) are spread over threads.
const PARALLEL_ELEMENTS: usize = 64 * 1024;

/// [`crate::transformer_ops::rms_norm`] on `x [m, d]`; `None` off the CPU backends.
pub fn try_rms_norm<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 1>,
    weight_offset: f32,
    eps: f64,
) -> Option<Tensor<B, 2>> {
    let [m, d] = x.dims();
    if m == 0 || d == 0 || weight.dims() != [d] {
        return None;
    }
    let weight = host_vector(weight)?;
    let rows = host_rows(x)?;
    let (weight, xs, eps) = (weight.as_slice(), rows.as_slice(), eps as f32);
    let out = fill_rows(m, d, |r, out| {
        rms_norm_row(&xs[r * d..(r + 1) * d], weight, weight_offset, eps, out)
    });
    Some(Tensor::from_data(TensorData::new(out, [m, d]), &x.device()))
}

/// [`crate::transformer_ops::add_rms_norm`] on `residual, x [m, d]`; `None` off the CPU backends.
pub fn try_add_rms_norm<B: Backend>(
    residual: &Tensor<B, 2>,
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 1>,
    weight_offset: f32,
    eps: f64,
) -> Option<Tensor<B, 2>> {
    let [m, d] = x.dims();
    if m == 0 || d == 0 || weight.dims() != [d] || residual.dims() != [m, d] {
        return None;
    }
    let weight = host_vector(weight)?;
    let (rows, residual_rows) = (host_rows(x)?, host_rows(residual)?);
    let (weight, xs, residuals, eps) = (
        weight.as_slice(),
        rows.as_slice(),
        residual_rows.as_slice(),
        eps as f32,
    );
    let out = fill_rows(m, d, |r, out| {
        rms_norm_row(&xs[r * d..(r + 1) * d], weight, weight_offset, eps, out);
        for (y, &residual) in out.iter_mut().zip(&residuals[r * d..(r + 1) * d]) {
            *y += residual;
        }
    });
    Some(Tensor::from_data(TensorData::new(out, [m, d]), &x.device()))
}

/// [`crate::transformer_ops::gelu_tanh_mul`] on `gate, up [m, d]`; `None` off the CPU backends.
pub fn try_gelu_tanh_mul<B: Backend>(
    gate: &Tensor<B, 2>,
    up: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    let [m, d] = gate.dims();
    if m == 0 || d == 0 || up.dims() != [m, d] {
        return None;
    }
    let (gate_rows, up_rows) = (host_rows(gate)?, host_rows(up)?);
    let (gates, ups) = (gate_rows.as_slice(), up_rows.as_slice());
    let out = fill_rows(m, d, |r, out| {
        for ((y, &g), &u) in out
            .iter_mut()
            .zip(&gates[r * d..(r + 1) * d])
            .zip(&ups[r * d..(r + 1) * d])
        {
            *y = gelu_tanh(g) * u;
        }
    });
    Some(Tensor::from_data(
        TensorData::new(out, [m, d]),
        &gate.device(),
    ))
}

/// The generic path's operations, in its order: `x · sigmoid(2 · (x + c·x·x·x) · sqrt(2/π))`.
fn gelu_tanh(x: f32) -> f32 {
    let inner = (x + x * x * x * GELU_CUBE) * SQRT_2_OVER_PI;
    x * (1.0 / (1.0 + (-(inner * 2.0)).exp()))
}

/// [`crate::kernels::rotate_rows`] on `x [m, k]`: each row copied and rotated in place by
/// [`crate::rotation::rotate_row`]; `None` off the CPU backends.
pub(crate) fn try_rotate_rows<B: Backend>(x: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    let [m, k] = x.dims();
    if m == 0 || k == 0 {
        return None;
    }
    let rows = host_rows(x)?;
    let xs = rows.as_slice();
    let out = fill_rows(m, k, |r, out| {
        out.copy_from_slice(&xs[r * k..(r + 1) * k]);
        rotate_row(out);
    });
    Some(Tensor::from_data(TensorData::new(out, [m, k]), &x.device()))
}

/// [`crate::rotation::rotate_row`] compiled for the widest vectors this CPU has: additions,
/// subtractions and products are exactly rounded at every width, so the bits are the same.
fn rotate_row(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::Isa;
        #[target_feature(enable = "avx512f")]
        fn avx512(row: &mut [f32]) {
            crate::rotation::rotate_row(row)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(row: &mut [f32]) {
            crate::rotation::rotate_row(row)
        }
        match Isa::detect() {
            // SAFETY: `Isa::detect` reports AVX-512 VNNI only with AVX-512F, and the AVX2
            // levels only with AVX2.
            Isa::Avx512Vnni => return unsafe { avx512(row) },
            Isa::AvxVnni | Isa::Avx2 => return unsafe { avx2(row) },
            Isa::Portable => {}
        }
    }
    crate::rotation::rotate_row(row)
}

/// `m` rows of `d` outputs, row `r` written by `fill(r, row)`; spread over threads when big.
fn fill_rows(m: usize, d: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; m * d];
    if m * d >= PARALLEL_ELEMENTS {
        out.par_chunks_exact_mut(d)
            .enumerate()
            .for_each(|(r, row)| fill(r, row));
    } else {
        out.chunks_exact_mut(d)
            .enumerate()
            .for_each(|(r, row)| fill(r, row));
    }
    out
}

/// One row: eight partial sums of squares (vectorised), then the generic path's operations:
/// `x · (1 / sqrt(Σx²/d + eps)) · (weight + weight_offset)`.
fn rms_norm_row(row: &[f32], weight: &[f32], weight_offset: f32, eps: f32, out: &mut [f32]) {
    let mut lanes = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v * v;
        }
    }
    let sum_squares = lanes.iter().sum::<f32>() + tail;
    let inverse_rms = 1.0 / (sum_squares / row.len() as f32 + eps).sqrt();
    for ((y, &v), &w) in out.iter_mut().zip(row).zip(weight) {
        *y = v * inverse_rms * (w + weight_offset);
    }
}

/// [`crate::transformer_ops::rope_rotate_half`] on `x [batch, seq, heads, head_dim]` with tables of
/// the same shape or of batch 1; `None` off the CPU backends or for other shapes.
pub fn try_rope_rotate_half<B: Backend>(
    x: &Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    signed_sin: &Tensor<B, 4>,
) -> Option<Tensor<B, 4>> {
    let dims = x.dims();
    let [batch, seq, heads, head_dim] = dims;
    let table_dims = cos.dims();
    if head_dim % 2 != 0
        || signed_sin.dims() != table_dims
        || table_dims[1..] != dims[1..]
        || table_dims[0] != batch && table_dims[0] != 1
    {
        return None;
    }
    let row_len = seq * heads * head_dim;
    if row_len == 0 || batch == 0 {
        return None;
    }
    let dense = |host: Host<f32>| is_dense(&host.strides, &table_dims).then_some(host);
    let cos = dense(host_f32(cos)?)?;
    let sin = dense(host_f32(signed_sin)?)?;
    let x_rows = host_rows(&x.clone().reshape([batch, row_len]))?;
    let (x_values, cos, sin) = (x_rows.as_slice(), cos.as_slice(), sin.as_slice());
    let half = head_dim / 2;
    let mut out = vec![0f32; batch * row_len];
    for (b, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        let x_row = &x_values[b * row_len..(b + 1) * row_len];
        let table = if table_dims[0] == 1 { 0 } else { b * row_len };
        let (cos_row, sin_row) = (&cos[table..table + row_len], &sin[table..table + row_len]);
        for (((y, v), c), s) in out_row
            .chunks_exact_mut(head_dim)
            .zip(x_row.chunks_exact(head_dim))
            .zip(cos_row.chunks_exact(head_dim))
            .zip(sin_row.chunks_exact(head_dim))
        {
            // The generic path's `x·cos + swapped·sin`, where `swapped = [x₂, x₁]`.
            let (first, second) = v.split_at(half);
            for i in 0..half {
                y[i] = v[i] * c[i] + second[i] * s[i];
                y[half + i] = v[half + i] * c[half + i] + first[i] * s[half + i];
            }
        }
    }
    Some(Tensor::from_data(TensorData::new(out, dims), &x.device()))
}

/// Whether `strides` are the row-major strides of `dims` (size-1 axes may carry any stride).
pub(super) fn is_dense(strides: &[isize], dims: &[usize]) -> bool {
    let mut expected = 1isize;
    for (&stride, &dim) in strides.iter().zip(dims).rev() {
        if dim != 1 && stride != expected {
            return false;
        }
        expected *= dim as isize;
    }
    strides.len() == dims.len()
}
