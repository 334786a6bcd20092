//! x86-64 panel kernels: AVX-512 VNNI, AVX-VNNI and AVX2. Each fills `acc [m, width]` for the
//! output channels `j0..j0 + width`, bit for bit like `gemm::panel_portable`.
//!
//! * VNNI's `vpdpbusd` multiplies *unsigned* by signed bytes, four at a time, into i32. Weights
//!   are made unsigned as `w ^ 0x80 = w + 128`, and the extra `128 · Σx` of each row is
//!   subtracted at the end: exact for every i8, with no saturation.
//! * AVX2's `vpmaddubsw` saturates its pair sums at i16, so it computes `|w| · (x · sign(w))`
//!   instead, whose pairs stay within 2 · 128 · 127 (activations of -128 go to the portable
//!   path; `gemm` checks).
//! * Weights are channel rows (`WeightView`): each output channel's input values are one run,
//!   so four consecutive input channels of one output channel are already one 32-bit lane.
//! * For several rows (prefill) on AVX-512, a panel's weights are packed per block of 64
//!   output channels (a 16×16 transpose of those lanes) once per call and reused by every
//!   activation row; the 256-bit kernels tile registers over rows and channels instead.
//! * For a few rows (decode, fewer than `DECODE_ROWS`), each channel is a plain dot product
//!   that streams its weights straight from memory, reduced across lanes at the end.

use std::arch::x86_64::*;
use std::cell::RefCell;

use super::gemm::{Activations, DECODE_ROWS, WeightView};

thread_local! {
    /// Each rayon worker's packed-weight buffer, reused across calls.
    static PACKED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI: blocks of 64 output channels (four 512-bit registers of 16 lanes).
// ---------------------------------------------------------------------------------------------

const BLOCK_512: usize = 64;

/// # Safety
/// The CPU must have AVX-512F, AVX-512BW and AVX-512 VNNI; `w` must hold `k * n` elements,
/// `x.k == w.k`, `j0 + width <= w.n`, and `acc.len() == x.m * width`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn panel_avx512vnni(
    x: &Activations,
    w: WeightView<'_>,
    j0: usize,
    width: usize,
    acc: &mut [i32],
) {
    // SAFETY: the caller's contract is this function's.
    unsafe {
        // A few rows (decode): dot products stream each channel's weights straight from
        // memory, no packing.
        if x.m < DECODE_ROWS {
            nk_avx512(x, w, j0, width, acc)
        } else {
            packed_avx512(x, w, j0, width, acc)
        }
    }
}

/// Packs the panel's weights into VNNI quads once, then runs every row block over them.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn packed_avx512(
    x: &Activations,
    w: WeightView<'_>,
    j0: usize,
    width: usize,
    acc: &mut [i32],
) {
    let q4 = x.k4 / 4;
    let blocks = width.div_ceil(BLOCK_512);
    let block_bytes = q4 * 4 * BLOCK_512;
    PACKED.with_borrow_mut(|packed| {
        if packed.len() < blocks * block_bytes {
            packed.resize(blocks * block_bytes, 0);
        }
        // Each channel's weights are one run already: 16 quads of 16 channels at a time.
        for (b, q) in (0..blocks).flat_map(|b| (0..q4).step_by(16).map(move |q| (b, q))) {
            let cols = (width - b * BLOCK_512).min(BLOCK_512);
            let block = &mut packed[b * block_bytes..(b + 1) * block_bytes];
            // SAFETY: masked loads inside the weight; the stores stay inside `block`.
            unsafe { pack_nk_avx512(w, j0 + b * BLOCK_512, cols, q, block) };
        }
        for b in 0..blocks {
            let cols = (width - b * BLOCK_512).min(BLOCK_512);
            let block = &packed[b * block_bytes..(b + 1) * block_bytes];
            let mut r = 0;
            while r < x.m {
                let rows = (x.m - r).min(4);
                let out = &mut acc[b * BLOCK_512..];
                // SAFETY: `block` holds `q4` packed groups; rows `r..r + rows` exist.
                unsafe {
                    match rows {
                        4 => rows_packed_avx512::<4>(x, r, block, q4, cols, width, out),
                        3 => rows_packed_avx512::<3>(x, r, block, q4, cols, width, out),
                        2 => rows_packed_avx512::<2>(x, r, block, q4, cols, width, out),
                        _ => rows_packed_avx512::<1>(x, r, block, q4, cols, width, out),
                    }
                }
                r += rows;
            }
        }
    });
}

