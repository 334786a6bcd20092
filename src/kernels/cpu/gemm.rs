//! The int8 GEMM on host memory: `x [M, K] (i8) @ W (i8)` accumulated exactly in i32.
//!
//! Work is split over panels of output channels, one task each, so decode (M = 1) is parallel
//! over channels and prefill reuses each packed weight panel for every row. Prefill panels are
//! [`PANEL`] wide, on rayon's pool; decode panels are [`DECODE_PANEL`] wide (enough tasks to
//! balance two threads even for a 256-channel product; full width for the tied logits' 262,144
//! channels) on the spinning pool of `spin_pool.rs`,
//! since a decode step is a long chain of products too short for a wake-up each.
//! Each panel runs on the widest instruction set the CPU has ([`Isa`]); every level gives the
//! same i32 bits, and the tests compare all levels the CPU can run against [`Isa::Portable`].

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::spin_pool::parallel_for;

/// Output channels per task when several rows share each packed panel (prefill).
pub(crate) const PANEL: usize = 256;

/// Output channels per task for decode-shaped products (fewer than [`DECODE_ROWS`] rows) of
/// channel-major weights: one AVX-512 block.
pub(crate) const DECODE_PANEL: usize = 64;

/// Below this many rows a product is decode-shaped: memory-bound, short, and frequent.
pub(crate) const DECODE_ROWS: usize = 4;
/// Output channels from which a decode product keeps full-width panels.
const WIDE_WEIGHT: usize = 16 * 1024;

/// A borrowed int8 weight as channel rows: output channel `j`'s `k` values are
/// `data[j * k..(j + 1) * k]` (the layout of every `Int8Weight`: see `kernels::ChannelRows`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WeightView<'a> {
    pub data: &'a [i8],
    pub k: usize,
    pub n: usize,
}

/// The instruction sets the kernels are written for, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 VNNI `vpdpbusd` on 512-bit registers.
    Avx512Vnni,
    /// AVX-VNNI `vpdpbusd` on 256-bit registers (Alder Lake and later, Zen 5).
    AvxVnni,
    /// AVX2 `vpmaddubsw` with the sign trick.
    Avx2,
    /// Plain Rust the compiler vectorises (NEON on aarch64 included).
    Portable,
}

/// The environment variable that caps the level the kernels use, as oneDNN's
/// `ONEDNN_MAX_CPU_ISA` does: `avx512vnni`, `avxvnni`, `avx2` or `portable`. It lets a
/// benchmark measure a lower level on a better CPU; a name that is not a level is ignored
/// (with a warning), and a cap above what the CPU runs changes nothing.
pub const MAX_ISA_VAR: &str = "BURN_INT8_MAX_ISA";

impl Isa {
    /// The names [`MAX_ISA_VAR`] takes, best first.
    pub const NAMES: [&'static str; 4] = ["avx512vnni", "avxvnni", "avx2", "portable"];

    pub fn name(self) -> &'static str {
        Isa::NAMES[self.rank()]
    }

    /// 0 for the best level, 3 for `Portable`.
    fn rank(self) -> usize {
        match self {
            Isa::Avx512Vnni => 0,
            Isa::AvxVnni => 1,
            Isa::Avx2 => 2,
            Isa::Portable => 3,
        }
    }

    /// The best level this CPU runs, detected once, capped by [`MAX_ISA_VAR`] when it is set.
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let cap = std::env::var(MAX_ISA_VAR).ok();
            Isa::best_within(&Isa::available(), cap.as_deref())
        })
    }

    /// The best of `levels` (best first, ending with `Portable`) at or below the level named
    /// `cap`; the best of all when `cap` is `None` or not a level's name.
    pub fn best_within(levels: &[Isa], cap: Option<&str>) -> Isa {
        let cap_rank = cap.and_then(|name| {
            let found = Isa::NAMES
                .iter()
                .position(|&n| n == name.trim().to_ascii_lowercase());
            if found.is_none() {
                tracing::warn!(
                    "{MAX_ISA_VAR}={name:?} is not one of {:?}: ignored",
                    Isa::NAMES
                );
            }
            found
        });
        levels
            .iter()
            .copied()
            .find(|level| cap_rank.is_none_or(|cap| level.rank() >= cap))
            .unwrap_or(Isa::Portable)
    }

    /// Whether this CPU runs `self` (the detected level is checked first: listing every level
    /// allocates).
    pub fn runs_here(self) -> bool {
        self == Isa::detect() || Isa::available().contains(&self)
    }

    /// Every level this CPU runs, best first (always ends with `Portable`).
    pub fn available() -> Vec<Isa> {
        let mut levels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                levels.push(Isa::Avx512Vnni);
            }
            if has!("avx2") && has!("avxvnni") {
                levels.push(Isa::AvxVnni);
            }
            if has!("avx2") {
                levels.push(Isa::Avx2);
            }
        }
        levels.push(Isa::Portable);
        levels
    }
}

