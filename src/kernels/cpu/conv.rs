//! The direct int8 convolution on host memory: Keras's rule (one activation scale per output
//! position and group, one weight scale per output channel) without an im2col tensor.
//!
//! 1. **Input.** The NCHW f32 input is read in place when it needs no padding and the
//!    horizontal stride is 1; otherwise each channel plane is copied once, padded, its columns
//!    split by phase of the horizontal stride (`[batch, c_in, phase, hp, wq]`), so that
//!    consecutive output columns read consecutive floats for every tap, whatever the stride.
//! 2. **Scales.** Each output position's AbsMax over its window is the maximum over the taps of
//!    a per-pixel maximum over the group's channels (max is exact, so this is the im2col row's
//!    AbsMax bit for bit); the scale is `127 / (amax + 1e-7)`, one IEEE division, as Keras.
//! 3. **Packing.** Positions go in groups of [`LANES`] (flattened over batch, rows and columns:
//!    a group may span output rows and images). For each group the quantized activations are
//!    written as quads `[k / 4][lane][4]` in the weight's own `(c, i, j)` order, so a weight
//!    quad of one output channel is 4 bytes of its channel row, broadcast against 16 positions:
//!    the weight is read in place, never packed.
//! 4. **Product and epilogue.** `vpdpbusd` (or AVX2's sign trick, or plain loops) accumulates
//!    16 positions × 8 channels in registers; the epilogue `acc / (x_scale · w_scale) + bias`
//!    writes 16 consecutive NCHW outputs of a channel (positions are contiguous in NCHW).
//!
//! Depthwise convolutions (one input channel per group) have K = kh·kw: a product that short
//! does not pay, so they run a kernel of their own on the unpadded input (`depthwise.rs`).
//!
//! Every instruction set gives the same bits: the packing and epilogue are the same IEEE
//! operations at every width, and the i32 sums are exact. Non-finite inputs, where vector
//! max and min differ from the scalar rule, go back to the generic path (`None`).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::conv_sample;
use super::depthwise::{Depthwise, depthwise};
use super::gemm::{Isa, OutPtr};
use super::spin_pool::parallel_for;
use super::{Host, HostValues, host_f32, host_int8, host_vector, rows_view};
use crate::Scheme;
use crate::kernels::ChannelRows;
use crate::kernels::conv::ConvGeometry;
use crate::quantizers::{ABS_MAX_EPSILON, INT8_MAX};

/// Output positions per packed group: one 512-bit vector of f32 or i32.
pub(super) const LANES: usize = 16;
/// Output channels per register tile.
pub(super) const TILE_CHANNELS: usize = 8;
/// Lane groups per register tile.
pub(super) const TILE_GROUPS: usize = 2;
/// Packed activations per task, in bytes: they stay in L2 while every channel block reads them.
const PACKED_BYTES: usize = 128 * 1024;

thread_local! {
    /// Each thread's packed-activation buffer, reused across calls.
    static PACKED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One call's sizes. The prepared input is `[batch, c_in, phases, hp, wq]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub groups: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub h_out: usize,
    pub w_out: usize,
    pub hp: usize,
    pub wq: usize,
    pub phases: usize,
}

impl ConvShape {
    fn c_in_group(&self) -> usize {
        self.c_in / self.groups
    }
    fn c_out_group(&self) -> usize {
        self.c_out / self.groups
    }
    /// The length of an im2col row: a group's channels times the taps.
    fn k(&self) -> usize {
        self.c_in_group() * self.kh * self.kw
    }
    fn plane(&self) -> usize {
        self.phases * self.hp * self.wq
    }
    fn image_positions(&self) -> usize {
        self.h_out * self.w_out
    }
    fn positions(&self) -> usize {
        self.batch * self.image_positions()
    }
    /// Where tap `(c, i, j)` of a group's first channel is, from a position's base.
    fn tap_offset(&self, c: usize, i: usize, j: usize) -> usize {
        let column = j * self.dilation[1];
        c * self.plane()
            + (column % self.phases) * self.hp * self.wq
            + i * self.dilation[0] * self.wq
            + column / self.phases
    }
    /// The offsets of every `k` of group `group`'s im2col row, in the weight's `(c, i, j)` order.
    fn row_offsets(&self, group: usize) -> Vec<usize> {
        let first = group * self.c_in_group() * self.plane();
        let mut offsets = Vec::with_capacity(self.k());
        for c in 0..self.c_in_group() {
            for i in 0..self.kh {
                for j in 0..self.kw {
                    offsets.push(first + self.tap_offset(c, i, j));
                }
            }
        }
        offsets
    }

