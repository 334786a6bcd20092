//! x86-64 kernels of the direct convolution (`conv.rs`): the packing of quantized activations
//! on AVX-512, and the register tiles on AVX-512 VNNI, AVX-VNNI and
//! AVX2. Each gives the bits of its portable twin in `conv.rs`.
//!
//! * Packed activations are `[k4 / 4][16 lanes][4 bytes]`: one 512-bit vector per quad of K,
//!   16 output positions, so a weight quad (4 bytes of a channel row) is broadcast against it
//!   and the weight is read in place.
//! * VNNI multiplies unsigned by signed bytes: activations are packed as `q + 128` and each
//!   channel's `128 · Σw` comes off in the epilogue. AVX2's `vpmaddubsw` would saturate on
//!   that, so it takes signed activations and the sign trick `|w| · (x · sign(w))`
//!   (activations are never -128).
//! * Rounding is the instruction's round-half-to-even; no clamp is needed: every value is at
//!   most its window's AbsMax, so `|v · 127 / (amax + 1e-7)|` stays below 127.5.

use std::arch::x86_64::*;

use super::conv::{Epilogue, LANES, LaneGroup, PackedGroup, Run};

/// Round to nearest, ties to even, without exceptions (the `imm8` of `vcvtps2dq`/`vrndscaleps`).
const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// 16 floats of a lane group at `offset` from each run's base, zero in lanes outside the runs.
///
/// # Safety
/// AVX-512F; every run's lanes must be readable at `input[run.base + offset + lane - start]`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_lanes(input: *const f32, lanes: &LaneGroup, offset: usize) -> __m512 {
    let runs = lanes.input_runs();
    // SAFETY: the caller's contract; masked-off lanes are not read.
    unsafe {
        if runs.len() == 1 && runs[0].start == 0 && runs[0].end == LANES {
            return _mm512_loadu_ps(input.add(runs[0].base + offset));
        }
        let mut v = _mm512_setzero_ps();
        for run in runs {
            let first = input
                .wrapping_add(run.base + offset)
                .wrapping_sub(run.start);
            v = _mm512_mask_loadu_ps(v, run.mask(), first);
        }
        v
    }
}

/// `conv::pack_portable` on AVX-512.
///
/// # Safety
/// AVX-512F and BW; every valid lane's `base + offset` is inside `input`; `out` holds
/// `k4 * 16` bytes where `k4 = offsets.len()` rounded up to 4.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_avx512(
    input: &[f32],
    offsets: &[usize],
    lanes: &LaneGroup,
    scales: &[f32; LANES],
    flip: bool,
    out: &mut [u8],
) {
    let k = offsets.len();
    let quads = k.div_ceil(4);
    debug_assert!(out.len() >= quads * 4 * LANES);
    // SAFETY: 16 floats.
    let scale = unsafe { _mm512_loadu_ps(scales.as_ptr()) };
    let flip = _mm512_set1_epi32(if flip { 0x8080_8080u32 as i32 } else { 0 });
    // After the two saturating packs, 128-bit lane `j` holds `v_kk[4j + t]` at byte
    // `4kk + t`; the quads want it at `4t + kk`.
    let transpose = _mm512_broadcast_i32x4(_mm_setr_epi8(
        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
    ));
    let base = input.as_ptr();
    for q in 0..quads {
        let mut integers = [_mm512_setzero_si512(); 4];
        for (kk, integer) in integers.iter_mut().enumerate().take(k - 4 * q) {
            // SAFETY: the caller's contract.
            let v = unsafe { load_lanes(base, lanes, offsets[4 * q + kk]) };
            *integer = _mm512_cvt_roundps_epi32::<NEAREST>(_mm512_mul_ps(v, scale));
        }
        // Values are within ±127: the packs never saturate.
        let words_01 = _mm512_packs_epi32(integers[0], integers[1]);
        let words_23 = _mm512_packs_epi32(integers[2], integers[3]);
        let bytes = _mm512_shuffle_epi8(_mm512_packs_epi16(words_01, words_23), transpose);
        // SAFETY: 64 bytes at `q * 64`, inside `out`.
        unsafe {
            _mm512_storeu_si512(
                out.as_mut_ptr().add(q * 64).cast(),
                _mm512_xor_si512(bytes, flip),
            )
        };
    }
}

