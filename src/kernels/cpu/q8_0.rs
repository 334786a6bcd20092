//! Q8_0's product on the CPU backends (llama.cpp's `vec_dot_q8_0_q8_0`): activation rows
//! quantized per block of 32, each block's 32 int8 products summed exactly in i32, blocks
//! combined in f32 with both scales.
//!
//! Every level keeps the same eight f32 lanes (lane `j` holds the products of bytes `4j..4j+4`
//! of each block, the grouping of `vpdpbusd` and of `vpmaddubsw` + `vpmaddwd` on 256 bits),
//! multiplies and adds without fusing, and sums the lanes in one fixed tree: the portable,
//! AVX2, AVX-VNNI and AVX-512 VNNI kernels give the same bits. The generic path (Burn ops) sums
//! the blocks in another order and agrees to f32 rounding.

use rayon::prelude::*;

use super::gemm::{DECODE_PANEL, DECODE_ROWS, Isa, OutPtr, PANEL};
use super::spin_pool::parallel_for;
use crate::quantizers::{Q8_0_BLOCK, q8_0_quantize_activation_row};

/// f32 lanes of the accumulator, and bytes per lane group.
const LANES: usize = 8;

/// Activation rows quantized per block: values `[m, k]` and scales `[m, k / 32]`.
pub(crate) struct Q8Activations {
    values: Vec<i8>,
    scales: Vec<f32>,
    m: usize,
    k: usize,
}

impl Q8Activations {
    pub(crate) fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        /// Below this many elements one thread is quicker than waking the others.
        const PARALLEL_ELEMENTS: usize = 32 * 1024;
        let blocks = k / Q8_0_BLOCK;
        let mut values = vec![0i8; m * k];
        let mut scales = vec![0f32; m * blocks];
        let quantize = |((row, values), scales): ((&[f32], &mut [i8]), &mut [f32])| {
            q8_0_quantize_activation_row(row, values, scales)
        };
        if m * k >= PARALLEL_ELEMENTS {
            x.par_chunks_exact(k)
                .zip(values.par_chunks_exact_mut(k))
                .zip(scales.par_chunks_exact_mut(blocks))
                .for_each(quantize);
        } else {
            x.chunks_exact(k)
                .zip(values.chunks_exact_mut(k))
                .zip(scales.chunks_exact_mut(blocks))
                .for_each(quantize);
        }
        Self {
            values,
            scales,
            m,
            k,
        }
    }
}

/// A Q8_0 weight's channel rows in host memory: values `[n, k]`, scales `[n, k / 32]`.
#[derive(Clone, Copy)]
pub(crate) struct Q8Weight<'a> {
    pub values: &'a [i8],
    pub scales: &'a [f32],
    pub n: usize,
    pub k: usize,
}

/// `x @ wᵀ + bias` as a row-major `[m, n]` output, on instruction set `isa`.
pub(crate) fn q8_0_gemm(
    isa: Isa,
    x: &Q8Activations,
    w: Q8Weight<'_>,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    debug_assert_eq!(x.k, w.k);
    let (m, n, k) = (x.m, w.n, w.k);
    let blocks = k / Q8_0_BLOCK;
    let mut out = vec![0f32; m * n];
    let out_ptr = OutPtr(out.as_mut_ptr());
    let width = if m < DECODE_ROWS { DECODE_PANEL } else { PANEL };
    let tasks = n.div_ceil(width);
    let run_task = |t: usize| {
        let columns = t * width..((t + 1) * width).min(n);
        for c in columns {
            let w_values = &w.values[c * k..(c + 1) * k];
            let w_scales = &w.scales[c * blocks..(c + 1) * blocks];
            for r in 0..m {
                let x_values = &x.values[r * k..(r + 1) * k];
                let x_scales = &x.scales[r * blocks..(r + 1) * blocks];
                let lanes = dot_lanes(isa, x_values, x_scales, w_values, w_scales);
                let sum = sum_lanes(lanes) + bias.map_or(0.0, |bias| bias[c]);
                // SAFETY: `r < m`, `c < n`; each task owns its columns.
                unsafe { out_ptr.row(r * n + c, 1)[0] = sum };
            }
        }
    };
    if m < DECODE_ROWS {
        parallel_for(tasks, &run_task);
    } else {
        (0..tasks).into_par_iter().for_each(run_task);
    }
    out
}

