//! Attention of one new query position over a KV cache, in one host pass: what a decode step
//! does between its K/V projections and its output projection. The Burn-op path is about ten
//! ops (reshapes and a swap that copy, two batched matmuls, a five-op softmax), each a dispatch
//! and an allocation for a few thousand multiply-adds.
//!
//! The query heads sharing a kv head (grouped-query attention) are served together, so each
//! key and value row is read once per kv head rather than once per query head. The keys are
//! cut into fixed blocks spread over the decode pool (`spin_pool.rs`), whose helpers would
//! otherwise spin idle between the int8 products: each block keeps its own softmax maximum,
//! sum and weighted values, and the blocks are merged in order (as flash-decoding does). The
//! blocks do not depend on the thread count, so neither does the result.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::gemm::OutPtr;
use super::spin_pool::parallel_for;
use super::{host_f32, host_rows};

/// Keys per task.
const KEY_BLOCK: usize = 64;

/// [`crate::transformer_ops::attend_unmasked`] for one query position: `softmax(q·Kᵀ)·V` for
/// `q [batch, 1, heads, head_dim]` over `keys, values [batch, kv_heads, len, head_dim]` (views
/// into a larger cache buffer are read in place), query head `h` reading kv head
/// `h / (heads / kv_heads)`. `None` off the CPU backends or for other shapes.
pub fn try_attend_one_query<B: Backend>(
    query: &Tensor<B, 4>,
    keys: &Tensor<B, 4>,
    values: &Tensor<B, 4>,
) -> Option<Tensor<B, 3>> {
    let [batch, seq, heads, head_dim] = query.dims();
    let [key_batch, kv_heads, len, key_dim] = keys.dims();
    if seq != 1
        || batch == 0
        || head_dim == 0
        || len == 0
        || kv_heads == 0
        || key_batch != batch
        || key_dim != head_dim
    {
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
    let (queries, key_data, value_data) = (
        query_rows.as_slice(),
        key_view.as_slice(),
        value_view.as_slice(),
    );
    let group = heads / kv_heads;

    let mut out = vec![0f32; batch * heads * head_dim];
    let blocks = len.div_ceil(KEY_BLOCK);
    // Per key block and query head of the group: the block's score maximum, its sum of
    // `exp(score - maximum)`, and its values weighted by those exponentials.
    let mut maxima = vec![0f32; blocks * group];
    let mut sums = vec![0f32; blocks * group];
    let mut weighted = vec![0f32; blocks * group * head_dim];
    for b in 0..batch {
        for kv in 0..kv_heads {
            let row_at = |[sb, sh, st]: [usize; 3], t: usize| b * sb + kv * sh + t * st;
            let first_row = b * heads + kv * group;
            let group_queries = &queries[first_row * head_dim..(first_row + group) * head_dim];
            weighted.fill(0.0);
            let (maxima_ptr, sums_ptr, weighted_ptr) = (
                OutPtr(maxima.as_mut_ptr()),
                OutPtr(sums.as_mut_ptr()),
                OutPtr(weighted.as_mut_ptr()),
            );
            parallel_for(blocks, &|block| {
                let keys = block * KEY_BLOCK..((block + 1) * KEY_BLOCK).min(len);
                // SAFETY: task `block` alone writes block `block`'s entries.
                let (maxima, sums, weighted) = unsafe {
                    (
                        maxima_ptr.row(block * group, group),
                        sums_ptr.row(block * group, group),
                        weighted_ptr.row(block * group * head_dim, group * head_dim),
                    )
                };
                let mut exponentials = vec![0f32; group * keys.len()];
                for (g, query) in group_queries.chunks_exact(head_dim).enumerate() {
                    let row = &mut exponentials[g * keys.len()..(g + 1) * keys.len()];
                    for (score, t) in row.iter_mut().zip(keys.clone()) {
                        *score = dot(query, &key_data[row_at(key_strides, t)..][..head_dim]);
                    }
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for score in row.iter_mut() {
                        *score = (*score - max).exp();
                        sum += *score;
                    }
                    (maxima[g], sums[g]) = (max, sum);
                }
                // Each value row read once for the whole group.
                for (i, t) in keys.clone().enumerate() {
                    let value = &value_data[row_at(value_strides, t)..][..head_dim];
                    for (g, weighted) in weighted.chunks_exact_mut(head_dim).enumerate() {
                        let weight = exponentials[g * keys.len() + i];
                        for (y, &v) in weighted.iter_mut().zip(value) {
                            *y += weight * v;
                        }
                    }
                }
            });
            // Merge the blocks in order: rescale each to the overall maximum.
            for g in 0..group {
                let max = (0..blocks)
                    .map(|block| maxima[block * group + g])
                    .fold(f32::NEG_INFINITY, f32::max);
                let out = &mut out[(first_row + g) * head_dim..(first_row + g + 1) * head_dim];
                let mut total = 0.0;
                for block in 0..blocks {
                    let rescale = (maxima[block * group + g] - max).exp();
                    total += rescale * sums[block * group + g];
                    let block_weighted = &weighted[(block * group + g) * head_dim..][..head_dim];
                    for (y, &w) in out.iter_mut().zip(block_weighted) {
                        *y += rescale * w;
                    }
                }
                for y in out.iter_mut() {
                    *y /= total;
                }
            }
        }
    }
    Some(Tensor::from_data(
        TensorData::new(out, [batch, 1, heads * head_dim]),
        &query.device(),
    ))
}

/// `Σ a·b` in eight lanes (one vector register), then the lanes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}
