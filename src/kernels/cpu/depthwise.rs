//! The direct int8 depthwise convolution (one input channel per group, MobileNet's 3×3 layers,
//! with or without a channel multiplier) on host memory, under Keras's rule: each output
//! position's window of one channel is its own im2col row, so it gets its own activation scale.
//!
//! The products are short (K = kh·kw), so the cost is the rule itself: per output, the window's
//! AbsMax, one division for the scale, a rounding per tap, the taps' products, one division in
//! the epilogue. The kernel does exactly that and little else:
//!
//! - it reads the NCHW input in place (no padded copy): [`LANES`] consecutive outputs of a
//!   plane at a time (a block may span output rows, so small maps still fill the vector), each
//!   tap's values gathered by masked loads whose lanes and offsets are worked out once per call
//!   ([`Plan`]); a tap outside the image reads zero;
//! - on AVX-512, 3×3 kernels with column stride 1 load a block's nine taps straight into
//!   registers (two or three masked loads each) and round them once for every output channel
//!   of the plane; other shapes gather into a small taps buffer that stays in L1;
//! - the next plane's input is requested ahead ([`prefetch`]): masked loads are slow to stream
//!   from memory on Zen 4;
//! - it is compiled three times (AVX-512F, AVX2 + FMA, baseline) and every step is the same
//!   IEEE operation at every width: the same bits on every level.
//!
//! The products are summed in f32: every partial sum is an integer of magnitude below
//! `127 · 127 · taps < 2^24` (checked), so the sum is exact in any order, as the i32 sum is.
//!
//! Non-finite inputs: the generic path's im2col spreads a NaN or an infinity across channels,
//! so the convolution declines to it whenever a window reads one. No separate pass looks for
//! them (it was 10% of a batch-8 layer's profile): a window that reads a NaN or an infinity
//! gives a non-finite output here (no clamp, no integer conversion: a NaN stays NaN through
//! the rounding and the products; an infinity makes the scale 0, and `inf · 0` is NaN), a
//! finite window a finite one, so each plane's outputs are checked while they are in cache.

use std::sync::atomic::{AtomicBool, Ordering};

use super::gemm::{Isa, OutPtr};
use super::spin_pool::parallel_for;
use crate::quantizers::{ABS_MAX_EPSILON, INT8_MAX};

/// Outputs of one row handled together: one 512-bit vector of f32.
const LANES: usize = 16;
/// Most taps whose f32 sum of products stays exact (`127 · 127 · taps < 2^24`).
const MAX_EXACT_TAPS: usize = (1 << 24) / (127 * 127);
/// Outputs per parallel task, at least: below this the task overhead shows.
const TASK_OUTPUTS: usize = 8 * 1024;

/// One depthwise call: the input `[batch, channels, height, width]` (NCHW, dense, unpadded),
/// the weight `[channels · multiplier, kh · kw]` as channel rows.
pub(super) struct Depthwise<'a> {
    pub input: &'a [f32],
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub multiplier: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `(top, left)` zeros before the image.
    pub padding: [usize; 2],
    pub out_size: [usize; 2],
    pub weight: &'a [i8],
    pub w_scales: &'a [f32],
    pub bias: Option<&'a [f32]>,
}

impl Depthwise<'_> {
    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
    fn out_plane(&self) -> usize {
        self.out_size[0] * self.out_size[1]
    }
    /// The output `[batch, channels · multiplier, h_out, w_out]`.
    pub(super) fn output_len(&self) -> usize {
        self.batch * self.channels * self.multiplier * self.out_plane()
    }
    /// Whether the kernel covers this call (the f32 sums must stay exact).
    pub(super) fn supported(&self) -> bool {
        self.taps() <= MAX_EXACT_TAPS
    }
}

