//! The int8 convolution of `QuantizedConv1d` and `QuantizedConv2d` (Keras has none).
//!
//! Keras's rule is a dense layer's applied to im2col rows: one weight scale per output channel,
//! one activation scale per output position and group (each im2col row is quantized on its
//! own). On the CPU backends (flex, ndarray) and the cubecl ones (wgpu, CUDA) direct kernels do
//! it without an im2col tensor (`cpu/conv.rs`, `gpu/conv.rs`); elsewhere, and under autodiff,
//! im2col (`unfold4d`) feeds the seam's fused product. All give the same bits.
//!
//! [`Scheme::Sample`] scales each sample's whole input once (one AbsMax per image of the
//! batch): the CPU kernel quantizes each input value once; elsewhere the generic path
//! quantizes the input with its sample's scale, then im2col and the int8 product. Same bits.

use burn::tensor::module::unfold4d;
use burn::tensor::ops::{PadMode, UnfoldOptions};
use burn::tensor::{Tensor, backend::Backend};

use super::{ChannelRows, fused_product, generic, int8_product};
use crate::quantizers::{ABS_MAX_EPSILON, INT8_MAX, quantize_with_scale};
use crate::{Int8Weight, Scheme};

/// Geometry of a 2-D convolution (a 1-D one has height 1).
#[derive(Debug, Clone, Copy)]
pub struct ConvGeometry {
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    /// `((top, bottom), (left, right))`.
    pub padding: ((usize, usize), (usize, usize)),
}

impl ConvGeometry {
    /// `[h_out, w_out]` of `input [batch, c_in, h, w]` with `weight` (channel rows `[c_out,
    /// K]`) of a `kernel` and `bias`, when the direct kernels can take them: sizes that agree
    /// (one scale and one bias per output channel, `K = c_in / groups · kh · kw`), nothing
    /// empty or zero, and the dilated kernel inside the padded input.
    pub(crate) fn direct_out_size<B: Backend>(
        &self,
        input: &Tensor<B, 4>,
        weight: &ChannelRows<B>,
        kernel: [usize; 2],
        bias: Option<&Tensor<B, 1>>,
    ) -> Option<[usize; 2]> {
        let [batch, c_in, height, width] = input.dims();
        let [c_out, k] = weight.dims();
        let [kh, kw] = kernel;
        let ((top, bottom), (left, right)) = self.padding;
        let groups = self.groups;
        if batch == 0
            || c_in == 0
            || c_out == 0
            || groups == 0
            || c_in % groups != 0
            || c_out % groups != 0
            || self.stride.contains(&0)
            || self.dilation.contains(&0)
            || k != c_in / groups * kh * kw
            || weight.scale.dims() != [c_out]
            || bias.is_some_and(|bias| bias.dims() != [c_out])
        {
            return None;
        }
        let reach_y = self.dilation[0] * kh.checked_sub(1)? + 1;
        let reach_x = self.dilation[1] * kw.checked_sub(1)? + 1;
        Some([
            (height + top + bottom).checked_sub(reach_y)? / self.stride[0] + 1,
            (width + left + right).checked_sub(reach_x)? / self.stride[1] + 1,
        ])
    }
}

/// `input [batch, c_in, h, w]` with a `[c_out, c_in / groups, kh, kw]` weight as channel rows
/// `[c_out, c_in / groups · kh · kw]` (how the im2col rows are ordered), giving
/// `[batch, c_out, h_out, w_out]`.
pub(crate) fn conv2d<B: Backend>(
    input: Tensor<B, 4>,
    weight: &ChannelRows<B>,
    kernel_size: [usize; 2],
    bias: Option<Tensor<B, 1>>,
    geometry: ConvGeometry,
) -> Tensor<B, 4> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if super::backend::KernelBackend::is_cpu::<B>()
        && !B::ad_enabled(&input.device())
        && let Some(output) = super::cpu::try_conv2d(
            super::cpu::Isa::detect(),
            &input,
            weight,
            kernel_size,
            bias.as_ref(),
            geometry,
        )
    {
        return output;
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(output) =
        super::gpu::try_conv2d(&input, weight, kernel_size, bias.as_ref(), geometry)
    {
        return output;
    }
    if weight.format.scheme == Scheme::Sample {
        if B::ad_enabled(&input.device()) {
            return straight_through_per_sample(input, weight, kernel_size, bias, geometry);
        }
        return per_sample_conv2d(input, weight, kernel_size, bias, geometry);
    }
    im2col_conv2d(input, weight, kernel_size, bias, geometry, &fused_product)
}

