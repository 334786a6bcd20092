//! Host-memory row kernels for `row_ops.rs` on the CPU backends: one pass, one allocation.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::{Host, host_f32, host_rows, host_vector};

/// Rows at least this long (elements in all) are spread over threads.
const PARALLEL_ELEMENTS: usize = 64 * 1024;

/// [`crate::row_ops::rms_norm`] on `x [m, d]`; `None` off the CPU backends.
pub fn try_rms_norm<B: Backend>(x: &Tensor<B, 2>, weight: &Tensor<B, 1>, weight_offset: f32, eps: f64) -> Option<Tensor<B, 2>> {
    let [m, d] = x.dims();
    if m == 0 || d == 0 || weight.dims() != [d] {
        return None;
    }
    let weight = host_vector(weight)?;
    let rows = host_rows(x)?;
    let weight = weight.as_slice();
    let mut out = vec![0f32; m * d];
    let eps = eps as f32;
    let norm = |(row, out): (&[f32], &mut [f32])| rms_norm_row(row, weight, weight_offset, eps, out);
    if m * d >= PARALLEL_ELEMENTS {
        use rayon::prelude::*;
        rows.as_slice().par_chunks_exact(d).zip(out.par_chunks_exact_mut(d)).for_each(norm);
    } else {
        rows.as_slice().chunks_exact(d).zip(out.chunks_exact_mut(d)).for_each(norm);
    }
    Some(Tensor::from_data(TensorData::new(out, [m, d]), &x.device()))
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

/// [`crate::row_ops::rope_rotate_half`] on `x [batch, seq, heads, head_dim]` with tables of
/// the same shape or of batch 1; `None` off the CPU backends or for other shapes.
pub fn try_rope_rotate_half<B: Backend>(x: &Tensor<B, 4>, cos: &Tensor<B, 4>, signed_sin: &Tensor<B, 4>) -> Option<Tensor<B, 4>> {
    let dims = x.dims();
    let [batch, seq, heads, head_dim] = dims;
    let table_dims = cos.dims();
    if head_dim % 2 != 0 || signed_sin.dims() != table_dims || table_dims[1..] != dims[1..] || table_dims[0] != batch && table_dims[0] != 1 {
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
        for (((y, v), c), s) in out_row.chunks_exact_mut(head_dim).zip(x_row.chunks_exact(head_dim)).zip(cos_row.chunks_exact(head_dim)).zip(sin_row.chunks_exact(head_dim)) {
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
fn is_dense(strides: &[isize], dims: &[usize]) -> bool {
    let mut expected = 1isize;
    for (&stride, &dim) in strides.iter().zip(dims).rev() {
        if dim != 1 && stride != expected {
            return false;
        }
        expected *= dim as isize;
    }
    strides.len() == dims.len()
}
