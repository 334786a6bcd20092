//! The int8 convolution on the cubecl backends without a float im2col tensor, under Keras's
//! rule (one activation scale per output position and group: each im2col row quantized on its
//! own). `window_scales_kernel` reads each window in place and writes its scale
//! `127 / (amax + 1e-7)` (NaN where the window holds a non-finite value, so every output that
//! reads it is NaN). Then one of three paths:
//!
//! - **Ungrouped, K a multiple of 4** (ResNet's convolutions, pointwise layers):
//!   `quantized_rows_kernel` writes the int8 im2col rows directly, four bytes per word,
//!   quantized while they are gathered, and the seam's packed int8 product and the generic
//!   epilogue (`mod.rs`) finish: the f32 `unfold4d` (a convolution with one-hot kernels) and
//!   its f32 rows are gone.
//! - **Depthwise** (one input channel per group, windows up to 7×7): `depthwise_conv_kernel`,
//!   one invocation per output, reads its window once into a local array and finds its scale
//!   itself (no scales pass): 2.4× Burn's f32 convolution on lavapipe, where the two-pass
//!   version below was 0.9×.
//! - **Anything else** (grouped, odd K): `direct_conv_kernel`, one invocation per
//!   output, rounds each tap's `v · scale` half to even, clamps to ±127, multiplies by the int8
//!   weight read in place and sums in i32, then `acc / (scale · w_scale) + bias`. It rounds a
//!   window again for every output channel of its group, which costs little where groups are
//!   small and saves a launch per group (the generic path's depthwise is one product per
//!   channel).
//!
//! Both use the generic path's IEEE operations in its order, so the bits are the same. Padding
//! is read as zero through bounds checks; anything the kernels do not take returns `None` and
//! the generic path runs.

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

use super::launch::supports_i8_buffers;
use crate::kernels::ConvGeometry;

/// The shape of one convolution, as the kernels read it.
#[derive(CubeType, CubeLaunch)]
pub(super) struct ConvShape {
    c_in: usize,
    height: usize,
    width: usize,
    c_in_group: usize,
    c_out: usize,
    c_out_group: usize,
    groups: usize,
    kh: usize,
    kw: usize,
    stride_y: usize,
    stride_x: usize,
    dilation_y: usize,
    dilation_x: usize,
    top: usize,
    left: usize,
    w_out: usize,
    positions: usize,
}

/// Invocation `(image · positions + position) · groups + group` writes that window's scale.
#[cube(launch_unchecked)]
fn window_scales_kernel(input: &Array<f32>, scales: &mut Array<f32>, shape: &ConvShape) {
    let window = ABSOLUTE_POS;
    if window >= scales.len() {
        terminate!();
    }
    let group = window % shape.groups;
    let image_position = window / shape.groups;
    let position = image_position % shape.positions;
    let image = image_position / shape.positions;
    let (oy, ox) = (position / shape.w_out, position % shape.w_out);

    let mut amax = 0.0f32;
    let mut finite = true;
    for ci in 0..shape.c_in_group {
        let plane = (image * shape.c_in + group * shape.c_in_group + ci) * shape.height;
        for i in 0..shape.kh {
            let y = oy * shape.stride_y + i * shape.dilation_y;
            if y >= shape.top && y < shape.top + shape.height {
                let row = (plane + y - shape.top) * shape.width;
                for j in 0..shape.kw {
                    let x = ox * shape.stride_x + j * shape.dilation_x;
                    if x >= shape.left && x < shape.left + shape.width {
                        let v = input[row + x - shape.left];
                        if f32::is_nan(v) || f32::is_inf(v) {
                            finite = false;
                        }
                        amax = max(amax, f32::abs(v));
                    }
                }
            }
        }
    }
    // `127 / (amax + eps)` as one division, as `quantizers::abs_max_quantize_along` does.
    scales[window] = if finite {
        127.0f32 / (amax + 1e-7f32)
    } else {
        f32::new(f32::NAN)
    };
}