/// [`Scheme::Sample`] under autodiff: the per-sample result, with the gradients of Keras's
/// rule (the straight-through estimator of `autodiff.rs`, which does not depend on how the
/// activations were scaled): `y = sample(x) + (keras(x) - detach(keras(x)))`, an exact zero
/// added. Twice the work, while training only.
fn straight_through_per_sample<B: Backend>(
    input: Tensor<B, 4>,
    weight: &ChannelRows<B>,
    kernel_size: [usize; 2],
    bias: Option<Tensor<B, 1>>,
    geometry: ConvGeometry,
) -> Tensor<B, 4> {
    let keras_rows = ChannelRows {
        format: crate::Int8Format::KERAS,
        ..weight.clone()
    };
    let tracked = im2col_conv2d(
        input.clone(),
        &keras_rows,
        kernel_size,
        bias.clone(),
        geometry,
        &fused_product,
    );
    let value = per_sample_conv2d(input.detach(), weight, kernel_size, bias, geometry);
    value.detach().add(tracked.clone().sub(tracked.detach()))
}

/// [`Scheme::Sample`]'s scales `[batch, 1]`: each image's `127 / (amax + 1e-7)`, the ops of
/// Keras's `abs_max_quantize` over the whole image. The GPU kernels take them from here too.
pub(crate) fn sample_scales<B: Backend>(input: &Tensor<B, 4>) -> Tensor<B, 2> {
    let [batch, c_in, height, width] = input.dims();
    let amax = input
        .clone()
        .reshape([batch, c_in * height * width])
        .abs()
        .max_dim(1);
    let numerator = Tensor::full(amax.shape(), INT8_MAX, &amax.device());
    numerator.div(amax.add_scalar(ABS_MAX_EPSILON))
}

/// [`Scheme::Sample`] through Burn tensor ops: each sample's input quantized with its own
/// AbsMax scale (Keras's `abs_max_quantize` over the whole sample), im2col of those integers,
/// the int8 product per group (the seam's, so GPU kernels serve it) and Keras's epilogue with
/// the sample's scale.
fn per_sample_conv2d<B: Backend>(
    input: Tensor<B, 4>,
    weight: &ChannelRows<B>,
    kernel_size: [usize; 2],
    bias: Option<Tensor<B, 1>>,
    geometry: ConvGeometry,
) -> Tensor<B, 4> {
    let [batch, c_in, height, width] = input.dims();
    let scale = sample_scales(&input);
    let q = quantize_with_scale(input.reshape([batch, c_in * height * width]), scale.clone());
    // Integers up to 127 and zeros: im2col (a convolution with one-hot kernels) and the padding
    // keep them exact in f32.
    let q = q
        .cast(burn::tensor::FloatDType::F32)
        .reshape([batch, c_in, height, width]);
    let row_scales = std::cell::OnceCell::new();
    let product = |rows: Tensor<B, 2>, weight: &ChannelRows<B>, bias: Option<Tensor<B, 1>>| {
        let [m, _] = rows.dims();
        // Rows are ordered image by image: each image's positions repeat its scale.
        let x_scale: &Tensor<B, 2> = row_scales.get_or_init(|| {
            scale
                .clone()
                .reshape([batch, 1, 1])
                .expand([batch, m / batch, 1])
                .reshape([m, 1])
        });
        let rows = rows.int().cast(burn::tensor::IntDType::I8);
        let acc = int8_product(rows, &weight.values);
        generic::rescale(acc, x_scale.clone(), weight, bias)
    };
    im2col_conv2d(q, weight, kernel_size, bias, geometry, &product)
}