    /// The lane group of positions `first..` (at most [`LANES`], none at or past `end`).
    pub(super) fn lane_group(&self, first: usize, end: usize) -> LaneGroup {
        let m = self.image_positions();
        let len = (end - first).min(LANES);
        let mut group = LaneGroup {
            len,
            ..LaneGroup::default()
        };
        let mut lane = 0;
        while lane < len {
            let position = first + lane;
            let (b, p) = (position / m, position % m);
            let (oy, ox) = (p / self.w_out, p % self.w_out);
            let run = (self.w_out - ox).min(len - lane);
            group.inputs[group.input_runs] = Run {
                start: lane,
                end: lane + run,
                base: b * self.c_in * self.plane() + oy * self.stride[0] * self.wq + ox,
            };
            group.input_runs += 1;
            lane += run;
        }
        lane = 0;
        while lane < len {
            let position = first + lane;
            let (b, p) = (position / m, position % m);
            let run = (m - p).min(len - lane);
            group.outputs[group.output_runs] = Run {
                start: lane,
                end: lane + run,
                base: b * self.c_out * m + p,
            };
            group.output_runs += 1;
            lane += run;
        }
        group
    }
}

/// Lanes `start..end` of a group read (or write) consecutive elements from `base`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Run {
    pub start: usize,
    pub end: usize,
    pub base: usize,
}

impl Run {
    /// The run's lanes as a 16-bit mask.
    pub(super) fn mask(&self) -> u16 {
        let below = |lane: usize| ((1u32 << lane) - 1) as u16;
        below(self.end) & !below(self.start)
    }
}

/// Up to [`LANES`] consecutive output positions: where their inputs are (one run per output
/// row crossed) and where their outputs go (one run per image crossed).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LaneGroup {
    pub len: usize,
    pub inputs: [Run; LANES],
    pub input_runs: usize,
    pub outputs: [Run; LANES],
    pub output_runs: usize,
}

impl LaneGroup {
    pub(super) fn input_runs(&self) -> &[Run] {
        &self.inputs[..self.input_runs]
    }
    pub(super) fn output_runs(&self) -> &[Run] {
        &self.outputs[..self.output_runs]
    }
}

/// A packed lane group's positions and activation scales (1.0 in lanes past its end).
pub(super) struct PackedGroup {
    pub lanes: LaneGroup,
    pub scales: [f32; LANES],
}

/// What a register tile's epilogue needs for its `nr` channels.
pub(super) struct Epilogue<'a> {
    /// Each channel's `128 · Σw` (0 where the activations were packed signed).
    pub corrections: &'a [i32],
    pub w_scales: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub out: &'a OutPtr<f32>,
    /// Where the tile's first channel starts in an image's output (`channel · m`).
    pub channel_offset: usize,
    /// Positions per image.
    pub m: usize,
}

/// Keras's activation scale of an AbsMax.
pub(super) fn scale_of(amax: f32) -> f32 {
    INT8_MAX / (amax + ABS_MAX_EPSILON)
}

/// Keras's quantization of one value, `clip(round_half_to_even(v · scale), -127, 127)`.
#[inline(always)]
pub(super) fn quantize(value: f32, scale: f32) -> i8 {
    (value * scale).clamp(-INT8_MAX, INT8_MAX).round_ties_even() as i8
}

