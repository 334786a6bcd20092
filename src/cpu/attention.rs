//! Attention of one new query position over a KV cache, in one host pass: what a decode step
//! does between its K/V projections and its output projection. The Burn-op path is about ten
//! ops (reshapes and a swap that copy, two batched matmuls, a five-op softmax), each a dispatch
//! and an allocation for a few thousand multiply-adds.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rayon::prelude::*;

use super::{host_f32, host_rows};

/// Work (multiply-adds) above which the heads are spread over threads.
const PARALLEL_WORK: usize = 1 << 20;

/// [`crate::row_ops::attend_one_query`]: `softmax(q·Kᵀ)·V` for `q [batch, 1, heads, head_dim]`
/// over `keys, values [batch, kv_heads, len, head_dim]` (views into a larger cache buffer are
/// read in place), query head `h` reading kv head `h / (heads / kv_heads)`. `None` off the CPU
/// backends or for other shapes.
pub fn try_attend_one_query<B: Backend>(query: &Tensor<B, 4>, keys: &Tensor<B, 4>, values: &Tensor<B, 4>) -> Option<Tensor<B, 3>> {
    let [batch, seq, heads, head_dim] = query.dims();
    let [key_batch, kv_heads, len, key_dim] = keys.dims();
    if seq != 1 || batch == 0 || head_dim == 0 || len == 0 || kv_heads == 0 || key_batch != batch || key_dim != head_dim {
        return None;
    }
    if values.dims() != keys.dims() || heads % kv_heads != 0 {
        return None;
    }
    let query_rows = host_rows(&query.clone().reshape([batch, heads * head_dim]))?;
    let (key_view, value_view) = (host_f32(keys)?, host_f32(values)?);
    // Rows of a cache view are contiguous head vectors: `[.., .., position, i]` with unit stride in
    // `i`; batch, head and position strides are whatever the buffer has.
    let rows_of = |strides: &[isize]| match strides {
        [b, h, t, 1] => Some([*b as usize, *h as usize, *t as usize]),
        [b, h, t, _] if head_dim == 1 => Some([*b as usize, *h as usize, *t as usize]),
        _ => None,
    };
    let (key_strides, value_strides) = (rows_of(&key_view.strides)?, rows_of(&value_view.strides)?);
    let (queries, key_data, value_data) = (query_rows.as_slice(), key_view.as_slice(), value_view.as_slice());
    let group = heads / kv_heads;

    let mut out = vec![0f32; batch * heads * head_dim];
    let attend = |(row, out): (usize, &mut [f32])| {
        let (b, h) = (row / heads, row % heads);
        let kv = h / group;
        let query = &queries[row * head_dim..(row + 1) * head_dim];
        let row_at = |[sb, sh, st]: [usize; 3], t: usize| b * sb + kv * sh + t * st;
        let mut scores: Vec<f32> = (0..len)
            .map(|t| dot(query, &key_data[row_at(key_strides, t)..][..head_dim]))
            .collect();
        // Softmax as the generic path computes it: `exp(s - max) / Σ exp(s - max)`.
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for score in &mut scores {
            *score = (*score - max).exp();
            sum += *score;
        }
        for (t, &weight) in scores.iter().enumerate() {
            let probability = weight / sum;
            for (y, &v) in out.iter_mut().zip(&value_data[row_at(value_strides, t)..][..head_dim]) {
                *y += probability * v;
            }
        }
    };
    if batch * heads * len * head_dim >= PARALLEL_WORK {
        out.par_chunks_exact_mut(head_dim).enumerate().for_each(attend);
    } else {
        out.chunks_exact_mut(head_dim).enumerate().for_each(attend);
    }
    Some(Tensor::from_data(TensorData::new(out, [batch, 1, heads * head_dim]), &query.device()))
}

/// `Σ a·b` in eight lanes (one vector register), then the lanes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}