/// `conv::tile_portable` and `conv::store_lanes` with `vpdpbusd` on 512-bit registers
/// (activations packed unsigned): the sums stay in registers to the rescale and the stores.
///
/// # Safety
/// AVX-512F, BW and VNNI; `x` holds `groups.len()` (1 or 2) groups of `k4 * 16` bytes, `rows`
/// `nr` (1 to 8) rows of `k4`; the epilogue's outputs are this task's.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tile_avx512vnni(
    x: &[u8],
    groups: &[PackedGroup],
    k4: usize,
    rows: &[i8],
    nr: usize,
    epilogue: &Epilogue<'_>,
) {
    debug_assert!(x.len() >= groups.len() * k4 * LANES && rows.len() >= nr * k4);
    macro_rules! dispatch {
        ($($mr:literal, $nr:literal);*) => {
            match (groups.len(), nr) {
                $(($mr, $nr) => unsafe { tile_512::<$mr, $nr>(x, groups, k4, rows, epilogue) },)*
                _ => unreachable!("tiles are at most 2 groups × 8 channels"),
            }
        };
    }
    dispatch!(2, 8; 2, 7; 2, 6; 2, 5; 2, 4; 2, 3; 2, 2; 2, 1;
              1, 8; 1, 7; 1, 6; 1, 5; 1, 4; 1, 3; 1, 2; 1, 1)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::needless_range_loop)] // indices keep the tile's loops plain for the register allocator
unsafe fn tile_512<const MR: usize, const NR: usize>(
    x: &[u8],
    groups: &[PackedGroup],
    k4: usize,
    rows: &[i8],
    epilogue: &Epilogue<'_>,
) {
    let mut sums = [[_mm512_setzero_si512(); NR]; MR];
    let (xp, wp) = (x.as_ptr(), rows.as_ptr());
    let group_bytes = k4 * LANES;
    for q in 0..k4 / 4 {
        // SAFETY: quad `q` of each group and of each row is inside `x` and `rows`.
        unsafe {
            let mut xs = [_mm512_setzero_si512(); MR];
            for (i, xv) in xs.iter_mut().enumerate() {
                *xv = _mm512_loadu_si512(xp.add(i * group_bytes + q * 64).cast());
            }
            for j in 0..NR {
                let w = _mm512_set1_epi32(wp.add(j * k4 + 4 * q).cast::<i32>().read_unaligned());
                for i in 0..MR {
                    sums[i][j] = _mm512_dpbusd_epi32(sums[i][j], xs[i], w);
                }
            }
        }
    }
    // `(acc - correction) / (x_scale · w_scale) + bias`: the portable epilogue's operations.
    for (group, group_sums) in groups.iter().zip(&sums) {
        // SAFETY: 16 floats.
        let x_scales = unsafe { _mm512_loadu_ps(group.scales.as_ptr()) };
        for (j, &sum) in group_sums.iter().enumerate() {
            let exact = _mm512_sub_epi32(sum, _mm512_set1_epi32(epilogue.corrections[j]));
            let scales = _mm512_mul_ps(x_scales, _mm512_set1_ps(epilogue.w_scales[j]));
            let mut y = _mm512_div_ps(_mm512_cvtepi32_ps(exact), scales);
            if let Some(bias) = epilogue.bias {
                y = _mm512_add_ps(y, _mm512_set1_ps(bias[j]));
            }
            let channel = epilogue.channel_offset + j * epilogue.m;
            for run in group.lanes.output_runs() {
                let first = epilogue
                    .out
                    .0
                    .wrapping_add(run.base + channel)
                    .wrapping_sub(run.start);
                // SAFETY: the run's lanes are this task's outputs; the others are not written.
                unsafe {
                    if run.start == 0 && run.end == LANES {
                        _mm512_storeu_ps(first, y)
                    } else {
                        _mm512_mask_storeu_ps(first, run.mask(), y)
                    }
                }
            }
        }
    }
}