/// The direct convolution of `input [batch, c_in, h, w]` (f32) with channel rows
/// `[c_out, c_in / groups · kh · kw]`, on instruction set `isa`; `None` where the generic path
/// must run (another backend, a dtype other than f32, a non-finite input, shapes that do not
/// fit).
pub(crate) fn try_conv2d<B: Backend>(
    isa: Isa,
    input: &Tensor<B, 4>,
    weight: &ChannelRows<B>,
    kernel_size: [usize; 2],
    bias: Option<&Tensor<B, 1>>,
    geometry: ConvGeometry,
) -> Option<Tensor<B, 4>> {
    let per_sample = match weight.format.scheme {
        Scheme::Keras => false,
        Scheme::Sample => true,
        Scheme::Q8_0 => return None,
    };
    if !isa.runs_here() {
        return None;
    }
    let [batch, c_in, height, width] = input.dims();
    let [c_out, k] = weight.dims();
    let [kh, kw] = kernel_size;
    let [h_out, w_out] = geometry.direct_out_size(input, weight, kernel_size, bias)?;
    let ConvGeometry {
        stride,
        dilation,
        groups,
        padding: ((top, bottom), (left, right)),
    } = geometry;
    let (hp, wp) = (height + top + bottom, width + left + right);
    let phases = stride[1];
    let shape = ConvShape {
        batch,
        c_in,
        c_out,
        groups,
        kh,
        kw,
        stride,
        dilation,
        h_out,
        w_out,
        hp,
        wq: wp.div_ceil(phases),
        phases,
    };

    let weight_host = host_int8(&weight.values)?;
    let weight_view = rows_view(&weight_host, c_out, k)?;
    let scales = host_vector(&weight.scale)?;
    let bias = match bias {
        Some(bias) => Some(host_vector(bias)?),
        None => None,
    };
    let dims = [batch, c_in, height, width];
    let x = match host_f32(input) {
        Some(host) if super::rows::is_dense(&host.strides, &dims) => Ok(host),
        _ => Err(input.clone().into_data().into_vec::<f32>().ok()?),
    };
    let x_values: &[f32] = match &x {
        Ok(host) => host.as_slice(),
        Err(values) => values,
    };
    // The depthwise kernel (Keras's rule) finds non-finite inputs itself, from its outputs.
    if c_in == groups && !per_sample {
        return depthwise_conv2d(
            isa,
            input,
            x_values,
            &shape,
            [top, left],
            weight_view.data,
            &scales,
            bias.as_ref(),
        );
    }
    let len = shape.positions() * c_out;
    // Every output is written once, through raw pointers (`conv_gemm`), so the buffer is not
    // zeroed first (a serial memset of the whole output: 4% of a batch-8 ResNet-18).
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let operands = |shape, activations| Parts {
        isa,
        shape,
        activations,
        weight: weight_view.data,
        scales: scales.as_slice(),
        bias: bias.as_ref().map(Host::as_slice),
    };
    // `Scheme::Sample`'s scales, one per image (a NaN or an infinity declines here).
    let sample_scales = if per_sample {
        Some(conv_sample::sample_scales(isa, x_values, batch)?)
    } else {
        None
    };
    if let Some(sample_scales) = &sample_scales
        && kh * kw > 1
    {
        // Each value quantized once (not once per window that reads it), into a buffer kept
        // for the next call.
        let mut bytes = conv_sample::take_buffer();
        conv_sample::prepare(
            isa,
            x_values,
            &shape,
            [height, width],
            [top, left],
            sample_scales,
            unsigned(isa),
            &mut bytes,
        );
        tracing::trace!(?shape, ?isa, "int8 conv2d, per sample");
        let activations = Activations::SampleBytes {
            bytes: &bytes,
            scales: sample_scales,
        };
        let written = conv_gemm(&operands(shape, activations), OutPtr(out.as_mut_ptr()));
        conv_sample::put_buffer(bytes);
        if !written {
            return None;
        }
    } else {
        let unpadded = top + bottom + left + right == 0;
        let mut shape = shape;
        let prepared = if unpadded && phases == 1 {
            match x {
                Ok(host) => HostValues::InPlace(host),
                Err(values) => HostValues::Copied(values),
            }
        } else if unpadded && kh == 1 && kw == 1 {
            let values = subsample(x_values, &shape, height, width);
            shape = ConvShape {
                stride: [1, 1],
                hp: shape.h_out,
                wq: shape.w_out,
                phases: 1,
                ..shape
            };
            HostValues::Copied(values)
        } else {
            HostValues::Copied(prepare(x_values, &shape, height, width, top, left))
        };
        tracing::trace!(?shape, ?isa, per_sample, "int8 conv2d");
        // A 1×1 kernel reads each value once: per sample, the values are quantized as they
        // are packed (no byte copy of the input first).
        let activations = match &sample_scales {
            Some(scales) => Activations::SampleFloats {
                input: prepared.as_slice(),
                scales,
            },
            None => Activations::PerPosition(prepared.as_slice()),
        };
        // A window that reads a NaN or an infinity declines to the generic path (found while
        // the scales are computed: no separate pass over the input).
        if !conv_gemm(&operands(shape, activations), OutPtr(out.as_mut_ptr())) {
            return None;
        }
    }
    // SAFETY: `conv_gemm` wrote all `len` outputs: its tasks cover every (group, lane group,
    // channel) and each tile's epilogue stores every valid lane of its groups.
    unsafe { out.set_len(len) };
    Some(Tensor::from_data(
        TensorData::new(out, [batch, c_out, shape.h_out, shape.w_out]),
        &input.device(),
    ))
}