/// The int8 convolution through Burn tensor ops (no direct kernel): Keras's rule as im2col,
/// then the generic quantized product; [`Scheme::Sample`] as the input quantized per sample,
/// then im2col and the int8 product. The oracle the direct kernels are tested against.
pub fn generic_quantized_conv2d<B: Backend>(
    input: Tensor<B, 4>,
    weight: &Int8Weight<B, 4>,
    bias: Option<Tensor<B, 1>>,
    geometry: ConvGeometry,
) -> Tensor<B, 4> {
    let [_, _, kh, kw] = weight.dims();
    let rows = weight.channel_rows();
    if rows.format.scheme == Scheme::Sample {
        return per_sample_conv2d(input, &rows, [kh, kw], bias, geometry);
    }
    im2col_conv2d(
        input,
        &rows,
        [kh, kw],
        bias,
        geometry,
        &generic::quantized_matmul,
    )
}

/// A quantized dense product `(rows, channel rows, bias)`: the fused one, the generic one, or
/// the per-sample one.
type Product<'a, B> =
    dyn Fn(Tensor<B, 2>, &ChannelRows<B>, Option<Tensor<B, 1>>) -> Tensor<B, 2> + 'a;

/// The convolution as im2col rows and `product(rows, channel rows, bias)` per group.
fn im2col_conv2d<B: Backend>(
    input: Tensor<B, 4>,
    weight: &ChannelRows<B>,
    kernel_size: [usize; 2],
    bias: Option<Tensor<B, 1>>,
    geometry: ConvGeometry,
    product: &Product<'_, B>,
) -> Tensor<B, 4> {
    let [batch, _, height, width] = input.dims();
    let [c_out, k_group] = weight.dims();
    let [kh, kw] = kernel_size;
    let ConvGeometry {
        stride,
        dilation,
        groups,
        padding: ((top, bottom), (left, right)),
    } = geometry;

    let padded = if top + bottom + left + right > 0 {
        input.pad([(top, bottom), (left, right)], PadMode::Constant(0.0))
    } else {
        input
    };
    let h_out = (height + top + bottom - dilation[0] * (kh - 1) - 1) / stride[0] + 1;
    let w_out = (width + left + right - dilation[1] * (kw - 1) - 1) / stride[1] + 1;
    let positions = h_out * w_out;

    // [batch, c_in * kh * kw, positions], channel-major rows, like the weight's layout.
    let columns = unfold4d(
        padded,
        [kh, kw],
        UnfoldOptions::new(stride, [0, 0], dilation),
    );
    let c_out_group = c_out / groups;
    let columns = columns
        .reshape([batch, groups, k_group, positions])
        .swap_dims(2, 3);

    let per_group = (0..groups)
        .map(|group| {
            let rows = columns
                .clone()
                .slice([0..batch, group..group + 1, 0..positions, 0..k_group])
                .reshape([batch * positions, k_group]);
            let channels = group * c_out_group..(group + 1) * c_out_group;
            let bias = bias.clone().map(|bias| bias.slice([channels.clone()]));
            product(rows, &weight.channels(channels), bias)
        })
        .collect::<Vec<_>>();
    let output = Tensor::cat(per_group, 1); // [batch * positions, c_out]
    rows_to_nchw(output, batch, [h_out, w_out])
}

/// `[batch · positions, c_out]` (one row per image and output position) as NCHW `[batch,
/// c_out, h_out, w_out]`.
pub(crate) fn rows_to_nchw<B: Backend>(
    rows: Tensor<B, 2>,
    batch: usize,
    [h_out, w_out]: [usize; 2],
) -> Tensor<B, 4> {
    let [_, c_out] = rows.dims();
    rows.reshape([batch, h_out * w_out, c_out])
        .swap_dims(1, 2)
        .reshape([batch, c_out, h_out, w_out])
}