/// Runs the depthwise convolution on instruction set `isa`: its `output_len` values, or `None`
/// exactly when a window read a NaN or an infinity (module docs), and the caller then declines
/// to the generic path.
pub(super) fn depthwise(isa: Isa, call: &Depthwise<'_>) -> Option<Vec<f32>> {
    assert!(call.supported());
    let len = call.output_len();
    let planes = call.batch * call.channels;
    let per_plane = call.multiplier * call.out_plane();
    let planes_per_task = TASK_OUTPUTS.div_ceil(per_plane.max(1)).clamp(1, planes);
    let tasks = planes.div_ceil(planes_per_task);
    // MobileNet's stride-1 layers on wide maps take the padded-rows path (`depthwise_rows.rs`);
    // everything else follows a plan of masked loads.
    let padded_rows = super::depthwise_rows::applies(call);
    let plan = (!padded_rows).then(|| Plan::new(call));
    // The padded-rows path writes every output through raw pointers, so its buffer is not
    // zeroed first (a serial memset of the whole output was 10% of a batch-8 layer).
    let mut out: Vec<f32> = if padded_rows {
        Vec::with_capacity(len)
    } else {
        vec![0.0; len]
    };
    let plane_len = call.height * call.width;
    let out_ptr = OutPtr(out.as_mut_ptr());
    let non_finite = AtomicBool::new(false);
    let run_task = |task: usize| {
        let first = task * planes_per_task;
        let mut taps = vec![[0f32; LANES]; call.taps()];
        // One plane's weights as f32 (`multiplier · taps` values, converted per plane: no
        // f32 copy of the whole weight); products of integers below 2^24 are exact in f32.
        let mut weights = vec![0f32; call.multiplier * call.taps()];
        for plane in first..(first + planes_per_task).min(planes) {
            // The next plane (two or more ahead measured no better).
            if plane + 1 < planes {
                prefetch(&call.input[(plane + 1) * plane_len..][..plane_len]);
            }
            // Plane `plane`'s outputs (its `multiplier` channels are consecutive in NCHW) are
            // this task's alone, inside `out`.
            let plane_finite = match &plan {
                Some(plan) => {
                    // SAFETY: as above; this buffer was zeroed.
                    let out = unsafe { out_ptr.row(plane * per_plane, per_plane) };
                    plane_on(isa, call, plan, &mut weights, plane, &mut taps, out);
                    // Checked while the plane's outputs are in cache.
                    finite(out)
                }
                None => {
                    let parts = PlaneParts::new(call, &mut weights, plane);
                    // SAFETY: the plane's `per_plane` outputs are inside the buffer's capacity
                    // and this task's.
                    let out = unsafe { out_ptr.0.add(plane * per_plane) };
                    // SAFETY: as above.
                    unsafe { super::depthwise_rows::plane(isa, call, &parts, out) }
                }
            };
            if !plane_finite {
                non_finite.store(true, Ordering::Relaxed);
            }
        }
    };
    if tasks == 1 {
        run_task(0);
    } else {
        parallel_for(tasks, &run_task);
    }
    if padded_rows {
        // SAFETY: every plane's outputs were written (`depthwise_rows::plane` writes all of
        // them).
        unsafe { out.set_len(len) };
    }
    (!non_finite.load(Ordering::Relaxed)).then_some(out)
}

/// Whether every value is finite, in a form the compiler vectorises (no early exit).
fn finite(values: &[f32]) -> bool {
    values.iter().fold(true, |ok, v| ok & (v.abs() <= f32::MAX))
}

