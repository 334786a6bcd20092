//! A direct 2-D max pool on burn-flex's f32 NCHW tensors, with flex's own bits.
//!
//! An int8 CNN's convolutions got fast enough that Burn flex's `max_pool2d` became a third of
//! an int8 ResNet-18 (`benches/README.md`): flex computes the pooling through its 3-D pool with
//! an index per output, one bounds-checked tap at a time (its 1-D pool too, which runs here as
//! a height of 1). Here each output row is pooled 16 outputs at a time over the columns whose
//! taps are all inside the image, the running values kept in registers across the window's
//! taps (stored after each tap, they were forwarded slowly to the next tap's loads: 4× slower)
//! and a strided tap read from the plane split once by column phase. The order and the
//! comparison are flex's, so the result is the same bits, NaN and signed zeros included:
//! the first tap of the window in row-major order starts the running value, and a later tap
//! replaces it only when `tap > running` (so a NaN first tap stays, a later one is ignored, and
//! of equal values the first wins). `running = if tap > running { tap } else { running }` is
//! exactly x86's `maxps(tap, running)`, which is what the compiler makes of it. The few
//! columns at the borders take the same steps one output at a time.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::gemm::{Isa, OutPtr};
use super::spin_pool::parallel_for;
use super::{KernelBackend, host_f32, rows::is_dense};

/// Outputs of a row pooled together: one 512-bit vector of f32.
const LANES: usize = 16;
/// Outputs per parallel task, at least: below this the task overhead shows.
const TASK_OUTPUTS: usize = 16 * 1024;

/// `input [batch, channels, h, w]` max-pooled as `burn::nn::pool::MaxPool2d` does on flex, or
/// `None` where this kernel does not apply (another backend or dtype, an empty output).
/// `padding` is `((top, bottom), (left, right))`. As in Burn's module, a symmetric padding is
/// the pooling op's own (padded taps left out) and an asymmetric one counts as `-inf` values
/// (the module pads the input with `-inf` first).
pub fn try_max_pool2d<B: Backend>(
    isa: Isa,
    input: &Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: ((usize, usize), (usize, usize)),
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Option<Tensor<B, 4>> {
    let Some(KernelBackend::Flex) = KernelBackend::of::<B>() else {
        return None;
    };
    if !isa.runs_here() || kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
        return None;
    }
    let [batch, channels, height, width] = input.dims();
    let ((top, bottom), (left, right)) = padding;
    let out_size = [
        pool_output_size(
            height + top + bottom,
            kernel[0],
            stride[0],
            dilation[0],
            ceil_mode,
        ),
        pool_output_size(
            width + left + right,
            kernel[1],
            stride[1],
            dilation[1],
            ceil_mode,
        ),
    ];
    // A product of the sizes could wrap; any zero means nothing to pool.
    if [batch, channels, height, width, out_size[0], out_size[1]].contains(&0) {
        return None;
    }
    let host = host_f32(input).filter(|host| is_dense(&host.strides, &input.dims()))?;
    let call = MaxPool {
        input: host.as_slice(),
        planes: batch * channels,
        size: [height, width],
        kernel,
        stride,
        dilation,
        padding: [[top, bottom], [left, right]],
        padding_is_value: top != bottom || left != right,
        out_size,
    };
    tracing::trace!(?kernel, ?stride, ?out_size, ?isa, "max pool 2d");
    let mut out = vec![0f32; call.planes * out_size[0] * out_size[1]];
    max_pool(isa, &call, &mut out);
    Some(Tensor::from_data(
        TensorData::new(out, [batch, channels, out_size[0], out_size[1]]),
        &input.device(),
    ))
}

/// Flex's output size over a `padded` extent (its `pool_output_size` with the padding added).
fn pool_output_size(
    padded: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    ceil: bool,
) -> usize {
    let reach = dilation * (kernel - 1) + 1;
    match padded.checked_sub(reach) {
        None => usize::from(ceil),
        Some(room) if ceil => room.div_ceil(stride) + 1,
        Some(room) => room / stride + 1,
    }
}

