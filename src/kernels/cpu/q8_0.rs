//! Q8_0's product on the CPU backends (llama.cpp's `vec_dot_q8_0_q8_0`): activation rows
//! quantized per block of 32, each block's 32 int8 products summed exactly in i32, blocks
//! combined in f32 with both scales.
//!
//! Every level keeps the same eight f32 lanes (lane `j` holds the products of bytes `4j..4j+4`
//! of each block, the grouping of `vpdpbusd` and of `vpmaddubsw` + `vpmaddwd` on 256 bits),
//! accumulates them with one fused multiply-add per block, and sums the lanes in one fixed
//! tree: the portable, AVX2, AVX-VNNI and AVX-512 VNNI kernels give the same bits. The generic
//! path (Burn ops) sums the blocks in another order and agrees to f32 rounding.
//!
//! Work is tiled: [`TILE_ROWS`] activation rows by [`TILE_CHANNELS`] channels, so that each
//! block loaded serves several products (one row at decode).

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

/// Output channels per tile: each weight block loaded once serves [`TILE_ROWS`] rows.
const TILE_CHANNELS: usize = 4;
/// Activation rows per tile (one at decode): each activation block serves the tile's channels.
const TILE_ROWS: usize = 2;

/// `x @ wᵀ + bias` as a row-major `[m, n]` output, on instruction set `isa`.
pub(crate) fn q8_0_gemm(
    isa: Isa,
    x: &Q8Activations,
    w: Q8Weight<'_>,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    debug_assert_eq!(x.k, w.k);
    let (m, n) = (x.m, w.n);
    let mut out = vec![0f32; m * n];
    let out_ptr = OutPtr(out.as_mut_ptr());
    let width = if m < DECODE_ROWS { DECODE_PANEL } else { PANEL };
    let tasks = n.div_ceil(width);
    let run_task = |t: usize| {
        let panel = t * width..((t + 1) * width).min(n);
        for c0 in panel.clone().step_by(TILE_CHANNELS) {
            let channels: [usize; TILE_CHANNELS] =
                std::array::from_fn(|j| (c0 + j).min(panel.end - 1));
            let write = |rows: &[usize], lanes: &[[[f32; LANES]; TILE_CHANNELS]]| {
                for (&r, row_lanes) in rows.iter().zip(lanes) {
                    for (j, &c) in channels.iter().enumerate() {
                        // A tile past the panel's end repeats its last channel: written once.
                        if c != c0 + j {
                            continue;
                        }
                        let sum = sum_lanes(row_lanes[j]) + bias.map_or(0.0, |bias| bias[c]);
                        // SAFETY: `r < m`, `c < n`; each task owns its columns.
                        unsafe { out_ptr.row(r * n + c, 1)[0] = sum };
                    }
                }
            };
            if m == 1 {
                write(&[0], &tile::<1>(isa, x, w, [0], channels));
                continue;
            }
            for r0 in (0..m).step_by(TILE_ROWS) {
                let rows: [usize; TILE_ROWS] = std::array::from_fn(|i| (r0 + i).min(m - 1));
                let used = (m - r0).min(TILE_ROWS);
                write(
                    &rows[..used],
                    &tile::<TILE_ROWS>(isa, x, w, rows, channels)[..used],
                );
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

/// The accumulator lanes of rows `rows` by channels `channels`.
fn tile<const RM: usize>(
    isa: Isa,
    x: &Q8Activations,
    w: Q8Weight<'_>,
    rows: [usize; RM],
    channels: [usize; TILE_CHANNELS],
) -> [[[f32; LANES]; TILE_CHANNELS]; RM] {
    let (k, blocks) = (w.k, w.k / Q8_0_BLOCK);
    let operands = Operands {
        x: rows.map(|r| &x.values[r * k..(r + 1) * k]),
        xs: rows.map(|r| &x.scales[r * blocks..(r + 1) * blocks]),
        w: channels.map(|c| &w.values[c * k..(c + 1) * k]),
        ws: channels.map(|c| &w.scales[c * blocks..(c + 1) * blocks]),
    };
    #[cfg(target_arch = "x86_64")]
    if x86::has_extras(isa) {
        // SAFETY: `Isa::available` only lists levels whose features this CPU has, and
        // `has_extras` checked the FMA (and AVX-512 VL) these kernels also use.
        match isa {
            Isa::Avx512Vnni => return unsafe { x86::tile_avx512vnni(&operands) },
            Isa::AvxVnni => return unsafe { x86::tile_avxvnni(&operands) },
            Isa::Avx2 => return unsafe { x86::tile_avx2(&operands) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    tile_portable(&operands)
}

/// One tile's rows and channels: values and block scales.
struct Operands<'a, const RM: usize> {
    x: [&'a [i8]; RM],
    xs: [&'a [f32]; RM],
    w: [&'a [i8]; TILE_CHANNELS],
    ws: [&'a [f32]; TILE_CHANNELS],
}

/// The reference: plain loops over the same lanes, `acc = fma(f32(lane), dx · dw, acc)`.
fn tile_portable<const RM: usize>(
    operands: &Operands<'_, RM>,
) -> [[[f32; LANES]; TILE_CHANNELS]; RM] {
    let mut acc = [[[0f32; LANES]; TILE_CHANNELS]; RM];
    let blocks = operands.xs[0].len();
    for b in 0..blocks {
        let span = b * Q8_0_BLOCK..(b + 1) * Q8_0_BLOCK;
        for (i, row) in acc.iter_mut().enumerate() {
            let xb = &operands.x[i][span.clone()];
            for (j, lanes) in row.iter_mut().enumerate() {
                let wb = &operands.w[j][span.clone()];
                let scale = operands.xs[i][b] * operands.ws[j][b];
                for (l, lane) in lanes.iter_mut().enumerate() {
                    let group = 4 * l..4 * l + 4;
                    let isum: i32 = xb[group.clone()]
                        .iter()
                        .zip(&wb[group])
                        .map(|(&a, &b)| a as i32 * b as i32)
                        .sum();
                    *lane = (isum as f32).mul_add(scale, *lane);
                }
            }
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, Operands, TILE_CHANNELS};
    use crate::kernels::cpu::Isa;
    use crate::quantizers::Q8_0_BLOCK;

    /// Whether this CPU has the features these kernels add to `isa`'s: FMA, and AVX-512 VL for
    /// 256-bit VNNI (every CPU with those levels has them; checked rather than assumed).
    pub(super) fn has_extras(isa: Isa) -> bool {
        std::arch::is_x86_feature_detected!("fma")
            && (isa != Isa::Avx512Vnni || std::arch::is_x86_feature_detected!("avx512vl"))
    }

    /// One kernel per level: each pair's lane sums by `vpdpbusd` (VNNI, 256-bit) or by
    /// `vpmaddubsw` + `vpmaddwd` (AVX2), both on `|x|` and `w · sign(x)` (activations never
    /// hold -128), then `acc = fma(f32(lanes), dx · dw, acc)`.
    macro_rules! tile_256 {
        ($name:ident, $features:literal, |$u:ident, $s:ident| $dot:block) => {
            #[target_feature(enable = $features)]
            pub(super) fn $name<const RM: usize>(
                operands: &Operands<'_, RM>,
            ) -> [[[f32; LANES]; TILE_CHANNELS]; RM] {
                let mut acc = [[_mm256_setzero_ps(); TILE_CHANNELS]; RM];
                let blocks = operands.xs[0].len();
                for b in 0..blocks {
                    let at = b * Q8_0_BLOCK;
                    // SAFETY: every row and channel holds `blocks` whole blocks.
                    let load = |v: &[i8]| unsafe {
                        _mm256_loadu_si256(v.as_ptr().add(at).cast::<__m256i>())
                    };
                    let xv = operands.x.map(load);
                    let wv = operands.w.map(load);
                    // The channels four tiles ahead (and their scales), as the Keras kernel
                    // does: a hint, never a fault, so it may point past the weight.
                    for j in 0..TILE_CHANNELS {
                        let ahead = 4 * TILE_CHANNELS;
                        let w = operands.w[j]
                            .as_ptr()
                            .wrapping_add(ahead * blocks * Q8_0_BLOCK);
                        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(at));
                        if b % 16 == 0 {
                            let ws = operands.ws[j].as_ptr().wrapping_add(ahead * blocks + b);
                            _mm_prefetch::<_MM_HINT_T0>(ws.cast::<i8>());
                        }
                    }
                    // `dx · dw` as a vector product of two broadcasts: the scalar product's bits.
                    let xs = operands.xs.map(|xs| _mm256_set1_ps(xs[b]));
                    let ws = operands.ws.map(|ws| _mm256_set1_ps(ws[b]));
                    for i in 0..RM {
                        let $u = _mm256_sign_epi8(xv[i], xv[i]);
                        for j in 0..TILE_CHANNELS {
                            let $s = _mm256_sign_epi8(wv[j], xv[i]);
                            let lanes = _mm256_cvtepi32_ps($dot);
                            let scale = _mm256_mul_ps(xs[i], ws[j]);
                            acc[i][j] = _mm256_fmadd_ps(lanes, scale, acc[i][j]);
                        }
                    }
                }
                acc.map(|row| {
                    row.map(|lanes| {
                        let mut out = [0f32; LANES];
                        // SAFETY: `out` holds eight f32.
                        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), lanes) };
                        out
                    })
                })
            }
        };
    }

    tile_256!(tile_avx2, "avx2,fma", |u, s| {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    });
    tile_256!(tile_avxvnni, "avx2,fma,avxvnni", |u, s| {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
    });
    tile_256!(
        tile_avx512vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni",
        |u, s| { _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s) }
    );
}