/// The 256-bit tiles: each 16-lane group is two halves of 8 lanes; 2 halves × 4 channels of
/// accumulators per pass (AVX2 has 16 registers), rescaled and stored from registers as the
/// AVX-512 tile does (the portable epilogue's operations, masked stores where a half crosses
/// an image's end).
macro_rules! tile_256 {
    ($name:ident, $inner:ident, $features:literal, vnni = $vnni:literal) => {
        /// # Safety
        /// The CPU has the features of the attribute; same contract as [`tile_avx512vnni`].
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name(
            x: &[u8],
            groups: &[PackedGroup],
            k4: usize,
            rows: &[i8],
            nr: usize,
            epilogue: &Epilogue<'_>,
        ) {
            debug_assert!(x.len() >= groups.len() * k4 * LANES && rows.len() >= nr * k4);
            for (i, group) in groups.iter().enumerate() {
                let packed = &x[i * k4 * LANES..(i + 1) * k4 * LANES];
                let stores = OutputStores::of(group);
                let mut j = 0;
                while j < nr {
                    let count = (nr - j).min(4);
                    let rows = &rows[j * k4..];
                    // SAFETY: the caller's contract, for channels `j..j + count`.
                    unsafe {
                        match count {
                            4 => $inner::<4>(packed, k4, rows, group, &stores, j, epilogue),
                            3 => $inner::<3>(packed, k4, rows, group, &stores, j, epilogue),
                            2 => $inner::<2>(packed, k4, rows, group, &stores, j, epilogue),
                            _ => $inner::<1>(packed, k4, rows, group, &stores, j, epilogue),
                        }
                    }
                    j += count;
                }
            }
        }

        #[target_feature(enable = $features)]
        #[allow(clippy::needless_range_loop)]
        unsafe fn $inner<const NR: usize>(
            packed: &[u8],
            k4: usize,
            rows: &[i8],
            group: &PackedGroup,
            stores: &OutputStores,
            j0: usize,
            epilogue: &Epilogue<'_>,
        ) {
            let mut sums = [[_mm256_setzero_si256(); NR]; 2];
            let (xp, wp) = (packed.as_ptr(), rows.as_ptr());
            for q in 0..k4 / 4 {
                // SAFETY: quad `q` of the group and of each row is in bounds.
                unsafe {
                    let halves = [
                        _mm256_loadu_si256(xp.add(q * 64).cast()),
                        _mm256_loadu_si256(xp.add(q * 64 + 32).cast()),
                    ];
                    for j in 0..NR {
                        let w = _mm256_set1_epi32(
                            wp.add(j * k4 + 4 * q).cast::<i32>().read_unaligned(),
                        );
                        for h in 0..2 {
                            sums[h][j] = if $vnni {
                                _mm256_dpbusd_avx_epi32(sums[h][j], halves[h], w)
                            } else {
                                let pairs = _mm256_maddubs_epi16(
                                    _mm256_abs_epi8(w),
                                    _mm256_sign_epi8(halves[h], w),
                                );
                                _mm256_add_epi32(
                                    sums[h][j],
                                    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)),
                                )
                            };
                        }
                    }
                }
            }
            for (h, half) in sums.iter().enumerate() {
                // SAFETY: 8 floats.
                let x_scales = unsafe { _mm256_loadu_ps(group.scales.as_ptr().add(8 * h)) };
                for (j, &sum) in half.iter().enumerate() {
                    let channel = j0 + j;
                    let exact =
                        _mm256_sub_epi32(sum, _mm256_set1_epi32(epilogue.corrections[channel]));
                    let scales =
                        _mm256_mul_ps(x_scales, _mm256_set1_ps(epilogue.w_scales[channel]));
                    let mut y = _mm256_div_ps(_mm256_cvtepi32_ps(exact), scales);
                    if let Some(bias) = epilogue.bias {
                        y = _mm256_add_ps(y, _mm256_set1_ps(bias[channel]));
                    }
                    // SAFETY: the runs' lanes are this task's outputs; the others are not
                    // written.
                    unsafe {
                        stores.store(
                            h,
                            epilogue.channel_offset + channel * epilogue.m,
                            epilogue,
                            y,
                        )
                    };
                }
            }
        }
    };
}

tile_256!(
    tile_avxvnni,
    tile_avxvnni_channels,
    "avx2,avxvnni",
    vnni = true
);
tile_256!(tile_avx2, tile_avx2_channels, "avx2", vnni = false);

/// Where a lane group's outputs go: one run of all 16 lanes takes plain stores, others one
/// masked store (`vmaskmovps` writes no masked-off lane) per run and half of 8 lanes.
struct OutputStores<'a> {
    runs: &'a [Run],
    whole: bool,
}