/// 64 bytes from `src`, zero where `mask` is clear. Full loads avoid the masked form: on Zen 4
/// a masked load from memory streams at a third of the speed (measured: 11 vs 35 GB/s).
///
/// # Safety
/// The bytes selected by `mask` must be readable.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn load_512(mask: __mmask64, src: *const i8) -> __m512i {
    // SAFETY: the caller's contract.
    unsafe {
        if mask == !0 {
            _mm512_loadu_si512(src.cast())
        } else {
            _mm512_maskz_loadu_epi8(mask, src)
        }
    }
}

/// Packs a block of channel rows for VNNI, where the four bytes of a quad are already adjacent:
/// quads `q0..q0 + 16` (those below `k4 / 4`) of the block's channels, 16 channels at a time
/// as a 16×16 transpose of 32-bit lanes, stored at `block[q * 256..]`, channels in order.
///
/// # Safety
/// Channels `col0..col0 + cols` must exist; `block` must hold `k4 / 4` groups of 256 bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn pack_nk_avx512(w: WeightView<'_>, col0: usize, cols: usize, q0: usize, block: &mut [u8]) {
    let k = w.k;
    let quads = (k.div_ceil(4) - q0).min(16);
    let bytes = (k - 4 * q0).min(64);
    let mask: __mmask64 = if bytes == 64 { !0 } else { (1u64 << bytes) - 1 };
    let flip = _mm512_set1_epi8(i8::MIN);
    for r in 0..4 {
        // Row `i`: 16 quads of channel `16r + i` (zero past K and past the block's channels).
        let mut rows = [_mm512_setzero_si512(); 16];
        for (i, row) in rows
            .iter_mut()
            .enumerate()
            .take(cols.saturating_sub(16 * r).min(16))
        {
            // SAFETY: channel `col0 + 16r + i < col0 + cols` exists; the mask stops at K.
            *row = unsafe { load_512(mask, w.data.as_ptr().add((col0 + 16 * r + i) * k + 4 * q0)) };
        }
        let columns = transpose_16x16(rows);
        for (j, column) in columns.iter().enumerate().take(quads) {
            // SAFETY: quad `q0 + j < k4 / 4`, so 64 bytes at `(q0 + j) * 256 + 64r` are in `block`.
            unsafe {
                _mm512_storeu_si512(
                    block[(q0 + j) * 256 + 64 * r..].as_mut_ptr().cast(),
                    _mm512_xor_si512(*column, flip),
                )
            };
        }
    }
}

/// `out[j]` lane `i` = `rows[i]` lane `j`, for 32-bit lanes: unpacks of 32 then 64 bits
/// inside 128-bit lanes, then two rounds of 128-bit lane shuffles.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn transpose_16x16(rows: [__m512i; 16]) -> [__m512i; 16] {
    let mut pairs = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        pairs[2 * i] = _mm512_unpacklo_epi32(rows[2 * i], rows[2 * i + 1]);
        pairs[2 * i + 1] = _mm512_unpackhi_epi32(rows[2 * i], rows[2 * i + 1]);
    }
    // `quads[4i + s]`, 128-bit lane `l`: column `4l + s` of rows `4i..4i + 4`.
    let mut quads = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        for j in 0..2 {
            quads[4 * i + 2 * j] = _mm512_unpacklo_epi64(pairs[4 * i + j], pairs[4 * i + j + 2]);
            quads[4 * i + 2 * j + 1] =
                _mm512_unpackhi_epi64(pairs[4 * i + j], pairs[4 * i + j + 2]);
        }
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for s in 0..4 {
        let low01 = _mm512_shuffle_i32x4::<0x44>(quads[s], quads[4 + s]);
        let high01 = _mm512_shuffle_i32x4::<0xEE>(quads[s], quads[4 + s]);
        let low23 = _mm512_shuffle_i32x4::<0x44>(quads[8 + s], quads[12 + s]);
        let high23 = _mm512_shuffle_i32x4::<0xEE>(quads[8 + s], quads[12 + s]);
        out[s] = _mm512_shuffle_i32x4::<0x88>(low01, low23);
        out[4 + s] = _mm512_shuffle_i32x4::<0xDD>(low01, low23);
        out[8 + s] = _mm512_shuffle_i32x4::<0x88>(high01, high23);
        out[12 + s] = _mm512_shuffle_i32x4::<0xDD>(high01, high23);
    }
    out
}

