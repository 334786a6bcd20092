//! The Walsh–Hadamard rotation used before quantizing (as QuaRot, and gemma.cpp for Gemma 3):
//! an orthogonal transform of a layer's input dimension that spreads outlier features over
//! many inputs, so one scale per row or block fits all of them better.
//!
//! `H` is Sylvester's Hadamard matrix scaled by `1/√n` (`H[i][j] = (-1)^popcount(i & j) / √n`):
//! symmetric and orthogonal, so `H·H = I` and `x·W = (x·H)·(H·W)`. A linear layer rotates its
//! weight's input axis once when it is quantized and each activation row at run time, and
//! computes the same product. Rotating costs O(n log n) per row with the fast transform below.
//!
//! Dimensions that are not a power of two (Gemma3 270M's 640 = 5 × 128) are rotated
//! block-diagonally: independent transforms over consecutive blocks of
//! [`block_size`] inputs, the largest power of two dividing the dimension (128 for 640, the
//! whole row for 2048). Every block is itself orthogonal, so the product is unchanged.

/// The rotation block for an input dimension: its largest power-of-two divisor. `None` for 0.
pub fn block_size(dim: usize) -> Option<usize> {
    (dim > 0).then(|| 1 << dim.trailing_zeros())
}

/// Rotates `row` in place: `row · H` over each block of [`block_size`]`(row.len())`
/// consecutive values (an empty row stays empty). Rotating twice gives the row back, to
/// rounding.
///
/// Inlined so that a caller compiled for wider vectors (the CPU kernels' per-ISA copies)
/// vectorises it; the operations, and so the bits, are the same at every width.
#[inline(always)]
pub fn rotate_row(row: &mut [f32]) {
    let Some(block) = block_size(row.len()) else {
        return;
    };
    let norm = (block as f32).sqrt().recip();
    for chunk in row.chunks_exact_mut(block) {
        walsh_hadamard(chunk, norm);
    }
}

/// The fast Walsh–Hadamard transform of a power-of-two slice, times `norm`: log2(n) rounds of
/// butterflies `(a, b) -> (a + b, a - b)` at strides 1, 2, 4, … (Sylvester's order), then each
/// value times `norm`. The first three rounds run on eight values at a time in registers and
/// the product by `norm` rides with the last round: the same operations on every value, in
/// the same order, as round after round over the slice (the tensor-op version's order).
#[inline(always)]
fn walsh_hadamard(x: &mut [f32], norm: f32) {
    let n = x.len();
    if n < 16 {
        let mut half = 1;
        while half < n {
            butterflies(x, half, 1.0);
            half *= 2;
        }
        x.iter_mut().for_each(|v| *v *= norm);
        return;
    }
    for c in x.chunks_exact_mut(8) {
        let a: [f32; 8] = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
        // Stride 1.
        let b = [
            a[0] + a[1],
            a[0] - a[1],
            a[2] + a[3],
            a[2] - a[3],
            a[4] + a[5],
            a[4] - a[5],
            a[6] + a[7],
            a[6] - a[7],
        ];
        // Stride 2.
        let d = [
            b[0] + b[2],
            b[1] + b[3],
            b[0] - b[2],
            b[1] - b[3],
            b[4] + b[6],
            b[5] + b[7],
            b[4] - b[6],
            b[5] - b[7],
        ];
        // Stride 4.
        for j in 0..4 {
            c[j] = d[j] + d[j + 4];
            c[j + 4] = d[j] - d[j + 4];
        }
    }
    let mut half = 8;
    while 2 * half < n {
        butterflies(x, half, 1.0);
        half *= 2;
    }
    butterflies(x, half, norm);
}

/// One round at stride `half`: `(a, b) -> ((a + b)·scale, (a - b)·scale)` for every pair, with
/// `scale` 1 (no product) except in the last round.
#[inline(always)]
fn butterflies(x: &mut [f32], half: usize, scale: f32) {
    for pair in x.chunks_exact_mut(2 * half) {
        let (lo, hi) = pair.split_at_mut(half);
        for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
            let (sum, diff) = (*a + *b, *a - *b);
            if scale == 1.0 {
                *a = sum;
                *b = diff;
            } else {
                *a = sum * scale;
                *b = diff * scale;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random row (no RNG dependency in a unit test).
    fn row(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 100.0 - 10.0
            })
            .collect()
    }

    /// The fast transform equals the product with the dense matrix built from its definition
    /// (`(-1)^popcount(i & j) / √n` per block), computed in f64.
    #[test]
    fn fast_transform_equals_the_dense_matrix() {
        for (dim, block) in [(8, 8), (640, 128), (256, 256), (96, 32)] {
            assert_eq!(block_size(dim), Some(block));
            let x = row(dim, dim as u32);
            let mut fast = x.clone();
            rotate_row(&mut fast);
            for (b, (xs, got)) in x.chunks(block).zip(fast.chunks(block)).enumerate() {
                for (j, &g) in got.iter().enumerate() {
                    let dense: f64 = xs
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            let sign = if (i & j).count_ones().is_multiple_of(2) {
                                1.0
                            } else {
                                -1.0
                            };
                            sign * v as f64
                        })
                        .sum::<f64>()
                        / (block as f64).sqrt();
                    assert!(
                        (g as f64 - dense).abs() <= 1e-4 * (1.0 + dense.abs()),
                        "dim {dim}, block {b}, output {j}: fast {g}, dense {dense}"
                    );
                }
            }
        }
    }

    /// Orthogonal and its own inverse: norms are kept and rotating twice gives the row back.
    #[test]
    fn rotation_is_orthogonal_and_an_involution() {
        for dim in [32, 640, 2048] {
            let x = row(dim, 7);
            let mut once = x.clone();
            rotate_row(&mut once);
            let norm = |v: &[f32]| v.iter().map(|&a| a as f64 * a as f64).sum::<f64>();
            assert!(
                (norm(&once) / norm(&x) - 1.0).abs() < 1e-5,
                "norm kept for {dim}"
            );
            let mut twice = once.clone();
            rotate_row(&mut twice);
            for (a, b) in twice.iter().zip(&x) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        assert_eq!(block_size(0), None);
        rotate_row(&mut []);
        assert_eq!(block_size(1152), Some(128));
    }

    /// What the rotation is for: one outlier feature no longer sets the whole row's scale.
    #[test]
    fn rotation_spreads_an_outlier() {
        let mut x = vec![0.01f32; 128];
        x[5] = 100.0;
        let amax_before = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        rotate_row(&mut x);
        let amax_after = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            amax_after < amax_before / 10.0,
            "{amax_before} -> {amax_after}"
        );
    }
}
