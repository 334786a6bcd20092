//! The int8 convolutions in one place: [`QuantizedConv1d`] and [`QuantizedConv2d`] (one file
//! each), their swappable [`Conv1d`] and [`Conv2d`] layers, and Burn's configs for them
//! (`burn_int8::nn::conv` re-exports this module under Burn's path).

use burn::config::Config;
use burn::module::Initializer;
use burn::nn::{self, PaddingConfig1d, PaddingConfig2d};
use burn::tensor::backend::Backend;

mod conv1d;
mod conv2d;

pub use conv1d::{Conv1d, Conv1dRecord, QuantizedConv1d};
pub use conv2d::{Conv2d, Conv2dRecord, QuantizedConv2d};

/// `burn::nn::conv::Conv1dConfig`, giving a swappable [`Conv1d`].
#[derive(Config, Debug)]
pub struct Conv1dConfig {
    /// The number of input channels.
    pub channels_in: usize,
    /// The number of output channels.
    pub channels_out: usize,
    /// The size of the kernel.
    pub kernel_size: usize,
    /// The stride of the convolution.
    #[config(default = "1")]
    pub stride: usize,
    /// Spacing between kernel elements.
    #[config(default = "1")]
    pub dilation: usize,
    /// Controls the connections between input and output channels.
    #[config(default = "1")]
    pub groups: usize,
    /// The padding configuration.
    #[config(default = "PaddingConfig1d::Valid")]
    pub padding: PaddingConfig1d,
    /// If bias should be added to the output.
    #[config(default = true)]
    pub bias: bool,
    /// The type of function used to initialize neural network parameters.
    #[config(default = "Initializer::KaimingUniform{gain:1.0/f64::sqrt(3.0),fan_out_only:false}")]
    pub initializer: Initializer,
}

impl Conv1dConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Conv1d<B> {
        Conv1d::from(self.to_burn().init(device))
    }

    /// Burn's config with the same values.
    pub fn to_burn(&self) -> nn::conv::Conv1dConfig {
        nn::conv::Conv1dConfig::new(self.channels_in, self.channels_out, self.kernel_size)
            .with_stride(self.stride)
            .with_dilation(self.dilation)
            .with_groups(self.groups)
            .with_padding(self.padding.clone())
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone())
    }
}

/// `burn::nn::conv::Conv2dConfig`, giving a swappable [`Conv2d`].
#[derive(Config, Debug)]
pub struct Conv2dConfig {
    /// The number of channels, `[in, out]`.
    pub channels: [usize; 2],
    /// The size of the kernel.
    pub kernel_size: [usize; 2],
    /// The stride of the convolution.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Spacing between kernel elements.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Controls the connections between input and output channels.
    #[config(default = "1")]
    pub groups: usize,
    /// The padding configuration.
    #[config(default = "PaddingConfig2d::Valid")]
    pub padding: PaddingConfig2d,
    /// If bias should be added to the output.
    #[config(default = true)]
    pub bias: bool,
    /// The type of function used to initialize neural network parameters.
    #[config(default = "Initializer::KaimingUniform{gain:1.0/f64::sqrt(3.0),fan_out_only:false}")]
    pub initializer: Initializer,
}

impl Conv2dConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Conv2d<B> {
        Conv2d::from(self.to_burn().init(device))
    }

    /// Burn's config with the same values.
    pub fn to_burn(&self) -> nn::conv::Conv2dConfig {
        nn::conv::Conv2dConfig::new(self.channels, self.kernel_size)
            .with_stride(self.stride)
            .with_dilation(self.dilation)
            .with_groups(self.groups)
            .with_padding(self.padding.clone())
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone())
    }
}

/// The format a convolution gets when `asked` is: Sample where asked (refused for a depthwise
/// weight, `channels_in_group == 1`), Keras's scheme otherwise (no Q8_0, no rotation).
pub(crate) fn conv_format(
    asked: crate::Int8Format,
    channels_in_group: usize,
    what: &str,
) -> Result<crate::Int8Format, crate::Int8Error> {
    match asked.scheme {
        crate::Scheme::Sample if channels_in_group == 1 => {
            Err(crate::Int8Error::UnsupportedFormat {
                what: what.to_string(),
                format: asked,
                reason:
                    "a depthwise convolution keeps Keras's per-window scales (its kernel finds \
                     each window's scale as it reads the window)"
                        .into(),
            })
        }
        crate::Scheme::Sample => Ok(crate::Int8Format::new(
            crate::Scheme::Sample,
            crate::Rotation::None,
        )),
        _ => Ok(crate::Int8Format::KERAS),
    }
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

/// A 1-D padding as `(left, right)` for an input of `length`, Burn's rule (its own
/// `calculate_padding_1d_pair` is private to burn-nn).
pub(crate) fn padding_pair_1d(
    padding: &PaddingConfig1d,
    length: usize,
    kernel: usize,
    stride: usize,
) -> (usize, usize) {
    match padding {
        PaddingConfig1d::Valid => (0, 0),
        PaddingConfig1d::Same => same_padding(kernel, stride, length),
        PaddingConfig1d::Explicit(left, right) => (*left, *right),
    }
}

/// A 2-D padding as `((top, bottom), (left, right))` for an input of `size`, Burn's rule (its
/// own `calculate_padding_2d_pairs` is private to burn-nn).
pub(crate) fn padding_pairs_2d(
    padding: &PaddingConfig2d,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> ((usize, usize), (usize, usize)) {
    match padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (
            same_padding(kernel[0], stride[0], size[0]),
            same_padding(kernel[1], stride[1], size[1]),
        ),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((*top, *bottom), (*left, *right)),
    }
}

crate::layers::config_conversions::config_conversions!(
    Conv1dConfig,
    nn::conv::Conv1dConfig,
    [
        channels_in,
        channels_out,
        kernel_size,
        stride,
        dilation,
        groups,
        padding,
        bias,
        initializer
    ]
);

crate::layers::config_conversions::config_conversions!(
    Conv2dConfig,
    nn::conv::Conv2dConfig,
    [
        channels,
        kernel_size,
        stride,
        dilation,
        groups,
        padding,
        bias,
        initializer
    ]
);