/// Invocation `row · k_words + w` writes word `w` (four bytes of K) of the int8 im2col row
/// `row = image · positions + position` of an ungrouped convolution, quantized with the row's
/// scale. K is a multiple of 4, so words never straddle rows.
#[cube(launch_unchecked)]
fn quantized_rows_kernel(
    input: &Array<f32>,
    scales: &Array<f32>,
    rows: &mut Array<i32>,
    shape: &ConvShape,
    k_words: usize,
) {
    let at = ABSOLUTE_POS;
    if at >= rows.len() {
        terminate!();
    }
    let row = at / k_words;
    let position = row % shape.positions;
    let image = row / shape.positions;
    let (oy, ox) = (position / shape.w_out, position % shape.w_out);
    let scale = scales[row];
    let taps = shape.kh * shape.kw;
    let mut word = 0i32;
    #[unroll]
    for byte in 0..4usize {
        let k = (at % k_words) * 4 + byte;
        let (channel, tap) = (k / taps, k % taps);
        let y = oy * shape.stride_y + (tap / shape.kw) * shape.dilation_y;
        let x = ox * shape.stride_x + (tap % shape.kw) * shape.dilation_x;
        let mut v = 0.0f32;
        if y >= shape.top
            && y < shape.top + shape.height
            && x >= shape.left
            && x < shape.left + shape.width
        {
            let plane = (image * shape.c_in + channel) * shape.height;
            v = input[(plane + y - shape.top) * shape.width + x - shape.left];
        }
        let q = i32::cast_from(f32::clamp(f32::round(v * scale), -127.0, 127.0));
        word |= (q & 255i32) << (8 * byte) as i32;
    }
    rows[at] = word;
}

/// Invocation `pos` is output `pos` of `[batch, c_out, h_out, w_out]` (NCHW order).
#[cube(launch_unchecked)]
fn direct_conv_kernel(
    input: &Array<f32>,
    weight: &Array<i8>,
    w_scales: &Array<f32>,
    bias: &Array<f32>,
    scales: &Array<f32>,
    out: &mut Array<f32>,
    shape: &ConvShape,
    #[comptime] has_bias: bool,
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let position = pos % shape.positions;
    let image_channel = pos / shape.positions;
    let channel = image_channel % shape.c_out;
    let image = image_channel / shape.c_out;
    let group = channel / shape.c_out_group;
    let (oy, ox) = (position / shape.w_out, position % shape.w_out);
    let scale = scales[(image * shape.positions + position) * shape.groups + group];

    let k_group = shape.c_in_group * shape.kh * shape.kw;
    let mut tap = channel * k_group;
    let mut acc = 0i32;
    for ci in 0..shape.c_in_group {
        let plane = (image * shape.c_in + group * shape.c_in_group + ci) * shape.height;
        for i in 0..shape.kh {
            let y = oy * shape.stride_y + i * shape.dilation_y;
            let row_inside = y >= shape.top && y < shape.top + shape.height;
            for j in 0..shape.kw {
                let x = ox * shape.stride_x + j * shape.dilation_x;
                if row_inside && x >= shape.left && x < shape.left + shape.width {
                    let v = input[((plane + y - shape.top) * shape.width) + x - shape.left];
                    let q = i32::cast_from(f32::clamp(f32::round(v * scale), -127.0, 127.0));
                    acc += q * i32::cast_from(weight[tap]);
                }
                tap += 1;
            }
        }
    }
    let value = f32::cast_from(acc) / (scale * w_scales[channel]);
    if has_bias {
        out[pos] = value + bias[channel];
    } else {
        out[pos] = value;
    }
}

/// Most taps of [`depthwise_conv_kernel`]'s window (held in a local array): 7×7.
const MAX_WINDOW_TAPS: usize = 49;

