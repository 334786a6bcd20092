//! The int8 convolution shared by `QuantizedConv1d` and `QuantizedConv2d` (Keras has none).
//!
//! im2col (`unfold4d`), then the same rule as a dense layer: one weight scale per output
//! channel, one activation scale per output position and group (each im2col row is quantized
//! on its own), and the int8 product of [`crate::ops`].

use burn::tensor::module::unfold4d;
use burn::tensor::ops::{PadMode, UnfoldOptions};
use burn::tensor::{Int, Tensor, backend::Backend};

use crate::ops::quantized_matmul_kn;

/// Geometry of a 2-D convolution (a 1-D one has height 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvGeometry {
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    /// `((top, bottom), (left, right))`.
    pub padding: ((usize, usize), (usize, usize)),
}

/// Burn's "same" padding rule (`burn_nn::padding`), mirrored so int8 and float shapes agree.
pub(crate) fn same_padding(kernel_size: usize, stride: usize, size_in: usize) -> (usize, usize) {
    let size_out = size_in.div_ceil(stride);
    let total = if size_out > 0 {
        ((size_out - 1) * stride + kernel_size).saturating_sub(size_in)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

/// `input [batch, c_in, h, w]` with `weight [c_out, c_in / groups, kh, kw]` (I8) and
/// `weight_scale [c_out]`, giving `[batch, c_out, h_out, w_out]`.
pub(crate) fn conv2d_int8<B: Backend>(
    input: Tensor<B, 4>,
    weight: Tensor<B, 4, Int>,
    weight_scale: Tensor<B, 1>,
    bias: Option<Tensor<B, 1>>,
    geometry: ConvGeometry,
) -> Tensor<B, 4> {
    let [batch, _, height, width] = input.dims();
    let [c_out, c_in_group, kh, kw] = weight.dims();
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
    let k_group = c_in_group * kh * kw;
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
            let weight = weight
                .clone()
                .slice([channels.clone(), 0..c_in_group, 0..kh, 0..kw])
                .reshape([c_out_group, k_group])
                .transpose();
            let bias = bias.clone().map(|bias| bias.slice([channels.clone()]));
            quantized_matmul_kn(rows, weight, weight_scale.clone().slice([channels]), bias)
        })
        .collect::<Vec<_>>();
    let output = Tensor::cat(per_group, 1); // [batch * positions, c_out]
    output
        .reshape([batch, positions, c_out])
        .swap_dims(1, 2)
        .reshape([batch, c_out, h_out, w_out])
}
