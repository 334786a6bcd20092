//! `QuantizedConv2d`: int8 2-D convolution, and the swappable [`Conv2d`] layer.

use burn::module::{Module, Param};
use burn::nn::{self, PaddingConfig2d};
use burn::tensor::{Tensor, backend::Backend};

use super::padding_pairs_2d;
use crate::kernels::{ConvGeometry, conv2d};
use crate::{Int8Error, Int8Weight};

/// A 2-D convolution with int8 weights: one scale per output channel, one activation scale
/// per output position (and group), or per sample under [`crate::Scheme::Sample`], computed at run time. Stride, padding, dilation and groups
/// behave as in `nn::Conv2d`.
#[derive(Module, Debug)]
pub struct QuantizedConv2d<B: Backend> {
    /// `[channels_out, channels_in / groups, kernel_h, kernel_w]`, one scale per output channel.
    pub weight: Int8Weight<B, 4>,
    pub bias: Option<Param<Tensor<B, 1>>>,
    pub stride: [usize; 2],
    pub kernel_size: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub padding: PaddingConfig2d,
}

impl<B: Backend> QuantizedConv2d<B> {
    /// [`Self::from_float`] in the given format: [`crate::Scheme::Sample`] (one activation
    /// scale per sample) where asked, Keras's scheme for anything else (no Q8_0 or rotated
    /// convolutions). A depthwise convolution (one input channel per group) refuses Sample
    /// ([`Int8Error::UnsupportedFormat`], so `quantize_int8` gives it Keras's scheme and says so):
    /// its direct kernel finds each window's scale as it reads the window.
    pub fn from_float_as(
        conv: &nn::conv::Conv2d<B>,
        format: crate::Int8Format,
    ) -> Result<Self, Int8Error> {
        let format = super::conv_format(format, conv.weight.dims()[1], "conv2d weight")?;
        Self::quantized_as(conv, format)
    }

    /// Keras's scheme: one scale per output channel, one per output position at run time.
    pub fn from_float(conv: &nn::conv::Conv2d<B>) -> Result<Self, Int8Error> {
        Self::quantized_as(conv, crate::Int8Format::KERAS)
    }

    fn quantized_as(
        conv: &nn::conv::Conv2d<B>,
        format: crate::Int8Format,
    ) -> Result<Self, Int8Error> {
        Ok(Self {
            weight: Int8Weight::quantize_as(conv.weight.val(), 0, "conv2d weight", format)?,
            bias: conv.bias.clone(),
            stride: conv.stride,
            kernel_size: conv.kernel_size,
            dilation: conv.dilation,
            groups: conv.groups,
            padding: conv.padding.clone(),
        })
    }

    pub fn dequantize(&self) -> nn::conv::Conv2d<B> {
        let weight = self.weight.dequantize();
        nn::conv::Conv2d {
            weight: Param::from_tensor(weight),
            bias: self.bias.clone(),
            stride: self.stride,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            groups: self.groups,
            padding: self.padding.clone(),
        }
    }

    /// `[batch, channels_in, h, w]` to `[batch, channels_out, h_out, w_out]`.
    ///
    /// # Panics
    /// On a wrong channel count, like `nn::Conv2d`; see [`Self::try_forward`].
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.try_forward(input) {
            Ok(output) => output,
            Err(err) => panic!("{err}"),
        }
    }

    pub fn try_forward(&self, input: Tensor<B, 4>) -> Result<Tensor<B, 4>, Int8Error> {
        let [_, channels_in, height, width] = input.dims();
        let [_, channels_in_group, kh, kw] = self.weight.dims();
        let expected = channels_in_group * self.groups;
        let effective = [
            self.dilation[0] * (kh - 1) + 1,
            self.dilation[1] * (kw - 1) + 1,
        ];
        let padding = padding_pairs_2d(&self.padding, [height, width], [kh, kw], self.stride);
        let ((top, bottom), (left, right)) = padding;
        if channels_in != expected
            || height + top + bottom < effective[0]
            || width + left + right < effective[1]
        {
            return Err(Int8Error::ShapeMismatch {
                what: "QuantizedConv2d input".into(),
                expected: format!(
                    "[batch, {expected}, h >= {}, w >= {}] (after padding)",
                    effective[0], effective[1]
                ),
                found: input.dims().to_vec(),
            });
        }
        let geometry = ConvGeometry {
            stride: self.stride,
            dilation: self.dilation,
            groups: self.groups,
            padding,
        };
        Ok(conv2d(
            input,
            &self.weight.channel_rows(),
            [kh, kw],
            self.bias.as_ref().map(Param::val),
            geometry,
        ))
    }
}

/// A 2-D convolution that is float or int8: Burn's `nn::conv::Conv2d` until
/// `model.quantize_int8()` turns it int8 in place.
///
/// Burn's fields (`weight`, `bias`, `stride`, `kernel_size`, `dilation`, `groups`, `padding`)
/// and Burn's record while float, so `burn::nn` checkpoints load into it and code that reads
/// or edits those fields works unchanged. Once int8, the weight is [`Self::int8_weight`] (one
/// scale per output channel), `bias` and the constants keep working, and `weight` keeps no
/// tensor: `weight.val()` panics with a message naming `int8_weight()` and `dequantize()`, and
/// assigning it changes nothing until the model is dequantized (as [`crate::Linear`] explains).
#[derive(Debug, Clone)]
pub struct Conv2d<B: Backend> {
    /// `[channels_out, channels_in / groups, kernel…]` while float; no tensor once int8.
    pub weight: Param<Tensor<B, 4>>,
    /// `[channels_out]`, float in both precisions.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// As in `nn::conv::Conv2d`.
    pub stride: [usize; 2],
    /// As in `nn::conv::Conv2d`.
    pub kernel_size: [usize; 2],
    /// As in `nn::conv::Conv2d`.
    pub dilation: [usize; 2],
    /// As in `nn::conv::Conv2d`.
    pub groups: usize,
    /// As in `nn::conv::Conv2d`.
    pub padding: PaddingConfig2d,
    /// The int8 weight (Burn's conv shape, one scale per output channel), once quantized.
    int8: Option<Int8Weight<B, 4>>,
}

crate::layers::swappable::swappable_module!(
    Conv2d, Conv2dRecord, burn = nn::conv::Conv2d, int8 = QuantizedConv2d, rank = 4,
    channel_axis = 0,
    params = [bias: Option<Param<Tensor<B, 1>>>],
    consts = [stride, kernel_size, dilation, groups, padding],
    optional_params = [bias]
);

impl<B: Backend> Conv2d<B> {
    pub fn new(config: &nn::conv::Conv2dConfig, device: &B::Device) -> Self {
        Self::from(config.init(device))
    }

    /// Burn's own forward while float, the int8 convolution once int8.
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.int8_layer() {
            None => self.as_burn().forward(input),
            Some(layer) => layer.forward(input),
        }
    }
}

crate::quantize::swappable_layer!(
    Conv2d,
    QuantizedConv2d,
    nn::conv::Conv2d<B>,
    channel_axis = 0
);
