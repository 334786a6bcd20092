//! `QuantizedConv1d`: int8 1-D convolution, and the swappable [`Conv1d`] layer.
//!
//! Runs as a 2-D convolution of height 1 (the shared im2col path in `conv.rs`).

use burn::module::{Module, Param};
use burn::nn::{self, PaddingConfig1d};
use burn::tensor::{Tensor, backend::Backend};

use super::padding_pair_1d;
use crate::kernels::{ConvGeometry, conv2d};
use crate::{Int8Error, Int8Weight};

/// A 1-D convolution with int8 weights: one scale per output channel, one activation scale
/// per output position (and group), or per sample under [`crate::Scheme::Sample`]. Stride, padding, dilation and groups as in `nn::Conv1d`.
#[derive(Module, Debug)]
pub struct QuantizedConv1d<B: Backend> {
    /// `[channels_out, channels_in / groups, kernel_size]`, one scale per output channel.
    pub weight: Int8Weight<B, 3>,
    pub bias: Option<Param<Tensor<B, 1>>>,
    pub stride: usize,
    pub kernel_size: usize,
    pub dilation: usize,
    pub groups: usize,
    pub padding: PaddingConfig1d,
}

impl<B: Backend> QuantizedConv1d<B> {
    /// [`Self::from_float`] in the given format: [`crate::Scheme::Sample`] (one activation
    /// scale per sample) where asked, Keras's scheme for anything else (no Q8_0 or rotated
    /// convolutions). A depthwise convolution (one input channel per group) refuses Sample
    /// ([`Int8Error::UnsupportedFormat`], so `quantize_int8` gives it Keras's scheme and says so):
    /// its direct kernel finds each window's scale as it reads the window.
    pub fn from_float_as(
        conv: &nn::conv::Conv1d<B>,
        format: crate::Int8Format,
    ) -> Result<Self, Int8Error> {
        let format = super::conv_format(format, conv.weight.dims()[1], "conv1d weight")?;
        Self::quantized_as(conv, format)
    }

    /// Keras's scheme: one scale per output channel, one per output position at run time.
    pub fn from_float(conv: &nn::conv::Conv1d<B>) -> Result<Self, Int8Error> {
        Self::quantized_as(conv, crate::Int8Format::KERAS)
    }

    fn quantized_as(
        conv: &nn::conv::Conv1d<B>,
        format: crate::Int8Format,
    ) -> Result<Self, Int8Error> {
        Ok(Self {
            weight: Int8Weight::quantize_as(conv.weight.val(), 0, "conv1d weight", format)?,
            bias: conv.bias.clone(),
            stride: conv.stride,
            kernel_size: conv.kernel_size,
            dilation: conv.dilation,
            groups: conv.groups,
            padding: conv.padding.clone(),
        })
    }

    pub fn dequantize(&self) -> nn::conv::Conv1d<B> {
        let weight = self.weight.dequantize();
        nn::conv::Conv1d {
            weight: Param::from_tensor(weight),
            bias: self.bias.clone(),
            stride: self.stride,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            groups: self.groups,
            padding: self.padding.clone(),
        }
    }

    /// `[batch, channels_in, length]` to `[batch, channels_out, length_out]`.
    ///
    /// # Panics
    /// On a wrong channel count, like `nn::Conv1d`; see [`Self::try_forward`].
    pub fn forward(&self, input: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.try_forward(input) {
            Ok(output) => output,
            Err(err) => panic!("{err}"),
        }
    }

    pub fn try_forward(&self, input: Tensor<B, 3>) -> Result<Tensor<B, 3>, Int8Error> {
        let [batch, channels_in, length] = input.dims();
        let [channels_out, channels_in_group, kernel] = self.weight.dims();
        let expected = channels_in_group * self.groups;
        let effective = self.dilation * (kernel - 1) + 1;
        let (left, right) = padding_pair_1d(&self.padding, length, kernel, self.stride);
        if channels_in != expected || length + left + right < effective {
            return Err(Int8Error::ShapeMismatch {
                what: "QuantizedConv1d input".into(),
                expected: format!("[batch, {expected}, length >= {effective}] (after padding)"),
                found: input.dims().to_vec(),
            });
        }
        let geometry = ConvGeometry {
            stride: [1, self.stride],
            dilation: [1, self.dilation],
            groups: self.groups,
            padding: ((0, 0), (left, right)),
        };
        let output = conv2d(
            input.reshape([batch, channels_in, 1, length]),
            &self.weight.channel_rows(),
            [1, kernel],
            self.bias.as_ref().map(Param::val),
            geometry,
        );
        let [_, _, _, length_out] = output.dims();
        Ok(output.reshape([batch, channels_out, length_out]))
    }
}

/// A 1-D convolution that is float or int8: Burn's `nn::conv::Conv1d` until
/// `model.quantize_int8()` turns it int8 in place.
///
/// Burn's fields (`weight`, `bias`, `stride`, `kernel_size`, `dilation`, `groups`, `padding`)
/// and Burn's record while float, so `burn::nn` checkpoints load into it and code that reads
/// or edits those fields works unchanged. Once int8, the weight is [`Self::int8_weight`] (one
/// scale per output channel), `bias` and the constants keep working, and `weight` keeps no
/// tensor: `weight.val()` panics with a message naming `int8_weight()` and `dequantize()`, and
/// assigning it changes nothing until the model is dequantized (as [`crate::Linear`] explains).
#[derive(Debug, Clone)]
pub struct Conv1d<B: Backend> {
    /// `[channels_out, channels_in / groups, kernel…]` while float; no tensor once int8.
    pub weight: Param<Tensor<B, 3>>,
    /// `[channels_out]`, float in both precisions.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// As in `nn::conv::Conv1d`.
    pub stride: usize,
    /// As in `nn::conv::Conv1d`.
    pub kernel_size: usize,
    /// As in `nn::conv::Conv1d`.
    pub dilation: usize,
    /// As in `nn::conv::Conv1d`.
    pub groups: usize,
    /// As in `nn::conv::Conv1d`.
    pub padding: PaddingConfig1d,
    /// The int8 weight (Burn's conv shape, one scale per output channel), once quantized.
    int8: Option<Int8Weight<B, 3>>,
}

crate::layers::swappable::swappable_module!(
    Conv1d, Conv1dRecord, burn = nn::conv::Conv1d, int8 = QuantizedConv1d, rank = 3,
    channel_axis = 0,
    params = [bias: Option<Param<Tensor<B, 1>>>],
    consts = [stride, kernel_size, dilation, groups, padding],
    optional_params = [bias]
);

impl<B: Backend> Conv1d<B> {
    pub fn new(config: &nn::conv::Conv1dConfig, device: &B::Device) -> Self {
        Self::from(config.init(device))
    }

    /// Burn's own forward while float, the int8 convolution once int8.
    pub fn forward(&self, input: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.int8_layer() {
            None => self.as_burn().forward(input),
            Some(layer) => layer.forward(input),
        }
    }
}

crate::quantize::swappable_layer!(
    Conv1d,
    QuantizedConv1d,
    nn::conv::Conv1d<B>,
    channel_axis = 0
);