/// Asks for `values` in the L2 cache, one request per cache line. The next plane is requested
/// while this one is computed: the masked loads of the kernels stream from memory at a third of
/// the speed of whole loads on Zen 4, so a batch whose input is larger than the caches would
/// otherwise run at half the speed of a cached one (`dw3x3s2_96@112` batch 8).
fn prefetch(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in values.chunks(16) {
        // SAFETY: a prefetch is a hint; it never faults, and the address is inside `values`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// [`plane`] compiled for `isa`, with the block computation of that level.
fn plane_on(
    isa: Isa,
    call: &Depthwise<'_>,
    plan: &Plan,
    weights: &mut [f32],
    plane_index: usize,
    taps: &mut [[f32; LANES]],
    out: &mut [f32],
) {
    let parts = PlaneParts::new(call, weights, plane_index);
    let sx = call.stride[1];
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(
            sx: usize,
            plan: &Plan,
            parts: &PlaneParts<'_>,
            taps: &mut [[f32; LANES]],
            out: &mut [f32],
        ) {
            if !plan.slots.is_empty() {
                // SAFETY: AVX-512F (see below); the slots read inside every plane.
                unsafe {
                    match (plan.tap_slots, sx) {
                        (2, 1) => x86::plane_registers_avx512::<2, 1>(plan, parts, out),
                        (2, _) => x86::plane_registers_avx512::<2, 2>(plan, parts, out),
                        (_, 1) => x86::plane_registers_avx512::<MAX_TAP_SLOTS, 1>(plan, parts, out),
                        _ => x86::plane_registers_avx512::<MAX_TAP_SLOTS, 2>(plan, parts, out),
                    }
                };
                return;
            }
            // SAFETY: this function runs only where AVX-512F is (see below); the plan's pieces
            // read inside every plane (`Plan::new`).
            let fill = |taps: &mut [[f32; LANES]], pieces: &[Piece], input: &[f32], sx| unsafe {
                x86::fill_avx512(taps, pieces, input, sx)
            };
            // SAFETY: as above.
            let compute =
                |block: &Block<'_>, out: &mut [f32]| unsafe { x86::block_avx512(block, out) };
            plane(sx, plan, parts, taps, out, fill, compute)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(
            sx: usize,
            plan: &Plan,
            parts: &PlaneParts<'_>,
            taps: &mut [[f32; LANES]],
            out: &mut [f32],
        ) {
            // Closures, not the function items: closures take this function's instruction
            // sets, while function items passed on run through `Fn::call` shims compiled for
            // baseline x86-64, where rounding is a `rintf` call per value (27× slower than
            // Burn's float convolution, measured).
            let compute = |block: &Block<'_>, out: &mut [f32]| block_portable(block, out);
            if sx == 1 {
                // SAFETY: this function runs only where AVX2 is (see below); the plan's pieces
                // read inside every plane (`Plan::new`).
                let fill = |taps: &mut [[f32; LANES]], pieces: &[Piece], input: &[f32], _| unsafe {
                    x86::fill_avx2(taps, pieces, input)
                };
                return plane(sx, plan, parts, taps, out, fill, compute);
            }
            // Other strides keep the scalar fill (a masked gather was 1.2–1.7× slower on Zen 3:
            // `dw3x3s2_576@14` 136 → 233 µs); each fill is its own instance of `plane`, so the
            // scalar one stays as tight as before.
            let fill = |taps: &mut [[f32; LANES]], pieces: &[Piece], input: &[f32], sx| {
                fill_portable(taps, pieces, input, sx)
            };
            plane(sx, plan, parts, taps, out, fill, compute)
        }
        match isa {
            // SAFETY: `Isa::Avx512Vnni` is listed only where AVX-512F is, the AVX2 levels only
            // where AVX2 and FMA are (`Isa::available`).
            Isa::Avx512Vnni => {
                return unsafe { avx512(sx, plan, &parts, taps, out) };
            }
            Isa::AvxVnni | Isa::Avx2 => {
                return unsafe { avx2(sx, plan, &parts, taps, out) };
            }
            Isa::Portable => {}
        }
    }
    let _ = isa;
    plane(sx, plan, &parts, taps, out, fill_portable, block_portable)
}

/// Consecutive lanes of one tap that read the image: lane `lanes.start + k` reads
/// `input[source + k · sx]` of the plane. Every other lane of the tap reads zero.
struct Piece {
    tap: usize,
    lanes: std::ops::Range<usize>,
    source: usize,
    /// `lanes` as a bit mask, for masked loads.
    mask: u16,
}

/// Writes each tap's values for a block: the pieces' values, zero elsewhere.
#[inline(always)]
fn fill_portable(taps: &mut [[f32; LANES]], pieces: &[Piece], input: &[f32], sx: usize) {
    for values in taps.iter_mut() {
        *values = [0.0; LANES];
    }
    for piece in pieces {
        let values = &mut taps[piece.tap][piece.lanes.clone()];
        for (k, value) in values.iter_mut().enumerate() {
            *value = input[piece.source + k * sx];
        }
    }
}

/// Up to [`LANES`] consecutive outputs of one output plane, for each of the plane's output
/// channels: their taps' values, the channels' weights, where the outputs go.
struct Block<'a> {
    /// `[taps][LANES]`: each tap's input value for each output (zero outside the image).
    taps: &'a [[f32; LANES]],
    /// `[multiplier, taps]`, as f32.
    weights: &'a [f32],
    w_scales: &'a [f32],
    bias: Option<&'a [f32]>,
    /// The first output's index in an output channel's plane.
    first: usize,
    /// Outputs per output channel.
    channel_stride: usize,
    /// Valid outputs (lanes past it are computed and dropped).
    len: usize,
}

/// Keras's rule on one block: the window's AbsMax per output (max is exact: the im2col row's
/// AbsMax bit for bit), the scale `127 / (amax + 1e-7)`, each value rounded half to even with
/// its output's scale (no clamp needed: every value is at most its window's AbsMax, so
/// `|v · scale|` stays below 127.5), the products, `acc / (scale · w_scale) + bias`.
#[inline(always)]
fn block_portable(block: &Block<'_>, out: &mut [f32]) {
    let mut amax = [0f32; LANES];
    for values in block.taps {
        for (max, &v) in amax.iter_mut().zip(values) {
            let a = v.abs();
            *max = if a > *max { a } else { *max };
        }
    }
    let scales: [f32; LANES] = std::array::from_fn(|l| INT8_MAX / (amax[l] + ABS_MAX_EPSILON));
    let n_taps = block.taps.len();
    for (c, (row_weights, &w_scale)) in block
        .weights
        .chunks_exact(n_taps)
        .zip(block.w_scales)
        .enumerate()
    {
        let mut acc = [0f32; LANES];
        for (values, &w) in block.taps.iter().zip(row_weights) {
            for ((acc, &v), &scale) in acc.iter_mut().zip(values).zip(&scales) {
                *acc += (v * scale).round_ties_even() * w;
            }
        }
        let out_row = &mut out[c * block.channel_stride + block.first..][..block.len];
        for ((y, &acc), &scale) in out_row.iter_mut().zip(&acc).zip(&scales) {
            let value = acc / (scale * w_scale);
            *y = match block.bias {
                Some(bias) => value + bias[c],
                None => value,
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Block, LANES, Piece, Plan, PlaneParts, PlannedBlock, REGISTER_TAPS, Slot};
    use crate::quantizers::{ABS_MAX_EPSILON, INT8_MAX};

    /// Round to nearest, ties to even, without exceptions.
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    /// Keras's activation scale `127 / (amax + 1e-7)` of 16 window AbsMaxes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn window_scale(amax: __m512) -> __m512 {
        _mm512_div_ps(
            _mm512_set1_ps(INT8_MAX),
            _mm512_add_ps(amax, _mm512_set1_ps(ABS_MAX_EPSILON)),
        )
    }

    /// Writes `acc / (scale · w_scale) + bias` into `out_row` (at most 16 outputs).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn store_rescaled(
        acc: __m512,
        scale: __m512,
        w_scale: f32,
        bias: Option<f32>,
        out_row: &mut [f32],
    ) {
        let mut y = _mm512_div_ps(acc, _mm512_mul_ps(scale, _mm512_set1_ps(w_scale)));
        if let Some(bias) = bias {
            y = _mm512_add_ps(y, _mm512_set1_ps(bias));
        }
        let len = out_row.len().min(LANES);
        let mask = ((1u32 << len) - 1) as u16;
        // SAFETY: the mask covers `len` floats, all inside `out_row`.
        unsafe { _mm512_mask_storeu_ps(out_row.as_mut_ptr(), mask, y) };
    }

    /// [`super::fill_portable`] with masked loads: one per piece when `sx` is 1, two and a
    /// permutation when it is 2; other strides lane by lane.
    ///
    /// # Safety
    /// AVX-512F; every piece reads inside `input` (`Plan::new` checks it for a plane).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn fill_avx512(
        taps: &mut [[f32; LANES]],
        pieces: &[Piece],
        input: &[f32],
        sx: usize,
    ) {
        match sx {
            // SAFETY: the caller's contract.
            1 => unsafe { fill_strided::<1>(taps, pieces, input) },
            2 => unsafe { fill_strided::<2>(taps, pieces, input) },
            _ => super::fill_portable(taps, pieces, input, sx),
        }
    }

    /// [`fill_avx512`] for column stride `SX` (1 or 2).
    ///
    /// # Safety
    /// As [`fill_avx512`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn fill_strided<const SX: usize>(
        taps: &mut [[f32; LANES]],
        pieces: &[Piece],
        input: &[f32],
    ) {
        // Even elements of two vectors: lane `k` of the result is element `2k` of `lo:hi`.
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // Each tap's vector is built in a register and stored whole: a whole load of a tap
        // then forwards from one store (a masked store over a zeroed vector would not).
        let mut next = 0;
        for (tap, values) in taps.iter_mut().enumerate() {
            let mut v = _mm512_setzero_ps();
            while let Some(piece) = pieces.get(next).filter(|piece| piece.tap == tap) {
                next += 1;
                let from = piece.lanes.start;
                // SAFETY: every lane the masks let through reads `input[source ..= source +
                // (count - 1) · SX]`, inside `input` (the caller's contract).
                v = unsafe {
                    if SX == 1 {
                        // Lane `from + k` reads `source + k`: the vector starts `from` before.
                        let base = input.as_ptr().wrapping_add(piece.source).wrapping_sub(from);
                        _mm512_mask_loadu_ps(v, piece.mask, base)
                    } else {
                        // The `count` values at even offsets, then moved to lanes `from..to`.
                        let count = piece.lanes.len();
                        let base = input.as_ptr().add(piece.source);
                        let lo_count = count.min(8);
                        let lo_mask = ((1u32 << (2 * lo_count - 1)) - 1) as u16;
                        let lo = _mm512_maskz_loadu_ps(lo_mask, base);
                        let hi_count = count.saturating_sub(8);
                        let hi = if hi_count == 0 {
                            _mm512_setzero_ps()
                        } else {
                            let hi_mask = ((1u32 << (2 * hi_count - 1)) - 1) as u16;
                            _mm512_maskz_loadu_ps(hi_mask, base.add(16))
                        };
                        let packed = _mm512_permutex2var_ps(lo, evens, hi);
                        let shift = _mm512_sub_epi32(lanes, _mm512_set1_epi32(from as i32));
                        _mm512_mask_permutexvar_ps(v, piece.mask, shift, packed)
                    }
                };
            }
            // SAFETY: 16 floats.
            unsafe { _mm512_storeu_ps(values.as_mut_ptr(), v) };
        }
    }

    /// [`super::fill_portable`] on AVX2 for column stride 1: per half of 8 lanes, a masked load
    /// (`vmaskmovps`, which reads no masked-off lane).
    ///
    /// # Safety
    /// AVX2; every piece reads inside `input` (`Plan::new` checks it for a plane).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn fill_avx2(taps: &mut [[f32; LANES]], pieces: &[Piece], input: &[f32]) {
        let lanes = [
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15),
        ];
        let mut next = 0;
        for (tap, values) in taps.iter_mut().enumerate() {
            let mut v = [_mm256_setzero_ps(); 2];
            while let Some(piece) = pieces.get(next).filter(|piece| piece.tap == tap) {
                next += 1;
                let (from, to) = (piece.lanes.start, piece.lanes.end);
                for (h, half) in v.iter_mut().enumerate() {
                    if from >= 8 * h + 8 || to <= 8 * h {
                        continue;
                    }
                    // The piece's lanes in this half: `from <= lane < to`.
                    let mask = _mm256_and_si256(
                        _mm256_cmpgt_epi32(lanes[h], _mm256_set1_epi32(from as i32 - 1)),
                        _mm256_cmpgt_epi32(_mm256_set1_epi32(to as i32), lanes[h]),
                    );
                    // Lane `from + k` reads `input[source + k]`: the half starts `from - 8h`
                    // before.
                    let base = input
                        .as_ptr()
                        .wrapping_add(piece.source + 8 * h)
                        .wrapping_sub(from);
                    // SAFETY: the piece's lanes read inside `input` (the caller's contract);
                    // the others are not read.
                    *half = _mm256_or_ps(*half, unsafe { _mm256_maskload_ps(base, mask) });
                }
            }
            // SAFETY: 16 floats.
            unsafe {
                _mm256_storeu_ps(values.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(values.as_mut_ptr().add(8), v[1]);
            }
        }
    }

    /// Every block of a plane through [`block_registers_avx512`], `TAP_SLOTS` of the plan's
    /// slots per tap, column stride `SX`.
    ///
    /// # Safety
    /// As [`block_registers_avx512`], for the plan's slots.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn plane_registers_avx512<const TAP_SLOTS: usize, const SX: usize>(
        plan: &Plan,
        parts: &PlaneParts<'_>,
        out: &mut [f32],
    ) {
        let per_block = REGISTER_TAPS * TAP_SLOTS;
        for (block, slots) in plan.blocks.iter().zip(plan.slots.chunks_exact(per_block)) {
            // SAFETY: the caller's contract.
            unsafe {
                block_registers_avx512::<TAP_SLOTS, SX>(parts, slots, block, plan.positions, out)
            };
        }
    }

    /// [`super::block_portable`] for a 3×3 block whose taps are loaded from [`Slot`]s straight
    /// into registers (no taps buffer): the same IEEE operations.
    ///
    /// # Safety
    /// AVX-512F; every slot's lanes read inside `parts.input` (`Plan::new` checks the pieces
    /// they come from).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block_registers_avx512<const TAP_SLOTS: usize, const SX: usize>(
        parts: &PlaneParts<'_>,
        slots: &[Slot],
        block: &PlannedBlock,
        channel_stride: usize,
        out: &mut [f32],
    ) {
        assert_eq!(slots.len(), REGISTER_TAPS * TAP_SLOTS);
        let input = parts.input.as_ptr();
        let mut taps = [_mm512_setzero_ps(); REGISTER_TAPS];
        let mut amax = _mm512_setzero_ps();
        // Even elements of two vectors: lane `k` of the result is element `2k` of `lo:hi`.
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (tap, slots) in taps.iter_mut().zip(slots.chunks_exact(TAP_SLOTS)) {
            let mut v = _mm512_setzero_ps();
            for slot in slots {
                let from = input.wrapping_offset(slot.offset);
                // SAFETY: the caller's contract; masked-off elements are not read.
                v = unsafe {
                    if SX == 1 {
                        _mm512_mask_loadu_ps(v, slot.mask, from)
                    } else {
                        let lo = _mm512_maskz_loadu_ps(slot.lo, from);
                        let hi = _mm512_maskz_loadu_ps(slot.hi, from.wrapping_add(LANES));
                        _mm512_mask_mov_ps(v, slot.mask, _mm512_permutex2var_ps(lo, evens, hi))
                    }
                };
            }
            *tap = v;
            amax = _mm512_max_ps(amax, _mm512_abs_ps(*tap));
        }
        let scale = window_scale(amax);
        for tap in &mut taps {
            *tap = _mm512_roundscale_ps::<NEAREST>(_mm512_mul_ps(*tap, scale));
        }
        for (c, (row_weights, &w_scale)) in parts
            .weights
            .chunks_exact(REGISTER_TAPS)
            .zip(parts.w_scales)
            .enumerate()
        {
            // Two chains of multiply-adds (the sums are exact in any order).
            let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            for (t, (&q, &w)) in taps.iter().zip(row_weights).enumerate() {
                if t % 2 == 0 {
                    even = _mm512_fmadd_ps(q, _mm512_set1_ps(w), even);
                } else {
                    odd = _mm512_fmadd_ps(q, _mm512_set1_ps(w), odd);
                }
            }
            let acc = _mm512_add_ps(even, odd);
            let out_row = &mut out[c * channel_stride + block.first..][..block.len];
            store_rescaled(acc, scale, w_scale, parts.bias.map(|bias| bias[c]), out_row);
        }
    }

    /// [`super::block_portable`] on one 512-bit vector per tap: the same IEEE operations.
    ///
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn block_avx512(block: &Block<'_>, out: &mut [f32]) {
        let load = |values: &[f32; LANES]| {
            // SAFETY: 16 floats.
            unsafe { _mm512_loadu_ps(values.as_ptr()) }
        };
        let mut amax = _mm512_setzero_ps();
        for values in block.taps {
            amax = _mm512_max_ps(amax, _mm512_abs_ps(load(values)));
        }
        let scale = window_scale(amax);
        let n_taps = block.taps.len();
        for (c, (row_weights, &w_scale)) in block
            .weights
            .chunks_exact(n_taps)
            .zip(block.w_scales)
            .enumerate()
        {
            // Two chains of multiply-adds (the sums are exact in any order), named so that
            // they stay in registers.
            let product = |values: &[f32; LANES], w: f32| {
                let q = _mm512_roundscale_ps::<NEAREST>(_mm512_mul_ps(load(values), scale));
                (q, _mm512_set1_ps(w))
            };
            let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            for (values, w) in block.taps.chunks_exact(2).zip(row_weights.chunks_exact(2)) {
                let (q0, w0) = product(&values[0], w[0]);
                let (q1, w1) = product(&values[1], w[1]);
                even = _mm512_fmadd_ps(q0, w0, even);
                odd = _mm512_fmadd_ps(q1, w1, odd);
            }
            if n_taps % 2 == 1 {
                let (q, w) = product(&block.taps[n_taps - 1], row_weights[n_taps - 1]);
                even = _mm512_fmadd_ps(q, w, even);
            }
            let acc = _mm512_add_ps(even, odd);
            let out_row = &mut out[c * block.channel_stride + block.first..][..block.len];
            store_rescaled(acc, scale, w_scale, block.bias.map(|bias| bias[c]), out_row);
        }
    }
}