/// Invocation `pos` is output `pos` of `[batch, c_out, h_out, w_out]` for a convolution with one
/// input channel per group (depthwise, with any channel multiplier): the window is read once
/// into a local array, then its scale, the products and the rescale, all in one invocation.
/// [`direct_conv_kernel`] after `window_scales_kernel` reads every window twice and its scale
/// through memory; on lavapipe, where each load is the cost, that made the depthwise layer
/// slower than the float one. The same IEEE operations in the same order: the same bits.
#[cube(launch_unchecked)]
fn depthwise_conv_kernel(
    input: &Array<f32>,
    weight: &Array<i8>,
    w_scales: &Array<f32>,
    bias: &Array<f32>,
    out: &mut Array<f32>,
    shape: &ConvShape,
    #[comptime] kh: usize,
    #[comptime] kw: usize,
    #[comptime] has_bias: bool,
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let position = pos % shape.positions;
    let image_channel = pos / shape.positions;
    let channel = image_channel % shape.c_out;
    let image = image_channel / shape.c_out;
    let group = channel / shape.c_out_group;
    let (oy, ox) = (position / shape.w_out, position % shape.w_out);
    let plane = (image * shape.c_in + group) * shape.height;

    let mut window = Array::<f32>::new(kh * kw);
    let mut amax = 0.0f32;
    let mut finite = true;
    #[unroll]
    for i in 0..kh {
        let y = oy * shape.stride_y + i * shape.dilation_y;
        let row_inside = y >= shape.top && y < shape.top + shape.height;
        #[unroll]
        for j in 0..kw {
            let x = ox * shape.stride_x + j * shape.dilation_x;
            let mut v = 0.0f32;
            if row_inside && x >= shape.left && x < shape.left + shape.width {
                v = input[((plane + y - shape.top) * shape.width) + x - shape.left];
                if f32::is_nan(v) || f32::is_inf(v) {
                    finite = false;
                }
                amax = max(amax, f32::abs(v));
            }
            window[i * kw + j] = v;
        }
    }
    // `127 / (amax + eps)` as one division, as `window_scales_kernel`.
    let scale = if finite {
        127.0f32 / (amax + 1e-7f32)
    } else {
        f32::new(f32::NAN)
    };
    let first = channel * (kh * kw);
    let mut acc = 0i32;
    #[unroll]
    for t in 0..kh * kw {
        // A padding tap holds 0, which rounds to 0 and adds nothing, as a skipped tap does.
        let q = i32::cast_from(f32::clamp(f32::round(window[t] * scale), -127.0, 127.0));
        acc += q * i32::cast_from(weight[first + t]);
    }
    let value = f32::cast_from(acc) / (scale * w_scales[channel]);
    if has_bias {
        out[pos] = value + bias[channel];
    } else {
        out[pos] = value;
    }
}

/// One convolution's sizes, checked: what the kernels need, as host numbers.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConvPlan {
    batch: usize,
    c_in: usize,
    height: usize,
    width: usize,
    c_out: usize,
    kernel: [usize; 2],
    geometry: ConvGeometry,
    /// `(h_out, w_out)`.
    pub out_size: [usize; 2],
}

impl ConvPlan {
    /// The plan of `input [batch, c_in, h, w]` with `c_out` channel rows of a `kernel` giving
    /// `out_size` (checked by `ConvGeometry::direct_out_size`); `None` when an index would pass
    /// 32 bits (some backends' address type).
    pub(super) fn new(
        input: [usize; 4],
        c_out: usize,
        kernel: [usize; 2],
        out_size: [usize; 2],
        geometry: ConvGeometry,
    ) -> Option<ConvPlan> {
        let [batch, c_in, height, width] = input;
        let groups = geometry.groups;
        let plan = ConvPlan {
            batch,
            c_in,
            height,
            width,
            c_out,
            kernel,
            geometry,
            out_size,
        };
        let k = c_in / groups * kernel[0] * kernel[1];
        let largest = [
            plan.outputs(),
            batch * c_in * height * width,
            c_out * k,
            plan.rows() * k,
        ];
        if largest.iter().any(|&len| len > i32::MAX as usize) {
            return None;
        }
        Some(plan)
    }

