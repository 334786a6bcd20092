//! The depthwise kernel's path for MobileNet's stride-1 layers on wide maps: 3×3, stride 1, no
//! dilation, one output channel per input channel, at least [`MIN_WIDTH`] outputs a row, on
//! every level (AVX-512 intrinsics; plain Rust the compiler vectorises, compiled for AVX2 + FMA
//! and baseline). The general kernel (`depthwise.rs`) builds each tap of a block from masked loads
//! whose offsets and masks it reads from a plan; on a 112-wide map that bookkeeping, not the
//! arithmetic, was most of its time (0.91× Burn's float convolution at batch 8).
//!
//! Here each plane is first copied into a zero-padded buffer (the image at its padding offset,
//! zeros around it, rows a whole number of vectors wide plus a margin), so that every tap of
//! every block of 16 outputs is one whole load, and the last block of a row is the only one
//! whose store is masked. A window's AbsMax is the maximum over its three rows of each row's
//! maximum of three neighbours (`row_max`, computed once per padded row and shared by the three
//! output rows that read it): max is exact, so it is the im2col row's AbsMax bit for bit. The
//! rest is the same IEEE operations as the general kernel: the scale `127 / (amax + 1e-7)`,
//! each value rounded half to even with its window's scale, the products summed exactly in f32,
//! `acc / (scale · w_scale) + bias`. The same bits, then.
//!
//! Lanes past the end of a row compute on padding and are not stored; a NaN or an infinity in
//! a window gives a non-finite output as in the general kernel, and each block's outputs are
//! checked while they are in registers (no pass over the plane).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;

use super::depthwise::{Depthwise, PlaneParts};
use super::gemm::Isa;
use crate::quantizers::{ABS_MAX_EPSILON, INT8_MAX};

/// Outputs a row, at least, for this path: narrower maps fill a vector better with the general
/// kernel's blocks that span rows.
pub(super) const MIN_WIDTH: usize = 16;
const LANES: usize = 16;
const TAPS: usize = 9;

thread_local! {
    /// Each thread's padded plane and its per-row maxima, reused across planes and calls.
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Whether a call takes this path.
pub(super) fn applies(call: &Depthwise<'_>) -> bool {
    call.kernel == [3, 3]
        && call.stride == [1, 1]
        && call.dilation == [1, 1]
        && call.multiplier == 1
        && call.out_size[1] >= MIN_WIDTH
}

/// The padded buffer's sizes for a call: rows, blocks of 16 outputs a row, floats a row.
struct Layout {
    rows: usize,
    blocks: usize,
    pitch: usize,
}

impl Layout {
    fn new(call: &Depthwise<'_>) -> Layout {
        let [h_out, w_out] = call.out_size;
        let blocks = w_out.div_ceil(LANES);
        // A block's taps read 16 floats from its first column plus 0, 1 or 2.
        Layout {
            rows: h_out + 2,
            blocks,
            pitch: blocks * LANES + LANES,
        }
    }
}

/// One plane (`parts`, of a call that [`applies`]) into `out` on instruction set `isa`: writes
/// all its `h_out · w_out` values (through the pointer, so the memory may be uninitialized) and
/// returns whether they are all finite.
///
/// # Safety
/// `out` is valid for writes of `h_out · w_out` floats that no one else accesses.
pub(super) unsafe fn plane(
    isa: Isa,
    call: &Depthwise<'_>,
    parts: &PlaneParts<'_>,
    out: *mut f32,
) -> bool {
    debug_assert!(applies(call));
    let layout = Layout::new(call);
    // The buffers are taken out of the thread-local and put back, rather than used inside a
    // `with` closure, so that the levels' code below is compiled with their instruction sets.
    let (mut padded, mut row_max) = BUFFERS.with_borrow_mut(std::mem::take);
    padded.resize(layout.rows * layout.pitch, 0.0);
    row_max.resize(layout.rows * layout.blocks * LANES, 0.0);
    let buffers = Buffers {
        layout: &layout,
        padded: &mut padded,
        row_max: &mut row_max,
    };
    // SAFETY: `out` is the caller's contract.
    let finite = unsafe { plane_on(isa, call, parts, buffers, out) };
    BUFFERS.set((padded, row_max));
    finite
}

/// A plane's padded copy and its per-row maxima, with their sizes.
struct Buffers<'a> {
    layout: &'a Layout,
    padded: &'a mut [f32],
    row_max: &'a mut [f32],
}