/// One input channel of one image (`plane_index = image · channels + channel`) into its
/// `multiplier` output channels `out [multiplier, h_out, w_out]`.
#[inline(always)]
fn plane(
    sx: usize,
    plan: &Plan,
    parts: &PlaneParts<'_>,
    taps: &mut [[f32; LANES]],
    out: &mut [f32],
    fill: impl Fn(&mut [[f32; LANES]], &[Piece], &[f32], usize),
    compute: impl Fn(&Block<'_>, &mut [f32]),
) {
    for block in &plan.blocks {
        fill(taps, &plan.pieces[block.pieces.clone()], parts.input, sx);
        let block = Block {
            taps,
            weights: parts.weights,
            w_scales: parts.w_scales,
            bias: parts.bias,
            first: block.first,
            channel_stride: plan.positions,
            len: block.len,
        };
        compute(&block, out);
    }
}

/// What one plane reads: its input, and its output channels' weights (as f32), scales and bias.
pub(super) struct PlaneParts<'a> {
    pub input: &'a [f32],
    /// `[multiplier, taps]`.
    pub weights: &'a [f32],
    pub w_scales: &'a [f32],
    pub bias: Option<&'a [f32]>,
}

impl<'a> PlaneParts<'a> {
    /// `weights` (`multiplier · taps` values) receives the plane's weights as f32.
    fn new(call: &'a Depthwise<'_>, weights: &'a mut [f32], plane_index: usize) -> Self {
        let (height, width) = (call.height, call.width);
        let channel = plane_index % call.channels;
        let n_taps = call.taps();
        let out_channels = channel * call.multiplier..(channel + 1) * call.multiplier;
        let int8 = &call.weight[out_channels.start * n_taps..out_channels.end * n_taps];
        for (weight, &value) in weights.iter_mut().zip(int8) {
            *weight = f32::from(value);
        }
        PlaneParts {
            input: &call.input[plane_index * height * width..][..height * width],
            weights,
            w_scales: &call.w_scales[out_channels.clone()],
            bias: call.bias.map(|bias| &bias[out_channels]),
        }
    }
}

