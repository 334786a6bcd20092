//! `Scheme::Sample` on the direct convolution (`conv.rs`): one activation scale per image, so
//! each input value is quantized once, not once per window that reads it (Keras's rule
//! quantizes a 3×3 convolution's input 9 times).
//!
//! 1. **Scales.** Each image's `127 / (amax + 1e-7)` over all its values (a NaN or an infinity
//!    declines to the generic path, whose scale would be NaN).
//! 2. **Input.** The values quantized with their image's scale into the layout `conv.rs`
//!    prepares its f32 copy in (`[batch, c_in, phases, hp, wq]`, padded, columns split by phase
//!    of the horizontal stride), one byte each: `q + 128` where the product takes unsigned
//!    bytes (VNNI), `q` elsewhere; padding holds the code of 0. The buffer is kept for the next
//!    call (a fresh one page-faults on every call: megabytes at batch 8).
//! 3. **Packing.** A lane group's quads `[k4 / 4][lane][4]` are copies of those bytes (no
//!    arithmetic); the tiles and the epilogue are `conv.rs`'s, the lanes' scales their images'.
//!
//! The same operations as the generic path (`kernels/conv.rs`), so the same bits.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use super::conv::{ConvShape, LANES, LaneGroup, quantize, scale_of};
use super::gemm::{Isa, OutPtr};
use super::spin_pool::parallel_for;

/// Bytes kept after the prepared layout: AVX2's packing loads 16 bytes from the first value of
/// each run of a lane group, which may be the layout's last.
pub(super) const LOAD_SLACK: usize = 16;

/// Inputs at least this many values are split over the threads.
const PARALLEL_VALUES: usize = 64 * 1024;

thread_local! {
    /// The calling thread's quantized input, kept across calls.
    static PREPARED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The calling thread's buffer for [`prepare`] (empty the first time).
pub(super) fn take_buffer() -> Vec<u8> {
    PREPARED.with_borrow_mut(std::mem::take)
}

/// Gives the buffer back for the next call.
pub(super) fn put_buffer(buffer: Vec<u8>) {
    PREPARED.with_borrow_mut(|kept| *kept = buffer);
}

/// Each image's scale, `[batch]`; `None` when an image holds a NaN or an infinity.
pub(super) fn sample_scales(isa: Isa, x: &[f32], batch: usize) -> Option<Vec<f32>> {
    let image = x.len() / batch;
    // Chunks of an image, their maxima merged afterwards (max is exact: any order).
    let chunk = PARALLEL_VALUES.min(image).max(1);
    let chunks = image.div_ceil(chunk);
    let mut maxima = vec![0f32; batch * chunks];
    let maxima_ptr = OutPtr(maxima.as_mut_ptr());
    let non_finite = AtomicBool::new(false);
    let task = |task: usize| {
        let (b, c) = (task / chunks, task % chunks);
        let values = &x[b * image + c * chunk..b * image + ((c + 1) * chunk).min(image)];
        let (amax, finite) = abs_max_finite(isa, values);
        if !finite {
            non_finite.store(true, Ordering::Relaxed);
        }
        // SAFETY: entry `task` is this task's alone, inside `maxima`.
        unsafe { maxima_ptr.row(task, 1)[0] = amax };
    };
    if x.len() < PARALLEL_VALUES {
        (0..batch * chunks).for_each(task);
    } else {
        parallel_for(batch * chunks, &task);
    }
    if non_finite.load(Ordering::Relaxed) {
        return None;
    }
    Some(
        maxima
            .chunks_exact(chunks)
            .map(|c| scale_of(max_of(c)))
            .collect(),
    )
}

fn max_of(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, &a| if a > m { a } else { m })
}