/// [`plane`] on `isa`: the AVX-512 intrinsics, or the plain Rust compiled for AVX2 + FMA or
/// baseline.
///
/// # Safety
/// As [`plane`].
unsafe fn plane_on(
    isa: Isa,
    call: &Depthwise<'_>,
    parts: &PlaneParts<'_>,
    b: Buffers<'_>,
    out: *mut f32,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(
            call: &Depthwise<'_>,
            parts: &PlaneParts<'_>,
            b: Buffers<'_>,
            out: *mut f32,
        ) -> bool {
            fill_padded(call, b.layout, parts.input, b.padded, b.row_max);
            // SAFETY: AVX-512F (this function's); the buffers have `layout`'s sizes; `out` is
            // the caller's contract.
            unsafe { rows(call, b.layout, parts, b.padded, b.row_max, out) }
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(
            call: &Depthwise<'_>,
            parts: &PlaneParts<'_>,
            b: Buffers<'_>,
            out: *mut f32,
        ) -> bool {
            fill_padded_avx2(call, b.layout, parts.input, b.padded, b.row_max);
            // SAFETY: AVX2 and FMA (this function's); the buffers have `layout`'s sizes; `out`
            // is the caller's contract.
            unsafe { rows_avx2(call, b.layout, parts, b.padded, b.row_max, out) }
        }
        match isa {
            // SAFETY: `Isa::Avx512Vnni` is listed only where AVX-512F is, the AVX2 levels only
            // where AVX2 and FMA are (`Isa::available`); `out` is the caller's contract.
            Isa::Avx512Vnni => return unsafe { avx512(call, parts, b, out) },
            Isa::AvxVnni | Isa::Avx2 => return unsafe { avx2(call, parts, b, out) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    // SAFETY: the caller's contract.
    unsafe { plane_portable(call, parts, b, out) }
}

/// Padded row `r` of a plane: the image row it holds at its padding offset (clipped to the
/// row), zeros around it; all zeros above and below the image.
#[inline(always)]
fn pad_row(call: &Depthwise<'_>, input: &[f32], r: usize, row: &mut [f32]) {
    let (height, width) = (call.height, call.width);
    let [top, left] = call.padding;
    // Image columns `0..copied` land in padded columns `left..left + copied`.
    let left = left.min(row.len());
    let copied = width.min(row.len() - left);
    match r.checked_sub(top).filter(|&y| y < height) {
        Some(y) => {
            row[..left].fill(0.0);
            row[left..left + copied].copy_from_slice(&input[y * width..][..copied]);
            row[left + copied..].fill(0.0);
        }
        None => row.fill(0.0),
    }
}

/// Copies the image into `padded` at its padding offset, zeros around it, and each padded
/// row's maxima of three neighbouring absolute values into `row_max`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fill_padded(
    call: &Depthwise<'_>,
    layout: &Layout,
    input: &[f32],
    padded: &mut [f32],
    row_max: &mut [f32],
) {
    for (r, (row, maxima)) in padded
        .chunks_exact_mut(layout.pitch)
        .zip(row_max.chunks_exact_mut(layout.blocks * LANES))
        .enumerate()
    {
        pad_row(call, input, r, row);
        for (block, maxima) in maxima.chunks_exact_mut(LANES).enumerate() {
            // SAFETY: columns `16·block .. 16·block + 18` are inside the row (`Layout`).
            unsafe {
                let at = row.as_ptr().add(block * LANES);
                let max = _mm512_max_ps(
                    _mm512_max_ps(
                        _mm512_abs_ps(_mm512_loadu_ps(at)),
                        _mm512_abs_ps(_mm512_loadu_ps(at.add(1))),
                    ),
                    _mm512_abs_ps(_mm512_loadu_ps(at.add(2))),
                );
                _mm512_storeu_ps(maxima.as_mut_ptr(), max);
            }
        }
    }
}

/// Keras's rule on every block of every output row, from the padded plane; whether every
/// output is finite (checked in registers: no second pass over the outputs).
///
/// # Safety
/// AVX-512F; `out` as [`plane`]'s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows(
    call: &Depthwise<'_>,
    layout: &Layout,
    parts: &PlaneParts<'_>,
    padded: &[f32],
    row_max: &[f32],
    out: *mut f32,
) -> bool {
    let [h_out, w_out] = call.out_size;
    let (pitch, max_pitch) = (layout.pitch, layout.blocks * LANES);
    assert!(padded.len() >= layout.rows * pitch && row_max.len() >= layout.rows * max_pitch);
    assert!(parts.weights.len() == TAPS);
    // Lanes whose output is NaN or ±inf: `|y| ≤ f32::MAX` is false for exactly those.
    let largest = _mm512_set1_ps(f32::MAX);
    let mut non_finite: u16 = 0;
    let mut weights = [_mm512_setzero_ps(); TAPS];
    for (w, &value) in weights.iter_mut().zip(parts.weights) {
        *w = _mm512_set1_ps(value);
    }
    let w_scale = _mm512_set1_ps(parts.w_scales[0]);
    let bias = parts.bias.map(|bias| _mm512_set1_ps(bias[0]));
    let (int8_max, epsilon) = (_mm512_set1_ps(INT8_MAX), _mm512_set1_ps(ABS_MAX_EPSILON));
    let tail = w_out - (layout.blocks - 1) * LANES;
    let tail_mask = ((1u32 << tail) - 1) as u16;
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    for oy in 0..h_out {
        let top_row = padded[oy * pitch..].as_ptr();
        let maxima = row_max[oy * max_pitch..].as_ptr();
        let out_row = out.wrapping_add(oy * w_out);
        for block in 0..layout.blocks {
            let c = block * LANES;
            // SAFETY: rows `oy..oy + 3` of both buffers exist (`layout.rows = h_out + 2`);
            // columns `c .. c + 18` of a padded row and `c .. c + 16` of a maxima row are
            // inside them; the store covers outputs `c..` of row `oy` that exist (the mask
            // keeps the last block's to `w_out`).
            unsafe {
                let amax = _mm512_max_ps(
                    _mm512_max_ps(
                        _mm512_loadu_ps(maxima.add(c)),
                        _mm512_loadu_ps(maxima.add(max_pitch + c)),
                    ),
                    _mm512_loadu_ps(maxima.add(2 * max_pitch + c)),
                );
                let scale = _mm512_div_ps(int8_max, _mm512_add_ps(amax, epsilon));
                // Two chains of multiply-adds (the sums are exact in any order).
                let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                for (t, &w) in weights.iter().enumerate() {
                    let value = _mm512_loadu_ps(top_row.add((t / 3) * pitch + c + t % 3));
                    let q = _mm512_roundscale_ps::<NEAREST>(_mm512_mul_ps(value, scale));
                    if t % 2 == 0 {
                        even = _mm512_fmadd_ps(q, w, even);
                    } else {
                        odd = _mm512_fmadd_ps(q, w, odd);
                    }
                }
                let acc = _mm512_add_ps(even, odd);
                let mut y = _mm512_div_ps(acc, _mm512_mul_ps(scale, w_scale));
                if let Some(bias) = bias {
                    y = _mm512_add_ps(y, bias);
                }
                let mask = if block + 1 < layout.blocks {
                    u16::MAX
                } else {
                    tail_mask
                };
                non_finite |=
                    _mm512_mask_cmp_ps_mask::<_CMP_NLE_UQ>(mask, _mm512_abs_ps(y), largest);
                _mm512_mask_storeu_ps(out_row.add(c), mask, y);
            }
        }
    }
    non_finite == 0
}

/// [`fill_padded`] on AVX2, 8 lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fill_padded_avx2(
    call: &Depthwise<'_>,
    layout: &Layout,
    input: &[f32],
    padded: &mut [f32],
    row_max: &mut [f32],
) {
    // `|v|`: the sign bit cleared.
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
    for (r, (row, maxima)) in padded
        .chunks_exact_mut(layout.pitch)
        .zip(row_max.chunks_exact_mut(layout.blocks * LANES))
        .enumerate()
    {
        pad_row(call, input, r, row);
        for (eighth, maxima) in maxima.chunks_exact_mut(8).enumerate() {
            // SAFETY: columns `8·eighth .. 8·eighth + 10` are inside the row (`Layout`).
            unsafe {
                let at = row.as_ptr().add(eighth * 8);
                let abs = |v| _mm256_and_ps(magnitude, v);
                // `vmaxps a, b` is `a > b ? a : b`, the portable rule, in its order.
                let max = _mm256_max_ps(
                    _mm256_max_ps(abs(_mm256_loadu_ps(at)), abs(_mm256_loadu_ps(at.add(1)))),
                    abs(_mm256_loadu_ps(at.add(2))),
                );
                _mm256_storeu_ps(maxima.as_mut_ptr(), max);
            }
        }
    }
}