    fn positions(&self) -> usize {
        self.out_size[0] * self.out_size[1]
    }
    /// Windows per image: one per output position and group.
    pub(super) fn windows_per_image(&self) -> usize {
        self.positions() * self.geometry.groups
    }
    /// im2col rows: one per image and output position.
    pub(super) fn rows(&self) -> usize {
        self.batch * self.positions()
    }
    fn outputs(&self) -> usize {
        self.rows() * self.c_out
    }

    fn shape<R: CubeRuntime>(&self) -> ConvShapeLaunch<R> {
        let ConvGeometry {
            stride,
            dilation,
            groups,
            padding: ((top, _), (left, _)),
        } = self.geometry;
        ConvShapeLaunch::new(
            self.c_in,
            self.height,
            self.width,
            self.c_in / groups,
            self.c_out,
            self.c_out / groups,
            groups,
            self.kernel[0],
            self.kernel[1],
            stride[0],
            stride[1],
            dilation[0],
            dilation[1],
            top,
            left,
            self.out_size[1],
            self.positions(),
        )
    }

    /// The scale of every window `[rows, groups]` of the (contiguous, F32) `input`.
    fn window_scales<R: CubeRuntime>(&self, input: &CubeTensor<R>) -> CubeTensor<R> {
        let windows = self.rows() * self.geometry.groups;
        let scales = empty_device_contiguous_dtype(
            input.client.clone(),
            input.device.clone(),
            Shape::new([self.rows(), self.geometry.groups]),
            DType::F32,
        );
        let cube_dim = CubeDim::new_1d(CUBE_SIZE);
        // SAFETY: both arrays are their tensors' own buffers and lengths; the kernel returns
        // past the last window, and every input index it forms is checked against the image.
        unsafe {
            window_scales_kernel::launch_unchecked::<R>(
                &input.client,
                calculate_cube_count_elemwise(&input.client, windows, cube_dim),
                cube_dim,
                input.clone().into_array_arg(),
                scales.clone().into_array_arg(),
                self.shape(),
            );
        }
        scales
    }
}

/// Invocations per cube.
const CUBE_SIZE: u32 = 256;

/// The int8 im2col rows `[rows, K]` (I8) of an ungrouped convolution with K a multiple of 4,
/// and their scales `[rows, 1]`, for the int8 product; `None` for other convolutions or
/// inputs. `scales` are given (`Scheme::Sample`'s, each image's repeated over its windows) or
/// found from each window (Keras's rule).
pub(super) fn quantized_rows<R: CubeRuntime>(
    input: CubeTensor<R>,
    plan: &ConvPlan,
    scales: Option<CubeTensor<R>>,
) -> Option<(CubeTensor<R>, CubeTensor<R>)> {
    let k = plan.c_in * plan.kernel[0] * plan.kernel[1];
    if input.dtype != DType::F32 || plan.geometry.groups != 1 || !k.is_multiple_of(4) {
        return None;
    }
    let input = into_contiguous(input);
    let scales = scales
        .map(into_contiguous)
        .unwrap_or_else(|| plan.window_scales(&input));
    let rows = empty_device_contiguous_dtype(
        input.client.clone(),
        input.device.clone(),
        Shape::new([plan.rows(), k]),
        DType::I8,
    );
    let words = plan.rows() * k / 4;
    let client = input.client.clone();
    let cube_dim = CubeDim::new_1d(CUBE_SIZE);
    // SAFETY: the rows' buffer holds `rows · K` bytes, `words` whole words (K is a multiple of
    // 4); the kernel returns past the last word, reads one scale per row, and checks every
    // input index against the image.
    unsafe {
        quantized_rows_kernel::launch_unchecked::<R>(
            &client,
            calculate_cube_count_elemwise(&client, words, cube_dim),
            cube_dim,
            input.into_array_arg(),
            scales.clone().into_array_arg(),
            ArrayArg::from_raw_parts(rows.handle.clone(), words),
            plan.shape(),
            k / 4,
        );
    }
    Some((rows, scales))
}