/// Where every block of a plane reads its taps: the same for every plane of a call, so it is
/// worked out once (integer divisions per tap would otherwise dominate the kernel).
struct Plan {
    positions: usize,
    blocks: Vec<PlannedBlock>,
    pieces: Vec<Piece>,
    /// For 3×3 kernels with column stride 1 or 2 where every tap of every block is at most
    /// [`MAX_TAP_SLOTS`] pieces: per block, per tap, `tap_slots` masked loads, so a block's taps
    /// are loaded straight into registers. Empty otherwise.
    slots: Vec<Slot>,
    tap_slots: usize,
}

/// Taps of the kernels with a register path (3×3).
const REGISTER_TAPS: usize = 9;
/// Most masked loads per tap and block on that path: a block spans up to three output rows
/// (two on maps 8 wide or more).
const MAX_TAP_SLOTS: usize = 3;

/// One masked load: lanes `mask` read `plane[offset + lane · sx]`; masked-off lanes read
/// nothing (`offset` may be negative, or point past the plane, for them). For column stride 2
/// the values come from two loads of 16 consecutive floats, `lo` and `hi` their element masks.
#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: isize,
    mask: u16,
    lo: u16,
    hi: u16,
}

struct PlannedBlock {
    /// The block's first output in the plane, and its number of outputs.
    first: usize,
    len: usize,
    /// Its pieces in [`Plan::pieces`].
    pieces: std::ops::Range<usize>,
}