/// The AbsMax of `values`, and whether they are all finite.
fn abs_max_finite(isa: Isa, values: &[f32]) -> (f32, bool) {
    #[inline(always)]
    fn portable(values: &[f32]) -> (f32, bool) {
        let (mut amax, mut finite) = ([0f32; LANES], true);
        let mut blocks = values.chunks_exact(LANES);
        for block in &mut blocks {
            for (max, &v) in amax.iter_mut().zip(block) {
                let a = v.abs();
                finite &= a <= f32::MAX;
                *max = if a > *max { a } else { *max };
            }
        }
        for &v in blocks.remainder() {
            let a = v.abs();
            finite &= a <= f32::MAX;
            amax[0] = if a > amax[0] { a } else { amax[0] };
        }
        (max_of(&amax), finite)
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(values: &[f32]) -> (f32, bool) {
            portable(values)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(values: &[f32]) -> (f32, bool) {
            portable(values)
        }
        // SAFETY: `Isa::available` lists each level only where its instruction sets are.
        match isa {
            Isa::Avx512Vnni => return unsafe { avx512(values) },
            Isa::AvxVnni | Isa::Avx2 => return unsafe { avx2(values) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    portable(values)
}

/// Quantizes `x` (NCHW, `[height, width]` a plane) with each image's scale into `out`, laid out
/// as `shape` says (`[batch, c_in, phases, hp, wq]`, `padding = [top, left]`), `q + 128` when
/// `unsigned`; every byte of the layout is written (padding with the code of 0).
#[allow(clippy::too_many_arguments)]
pub(super) fn prepare(
    isa: Isa,
    x: &[f32],
    shape: &ConvShape,
    [height, width]: [usize; 2],
    [top, left]: [usize; 2],
    scales: &[f32],
    unsigned: bool,
    out: &mut Vec<u8>,
) {
    let (phases, hp, wq) = (shape.phases, shape.hp, shape.wq);
    let plane = phases * hp * wq;
    let planes = shape.batch * shape.c_in;
    if out.len() < planes * plane + LOAD_SLACK {
        out.resize(planes * plane + LOAD_SLACK, 0);
    }
    let zero = if unsigned { 0x80u8 } else { 0 };
    let out_ptr = OutPtr(out.as_mut_ptr());
    let layout = PaddedPlane {
        height,
        width,
        top,
        left,
        phases,
        hp,
        wq,
    };
    let fill_plane = |index: usize| {
        // SAFETY: plane `index` is this task's alone, inside `out`.
        let dest = unsafe { out_ptr.row(index * plane, plane) };
        let source = &x[index * height * width..(index + 1) * height * width];
        quantize_plane(isa, &layout, source, scales[index / shape.c_in], zero, dest);
    };
    if planes * plane < PARALLEL_VALUES {
        (0..planes).for_each(fill_plane);
    } else {
        parallel_for(planes, &fill_plane);
    }
}

/// Where a plane's values go in its padded, phase-split copy (`conv.rs`'s layout).
struct PaddedPlane {
    height: usize,
    width: usize,
    top: usize,
    left: usize,
    phases: usize,
    hp: usize,
    wq: usize,
}

impl PaddedPlane {
    /// The source row of padded row `y`, if it is not padding.
    fn source_row(&self, y: usize) -> Option<usize> {
        (y >= self.top && y < self.top + self.height).then(|| y - self.top)
    }
    /// The source column of column `q` of phase `phase`, signed (outside `0..width` in the
    /// padding).
    fn source_column(&self, phase: usize, q: usize) -> isize {
        (q * self.phases + phase) as isize - self.left as isize
    }
}

/// One plane quantized with `scale` into its padded copy `dest` (`phases · hp · wq` bytes, the
/// code of 0 in the padding).
fn quantize_plane(
    isa: Isa,
    layout: &PaddedPlane,
    source: &[f32],
    scale: f32,
    zero: u8,
    dest: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni {
        // SAFETY: `Isa::Avx512Vnni` is listed only where AVX-512F is.
        return unsafe { quantize_plane_avx512(layout, source, scale, zero, dest) };
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::AvxVnni | Isa::Avx2) {
        // SAFETY: the AVX2 levels are listed only where AVX2 is.
        return unsafe { quantize_plane_avx2(layout, source, scale, zero, dest) };
    }
    let _ = isa;
    quantize_plane_portable(layout, source, scale, zero, dest)
}

#[inline(always)]
fn quantize_plane_portable(
    layout: &PaddedPlane,
    source: &[f32],
    scale: f32,
    zero: u8,
    dest: &mut [u8],
) {
    let (width, wq) = (layout.width as isize, layout.wq);
    for (row_index, dest_row) in dest.chunks_exact_mut(wq).enumerate() {
        let (phase, y) = (row_index / layout.hp, row_index % layout.hp);
        let Some(source_y) = layout.source_row(y) else {
            dest_row.fill(zero);
            continue;
        };
        let row = &source[source_y * layout.width..][..layout.width];
        for (q, d) in dest_row.iter_mut().enumerate() {
            let column = layout.source_column(phase, q);
            *d = if (0..width).contains(&column) {
                quantize(row[column as usize], scale) as u8 ^ zero
            } else {
                zero
            };
        }
    }
}

/// [`quantize_plane_portable`] 16 columns at a time: masked (across phases, gathered) loads
/// where the columns are inside the source row, zeros elsewhere (they quantize to the code of
/// 0), and the instruction's round-half-to-even. No clamp: every value is at most its image's
/// AbsMax, so `|v · 127 / (amax + 1e-7)|` stays below 127.5.
///
/// # Safety
/// AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_plane_avx512(
    layout: &PaddedPlane,
    source: &[f32],
    scale: f32,
    zero: u8,
    dest: &mut [u8],
) {
    use std::arch::x86_64::*;
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    let (width, wq, phases) = (layout.width as isize, layout.wq, layout.phases);
    let scale = _mm512_set1_ps(scale);
    let flip = _mm_set1_epi8(zero as i8);
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let steps = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(phases as i32));
    // Every other float of 32 (stride 2): indices 0, 2, … 30 of `lo:hi`.
    let evens = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(2));
    // The lanes of 16 consecutive columns from `first` that are inside `0..width`.
    let span = |first: isize| -> u16 {
        let from = (-first).clamp(0, 16) as u32;
        let to = (width - first).clamp(0, 16) as u32;
        let below = |n: u32| ((1u32 << n) - 1) as u16;
        below(to) & !below(from)
    };
    for (row_index, dest_row) in dest.chunks_exact_mut(wq).enumerate() {
        let (phase, y) = (row_index / layout.hp, row_index % layout.hp);
        let Some(source_y) = layout.source_row(y) else {
            dest_row.fill(zero);
            continue;
        };
        let row = source[source_y * layout.width..][..layout.width].as_ptr();
        for q0 in (0..wq).step_by(LANES) {
            let count = (wq - q0).min(LANES);
            let first = layout.source_column(phase, q0);
            // SAFETY: only columns inside the row are read (masked-off lanes are not).
            let v = unsafe {
                match phases {
                    1 => _mm512_maskz_loadu_ps(span(first), row.wrapping_offset(first)),
                    2 => {
                        let lo = _mm512_maskz_loadu_ps(span(first), row.wrapping_offset(first));
                        let hi = _mm512_maskz_loadu_ps(
                            span(first + 16),
                            row.wrapping_offset(first + 16),
                        );
                        _mm512_permutex2var_ps(lo, evens, hi)
                    }
                    _ => {
                        let columns = _mm512_add_epi32(_mm512_set1_epi32(first as i32), steps);
                        let inside = _mm512_cmpge_epi32_mask(columns, _mm512_setzero_si512())
                            & _mm512_cmplt_epi32_mask(columns, _mm512_set1_epi32(width as i32));
                        _mm512_mask_i32gather_ps::<4>(
                            _mm512_setzero_ps(),
                            inside,
                            columns,
                            row.cast(),
                        )
                    }
                }
            };
            let q = _mm512_cvt_roundps_epi32::<NEAREST>(_mm512_mul_ps(v, scale));
            let bytes = _mm_xor_si128(_mm512_cvtepi32_epi8(q), flip);
            if count == LANES {
                // SAFETY: 16 bytes at `q0`, inside the row.
                unsafe { _mm_storeu_si128(dest_row.as_mut_ptr().add(q0).cast(), bytes) };
            } else {
                let mut tail = [0u8; LANES];
                // SAFETY: 16 bytes.
                unsafe { _mm_storeu_si128(tail.as_mut_ptr().cast(), bytes) };
                dest_row[q0..].copy_from_slice(&tail[..count]);
            }
        }
    }
}

/// [`quantize_plane_portable`] on AVX2, 16 columns at a time as two halves of 8: masked loads
/// (`vmaskmovps`, which reads no masked-off lane) where the columns are inside the source row,
/// every other value of two halves for stride 2, a gather for other strides; the rounding
/// written out (`vroundps` to nearest-even, not the MXCSR mode). No clamp, as on AVX-512.
///
/// # Safety
/// AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_plane_avx2(
    layout: &PaddedPlane,
    source: &[f32],
    scale: f32,
    zero: u8,
    dest: &mut [u8],
) {
    use std::arch::x86_64::*;
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    let (width, wq, phases) = (layout.width as i32, layout.wq, layout.phases);
    let scale = _mm256_set1_ps(scale);
    let flip = _mm_set1_epi8(zero as i8);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let steps = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(phases as i32));
    // The lanes of the 8 columns `first + step` (`step` = `lanes` · phases) inside `0..width`.
    let inside = |columns: __m256i| {
        let negative = _mm256_cmpgt_epi32(_mm256_setzero_si256(), columns);
        _mm256_andnot_si256(
            negative,
            _mm256_cmpgt_epi32(_mm256_set1_epi32(width), columns),
        )
    };
    let span = |first: i32| inside(_mm256_add_epi32(_mm256_set1_epi32(first), lanes));
    // 8 columns from source column `first`, quantized to 8 integers.
    let eight = |row: *const f32, first: i32| -> __m256i {
        // SAFETY: only columns inside the row are read (masked-off lanes are not).
        let v = unsafe {
            match phases {
                1 => _mm256_maskload_ps(row.wrapping_offset(first as isize), span(first)),
                2 => {
                    let lo = _mm256_maskload_ps(row.wrapping_offset(first as isize), span(first));
                    let hi = _mm256_maskload_ps(
                        row.wrapping_offset(first as isize + 8),
                        span(first + 8),
                    );
                    // Evens of each 128-bit lane, `[lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]`, put
                    // in order by 64-bit pairs.
                    let evens = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                        evens,
                    )))
                }
                _ => {
                    let columns = _mm256_add_epi32(_mm256_set1_epi32(first), steps);
                    _mm256_mask_i32gather_ps::<4>(
                        _mm256_setzero_ps(),
                        row,
                        columns,
                        _mm256_castsi256_ps(inside(columns)),
                    )
                }
            }
        };
        _mm256_cvtps_epi32(_mm256_round_ps::<NEAREST>(_mm256_mul_ps(v, scale)))
    };
    for (row_index, dest_row) in dest.chunks_exact_mut(wq).enumerate() {
        let (phase, y) = (row_index / layout.hp, row_index % layout.hp);
        let Some(source_y) = layout.source_row(y) else {
            dest_row.fill(zero);
            continue;
        };
        let row = source[source_y * layout.width..][..layout.width].as_ptr();
        for q0 in (0..wq).step_by(LANES) {
            let count = (wq - q0).min(LANES);
            let first = layout.source_column(phase, q0) as i32;
            let (low, high) = (eight(row, first), eight(row, first + 8 * phases as i32));
            // Words `[low 0–3, high 0–3 | low 4–7, high 4–7]`, reordered to `[low | high]`,
            // then bytes (the first 8 of each 128-bit lane), gathered into 16.
            let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(low, high));
            let bytes = _mm256_permute4x64_epi64::<0b00_00_10_00>(_mm256_packs_epi16(words, words));
            let bytes = _mm_xor_si128(_mm256_castsi256_si128(bytes), flip);
            if count == LANES {
                // SAFETY: 16 bytes at `q0`, inside the row.
                unsafe { _mm_storeu_si128(dest_row.as_mut_ptr().add(q0).cast(), bytes) };
            } else {
                let mut tail = [0u8; LANES];
                // SAFETY: 16 bytes.
                unsafe { _mm_storeu_si128(tail.as_mut_ptr().cast(), bytes) };
                dest_row[q0..].copy_from_slice(&tail[..count]);
            }
        }
    }
}