/// The whole convolution by the direct kernel: `input [batch, c_in, h, w]` (F32), `weight`
/// (I8 channel rows `[c_out, c_in / groups · kh · kw]`), `w_scales [c_out]` and `bias
/// [c_out]` (F32), giving `[batch, c_out, h_out, w_out]`; `None` for operands it does not take.
/// `scales` (`[rows, groups]`) as in [`quantized_rows`].
pub(super) fn direct<R: CubeRuntime>(
    input: CubeTensor<R>,
    weight: CubeTensor<R>,
    w_scales: CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
    plan: &ConvPlan,
    scales: Option<CubeTensor<R>>,
) -> Option<CubeTensor<R>> {
    let floats = [Some(&input), Some(&w_scales), bias.as_ref()];
    if floats.into_iter().flatten().any(|t| t.dtype != DType::F32) || weight.dtype != DType::I8 {
        return None;
    }
    let [c_out, k_group]: [usize; 2] = weight.meta.shape().dims();
    let strides = weight.meta.strides();
    let dense = (k_group == 1 || strides[1] == 1) && (c_out == 1 || strides[0] == k_group);
    if !dense || !supports_i8_buffers(&weight.client) {
        return None;
    }
    let input = into_contiguous(input);
    let w_scales = into_contiguous(w_scales);
    let bias = bias.map(into_contiguous);
    let [kh, kw] = plan.kernel;
    let depthwise = plan.c_in == plan.geometry.groups && kh * kw <= MAX_WINDOW_TAPS;
    // The depthwise kernel finds each window's scale itself (Keras's rule only).
    let scales = match scales {
        Some(scales) => Some(into_contiguous(scales)),
        None => (!depthwise).then(|| plan.window_scales(&input)),
    };
    let [h_out, w_out] = plan.out_size;
    let output = empty_device_contiguous_dtype(
        input.client.clone(),
        input.device.clone(),
        Shape::new([plan.batch, c_out, h_out, w_out]),
        DType::F32,
    );
    let client = input.client.clone();
    let cube_dim = CubeDim::new_1d(CUBE_SIZE);
    let has_bias = bias.is_some();
    let bias = bias.unwrap_or_else(|| w_scales.clone());
    let cube_count = calculate_cube_count_elemwise(&client, plan.outputs(), cube_dim);
    let Some(scales) = scales else {
        // SAFETY: as below; the weight's channel rows are `kh · kw` bytes (one input channel
        // per group).
        unsafe {
            depthwise_conv_kernel::launch_unchecked::<R>(
                &client,
                cube_count,
                cube_dim,
                input.into_array_arg(),
                weight.into_array_arg(),
                w_scales.into_array_arg(),
                bias.into_array_arg(),
                output.clone().into_array_arg(),
                plan.shape(),
                kh,
                kw,
                has_bias,
            );
        }
        return Some(output);
    };
    // SAFETY: every array is its tensor's own buffer and length (the weight dense, so its
    // `c_out · K` bytes are the channel rows); the kernel returns past the last output, and
    // every input index it forms is checked against the image (padding is never read).
    unsafe {
        direct_conv_kernel::launch_unchecked::<R>(
            &client,
            cube_count,
            cube_dim,
            input.into_array_arg(),
            weight.into_array_arg(),
            w_scales.into_array_arg(),
            bias.into_array_arg(),
            scales.into_array_arg(),
            output.clone().into_array_arg(),
            plan.shape(),
            has_bias,
        );
    }
    Some(output)
}