/// [`rows`] on AVX2 and FMA, each block of 16 outputs as two halves of 8.
///
/// # Safety
/// AVX2 and FMA; `out` as [`plane`]'s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(
    call: &Depthwise<'_>,
    layout: &Layout,
    parts: &PlaneParts<'_>,
    padded: &[f32],
    row_max: &[f32],
    out: *mut f32,
) -> bool {
    let [h_out, w_out] = call.out_size;
    let (pitch, max_pitch) = (layout.pitch, layout.blocks * LANES);
    assert!(padded.len() >= layout.rows * pitch && row_max.len() >= layout.rows * max_pitch);
    assert!(parts.weights.len() == TAPS);
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
    let largest = _mm256_set1_ps(f32::MAX);
    // Lanes whose output is NaN or ±inf: `|y| ≤ f32::MAX` is false for exactly those.
    let mut non_finite = _mm256_setzero_ps();
    let mut weights = [_mm256_setzero_ps(); TAPS];
    for (w, &value) in weights.iter_mut().zip(parts.weights) {
        *w = _mm256_set1_ps(value);
    }
    let w_scale = _mm256_set1_ps(parts.w_scales[0]);
    let bias = parts.bias.map(|bias| _mm256_set1_ps(bias[0]));
    let (int8_max, epsilon) = (_mm256_set1_ps(INT8_MAX), _mm256_set1_ps(ABS_MAX_EPSILON));
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    for oy in 0..h_out {
        let top_row = padded[oy * pitch..].as_ptr();
        let maxima = row_max[oy * max_pitch..].as_ptr();
        let out_row = out.wrapping_add(oy * w_out);
        for c in (0..w_out).step_by(8) {
            // SAFETY: rows `oy..oy + 3` of both buffers exist (`layout.rows = h_out + 2`);
            // columns `c .. c + 10` of a padded row and `c .. c + 8` of a maxima row are inside
            // them (`c < w_out ≤ 16 · blocks`); the store covers outputs `c..` of row `oy` that
            // exist (the mask keeps the last eight's to `w_out`).
            unsafe {
                let amax = _mm256_max_ps(
                    _mm256_max_ps(
                        _mm256_loadu_ps(maxima.add(c)),
                        _mm256_loadu_ps(maxima.add(max_pitch + c)),
                    ),
                    _mm256_loadu_ps(maxima.add(2 * max_pitch + c)),
                );
                let scale = _mm256_div_ps(int8_max, _mm256_add_ps(amax, epsilon));
                // Two chains of multiply-adds (the sums are exact in any order).
                let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                for (t, &w) in weights.iter().enumerate() {
                    let value = _mm256_loadu_ps(top_row.add((t / 3) * pitch + c + t % 3));
                    let q = _mm256_round_ps::<NEAREST>(_mm256_mul_ps(value, scale));
                    if t % 2 == 0 {
                        even = _mm256_fmadd_ps(q, w, even);
                    } else {
                        odd = _mm256_fmadd_ps(q, w, odd);
                    }
                }
                let acc = _mm256_add_ps(even, odd);
                let mut y = _mm256_div_ps(acc, _mm256_mul_ps(scale, w_scale));
                if let Some(bias) = bias {
                    y = _mm256_add_ps(y, bias);
                }
                let valid = _mm256_cmpgt_epi32(_mm256_set1_epi32((w_out - c) as i32), lane);
                let bad = _mm256_cmp_ps::<_CMP_NLE_UQ>(_mm256_and_ps(magnitude, y), largest);
                non_finite =
                    _mm256_or_ps(non_finite, _mm256_and_ps(bad, _mm256_castsi256_ps(valid)));
                if c + 8 <= w_out {
                    _mm256_storeu_ps(out_row.add(c), y);
                } else {
                    _mm256_maskstore_ps(out_row.add(c), valid, y);
                }
            }
        }
    }
    _mm256_movemask_ps(non_finite) == 0
}