impl Plan {
    fn new(call: &Depthwise<'_>) -> Plan {
        let (height, width) = (call.height, call.width);
        let [kh, kw] = call.kernel;
        let [sy, sx] = call.stride;
        let [dy, dx] = call.dilation;
        let [top, left] = call.padding;
        let [h_out, w_out] = call.out_size;
        let positions = h_out * w_out;
        let mut plan = Plan {
            positions,
            blocks: Vec::with_capacity(positions.div_ceil(LANES)),
            pieces: Vec::new(),
            slots: Vec::new(),
            tap_slots: 0,
        };
        // Blocks of consecutive outputs of the plane (a block may span output rows: small
        // maps still fill the vector).
        for first in (0..positions).step_by(LANES) {
            let len = LANES.min(positions - first);
            let start = plan.pieces.len();
            let mut lane = 0;
            while lane < len {
                let (oy, ox) = ((first + lane) / w_out, (first + lane) % w_out);
                let run = (w_out - ox).min(len - lane);
                for i in 0..kh {
                    let y = (oy * sy + i * dy).checked_sub(top).filter(|&y| y < height);
                    let Some(y) = y else { continue };
                    for j in 0..kw {
                        // Output `ox + k` reads padded column `x0 + k · sx`, inside the image
                        // when `left ≤ x0 + k · sx < left + width`.
                        let x0 = ox * sx + j * dx;
                        let k_from = left.saturating_sub(x0).div_ceil(sx);
                        let k_to = (left + width).saturating_sub(x0).div_ceil(sx).min(run);
                        if k_from < k_to {
                            let lanes = lane + k_from..lane + k_to;
                            let source = y * width + x0 + k_from * sx - left;
                            // The kernels read without bounds checks: every piece's last
                            // value is inside the plane (true by construction, checked once).
                            assert!(source + (lanes.len() - 1) * sx < height * width);
                            plan.pieces.push(Piece {
                                tap: i * kw + j,
                                mask: (((1u32 << lanes.len()) - 1) << lanes.start) as u16,
                                lanes,
                                source,
                            });
                        }
                    }
                }
                lane += run;
            }
            // By tap, so that a tap's vector is built in a register from its pieces.
            plan.pieces[start..].sort_by_key(|piece| piece.tap);
            plan.blocks.push(PlannedBlock {
                first,
                len,
                pieces: start..plan.pieces.len(),
            });
        }
        if kh * kw == REGISTER_TAPS && (sx == 1 || sx == 2) {
            for tap_slots in 2..=MAX_TAP_SLOTS {
                if let Some(slots) = plan.register_slots(tap_slots, sx) {
                    (plan.slots, plan.tap_slots) = (slots, tap_slots);
                    break;
                }
            }
        }
        plan
    }