/// `MR` rows × 64 packed channels: 4·MR accumulators stay in registers over all of K. Row
/// `r0 + i`'s `cols` valid channels go to `out[(r0 + i) * width..]`, corrected for the `+128`,
/// with vector stores. The store runs once per row and block, outside the K loop.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_packed_avx512<const MR: usize>(
    x: &Activations,
    r0: usize,
    block: &[u8],
    q4: usize,
    cols: usize,
    width: usize,
    out: &mut [i32],
) {
    let mut sums = [[_mm512_setzero_si512(); 4]; MR];
    let xp = x.data.as_ptr();
    let bp = block.as_ptr();
    for q in 0..q4 {
        // SAFETY: `block` holds `q4` groups of 256 bytes; activation rows are `k4` long.
        unsafe {
            let weights = [
                _mm512_loadu_si512(bp.add(q * 256).cast()),
                _mm512_loadu_si512(bp.add(q * 256 + 64).cast()),
                _mm512_loadu_si512(bp.add(q * 256 + 128).cast()),
                _mm512_loadu_si512(bp.add(q * 256 + 192).cast()),
            ];
            for (i, row) in sums.iter_mut().enumerate() {
                let quad = xp
                    .add((r0 + i) * x.k4 + 4 * q)
                    .cast::<i32>()
                    .read_unaligned();
                let xb = _mm512_set1_epi32(quad);
                for (sum, &weight) in row.iter_mut().zip(&weights) {
                    *sum = _mm512_dpbusd_epi32(*sum, weight, xb);
                }
            }
        }
    }
    for (i, row) in sums.iter().enumerate() {
        let correction = 128 * x.row_sums[r0 + i];
        let out_row = &mut out[(r0 + i) * width..];
        let correction = _mm512_set1_epi32(correction);
        for (r, sum) in row.iter().enumerate() {
            let valid = cols.saturating_sub(16 * r).min(16);
            if valid > 0 {
                let mask: __mmask16 = ((1u32 << valid) - 1) as __mmask16;
                let corrected = _mm512_sub_epi32(*sum, correction);
                // SAFETY: lanes `< valid` land on channels `< cols` of this row of `out`.
                unsafe {
                    _mm512_mask_storeu_epi32(out_row[16 * r..].as_mut_ptr().cast(), mask, corrected)
                };
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn nk_avx512(x: &Activations, w: WeightView<'_>, j0: usize, width: usize, acc: &mut [i32]) {
    let mut r0 = 0;
    while r0 < x.m {
        let rows = (x.m - r0).min(4);
        // SAFETY: rows `r0..r0 + rows` exist; the callee reads columns `j0..j0 + width`.
        unsafe {
            match rows {
                4 => rows_nk_avx512::<4>(x, r0, w, j0, width, acc),
                3 => rows_nk_avx512::<3>(x, r0, w, j0, width, acc),
                2 => rows_nk_avx512::<2>(x, r0, w, j0, width, acc),
                _ => rows_nk_avx512::<1>(x, r0, w, j0, width, acc),
            }
        }
        r0 += rows;
    }
}

/// `MR` rows against output channels `j0..j0 + width` of an NK weight: one dot product per
/// channel and row, the column loaded once for all `MR` rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn rows_nk_avx512<const MR: usize>(
    x: &Activations,
    r0: usize,
    w: WeightView<'_>,
    j0: usize,
    width: usize,
    acc: &mut [i32],
) {
    let k = w.k;
    let flip = _mm512_set1_epi8(i8::MIN);
    for c in 0..width {
        let column = &w.data[(j0 + c) * k..(j0 + c + 1) * k];
        let mut sums = [_mm512_setzero_si512(); MR];
        for off in (0..k).step_by(64) {
            let len = (k - off).min(64);
            let mask: __mmask64 = if len == 64 { !0 } else { (1u64 << len) - 1 };
            // SAFETY: the mask keeps every load inside `column` and the activation rows.
            unsafe {
                let weights = _mm512_xor_si512(load_512(mask, column.as_ptr().add(off)), flip);
                for (i, sum) in sums.iter_mut().enumerate() {
                    let xv = load_512(mask, x.row(r0 + i).as_ptr().add(off));
                    *sum = _mm512_dpbusd_epi32(*sum, weights, xv);
                }
            }
        }
        // Zero padding: `0 ^ 0x80 = 128` times a zero activation adds nothing.
        for (i, sum) in sums.iter().enumerate() {
            acc[(r0 + i) * width + c] = _mm512_reduce_add_epi32(*sum) - 128 * x.row_sums[r0 + i];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 256-bit kernels, AVX-VNNI and AVX2: register tiles of rows × channels over channel rows.
// One macro writes both, so each gets only its own target features (LLVM would otherwise be
// free to fuse AVX2's multiply-adds into VNNI instructions an AVX2-only CPU lacks).
// ---------------------------------------------------------------------------------------------

macro_rules! kernels_256 {
    ($panel:ident, $features:literal, vnni = $vnni:literal) => {
        /// # Safety
        /// The CPU must have the features named in the attribute; same contract as
        /// [`panel_avx512vnni`].
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $panel(
            x: &Activations,
            w: WeightView<'_>,
            j0: usize,
            width: usize,
            acc: &mut [i32],
        ) {
            #[target_feature(enable = $features)]
            unsafe fn load32(src: &[i8]) -> __m256i {
                // SAFETY: reads exactly 32 bytes, from `src` or from a zero-padded copy.
                unsafe {
                    if src.len() >= 32 {
                        _mm256_loadu_si256(src.as_ptr().cast())
                    } else {
                        let mut padded = [0i8; 32];
                        padded[..src.len()].copy_from_slice(src);
                        _mm256_loadu_si256(padded.as_ptr().cast())
                    }
                }
            }

            /// Σ over groups of four of `w · x`, added to `sum` (`w` packed unsigned for VNNI).
            #[target_feature(enable = $features)]
            fn dot4(sum: __m256i, w: __m256i, x: __m256i) -> __m256i {
                if $vnni {
                    // SAFETY: only the instance whose features include `avxvnni` takes this branch.
                    #[allow(unused_unsafe)]
                    unsafe {
                        _mm256_dpbusd_avx_epi32(sum, w, x)
                    }
                } else {
                    let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
                    _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
                }
            }

            #[target_feature(enable = $features)]
            fn hsum(v: __m256i) -> i32 {
                let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
                let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
                let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
                _mm_cvtsi128_si32(s)
            }

            let flip = if $vnni {
                _mm256_set1_epi8(i8::MIN)
            } else {
                _mm256_setzero_si256()
            };
            let correction = |r: usize| if $vnni { 128 * x.row_sums[r] } else { 0 };
            // Register tiles: each weight vector loaded serves every row of the tile and
            // each activation vector every channel of it, and the horizontal sums run
            // once per tile and k. AVX2 has 16 registers: 4 rows × 2 channels of
            // accumulators for prefill, 1 row × 4 channels for decode.
            let (mr, nr) = if x.m >= DECODE_ROWS { (4, 2) } else { (1, 4) };
            let mut c = 0;
            while c < width {
                let cols = nr.min(width - c);
                let mut r = 0;
                while r < x.m {
                    let rows = mr.min(x.m - r);
                    let out = &mut acc[r * width + c..];
                    // SAFETY: rows `r..r + rows` and channels `j0 + c..j0 + c + cols`
                    // exist, and `out` starts at the tile's first accumulator.
                    unsafe {
                        match (rows, cols) {
                            (4, 2) => nk_tile::<4, 2>(x, w, r, j0 + c, flip, width, out),
                            (4, _) => nk_tile::<4, 1>(x, w, r, j0 + c, flip, width, out),
                            (3, 2) => nk_tile::<3, 2>(x, w, r, j0 + c, flip, width, out),
                            (3, _) => nk_tile::<3, 1>(x, w, r, j0 + c, flip, width, out),
                            (2, 2) => nk_tile::<2, 2>(x, w, r, j0 + c, flip, width, out),
                            (2, _) => nk_tile::<2, 1>(x, w, r, j0 + c, flip, width, out),
                            (_, 4) => nk_tile::<1, 4>(x, w, r, j0 + c, flip, width, out),
                            (_, 3) => nk_tile::<1, 3>(x, w, r, j0 + c, flip, width, out),
                            (_, 2) => nk_tile::<1, 2>(x, w, r, j0 + c, flip, width, out),
                            _ => nk_tile::<1, 1>(x, w, r, j0 + c, flip, width, out),
                        }
                    }
                    for i in 0..rows {
                        for j in 0..cols {
                            acc[(r + i) * width + c + j] -= correction(r + i);
                        }
                    }
                    r += rows;
                }
                c += cols;
            }

            /// `MR` rows from `r0` against the `NR` channels from `col0` (channel-major), into
            /// `out[i * stride + j]`.
            ///
            /// # Safety
            /// The CPU has the features of the attribute; the rows and channels exist, and
            /// `out` holds `(MR - 1) * stride + NR` elements.
            #[target_feature(enable = $features)]
            unsafe fn nk_tile<const MR: usize, const NR: usize>(
                x: &Activations,
                w: WeightView<'_>,
                r0: usize,
                col0: usize,
                flip: __m256i,
                stride: usize,
                out: &mut [i32],
            ) {
                let k = w.k;
                let full = k / 32 * 32;
                let mut sums = [[_mm256_setzero_si256(); NR]; MR];
                let mut weights = [_mm256_setzero_si256(); NR];
                let mut off = 0;
                while off < full {
                    for (j, weight) in weights.iter_mut().enumerate() {
                        let channel = w.data.as_ptr().wrapping_add((col0 + j) * k + off);
                        // The next tile's channels, one tile ahead: a hint, never a fault, so it
                        // may point past the weight.
                        _mm_prefetch::<_MM_HINT_T0>(channel.wrapping_add(4 * NR * k));
                        // SAFETY: `off + 32 <= k` bytes of channel `col0 + j`, inside `w.data`.
                        let loaded = unsafe { _mm256_loadu_si256(channel.cast()) };
                        *weight = if $vnni {
                            _mm256_xor_si256(loaded, flip)
                        } else {
                            loaded
                        };
                    }
                    for (i, row_sums) in sums.iter_mut().enumerate() {
                        // SAFETY: `off + 32 <= k <= k4` bytes of row `r0 + i`.
                        let xv = unsafe {
                            _mm256_loadu_si256(x.data.as_ptr().add((r0 + i) * x.k4 + off).cast())
                        };
                        for (sum, &weight) in row_sums.iter_mut().zip(&weights) {
                            *sum = dot4(*sum, weight, xv);
                        }
                    }
                    off += 32;
                }
                if full < k {
                    // The last `k % 32` bytes through zero-padded copies: `0 ^ 0x80 = 128` times
                    // a zero activation adds nothing.
                    for (j, weight) in weights.iter_mut().enumerate() {
                        let channel = (col0 + j) * k;
                        // SAFETY: `load32` reads a padded copy of a short slice.
                        let loaded = unsafe { load32(&w.data[channel + full..channel + k]) };
                        *weight = if $vnni {
                            _mm256_xor_si256(loaded, flip)
                        } else {
                            loaded
                        };
                    }
                    for (i, row_sums) in sums.iter_mut().enumerate() {
                        // SAFETY: as above.
                        let xv = unsafe { load32(&x.row(r0 + i)[full..k]) };
                        for (sum, &weight) in row_sums.iter_mut().zip(&weights) {
                            *sum = dot4(*sum, weight, xv);
                        }
                    }
                }
                for (i, row_sums) in sums.iter().enumerate() {
                    for (j, &sum) in row_sums.iter().enumerate() {
                        out[i * stride + j] = hsum(sum);
                    }
                }
            }
        }
    };
}

kernels_256!(panel_avxvnni, "avx2,avxvnni", vnni = true);
kernels_256!(panel_avx2, "avx2", vnni = false);