/// One lane group's quads `[k4 / 4][lane][4]` copied from the quantized input: lanes past the
/// group's end and `k` past K hold the code of 0 (their weights are zero, their outputs unused).
pub(super) fn pack(
    isa: Isa,
    input: &[u8],
    offsets: &[usize],
    lanes: &LaneGroup,
    unsigned: bool,
    out: &mut [u8],
) {
    let zero = if unsigned { 0x80u8 } else { 0 };
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni {
        // SAFETY: `Isa::Avx512Vnni` is listed only where AVX-512F and BW are; the offsets of
        // every valid lane are inside `input` (they come from the shape it was prepared for).
        return unsafe { super::x86_conv::pack_bytes_avx512(input, offsets, lanes, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::AvxVnni | Isa::Avx2) {
        // SAFETY: the AVX2 levels are listed only where AVX2 is; `prepare` leaves
        // `LOAD_SLACK` bytes after the layout for the 16-byte loads from each run's start.
        return unsafe { super::x86_conv::pack_bytes_avx2(input, offsets, lanes, out) };
    }
    let _ = isa;
    pack_portable(input, offsets, lanes, zero, out)
}

fn pack_portable(input: &[u8], offsets: &[usize], lanes: &LaneGroup, zero: u8, out: &mut [u8]) {
    out.fill(zero);
    for run in lanes.input_runs() {
        for lane in run.start..run.end {
            let base = run.base + lane - run.start;
            for (k, &offset) in offsets.iter().enumerate() {
                out[(k / 4) * 4 * LANES + lane * 4 + k % 4] = input[base + offset];
            }
        }
    }
}