/// The depthwise case of [`try_conv2d`] (`depthwise.rs`), on the unpadded input.
#[allow(clippy::too_many_arguments)]
fn depthwise_conv2d<B: Backend>(
    isa: Isa,
    input: &Tensor<B, 4>,
    x: &[f32],
    shape: &ConvShape,
    padding: [usize; 2],
    weight: &[i8],
    w_scales: &Host<f32>,
    bias: Option<&Host<f32>>,
) -> Option<Tensor<B, 4>> {
    let [_, _, height, width] = input.dims();
    let call = Depthwise {
        input: x,
        batch: shape.batch,
        channels: shape.c_in,
        height,
        width,
        multiplier: shape.c_out_group(),
        kernel: [shape.kh, shape.kw],
        stride: shape.stride,
        dilation: shape.dilation,
        padding,
        out_size: [shape.h_out, shape.w_out],
        weight,
        w_scales: w_scales.as_slice(),
        bias: bias.map(Host::as_slice),
    };
    if !call.supported() {
        return None;
    }
    tracing::trace!(?shape, ?isa, "int8 depthwise conv2d");
    let out = depthwise(isa, &call)?;
    Some(Tensor::from_data(
        TensorData::new(out, [shape.batch, shape.c_out, shape.h_out, shape.w_out]),
        &input.device(),
    ))
}

/// One call's operands in host memory.
struct Parts<'a> {
    isa: Isa,
    shape: ConvShape,
    activations: Activations<'a>,
    /// Channel rows `[c_out, k]`.
    weight: &'a [i8],
    scales: &'a [f32],
    bias: Option<&'a [f32]>,
}

/// Pads each channel plane and splits its columns by phase of the horizontal stride.
fn prepare(
    x: &[f32],
    shape: &ConvShape,
    height: usize,
    width: usize,
    top: usize,
    left: usize,
) -> Vec<f32> {
    let plane = shape.plane();
    let planes = shape.batch * shape.c_in;
    let mut out = vec![0f32; planes * plane];
    let out_ptr = OutPtr(out.as_mut_ptr());
    let (phases, hp, wq) = (shape.phases, shape.hp, shape.wq);
    let copy_plane = |index: usize| {
        // SAFETY: plane `index` is this task's alone, inside `out`.
        let dest = unsafe { out_ptr.row(index * plane, plane) };
        let source = &x[index * height * width..(index + 1) * height * width];
        for (y, row) in source.chunks_exact(width).enumerate() {
            let y = y + top;
            for phase in 0..phases {
                let dest_row = &mut dest[phase * hp * wq + y * wq..][..wq];
                match phases {
                    1 => dest_row[left..left + width].copy_from_slice(row),
                    2 => copy_phase::<2>(row, left, phase, dest_row),
                    _ => copy_phase_any(row, left, phase, phases, dest_row),
                }
            }
        }
    };
    if planes * plane < 64 * 1024 {
        (0..planes).for_each(copy_plane);
    } else {
        parallel_for(planes, &copy_plane);
    }
    out
}

/// The columns `phase, phase + S, ...` of a row padded by `left` zeros (the zeros are already
/// in `dest`). `S` a constant, so the compiler vectorises the strided reads.
fn copy_phase<const S: usize>(row: &[f32], left: usize, phase: usize, dest: &mut [f32]) {
    // Padded column `q * S + phase` is source column `q * S + phase - left`.
    let first = left.saturating_sub(phase).div_ceil(S);
    let end = (left + row.len())
        .saturating_sub(phase)
        .div_ceil(S)
        .min(dest.len());
    for q in first..end {
        dest[q] = row[q * S + phase - left];
    }
}

fn copy_phase_any(row: &[f32], left: usize, phase: usize, stride: usize, dest: &mut [f32]) {
    let first = left.saturating_sub(phase).div_ceil(stride);
    let end = (left + row.len())
        .saturating_sub(phase)
        .div_ceil(stride)
        .min(dest.len());
    for q in first..end {
        dest[q] = row[q * stride + phase - left];
    }
}

/// A 1×1 convolution with stride and no padding reads one pixel in `stride`: those pixels,
/// `[batch, c_in, h_out, w_out]`, are the input of the same convolution with stride 1.
fn subsample(x: &[f32], shape: &ConvShape, height: usize, width: usize) -> Vec<f32> {
    let (h_out, w_out, [sy, sx]) = (shape.h_out, shape.w_out, shape.stride);
    let planes = shape.batch * shape.c_in;
    let mut out = vec![0f32; planes * h_out * w_out];
    let out_ptr = OutPtr(out.as_mut_ptr());
    let copy_plane = |index: usize| {
        // SAFETY: plane `index` is this task's alone, inside `out`.
        let dest = unsafe { out_ptr.row(index * h_out * w_out, h_out * w_out) };
        let source = &x[index * height * width..(index + 1) * height * width];
        for (oy, dest_row) in dest.chunks_exact_mut(w_out).enumerate() {
            let row = &source[oy * sy * width..];
            match sx {
                2 => copy_phase::<2>(row, 0, 0, dest_row),
                _ => copy_phase_any(row, 0, 0, sx, dest_row),
            }
        }
    };
    if planes * h_out * w_out < 64 * 1024 {
        (0..planes).for_each(copy_plane);
    } else {
        parallel_for(planes, &copy_plane);
    }
    out
}