    /// [`Plan::slots`] with `tap_slots` per tap, or `None` when a tap of some block has more
    /// pieces.
    fn register_slots(&self, tap_slots: usize, sx: usize) -> Option<Vec<Slot>> {
        let empty = Slot {
            offset: 0,
            mask: 0,
            lo: 0,
            hi: 0,
        };
        let mut slots = vec![empty; self.blocks.len() * REGISTER_TAPS * tap_slots];
        for (block, block_slots) in self
            .blocks
            .iter()
            .zip(slots.chunks_exact_mut(REGISTER_TAPS * tap_slots))
        {
            let mut used = [0usize; REGISTER_TAPS];
            for piece in &self.pieces[block.pieces.clone()] {
                let slot = used[piece.tap];
                if slot == tap_slots {
                    return None;
                }
                used[piece.tap] += 1;
                // Lane `start + k` reads `source + k · sx`; with stride 2, lane `l` is element
                // `2l` of the 32 floats from `offset`: of the first 16 below lane 8, else of
                // the next 16.
                let (mut lo, mut hi) = (0u16, 0u16);
                if sx == 2 {
                    for lane in piece.lanes.clone() {
                        if lane < 8 {
                            lo |= 1 << (2 * lane);
                        } else {
                            hi |= 1 << (2 * (lane - 8));
                        }
                    }
                }
                block_slots[piece.tap * tap_slots + slot] = Slot {
                    offset: piece.source as isize - (piece.lanes.start * sx) as isize,
                    mask: piece.mask,
                    lo,
                    hi,
                };
            }
        }
        Some(slots)
    }
}