/// Quantized activation rows, padded for the kernels: `k4 = K` rounded up to a multiple of 4
/// with zeros (a zero activation adds nothing whatever the weight), plus each row's sum,
/// which undoes the `+128` of the unsigned-times-signed VNNI product.
pub(crate) struct Activations {
    pub data: Vec<i8>,
    pub row_sums: Vec<i32>,
    pub m: usize,
    pub k: usize,
    pub k4: usize,
}

impl Activations {
    pub fn new(x: &[i8], m: usize, k: usize) -> Self {
        let k4 = k.div_ceil(4) * 4;
        let mut data = vec![0i8; m * k4];
        let mut row_sums = Vec::with_capacity(m);
        for (row, padded) in x.chunks_exact(k).zip(data.chunks_exact_mut(k4)) {
            padded[..k].copy_from_slice(row);
            row_sums.push(row.iter().map(|&v| v as i32).sum());
        }
        Activations {
            data,
            row_sums,
            m,
            k,
            k4,
        }
    }

    /// Keras's per-row AbsMax quantization of `x [m, k]` (f32), straight into the padded
    /// layout. Returns the rows and their scales. Rows are spread over threads when there are
    /// many (prefill), and each is quantized with the widest vectors the CPU has.
    pub fn quantize(x: &[f32], m: usize, k: usize) -> (Self, Vec<f32>) {
        /// Below this many elements one thread is quicker than waking the others.
        const PARALLEL_ELEMENTS: usize = 32 * 1024;
        let k4 = k.div_ceil(4) * 4;
        let mut data = vec![0i8; m * k4];
        let quantize = |(row, padded): (&[f32], &mut [i8])| quantize_padded_row(row, padded, k);
        let scales_and_sums: Vec<(f32, i32)> = if m * k >= PARALLEL_ELEMENTS {
            x.par_chunks_exact(k)
                .zip(data.par_chunks_exact_mut(k4))
                .map(quantize)
                .collect()
        } else {
            x.chunks_exact(k)
                .zip(data.chunks_exact_mut(k4))
                .map(quantize)
                .collect()
        };
        let (scales, row_sums) = scales_and_sums.into_iter().unzip();
        (
            Activations {
                data,
                row_sums,
                m,
                k,
                k4,
            },
            scales,
        )
    }

    /// Whether some activation is -128, which the AVX2 sign trick cannot negate.
    fn has_min_value(&self) -> bool {
        self.data.contains(&i8::MIN)
    }

    pub fn row(&self, r: usize) -> &[i8] {
        &self.data[r * self.k4..(r + 1) * self.k4]
    }
}