/// Output channels of group `group` from `first`, at most `count` of them.
fn channel_range(shape: &ConvShape, group: usize, first: usize, count: usize) -> (usize, usize) {
    let start = group * shape.c_out_group() + first;
    (start, (first + count).min(shape.c_out_group()) - first)
}

/// The grouped (or dense) convolution as one implicit GEMM per group, written through
/// `out_ptr` (`positions · c_out` floats, which may be uninitialized: nothing reads them).
/// Returns `false`, having written nothing, when a window reads a NaN or an infinity.
fn conv_gemm(parts: &Parts<'_>, out_ptr: OutPtr<f32>) -> bool {
    let shape = parts.shape;
    let (k, positions, groups) = (shape.k(), shape.positions(), shape.groups);
    let k4 = k.div_ceil(4) * 4;
    let isa = parts.isa;
    // The weight's rows padded to whole quads when K is not a multiple of 4 (a 3-channel
    // stem): zero weights make whatever the padding activations hold add nothing.
    let padded_weight: Option<Vec<i8>> = (k4 != k).then(|| {
        let mut padded = vec![0i8; shape.c_out * k4];
        for (row, source) in padded
            .chunks_exact_mut(k4)
            .zip(parts.weight.chunks_exact(k))
        {
            row[..k].copy_from_slice(source);
        }
        padded
    });
    let weight = padded_weight.as_deref().unwrap_or(parts.weight);
    // VNNI multiplies unsigned activations (`q + 128`): each channel's `128 · Σw` comes off.
    let flip = unsigned(isa);
    let corrections: Vec<i32> = if flip {
        unsigned_corrections(weight, k4)
    } else {
        vec![0; shape.c_out]
    };
    // Keras's rule: each position's scale, `[groups, positions]` (none per sample).
    let position_scales = match parts.activations {
        Activations::PerPosition(input) => match position_scales(parts, input) {
            Some(scales) => scales,
            None => return false,
        },
        Activations::SampleBytes { .. } | Activations::SampleFloats { .. } => Vec::new(),
    };
    let m = shape.image_positions();
    let offsets: Vec<Vec<usize>> = (0..groups).map(|g| shape.row_offsets(g)).collect();

    // Tasks: (group, lane groups, channels). Channels are split only when positions alone
    // leave threads idle (a late layer at batch 1).
    let lane_groups = positions.div_ceil(LANES);
    let group_bytes = k4 * LANES;
    let per_task = (PACKED_BYTES / group_bytes).clamp(TILE_GROUPS, 64) / TILE_GROUPS * TILE_GROUPS;
    let position_tasks = lane_groups.div_ceil(per_task);
    let wanted = 4 * rayon::current_num_threads();
    let channel_blocks = shape.c_out_group().div_ceil(TILE_CHANNELS);
    // Each channel task packs its positions again: at least 4 blocks (32 channels) each.
    let channel_tasks = wanted
        .div_ceil(position_tasks * groups)
        .clamp(1, channel_blocks.div_ceil(4));
    let channels_per_task = channel_blocks.div_ceil(channel_tasks) * TILE_CHANNELS;
    let channel_tasks = shape.c_out_group().div_ceil(channels_per_task);
    let tasks = groups * position_tasks * channel_tasks;

    let run_task = |task: usize| {
        let group = task / (position_tasks * channel_tasks);
        let position_task = task / channel_tasks % position_tasks;
        let channel_task = task % channel_tasks;
        let first_group = position_task * per_task;
        let group_count = per_task.min(lane_groups - first_group);
        let (first_channel, channel_count) = channel_range(
            &shape,
            group,
            channel_task * channels_per_task,
            channels_per_task,
        );
        PACKED.with_borrow_mut(|packed| {
            if packed.len() < group_count * group_bytes {
                packed.resize(group_count * group_bytes, 0);
            }
            let mut packed_groups = Vec::with_capacity(group_count);
            for (i, slot) in packed
                .chunks_exact_mut(group_bytes)
                .take(group_count)
                .enumerate()
            {
                let first = (first_group + i) * LANES;
                let lanes = shape.lane_group(first, positions);
                let mut lane_scales = [1f32; LANES];
                match parts.activations {
                    Activations::PerPosition(_) => {
                        let scales = &position_scales[group * positions + first..];
                        lane_scales[..lanes.len].copy_from_slice(&scales[..lanes.len]);
                    }
                    Activations::SampleBytes { scales, .. }
                    | Activations::SampleFloats { scales, .. } => {
                        for (lane, scale) in lane_scales.iter_mut().take(lanes.len).enumerate() {
                            *scale = scales[(first + lane) / m];
                        }
                    }
                }
                let offsets = &offsets[group];
                match parts.activations {
                    Activations::PerPosition(input) | Activations::SampleFloats { input, .. } => {
                        pack(isa, input, offsets, &lanes, &lane_scales, flip, slot)
                    }
                    Activations::SampleBytes { bytes, .. } => {
                        conv_sample::pack(isa, bytes, offsets, &lanes, flip, slot)
                    }
                }
                packed_groups.push(PackedGroup {
                    lanes,
                    scales: lane_scales,
                });
            }
            let mut acc = [[0i32; TILE_GROUPS * LANES]; TILE_CHANNELS];
            for n0 in (0..channel_count).step_by(TILE_CHANNELS) {
                let nr = TILE_CHANNELS.min(channel_count - n0);
                let channel0 = first_channel + n0;
                let rows = &weight[channel0 * k4..(channel0 + nr) * k4];
                let epilogue = Epilogue {
                    corrections: &corrections[channel0..channel0 + nr],
                    w_scales: &parts.scales[channel0..channel0 + nr],
                    bias: parts.bias.map(|bias| &bias[channel0..channel0 + nr]),
                    out: &out_ptr,
                    channel_offset: channel0 * m,
                    m,
                };
                for g0 in (0..group_count).step_by(TILE_GROUPS) {
                    let mr = TILE_GROUPS.min(group_count - g0);
                    let x = &packed[g0 * group_bytes..(g0 + mr) * group_bytes];
                    let groups = &packed_groups[g0..g0 + mr];
                    // The x86 tiles rescale and store from registers.
                    #[cfg(target_arch = "x86_64")]
                    {
                        use super::x86_conv as x86;
                        // SAFETY: the level is this CPU's (`Isa::available`); sizes as
                        // `tile_portable` checks them; each task writes only its own
                        // (position, channel) outputs.
                        unsafe {
                            match isa {
                                Isa::Avx512Vnni => {
                                    x86::tile_avx512vnni(x, groups, k4, rows, nr, &epilogue)
                                }
                                Isa::AvxVnni => {
                                    x86::tile_avxvnni(x, groups, k4, rows, nr, &epilogue)
                                }
                                Isa::Avx2 => x86::tile_avx2(x, groups, k4, rows, nr, &epilogue),
                                Isa::Portable => {}
                            }
                        }
                        if isa != Isa::Portable {
                            continue;
                        }
                    }
                    tile_portable(x, mr, k4, rows, nr, &mut acc);
                    for (i, group) in groups.iter().enumerate() {
                        for (j, channel_acc) in acc.iter().take(nr).enumerate() {
                            let mut lane_acc = [0i32; LANES];
                            lane_acc.copy_from_slice(&channel_acc[i * LANES..(i + 1) * LANES]);
                            store_lanes(&lane_acc, &group.scales, j, &group.lanes, &epilogue);
                        }
                    }
                }
            }
        });
    };
    if tasks == 1 {
        run_task(0);
    } else {
        parallel_for(tasks, &run_task);
    }
    true
}