impl<'a> OutputStores<'a> {
    fn of(group: &'a PackedGroup) -> OutputStores<'a> {
        let runs = group.lanes.output_runs();
        OutputStores {
            runs,
            whole: runs.len() == 1 && runs[0].start == 0 && runs[0].end == LANES,
        }
    }

    /// Stores half `h` of a channel's 16 outputs (`channel` = its offset in an image).
    ///
    /// # Safety
    /// AVX2; the runs' outputs of this channel are inside `epilogue.out` and this task's.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store(&self, h: usize, channel: usize, epilogue: &Epilogue<'_>, y: __m256) {
        let out = epilogue.out.0;
        // SAFETY: the caller's contract; masked-off lanes are not written.
        unsafe {
            if self.whole {
                let first = out.add(self.runs[0].base + channel + 8 * h);
                return _mm256_storeu_ps(first, y);
            }
            for run in self.runs {
                let Some(mask) = run_half_mask(run, h) else {
                    continue;
                };
                let first = (run.base + channel) as isize - run.start as isize;
                let at = out.wrapping_offset(first + 8 * h as isize);
                _mm256_maskstore_ps(at, mask, y);
            }
        }
    }
}

/// The lanes of `run` in half `h` (lanes `8h..8h + 8`) as an AVX mask (sign bits), `None`
/// when the run has none there.
#[target_feature(enable = "avx2")]
#[inline]
fn run_half_mask(run: &Run, h: usize) -> Option<__m256i> {
    let (start, end) = (run.start.max(8 * h), run.end.min(8 * h + 8));
    if start >= end {
        return None;
    }
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    Some(_mm256_and_si256(
        _mm256_cmpgt_epi32(lane, _mm256_set1_epi32((start - 8 * h) as i32 - 1)),
        _mm256_cmpgt_epi32(_mm256_set1_epi32((end - 8 * h) as i32), lane),
    ))
}

/// `conv_sample::pack_portable` on AVX-512: each quad's four `k` are 16 bytes each (one per
/// lane) in the four 128-bit lanes of a register, transposed to `[lane][4]` by a dword
/// permutation (dword `j` of each `k` side by side) and a byte shuffle within 128-bit lanes.
/// A group whose 16 lanes read one run takes plain loads (5–8% faster on `l1_3x3_64to64@56`
/// than masked ones, Zen 5). A lane group whose lanes read several input runs (it crosses output rows) takes one pass
/// per run, each masked to its lanes, ORed together: the transposition moves each lane's
/// bytes alone, so it commutes with the OR. Lanes past the group's end and `k` past K are left
/// as they fall (their outputs are not stored; their weights are zero).
///
/// # Safety
/// AVX-512F and BW; every valid lane's `base + offset` is inside `input`; `out` holds
/// `k4 * 16` bytes where `k4 = offsets.len()` rounded up to 4.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_bytes_avx512(
    input: &[u8],
    offsets: &[usize],
    lanes: &LaneGroup,
    out: &mut [u8],
) {
    let k = offsets.len();
    let quads = k.div_ceil(4);
    debug_assert!(out.len() >= quads * 4 * LANES);
    let dwords = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let transpose = _mm512_broadcast_i32x4(_mm_setr_epi8(
        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
    ));
    for (pass, run) in lanes.input_runs().iter().enumerate() {
        // Register byte `16 kk + lane` comes from lane `lane`'s input at `offsets[4q + kk]`.
        let masks: [u64; 4] = std::array::from_fn(|kk| (run.mask() as u64) << (16 * kk));
        let first = input
            .as_ptr()
            .wrapping_add(run.base)
            .wrapping_sub(run.start);
        let whole = run.start == 0 && run.end == LANES;
        for q in 0..quads {
            let present = (k - 4 * q).min(4);
            let v = if whole && present == 4 {
                // A run of all 16 lanes: plain 16-byte loads (cheaper than masked ones).
                let at = |kk: usize| first.wrapping_add(offsets[4 * q + kk]).cast::<__m128i>();
                // SAFETY: 16 bytes from the run's base (the caller's contract).
                unsafe {
                    let v = _mm512_castsi128_si512(_mm_loadu_si128(at(0)));
                    let v = _mm512_inserti32x4::<1>(v, _mm_loadu_si128(at(1)));
                    let v = _mm512_inserti32x4::<2>(v, _mm_loadu_si128(at(2)));
                    _mm512_inserti32x4::<3>(v, _mm_loadu_si128(at(3)))
                }
            } else {
                let mut v = _mm512_setzero_si512();
                for (kk, &mask) in masks.iter().enumerate().take(present) {
                    let at = first
                        .wrapping_add(offsets[4 * q + kk])
                        .wrapping_sub(16 * kk);
                    // SAFETY: the caller's contract; masked-off bytes are not read.
                    v = unsafe { _mm512_mask_loadu_epi8(v, mask, at.cast()) };
                }
                v
            };
            let mut bytes = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(dwords, v), transpose);
            let dest = out.as_mut_ptr().wrapping_add(q * 64);
            // SAFETY: 64 bytes at `q * 64`, inside `out`.
            unsafe {
                if pass > 0 {
                    bytes = _mm512_or_si512(bytes, _mm512_loadu_si512(dest.cast()));
                }
                _mm512_storeu_si512(dest.cast(), bytes);
            }
        }
    }
}

