//! Max pooling for `burn_int8::nn::pool::{MaxPool1d, MaxPool2d}`: flex's direct kernel
//! (`cpu/pool.rs`) where it applies, otherwise Burn's own op exactly as Burn's modules call it.
//! Both give the same bits.

use burn::tensor::module::{max_pool1d as burn_max_pool1d, max_pool2d as burn_max_pool2d};
use burn::tensor::ops::PadMode;
use burn::tensor::{Tensor, backend::Backend};

/// `input [batch, channels, h, w]` max-pooled with `padding` `((top, bottom), (left, right))`.
/// An asymmetric padding is padded with `-inf` first, as Burn's module does.
pub(crate) fn max_pool2d<B: Backend>(
    input: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: ((usize, usize), (usize, usize)),
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Tensor<B, 4> {
    let ((top, bottom), (left, right)) = padding;
    let symmetric = top == bottom && left == right;
    #[cfg(feature = "flex")]
    if !B::ad_enabled(&input.device())
        && let Some(output) = super::cpu::try_max_pool2d(
            super::cpu::Isa::detect(),
            &input,
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode,
        )
    {
        return output;
    }
    if symmetric {
        burn_max_pool2d(input, kernel, stride, [top, left], dilation, ceil_mode)
    } else {
        let padded = input.pad(
            (left, right, top, bottom),
            PadMode::Constant(f32::NEG_INFINITY),
        );
        burn_max_pool2d(padded, kernel, stride, [0, 0], dilation, ceil_mode)
    }
}

/// `input [batch, channels, length]` max-pooled with `padding` `(left, right)`: the 2-D kernel
/// on a height of 1 (flex's own 1-D pool is its 3-D one too, with the same rule). An
/// asymmetric padding is padded with `-inf` first, as Burn's module does.
pub(crate) fn max_pool1d<B: Backend>(
    input: Tensor<B, 3>,
    kernel: usize,
    stride: usize,
    padding: (usize, usize),
    dilation: usize,
    ceil_mode: bool,
) -> Tensor<B, 3> {
    let (left, right) = padding;
    #[cfg(feature = "flex")]
    if !B::ad_enabled(&input.device())
        && let Some(output) = super::cpu::try_max_pool2d(
            super::cpu::Isa::detect(),
            &input.clone().unsqueeze_dim(2),
            [1, kernel],
            [1, stride],
            ((0, 0), padding),
            [1, dilation],
            ceil_mode,
        )
    {
        return output.squeeze_dim(2);
    }
    if left == right {
        burn_max_pool1d(input, kernel, stride, left, dilation, ceil_mode)
    } else {
        let padded = input.pad((left, right, 0, 0), PadMode::Constant(f32::NEG_INFINITY));
        burn_max_pool1d(padded, kernel, stride, 0, dilation, ceil_mode)
    }
}