/// The lanes summed in one fixed tree, the same on every level.
fn sum_lanes(lanes: [f32; LANES]) -> f32 {
    let fours: [f32; 4] = std::array::from_fn(|j| lanes[j] + lanes[j + 4]);
    let twos = [fours[0] + fours[2], fours[1] + fours[3]];
    twos[0] + twos[1]
}

/// The eight accumulator lanes of one row's dot product with one channel.
fn dot_lanes(isa: Isa, x: &[i8], xs: &[f32], w: &[i8], ws: &[f32]) -> [f32; LANES] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `Isa::available` only lists levels whose features this CPU has.
        match isa {
            Isa::Avx512Vnni => return unsafe { x86::dot_lanes_avx512vnni(x, xs, w, ws) },
            Isa::AvxVnni => return unsafe { x86::dot_lanes_avxvnni(x, xs, w, ws) },
            Isa::Avx2 => return unsafe { x86::dot_lanes_avx2(x, xs, w, ws) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    dot_lanes_portable(x, xs, w, ws)
}

/// The reference: plain loops over the same lanes.
fn dot_lanes_portable(x: &[i8], xs: &[f32], w: &[i8], ws: &[f32]) -> [f32; LANES] {
    let mut acc = [0f32; LANES];
    for ((xb, wb), (&x_scale, &w_scale)) in x
        .chunks_exact(Q8_0_BLOCK)
        .zip(w.chunks_exact(Q8_0_BLOCK))
        .zip(xs.iter().zip(ws))
    {
        let scale = x_scale * w_scale;
        for (j, lane) in acc.iter_mut().enumerate() {
            let group = 4 * j..4 * j + 4;
            let isum: i32 = xb[group.clone()]
                .iter()
                .zip(&wb[group])
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
            *lane += isum as f32 * scale;
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::LANES;
    use crate::quantizers::Q8_0_BLOCK;

    /// One kernel per level: the block's lane sums by `vpdpbusd` (VNNI, 256-bit) or by
    /// `vpmaddubsw` + `vpmaddwd` (AVX2), both on `|x|` and `w · sign(x)` (activations never
    /// hold -128), then `acc + f32(lanes) · (dx · dw)` unfused.
    macro_rules! dot_lanes_256 {
        ($name:ident, $features:literal, |$u:ident, $s:ident| $dot:block) => {
            #[target_feature(enable = $features)]
            pub(super) fn $name(x: &[i8], xs: &[f32], w: &[i8], ws: &[f32]) -> [f32; LANES] {
                let mut acc = _mm256_setzero_ps();
                for ((xb, wb), (&x_scale, &w_scale)) in x
                    .chunks_exact(Q8_0_BLOCK)
                    .zip(w.chunks_exact(Q8_0_BLOCK))
                    .zip(xs.iter().zip(ws))
                {
                    // SAFETY: both blocks hold 32 bytes.
                    let (xv, wv) = unsafe {
                        (
                            _mm256_loadu_si256(xb.as_ptr().cast()),
                            _mm256_loadu_si256(wb.as_ptr().cast()),
                        )
                    };
                    let $u = _mm256_sign_epi8(xv, xv);
                    let $s = _mm256_sign_epi8(wv, xv);
                    let lanes = _mm256_cvtepi32_ps($dot);
                    let scale = _mm256_set1_ps(x_scale * w_scale);
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(lanes, scale));
                }
                let mut out = [0f32; LANES];
                // SAFETY: `out` holds eight f32.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc) };
                out
            }
        };
    }

    dot_lanes_256!(dot_lanes_avx2, "avx2", |u, s| {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    });
    dot_lanes_256!(dot_lanes_avxvnni, "avx2,avxvnni", |u, s| {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
    });
    dot_lanes_256!(
        dot_lanes_avx512vnni,
        "avx2,avx512f,avx512bw,avx512vl,avx512vnni",
        |u, s| { _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s) }
    );
}
