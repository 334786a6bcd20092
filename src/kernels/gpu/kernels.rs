//! The cubecl kernels: exact int8 products accumulated in i32. Launched by `launch.rs`.

use cubecl::prelude::*;

/// Byte `index` (0 = lowest) of a little-endian word, sign-extended.
#[cube]
fn byte(word: i32, #[comptime] index: u32) -> i32 {
    let shl = comptime!(24 - 8 * index) as i32;
    (word << shl) >> 24i32
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