/// One activation row into its padded slot: the scale and the row's sum, compiled for the
/// widest vectors this CPU has (the same IEEE operations at every width, so the same bits).
fn quantize_padded_row(row: &[f32], padded: &mut [i8], k: usize) -> (f32, i32) {
    #[inline(always)]
    fn body(row: &[f32], padded: &mut [i8], k: usize) -> (f32, i32) {
        let scale = crate::quantizers::abs_max_quantize_row(row, &mut padded[..k]);
        (scale, padded.iter().map(|&v| v as i32).sum())
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
        fn avx512(row: &[f32], padded: &mut [i8], k: usize) -> (f32, i32) {
            body(row, padded, k)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(row: &[f32], padded: &mut [i8], k: usize) -> (f32, i32) {
            body(row, padded, k)
        }
        match Isa::detect() {
            // SAFETY: `Isa::detect` reports AVX-512 VNNI only with AVX-512F and BW, and the
            // AVX2 levels only with AVX2; VL, DQ and FMA are checked here.
            Isa::Avx512Vnni
                if std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq") =>
            {
                return unsafe { avx512(row, padded, k) };
            }
            Isa::Avx512Vnni | Isa::AvxVnni | Isa::Avx2
                if std::arch::is_x86_feature_detected!("fma") =>
            {
                return unsafe { avx2(row, padded, k) };
            }
            _ => {}
        }
    }
    body(row, padded, k)
}

/// Keras's rescale of one row's accumulators, `y = acc / (x_scale · w_scale) + bias`: the two
/// scales multiplied first, then one division, as in the generic path. Compiled for the widest
/// vectors this CPU has; division and the int-to-float conversion are exactly rounded at every
/// width, so every width gives the same bits. The logits of a decode step are 262,144 of these.
pub(crate) fn rescale_row(
    acc: &[i32],
    x_scale: f32,
    scales: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    #[inline(always)]
    fn body(acc: &[i32], x_scale: f32, scales: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        for ((y, &a), &w) in out.iter_mut().zip(acc).zip(scales) {
            *y = a as f32 / (x_scale * w);
        }
        if let Some(bias) = bias {
            for (y, &b) in out.iter_mut().zip(bias) {
                *y += b;
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl")]
        fn avx512(
            acc: &[i32],
            x_scale: f32,
            scales: &[f32],
            bias: Option<&[f32]>,
            out: &mut [f32],
        ) {
            body(acc, x_scale, scales, bias, out)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(acc: &[i32], x_scale: f32, scales: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
            body(acc, x_scale, scales, bias, out)
        }
        match Isa::detect() {
            // SAFETY: `Isa::detect` reports AVX-512 VNNI only with AVX-512F, and the AVX2 levels
            // only with AVX2; VL is checked here.
            Isa::Avx512Vnni if std::arch::is_x86_feature_detected!("avx512vl") => {
                return unsafe { avx512(acc, x_scale, scales, bias, out) };
            }
            Isa::Avx512Vnni | Isa::AvxVnni | Isa::Avx2 => {
                return unsafe { avx2(acc, x_scale, scales, bias, out) };
            }
            Isa::Portable => {}
        }
    }
    body(acc, x_scale, scales, bias, out)
}

/// `x @ w` with `epilogue(row, first_column, accumulators, outputs)` applied to each row's
/// slice of a panel, returned row-major `[m, n]`. Fusing the epilogue (rescale, bias) saves a
/// pass over the output, and a slice at a time lets the compiler vectorise it.
pub(crate) fn gemm<T, F>(isa: Isa, x: &Activations, w: WeightView<'_>, epilogue: F) -> Vec<T>
where
    T: Copy + Default + Send,
    F: Fn(usize, usize, &[i32], &mut [T]) + Sync,
{
    let mut outputs = gemm_shared(isa, x, &[w], |_, r, j0, acc, out: &mut [T]| {
        epilogue(r, j0, acc, out)
    });
    outputs.pop().unwrap_or_default()
}

/// [`gemm`] for several weights that share the activation rows (a block's q, k and v
/// projections; its gate and up projections): one job over the panels of all of them, the
/// epilogue told which weight (`epilogue(weight, row, first_column, accumulators, outputs)`),
/// one row-major `[m, n_i]` output per weight.
pub(crate) fn gemm_shared<T, F>(
    isa: Isa,
    x: &Activations,
    weights: &[WeightView<'_>],
    epilogue: F,
) -> Vec<Vec<T>>
where
    T: Copy + Default + Send,
    F: Fn(usize, usize, usize, &[i32], &mut [T]) + Sync,
{
    let m = x.m;
    debug_assert!(
        weights
            .iter()
            .all(|w| x.k == w.k && w.data.len() >= w.k * w.n)
    );
    // The AVX2 sign trick negates activations; -128 has no positive twin in i8.
    let isa = if isa == Isa::Avx2 && x.has_min_value() {
        Isa::Portable
    } else {
        isa
    };
    let mut outputs: Vec<Vec<T>> = weights
        .iter()
        .map(|w| vec![T::default(); m * w.n])
        .collect();
    let output_ptrs: Vec<OutPtr<T>> = outputs
        .iter_mut()
        .map(|out| OutPtr(out.as_mut_ptr()))
        .collect();
    // Decode panels are narrow, so that even a 256-channel product has tasks for every thread.
    // A very wide weight (the tied logits) has panels enough at full width: fewer, longer
    // tasks spend less on dispatch and epilogue calls.
    let panel_width = |w: &WeightView<'_>| {
        if m < DECODE_ROWS && w.n < WIDE_WEIGHT {
            DECODE_PANEL
        } else {
            PANEL
        }
    };
    // (weight, first output channel, width) of every task.
    let tasks: Vec<(usize, usize, usize)> = weights
        .iter()
        .enumerate()
        .flat_map(|(i, w)| {
            let width = panel_width(w);
            (0..w.n)
                .step_by(width)
                .map(move |j0| (i, j0, width.min(w.n - j0)))
        })
        .collect();
    let run_task = |t: usize| {
        let (i, j0, width) = tasks[t];
        let (w, out_ptr) = (weights[i], &output_ptrs[i]);
        // Decode panels (a few rows) accumulate on the stack, only the part in use zeroed: a
        // heap buffer per task was an allocation and a free per panel.
        let mut on_stack = [MaybeUninit::<i32>::uninit(); DECODE_ROWS * PANEL];
        let mut on_heap = Vec::new();
        let acc: &mut [i32] = if m * width <= on_stack.len() {
            let used = &mut on_stack[..m * width];
            for slot in used.iter_mut() {
                slot.write(0);
            }
            // SAFETY: every element of `used` was initialised just above.
            unsafe { &mut *(used as *mut [MaybeUninit<i32>] as *mut [i32]) }
        } else {
            on_heap.resize(m * width, 0);
            &mut on_heap
        };
        panel(isa, x, w, j0, width, acc);
        for (r, row) in acc.chunks_exact(width).enumerate() {
            // SAFETY: `r < m` and `j0 + width <= n`: inside weight `i`'s output; each task owns
            // its columns, so no two tasks touch the same elements.
            let out_row = unsafe { out_ptr.row(r * w.n + j0, width) };
            epilogue(i, r, j0, row, out_row);
        }
    };
    if m < DECODE_ROWS {
        parallel_for(tasks.len(), &run_task);
    } else {
        (0..tasks.len()).into_par_iter().for_each(run_task);
    }
    outputs
}

/// `out`'s base pointer, shared by the panel tasks, which write disjoint columns (and by the
/// attention tasks, which write disjoint runs).
pub(super) struct OutPtr<T>(pub(super) *mut T);

// SAFETY: tasks write disjoint elements (see `gemm`), and `T: Send`.
unsafe impl<T: Send> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// # Safety
    /// `start..start + len` is in bounds and no other task touches it while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn row(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Accumulators `acc [m, width]` of output channels `j0..j0 + width`.
fn panel(isa: Isa, x: &Activations, w: WeightView<'_>, j0: usize, width: usize, acc: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `Isa::available` only lists levels whose features this CPU has.
        match isa {
            Isa::Avx512Vnni => {
                return unsafe { super::x86::panel_avx512vnni(x, w, j0, width, acc) };
            }
            Isa::AvxVnni => return unsafe { super::x86::panel_avxvnni(x, w, j0, width, acc) },
            Isa::Avx2 => return unsafe { super::x86::panel_avx2(x, w, j0, width, acc) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    panel_portable(x, w, j0, width, acc)
}

/// The reference kernel: plain loops, exact by construction (|x·w| ≤ 128² fits i16).
fn panel_portable(x: &Activations, w: WeightView<'_>, j0: usize, width: usize, acc: &mut [i32]) {
    let k = w.k;
    for r in 0..x.m {
        let xr = &x.row(r)[..k];
        let out = &mut acc[r * width..(r + 1) * width];
        for (c, a) in out.iter_mut().enumerate() {
            let column = &w.data[(j0 + c) * k..(j0 + c + 1) * k];
            *a = xr
                .iter()
                .zip(column)
                .map(|(&a, &b)| (a as i16 * b as i16) as i32)
                .sum();
        }
    }
}