/// The AVX-512 steps in plain Rust: the same IEEE operations on arrays of 16 lanes, which the
/// compiler vectorises for the level it is inlined into (no closures, which would be compiled
/// apart from it).
///
/// # Safety
/// As [`plane`].
#[inline(always)]
unsafe fn plane_portable(
    call: &Depthwise<'_>,
    parts: &PlaneParts<'_>,
    b: Buffers<'_>,
    out: *mut f32,
) -> bool {
    fill_padded_portable(call, b.layout, parts.input, b.padded, b.row_max);
    // SAFETY: the caller's contract.
    unsafe { rows_portable(call, b.layout, parts, b.padded, b.row_max, out) }
}

/// The larger of two values (exact; the kernels' `a > b` rule).
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// `fill_padded` in plain Rust.
#[inline(always)]
fn fill_padded_portable(
    call: &Depthwise<'_>,
    layout: &Layout,
    input: &[f32],
    padded: &mut [f32],
    row_max: &mut [f32],
) {
    for (r, (row, maxima)) in padded
        .chunks_exact_mut(layout.pitch)
        .zip(row_max.chunks_exact_mut(layout.blocks * LANES))
        .enumerate()
    {
        pad_row(call, input, r, row);
        for (c, maximum) in maxima.iter_mut().enumerate() {
            *maximum = max(max(row[c].abs(), row[c + 1].abs()), row[c + 2].abs());
        }
    }
}