/// `conv::pack_portable` on AVX2 (and AVX-VNNI, which packs `+128`): 16 lanes as two halves
/// of 8 floats, quantized with the rounding written out (`vroundps` to nearest-even, not the
/// MXCSR mode), packed to bytes and put in quad order by a byte shuffle per 128-bit lane.
///
/// # Safety
/// AVX2; every valid lane's `base + offset` is inside `input`; `out` holds `k4 * 16` bytes
/// where `k4 = offsets.len()` rounded up to 4.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pack_avx2(
    input: &[f32],
    offsets: &[usize],
    lanes: &LaneGroup,
    scales: &[f32; LANES],
    flip: bool,
    out: &mut [u8],
) {
    let k = offsets.len();
    let quads = k.div_ceil(4);
    debug_assert!(out.len() >= quads * 4 * LANES);
    // SAFETY: 16 floats.
    let scale = unsafe {
        [
            _mm256_loadu_ps(scales.as_ptr()),
            _mm256_loadu_ps(scales.as_ptr().add(8)),
        ]
    };
    let flip = _mm256_set1_epi32(if flip { 0x8080_8080u32 as i32 } else { 0 });
    // After the two saturating packs, 128-bit lane `j` holds `v_kk[4j + t]` at byte
    // `4kk + t`; the quads want it at `4t + kk`.
    let transpose = _mm256_setr_epi8(
        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10,
        14, 3, 7, 11, 15,
    );
    let runs = lanes.input_runs();
    let whole = runs.len() == 1 && runs[0].start == 0 && runs[0].end == LANES;
    // Per run: its lane 0's element (`base - start`) and its lanes of each half as masks.
    let mut masks = [(0isize, [_mm256_setzero_si256(); 2]); LANES];
    if !whole {
        for (mask, run) in masks.iter_mut().zip(runs) {
            let half = |h: usize| run_half_mask(run, h).unwrap_or(_mm256_setzero_si256());
            *mask = (run.base as isize - run.start as isize, [half(0), half(1)]);
        }
    }
    let masks = &masks[..runs.len()];
    let base = input.as_ptr();
    let load = |offset: usize, h: usize| -> __m256 {
        // SAFETY: the caller's contract: each valid lane's value is inside `input`; masked-off
        // lanes are not read.
        unsafe {
            if whole {
                return _mm256_loadu_ps(base.add(runs[0].base + offset + 8 * h));
            }
            let mut v = _mm256_setzero_ps();
            for (first, halves) in masks {
                let at = base.wrapping_offset(first + (offset + 8 * h) as isize);
                v = _mm256_or_ps(v, _mm256_maskload_ps(at, halves[h]));
            }
            v
        }
    };
    for q in 0..quads {
        for (h, &half_scale) in scale.iter().enumerate() {
            let mut integers = [_mm256_setzero_si256(); 4];
            for (kk, integer) in integers.iter_mut().enumerate().take(k - 4 * q) {
                let v = _mm256_mul_ps(load(offsets[4 * q + kk], h), half_scale);
                *integer = _mm256_cvtps_epi32(_mm256_round_ps::<NEAREST>(v));
            }
            // Values are within ±127: the packs never saturate.
            let words_01 = _mm256_packs_epi32(integers[0], integers[1]);
            let words_23 = _mm256_packs_epi32(integers[2], integers[3]);
            let bytes = _mm256_shuffle_epi8(_mm256_packs_epi16(words_01, words_23), transpose);
            // SAFETY: 32 bytes at `q * 64 + 32 h`, inside `out`.
            unsafe {
                _mm256_storeu_si256(
                    out.as_mut_ptr().add(q * 64 + 32 * h).cast(),
                    _mm256_xor_si256(bytes, flip),
                )
            };
        }
    }
}