/// Each channel row's `128 · Σw` (the offset of activations packed as `q + 128`). The weight
/// is read from memory once per call for this, so a large one is split over the threads (the
/// serial pass was 6% of a batch-1 ResNet-18, all of it on one core).
fn unsigned_corrections(weight: &[i8], k4: usize) -> Vec<i32> {
    let sum = |row: &[i8]| 128 * row.iter().map(|&w| w as i32).sum::<i32>();
    if weight.len() < 256 * 1024 {
        return weight.chunks_exact(k4).map(sum).collect();
    }
    let rows = weight.len() / k4;
    let mut corrections = vec![0i32; rows];
    let rows_per_task = rows.div_ceil(4 * rayon::current_num_threads());
    let out_ptr = OutPtr(corrections.as_mut_ptr());
    parallel_for(rows.div_ceil(rows_per_task), &|task| {
        let first = task * rows_per_task;
        let count = rows_per_task.min(rows - first);
        // SAFETY: rows `first..first + count` are this task's alone, inside `corrections`.
        let dest = unsafe { out_ptr.row(first, count) };
        let source = weight[first * k4..(first + count) * k4].chunks_exact(k4);
        for (correction, row) in dest.iter_mut().zip(source) {
            *correction = sum(row);
        }
    });
    corrections
}

