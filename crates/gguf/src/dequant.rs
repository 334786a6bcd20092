//! Dequantization to f32, bit-exact with ggml's `dequantize_row_*`
//! (ggml-quants.c) and gguf-py's `gguf.quants`.
//!
//! Bit-exactness comes from doing the same f32 operations in the same order as
//! the C reference: integer quants are converted to f32 exactly, scales are
//! f16 → f32 (exact), and every product/sum is a single rounded f32 operation
//! (Rust never contracts `a * b + c` into an FMA on its own). Where ggml first
//! forms a per-sub-block scale (`d * sc`, `dmin * m`) we do the same, because
//! `(d * sc) * q` and `d * (sc * q)` can round differently.
//!
//! Every function takes `src` holding whole blocks and `dst` holding
//! `block_size` values per block, and converts `min(src blocks, dst blocks)`
//! blocks. They never panic; the reader checks that the lengths match.

use crate::types::GgmlType;
use half::f16;

/// A dequantizer: whole blocks of `src` into `dst`.
pub type DequantFn = fn(&[u8], &mut [f32]);

/// The dequantizer for `ty`, or `None` if this crate does not support it.
pub fn dequantizer(ty: GgmlType) -> Option<DequantFn> {
    Some(match ty {
        GgmlType::F32 => f32_le,
        GgmlType::F16 => f16_le,
        GgmlType::BF16 => bf16_le,
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q4_K => q4_k,
        GgmlType::Q6_K => q6_k,
        _ => return None,
    })
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// F32 (type 0): little-endian IEEE floats, copied bit for bit.
pub fn f32_le(src: &[u8], dst: &mut [f32]) {
    for (s, d) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

/// F16 (type 1): widening f16 → f32 is exact (NaN payloads kept).
pub fn f16_le(src: &[u8], dst: &mut [f32]) {
    for (s, d) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *d = f16::from_bits(u16::from_le_bytes([s[0], s[1]])).to_f32();
    }
}

/// BF16 (type 30): the bf16 bits are the top half of the f32.
pub fn bf16_le(src: &[u8], dst: &mut [f32]) {
    for (s, d) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *d = f32::from_bits(u32::from(u16::from_le_bytes([s[0], s[1]])) << 16);
    }
}

/// Q4_0 (type 2): `{ f16 d; u8 qs[16] }`, `y = (q - 8) * d`; low nibbles are
/// values 0..16, high nibbles 16..32.
pub fn q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let qs = &b[2..18];
        let (lo, hi) = y.split_at_mut(16);
        for j in 0..16 {
            let x0 = (qs[j] & 0x0F) as i32 - 8;
            let x1 = (qs[j] >> 4) as i32 - 8;
            lo[j] = x0 as f32 * d;
            hi[j] = x1 as f32 * d;
        }
    }
}

/// Q4_1 (type 3): `{ f16 d; f16 m; u8 qs[16] }`, `y = q * d + m`.
pub fn q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(20).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        let qs = &b[4..20];
        let (lo, hi) = y.split_at_mut(16);
        for j in 0..16 {
            let x0 = (qs[j] & 0x0F) as f32;
            let x1 = (qs[j] >> 4) as f32;
            lo[j] = x0 * d + m;
            hi[j] = x1 * d + m;
        }
    }
}

/// Q5_0 (type 6): `{ f16 d; u8 qh[4]; u8 qs[16] }`, 5-bit quants whose fifth
/// bit comes from `qh` (bit j for value j), `y = (q - 16) * d`.
pub fn q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(22).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = &b[6..22];
        let (lo, hi) = y.split_at_mut(16);
        for j in 0..16 {
            let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;
            let x0 = ((qs[j] & 0x0F) | xh_0) as i32 - 16;
            let x1 = ((qs[j] >> 4) | xh_1) as i32 - 16;
            lo[j] = x0 as f32 * d;
            hi[j] = x1 as f32 * d;
        }
    }
}

/// Q5_1 (type 7): `{ f16 d; f16 m; u8 qh[4]; u8 qs[16] }`, `y = q * d + m`.
pub fn q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(24).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs = &b[8..24];
        let (lo, hi) = y.split_at_mut(16);
        for j in 0..16 {
            let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;
            let x0 = ((qs[j] & 0x0F) | xh_0) as f32;
            let x1 = ((qs[j] >> 4) | xh_1) as f32;
            lo[j] = x0 * d + m;
            hi[j] = x1 * d + m;
        }
    }
}

/// Q8_0 (type 8): `{ f16 d; i8 qs[32] }`, `y = q * d`.
pub fn q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let qs = &b[2..34];
        for (y, &q) in y.iter_mut().zip(qs) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j`
/// (0..8) packed into 12 bytes.
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K (type 12): 256-value super-blocks
/// `{ f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }` of eight 32-value
/// sub-blocks with 6-bit scale/min; `y = (d * sc) * q - (dmin * m)`.
pub fn q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(144).zip(dst.chunks_exact_mut(256)) {
        let d = f16_at(b, 0);
        let min = f16_at(b, 2);
        let scales = &b[4..16];
        let qs = &b[16..144];
        // Each 32-byte chunk of qs feeds two sub-blocks: low then high nibbles.
        for (k, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
            let (sc, m) = scale_min_k4(2 * k, scales);
            let d1 = d * sc as f32;
            let m1 = min * m as f32;
            let (sc, m) = scale_min_k4(2 * k + 1, scales);
            let d2 = d * sc as f32;
            let m2 = min * m as f32;
            let (lo, hi) = y.split_at_mut(32);
            for l in 0..32 {
                lo[l] = d1 * (q[l] & 0x0F) as f32 - m1;
                hi[l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// Q6_K (type 14): 256-value super-blocks
/// `{ u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }` of sixteen 16-value
/// sub-blocks; `y = d * sc * (q - 32)`, evaluated left to right as in C.
pub fn q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(210).zip(dst.chunks_exact_mut(256)) {
        let d = f16_at(b, 208);
        // Two halves of 128 values, each using 64 bytes of ql, 32 of qh and
        // 8 scales.
        for (h, y) in y.chunks_exact_mut(128).enumerate() {
            let ql = &b[64 * h..64 * h + 64];
            let qh = &b[128 + 32 * h..128 + 32 * h + 32];
            let sc = &b[192 + 8 * h..192 + 8 * h + 8];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                y[l] = d * sc[is] as i8 as f32 * q1 as f32;
                y[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
                y[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
                y[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_simple_block() {
        let mut b = vec![0u8; 34];
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        for i in 0..32 {
            b[2 + i] = (i as i8 - 16) as u8;
        }
        let mut y = [0.0f32; 32];
        q8_0(&b, &mut y);
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, (i as f32 - 16.0) * 0.5);
        }
    }

    #[test]
    fn scale_min_unpacking() {
        // sub-blocks 0..4 read the low 6 bits directly.
        let mut s = [0u8; 12];
        s[0] = 0b1100_0101; // sc0 = 5, top bits go to sc4
        s[4] = 0b0100_0011; // m0 = 3, top bits go to m4
        s[8] = 0x21; // sc4 low = 1, m4 low = 2
        assert_eq!(scale_min_k4(0, &s), (5, 3));
        assert_eq!(scale_min_k4(4, &s), (1 | (3 << 4), 2 | (1 << 4)));
    }

    #[test]
    fn short_buffers_do_not_panic() {
        for ty in GgmlType::ALL {
            if let Some(f) = dequantizer(ty) {
                let mut y = vec![0.0f32; 7];
                f(&[1, 2, 3], &mut y);
                f(&[0u8; 1000], &mut []);
            }
        }
    }
}