/// `conv_sample::pack_portable` on AVX2: the four `k` of a quad (16 bytes each, one per lane)
/// transposed to `[lane][4]` by byte and word interleaves. A lane group whose lanes read
/// several runs loads 16 bytes from each run's first value and moves them to the run's lanes
/// with a byte shuffle (zeros elsewhere), ORed together. Lanes past the group's end and `k`
/// past K are left as they fall (their outputs are not stored; their weights are zero).
///
/// # Safety
/// AVX2; 16 bytes from every valid lane's `base + offset` are inside `input` (the prepared
/// input ends with `conv_sample::LOAD_SLACK` bytes for this); `out` holds `k4 * 16` bytes
/// where `k4 = offsets.len()` rounded up to 4.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_bytes_avx2(
    input: &[u8],
    offsets: &[usize],
    lanes: &LaneGroup,
    out: &mut [u8],
) {
    let k = offsets.len();
    let quads = k.div_ceil(4);
    debug_assert!(out.len() >= quads * 4 * LANES);
    let runs = lanes.input_runs();
    // Per run: where its first lane reads, and the shuffle moving byte `i` to lane
    // `start + i` (`0x80` zeroes the lanes of other runs).
    let mut moves = [(0usize, _mm_setzero_si128()); LANES];
    for (slot, run) in moves.iter_mut().zip(runs) {
        let mut control = [0x80u8; LANES];
        for (lane, byte) in control.iter_mut().enumerate().take(run.end).skip(run.start) {
            *byte = (lane - run.start) as u8;
        }
        // SAFETY: 16 bytes.
        *slot = (run.base, unsafe {
            _mm_loadu_si128(control.as_ptr().cast())
        });
    }
    let moves = &moves[..runs.len()];
    let whole = runs.len() == 1 && runs[0].start == 0 && runs[0].end == LANES;
    let base = input.as_ptr();
    let load = |offset: usize| -> __m128i {
        // SAFETY: the caller's contract (16 bytes from each run's first value).
        unsafe {
            if whole {
                return _mm_loadu_si128(base.add(moves[0].0 + offset).cast());
            }
            let mut v = _mm_setzero_si128();
            for &(first, control) in moves {
                let bytes = _mm_loadu_si128(base.add(first + offset).cast());
                v = _mm_or_si128(v, _mm_shuffle_epi8(bytes, control));
            }
            v
        }
    };
    for q in 0..quads {
        let present = (k - 4 * q).min(4);
        let mut rows = [_mm_setzero_si128(); 4];
        for (kk, row) in rows.iter_mut().enumerate().take(present) {
            *row = load(offsets[4 * q + kk]);
        }
        // `[k0 | k2]` and `[k1 | k3]`: the byte interleave pairs k0 with k1 (low 128 bits)
        // and k2 with k3 (high), lanes 0–7 (`lo`) and 8–15 (`hi`).
        let even = _mm256_set_m128i(rows[2], rows[0]);
        let odd = _mm256_set_m128i(rows[3], rows[1]);
        let (lo, hi) = (
            _mm256_unpacklo_epi8(even, odd),
            _mm256_unpackhi_epi8(even, odd),
        );
        // `[k0k1 of lanes 0–7 | k0k1 of lanes 8–15]` and the same of k2k3; their word
        // interleave gives each lane's four bytes: lanes 0–3 | 8–11, and 4–7 | 12–15.
        let pairs_01 = _mm256_permute2x128_si256::<0x20>(lo, hi);
        let pairs_23 = _mm256_permute2x128_si256::<0x31>(lo, hi);
        let quads_a = _mm256_unpacklo_epi16(pairs_01, pairs_23);
        let quads_b = _mm256_unpackhi_epi16(pairs_01, pairs_23);
        let dest = out.as_mut_ptr().wrapping_add(q * 64);
        // SAFETY: 64 bytes at `q * 64`, inside `out`.
        unsafe {
            _mm256_storeu_si256(
                dest.cast(),
                _mm256_permute2x128_si256::<0x20>(quads_a, quads_b),
            );
            _mm256_storeu_si256(
                dest.add(32).cast(),
                _mm256_permute2x128_si256::<0x31>(quads_a, quads_b),
            );
        }
    }
}