/// The prepared input (`[batch, c_in, phases, hp, wq]`) and how it is scaled.
#[derive(Clone, Copy)]
enum Activations<'a> {
    /// Keras's rule: f32 values; each window's scale is found from them ([`position_scales`]).
    PerPosition(&'a [f32]),
    /// `Scheme::Sample`: the values quantized once with their image's scale (`conv_sample.rs`:
    /// `q + 128` where [`unsigned`]), and those scales, `[batch]`.
    SampleBytes { bytes: &'a [u8], scales: &'a [f32] },
    /// `Scheme::Sample` for a 1×1 kernel: f32 values, quantized as they are packed.
    SampleFloats { input: &'a [f32], scales: &'a [f32] },
}

/// Whether the level's product takes unsigned activations (`q + 128`, VNNI's `vpdpbusd`).
pub(super) fn unsigned(isa: Isa) -> bool {
    matches!(isa, Isa::Avx512Vnni | Isa::AvxVnni)
}

/// Every output position's activation scale, per group: `[groups, positions]`; `None` when a
/// window reads a NaN or an infinity. Every value a window reads is in the rows this pass reads
/// (all their columns), so that is checked here, on values already loaded: the VNNI rounding
/// would saturate a NaN to an integer, so the outputs could not tell.
fn position_scales(parts: &Parts<'_>, input: &[f32]) -> Option<Vec<f32>> {
    let shape = parts.shape;
    let (plane, m, positions) = (shape.plane(), shape.image_positions(), shape.positions());
    let (phases, hp, wq, w_out) = (shape.phases, shape.hp, shape.wq, shape.w_out);
    let [sy, _] = shape.stride;
    let c_in_group = shape.c_in_group();
    let mut scales = vec![0f32; shape.groups * positions];
    let scales_ptr = OutPtr(scales.as_mut_ptr());
    // Tasks: (image, group, a band of output rows), enough to keep every thread busy.
    let images = shape.batch * shape.groups;
    let bands = (4 * rayon::current_num_threads())
        .div_ceil(images)
        .clamp(1, shape.h_out);
    let rows_per_band = shape.h_out.div_ceil(bands);
    let bands = shape.h_out.div_ceil(rows_per_band);
    let reach = (shape.kh - 1) * shape.dilation[0] + 1;
    let non_finite = AtomicBool::new(false);
    let band = |task: usize| {
        let (image, band) = (task / bands, task % bands);
        let (b, group) = (image / shape.groups, image % shape.groups);
        let (oy0, oy1) = (
            band * rows_per_band,
            ((band + 1) * rows_per_band).min(shape.h_out),
        );
        // The input rows this band reads, in every phase: their per-pixel AbsMax over the
        // group's channels (max is exact, so the window's maximum of these is the row's AbsMax).
        let (y0, y1) = (oy0 * sy, ((oy1 - 1) * sy + reach).min(hp));
        let rows = y1 - y0;
        let mut pixel_max = vec![0f32; phases * rows * wq];
        let first = (b * shape.c_in + group * c_in_group) * plane;
        let mut finite = true;
        for channel in input[first..first + c_in_group * plane].chunks_exact(plane) {
            for phase in 0..phases {
                let source = &channel[phase * hp * wq + y0 * wq..][..rows * wq];
                let maxes = &mut pixel_max[phase * rows * wq..][..rows * wq];
                for (max, &v) in maxes.iter_mut().zip(source) {
                    let a = v.abs();
                    finite &= a <= f32::MAX;
                    *max = if a > *max { a } else { *max };
                }
            }
        }
        if !finite {
            non_finite.store(true, Ordering::Relaxed);
            return;
        }
        let mut amax = vec![0f32; w_out];
        for oy in oy0..oy1 {
            amax.fill(0.0);
            for i in 0..shape.kh {
                for j in 0..shape.kw {
                    let column = j * shape.dilation[1];
                    let row = oy * sy + i * shape.dilation[0] - y0;
                    let start = (column % phases) * rows * wq + row * wq + column / phases;
                    for (max, &a) in amax.iter_mut().zip(&pixel_max[start..start + w_out]) {
                        *max = if a > *max { a } else { *max };
                    }
                }
            }
            // SAFETY: this task alone writes these positions of this image and group.
            let out = unsafe { scales_ptr.row(group * positions + b * m + oy * w_out, w_out) };
            for (scale, &a) in out.iter_mut().zip(&amax) {
                *scale = scale_of(a);
            }
        }
    };
    let tasks = images * bands;
    if tasks == 1 || positions * shape.k() < 64 * 1024 {
        (0..tasks).for_each(band);
    } else {
        parallel_for(tasks, &band);
    }
    (!non_finite.load(Ordering::Relaxed)).then_some(scales)
}