/// `rows` in plain Rust.
///
/// # Safety
/// `out` as [`plane`]'s.
#[inline(always)]
unsafe fn rows_portable(
    call: &Depthwise<'_>,
    layout: &Layout,
    parts: &PlaneParts<'_>,
    padded: &[f32],
    row_max: &[f32],
    out: *mut f32,
) -> bool {
    let [h_out, w_out] = call.out_size;
    let (pitch, max_pitch) = (layout.pitch, layout.blocks * LANES);
    assert!(padded.len() >= layout.rows * pitch && row_max.len() >= layout.rows * max_pitch);
    let weights: &[f32; TAPS] = parts.weights.try_into().expect("3×3 weights");
    let (w_scale, bias) = (parts.w_scales[0], parts.bias.map(|bias| bias[0]));
    let mut finite = true;
    for oy in 0..h_out {
        for c in (0..w_out).step_by(LANES) {
            // Plain loops, no closures: those would be compiled apart from the caller's
            // instruction set.
            let first = oy * max_pitch + c;
            let m0 = &row_max[first..][..LANES];
            let m1 = &row_max[first + max_pitch..][..LANES];
            let m2 = &row_max[first + 2 * max_pitch..][..LANES];
            let mut scale = [0f32; LANES];
            for l in 0..LANES {
                scale[l] = INT8_MAX / (max(max(m0[l], m1[l]), m2[l]) + ABS_MAX_EPSILON);
            }
            let mut acc = [0f32; LANES];
            for (t, &w) in weights.iter().enumerate() {
                let values = &padded[(oy + t / 3) * pitch + c + t % 3..][..LANES];
                for ((acc, &v), &scale) in acc.iter_mut().zip(values).zip(&scale) {
                    *acc += (v * scale).round_ties_even() * w;
                }
            }
            let mut y = [0f32; LANES];
            for l in 0..LANES {
                y[l] = acc[l] / (scale[l] * w_scale);
            }
            if let Some(bias) = bias {
                for y in &mut y {
                    *y += bias;
                }
            }
            let len = LANES.min(w_out - c);
            for v in &y[..len] {
                finite &= v.abs() <= f32::MAX;
            }
            // SAFETY: outputs `c..c + len` of row `oy` are inside the plane's `h_out · w_out`
            // (the caller's contract); written through the pointer.
            unsafe { std::ptr::copy_nonoverlapping(y.as_ptr(), out.add(oy * w_out + c), len) };
        }
    }
    finite
}
