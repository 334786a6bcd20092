//! The cubecl kernels: exact int8 products accumulated in i32. Launched by `launch.rs`.

use cubecl::prelude::*;

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
pub(super) fn packed_kn_kernel(
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
pub(super) fn packed_nk_kernel(
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
pub(super) fn strided_kernel(
    lhs: &cubecl::prelude::Tensor<i8>,
    rhs: &cubecl::prelude::Tensor<i8>,
    out: &mut Array<i32>,
    n: usize,
) {
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