/// Quantizes one lane group's im2col rows into quads `[k4 / 4][lane][4]` (`+128`, as unsigned
/// bytes, when `flip`): lanes past the group's end and `k` past K hold zeros (or `0x80`).
fn pack(
    isa: Isa,
    input: &[f32],
    offsets: &[usize],
    lanes: &LaneGroup,
    scales: &[f32; LANES],
    flip: bool,
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni {
        // SAFETY: `Isa::Avx512Vnni` is listed only where AVX-512F is; the offsets of every
        // valid lane are inside `input` (they come from the shape it was prepared for).
        return unsafe { super::x86_conv::pack_avx512(input, offsets, lanes, scales, flip, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::AvxVnni | Isa::Avx2) {
        // SAFETY: the AVX2 levels are listed only where AVX2 and FMA are (`Isa::available`);
        // the offsets of every valid lane are inside `input`.
        return unsafe { super::x86_conv::pack_avx2(input, offsets, lanes, scales, flip, out) };
    }
    let _ = isa;
    pack_portable(input, offsets, lanes, scales, flip, out)
}

#[inline(always)]
fn pack_portable(
    input: &[f32],
    offsets: &[usize],
    lanes: &LaneGroup,
    scales: &[f32; LANES],
    flip: bool,
    out: &mut [u8],
) {
    let flip = if flip { 0x80u8 } else { 0 };
    out.fill(flip);
    for run in lanes.input_runs() {
        for lane in run.start..run.end {
            let base = run.base + lane - run.start;
            for (k, &offset) in offsets.iter().enumerate() {
                let q = quantize(input[base + offset], scales[lane]);
                out[(k / 4) * 4 * LANES + lane * 4 + k % 4] = q as u8 ^ flip;
            }
        }
    }
}

/// `acc[j][i * 16 + lane] = Σ_k x[i][k][lane] · w[j][k]` for `mr` lane groups and `nr` channel
/// rows (each `k4` long, zero past K): the raw sums, `+128 · Σw` included when the activations
/// were packed unsigned.
fn tile_portable(
    x: &[u8],
    mr: usize,
    k4: usize,
    rows: &[i8],
    nr: usize,
    acc: &mut [[i32; TILE_GROUPS * LANES]; TILE_CHANNELS],
) {
    debug_assert!(x.len() >= mr * k4 * LANES && rows.len() >= nr * k4);
    for (j, channel_acc) in acc.iter_mut().take(nr).enumerate() {
        let row = &rows[j * k4..(j + 1) * k4];
        for i in 0..mr {
            let group = &x[i * k4 * LANES..(i + 1) * k4 * LANES];
            for lane in 0..LANES {
                let mut sum = 0i32;
                for (k, &w) in row.iter().enumerate() {
                    let q = group[(k / 4) * 4 * LANES + lane * 4 + k % 4] as i8;
                    sum += q as i32 * w as i32;
                }
                channel_acc[i * LANES + lane] = sum;
            }
        }
    }
}

/// Keras's rescale of one channel's 16 sums, `(acc - correction) / (x_scale · w_scale) + bias`,
/// written to the group's output runs: channel `j` of the epilogue's tile.
fn store_lanes(
    acc: &[i32; LANES],
    x_scales: &[f32; LANES],
    j: usize,
    lanes: &LaneGroup,
    epilogue: &Epilogue<'_>,
) {
    let (correction, w_scale) = (epilogue.corrections[j], epilogue.w_scales[j]);
    let mut y = [0f32; LANES];
    for ((y, &a), &x_scale) in y.iter_mut().zip(acc).zip(x_scales) {
        *y = a.wrapping_sub(correction) as f32 / (x_scale * w_scale);
    }
    if let Some(bias) = epilogue.bias {
        for y in &mut y {
            *y += bias[j];
        }
    }
    let channel = epilogue.channel_offset + j * epilogue.m;
    for run in lanes.output_runs() {
        let values = &y[run.start..run.end];
        // SAFETY: each (position, channel) output belongs to one lane of one task, inside the
        // output; written through the pointer (the memory may be uninitialized).
        unsafe {
            std::ptr::copy_nonoverlapping(
                values.as_ptr(),
                epilogue.out.0.add(run.base + channel),
                values.len(),
            )
        };
    }
}