/// One call: the input planes (NCHW, dense) and the pooling geometry.
pub(super) struct MaxPool<'a> {
    pub input: &'a [f32],
    pub planes: usize,
    pub size: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[[top, bottom], [left, right]]`.
    pub padding: [[usize; 2]; 2],
    pub padding_is_value: bool,
    pub out_size: [usize; 2],
}

/// Where one tap of one output falls along an axis.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tap {
    /// Inside the image, at this index.
    Image(usize),
    /// In padding that counts as a `-inf` value.
    NegInf,
    /// Outside everything the window may read: left out.
    Skipped,
}

impl MaxPool<'_> {
    /// Where tap `k` of output `o` falls along `axis` (0 rows, 1 columns).
    fn tap(&self, axis: usize, o: usize, k: usize) -> Tap {
        let [before, after] = self.padding[axis];
        let position = (o * self.stride[axis] + k * self.dilation[axis]) as isize - before as isize;
        let size = self.size[axis] as isize;
        if (0..size).contains(&position) {
            Tap::Image(position as usize)
        } else if self.padding_is_value
            && (-(before as isize)..size + after as isize).contains(&position)
        {
            Tap::NegInf
        } else {
            Tap::Skipped
        }
    }

    /// The output columns whose taps all fall inside the image: `lo..hi` (maybe empty).
    fn interior_columns(&self) -> std::ops::Range<usize> {
        let [left, _] = self.padding[1];
        let (sx, reach) = (self.stride[1], self.dilation[1] * (self.kernel[1] - 1));
        let lo = left.div_ceil(sx).min(self.out_size[1]);
        // The last tap `ox·sx + reach - left` must be below the width.
        let hi = match (self.size[1] + left).checked_sub(reach + 1) {
            Some(last) => (last / sx + 1).min(self.out_size[1]),
            None => 0,
        };
        lo..hi.max(lo)
    }
}

/// Pools every plane into `out` (`planes · h_out · w_out` values) on instruction set `isa`.
pub(super) fn max_pool(isa: Isa, call: &MaxPool<'_>, out: &mut [f32]) {
    let [h_out, w_out] = call.out_size;
    let per_plane = h_out * w_out;
    assert_eq!(out.len(), call.planes * per_plane);
    let planes_per_task = TASK_OUTPUTS
        .div_ceil(per_plane)
        .clamp(1, call.planes.max(1));
    let tasks = call.planes.div_ceil(planes_per_task);
    let plane_len = call.size[0] * call.size[1];
    let columns = call.interior_columns();
    let out_ptr = OutPtr(out.as_mut_ptr());
    let run_task = |task: usize| {
        let first = task * planes_per_task;
        // The plane's rows split by column phase of the stride (unused for stride 1).
        let mut phases = Vec::new();
        for plane in first..(first + planes_per_task).min(call.planes) {
            let input = &call.input[plane * plane_len..][..plane_len];
            // SAFETY: plane `plane`'s outputs are this task's alone, inside `out`.
            let out = unsafe { out_ptr.row(plane * per_plane, per_plane) };
            plane_on(isa, call, input, columns.clone(), &mut phases, out);
        }
    };
    if tasks == 1 {
        run_task(0);
    } else {
        parallel_for(tasks, &run_task);
    }
}

/// [`plane`] compiled for `isa`: the same scalar IEEE comparisons at every width.
fn plane_on(
    isa: Isa,
    call: &MaxPool<'_>,
    input: &[f32],
    columns: std::ops::Range<usize>,
    phases: &mut Vec<f32>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(
            call: &MaxPool<'_>,
            input: &[f32],
            columns: std::ops::Range<usize>,
            phases: &mut Vec<f32>,
            out: &mut [f32],
        ) {
            plane(call, input, columns, phases, out)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(
            call: &MaxPool<'_>,
            input: &[f32],
            columns: std::ops::Range<usize>,
            phases: &mut Vec<f32>,
            out: &mut [f32],
        ) {
            plane(call, input, columns, phases, out)
        }
        match isa {
            // SAFETY: `Isa::Avx512Vnni` is listed only where AVX-512F is, the AVX2 levels only
            // where AVX2 is (`Isa::available`).
            Isa::Avx512Vnni => return unsafe { avx512(call, input, columns, phases, out) },
            Isa::AvxVnni | Isa::Avx2 => return unsafe { avx2(call, input, columns, phases, out) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    plane(call, input, columns, phases, out)
}

/// One plane: each output row's interior columns [`LANES`] at a time (the running values stay
/// in registers across the window's taps), its border columns one output at a time, both in
/// flex's tap order.
#[inline(always)]
fn plane(
    call: &MaxPool<'_>,
    input: &[f32],
    columns: std::ops::Range<usize>,
    phases: &mut Vec<f32>,
    out: &mut [f32],
) {
    let [h_out, w_out] = call.out_size;
    let [kh, kw] = call.kernel;
    let [_, width] = call.size;
    let (sx, dx, left) = (call.stride[1], call.dilation[1], call.padding[1][0]);
    let phase_len = width.div_ceil(sx);
    if sx > 1 && !columns.is_empty() {
        split_phases(input, width, sx, phase_len, phases);
    }
    let source: &[f32] = if sx == 1 { input } else { phases };
    // Where each tap of the row's first interior output reads in `source`, in flex's order.
    let mut taps = Vec::with_capacity(kh * kw);
    for (oy, out_row) in out.chunks_exact_mut(w_out).enumerate().take(h_out) {
        for ox in (0..columns.start).chain(columns.end..w_out) {
            out_row[ox] = border_output(call, input, oy, ox);
        }
        if columns.is_empty() {
            continue;
        }
        taps.clear();
        // A `-inf` padding row first starts every output at `-inf`; after that it changes
        // nothing (`-inf > x` is never true).
        let mut starts_at_neg_inf = false;
        for ky in 0..kh {
            match call.tap(0, oy, ky) {
                Tap::Image(iy) => taps.extend((0..kw).map(|kx| {
                    let column = columns.start * sx + kx * dx - left;
                    if sx == 1 {
                        iy * width + column
                    } else {
                        (iy * sx + column % sx) * phase_len + column / sx
                    }
                })),
                Tap::NegInf => starts_at_neg_inf |= taps.is_empty(),
                Tap::Skipped => {}
            }
        }
        let (first, rest) = match taps.split_first() {
            Some((&first, rest)) if !starts_at_neg_inf => (Some(first), rest),
            _ => (None, &taps[..]),
        };
        pool_row(source, first, rest, &mut out_row[columns.clone()]);
    }
}

/// `out[i]`: the tap at `first + i` (or `-inf` without one), then each tap at `rest[t] + i`
/// replacing it when greater.
#[inline(always)]
fn pool_row(source: &[f32], first: Option<usize>, rest: &[usize], out: &mut [f32]) {
    let start = out.len() / LANES * LANES;
    let mut chunks = out.chunks_exact_mut(LANES);
    for (index, chunk) in chunks.by_ref().enumerate() {
        let start = index * LANES;
        let mut running = [f32::NEG_INFINITY; LANES];
        if let Some(first) = first {
            running.copy_from_slice(&source[first + start..][..LANES]);
        }
        for &tap in rest {
            let values: &[f32; LANES] = source[tap + start..][..LANES].try_into().unwrap();
            for (running, &value) in running.iter_mut().zip(values) {
                *running = if value > *running { value } else { *running };
            }
        }
        chunk.copy_from_slice(&running);
    }
    for (i, running) in chunks.into_remainder().iter_mut().enumerate() {
        *running = first.map_or(f32::NEG_INFINITY, |first| source[first + start + i]);
        for &tap in rest {
            let value = source[tap + start + i];
            *running = if value > *running { value } else { *running };
        }
    }
}

/// Each row of `plane` split by column phase: column `c` of row `y` at
/// `phases[(y · sx + c % sx) · phase_len + c / sx]`, so a strided tap's values are consecutive.
#[inline(always)]
fn split_phases(plane: &[f32], width: usize, sx: usize, phase_len: usize, phases: &mut Vec<f32>) {
    let row_len = sx * phase_len;
    phases.resize(plane.len() / width * row_len, 0.0);
    for (row, split) in plane
        .chunks_exact(width)
        .zip(phases.chunks_exact_mut(row_len))
    {
        if sx == 2 {
            // Stride 2 alone (ResNet's pool), written so the compiler vectorises the split.
            let (even, odd) = split.split_at_mut(phase_len);
            let pairs = row.chunks_exact(2);
            if let [last] = pairs.remainder() {
                even[width / 2] = *last;
            }
            for ((even, odd), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                *even = pair[0];
                *odd = pair[1];
            }
        } else {
            for (j, chunk) in row.chunks(sx).enumerate() {
                for (phase, &value) in chunk.iter().enumerate() {
                    split[phase * phase_len + j] = value;
                }
            }
        }
    }
}

/// One output by flex's steps: the window's taps in row-major order, padding left out or
/// `-inf`, the first tap the start, `tap > running` to replace it; `-inf` for an empty window.
fn border_output(call: &MaxPool<'_>, input: &[f32], oy: usize, ox: usize) -> f32 {
    let [kh, kw] = call.kernel;
    let width = call.size[1];
    let mut running: Option<f32> = None;
    for ky in 0..kh {
        let row = call.tap(0, oy, ky);
        if row == Tap::Skipped {
            continue;
        }
        for kx in 0..kw {
            let tap = match (row, call.tap(1, ox, kx)) {
                (_, Tap::Skipped) => continue,
                (Tap::Image(iy), Tap::Image(ix)) => input[iy * width + ix],
                _ => f32::NEG_INFINITY,
            };
            running = Some(match running {
                Some(value) if tap > value => tap,
                Some(value) => value,
                None => tap,
            });
        }
    }
    running.unwrap_or(f32::NEG_INFINITY)
}
