//! `burn::nn::pool`: Burn's pools, with [`MaxPool1d`] and [`MaxPool2d`] (and their configs)
//! replaced.
//!
//! `MaxPool1d`, `MaxPool2d`: Burn's `nn::pool::MaxPool2d` (same fields, config and record), whose forward
//! pass takes the seam's max pool: a direct kernel on flex, Burn's op elsewhere, the same bits
//! as Burn's module on every backend. An int8 CNN's convolutions are fast enough that flex's
//! own max pool was a third of an int8 ResNet-18 (`benches/README.md`).

// Burn's other pools under Burn's paths; the names defined below shadow the glob.
pub use burn::nn::pool::*;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{self, PaddingConfig1d, PaddingConfig2d};
use burn::tensor::{Tensor, backend::Backend};

use crate::layers::config_conversions::config_conversions;
use crate::layers::conv::{padding_pair_1d, padding_pairs_2d};

/// Configuration to create a [2D max pooling](MaxPool2d) layer using the [init function](MaxPool2dConfig::init).
#[derive(Config, Debug)]
pub struct MaxPool2dConfig {
    /// The size of the kernel.
    pub kernel_size: [usize; 2],
    /// The strides.
    #[config(default = "kernel_size")]
    pub strides: [usize; 2],
    /// The padding configuration. `Same` padding with an even kernel pads asymmetrically (with
    /// `-inf`), as Burn's does.
    #[config(default = "PaddingConfig2d::Valid")]
    pub padding: PaddingConfig2d,
    /// The dilation.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// If true, use ceiling instead of floor for output size calculation.
    #[config(default = "false")]
    pub ceil_mode: bool,
}

config_conversions!(
    MaxPool2dConfig,
    nn::pool::MaxPool2dConfig,
    [kernel_size, strides, padding, dilation, ceil_mode]
);

/// Applies a 2D max pooling over input tensors: Burn's module, with flex's direct kernel.
///
/// Should be created with [MaxPool2dConfig], or converted from Burn's `nn::pool::MaxPool2d`
/// with `From`.
#[derive(Module, Clone, Debug)]
pub struct MaxPool2d {
    /// The strides.
    pub stride: [usize; 2],
    /// The size of the kernel.
    pub kernel_size: [usize; 2],
    /// The padding configuration.
    pub padding: PaddingConfig2d,
    /// The dilation.
    pub dilation: [usize; 2],
    /// If true, use ceiling instead of floor for output size calculation.
    pub ceil_mode: bool,
}

impl MaxPool2dConfig {
    /// Initialize a new [max pool 2d](MaxPool2d) module.
    pub fn init(&self) -> MaxPool2d {
        MaxPool2d {
            stride: self.strides,
            kernel_size: self.kernel_size,
            padding: self.padding.clone(),
            dilation: self.dilation,
            ceil_mode: self.ceil_mode,
        }
    }
}

impl From<nn::pool::MaxPool2d> for MaxPool2d {
    fn from(pool: nn::pool::MaxPool2d) -> Self {
        Self {
            stride: pool.stride,
            kernel_size: pool.kernel_size,
            padding: pool.padding,
            dilation: pool.dilation,
            ceil_mode: pool.ceil_mode,
        }
    }
}

impl MaxPool2d {
    /// Applies the forward pass on the input tensor.
    ///
    /// # Shapes
    ///
    /// - input: `[batch_size, channels, height_in, width_in]`
    /// - output: `[batch_size, channels, height_out, width_out]`
    pub fn forward<B: Backend>(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, height, width] = input.dims();
        let padding = padding_pairs_2d(
            &self.padding,
            [height, width],
            self.kernel_size,
            self.stride,
        );
        crate::kernels::max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            padding,
            self.dilation,
            self.ceil_mode,
        )
    }
}

/// Configuration to create a [1D max pooling](MaxPool1d) layer using the [init function](MaxPool1dConfig::init).
#[derive(Config, Debug)]
pub struct MaxPool1dConfig {
    /// The size of the kernel.
    pub kernel_size: usize,
    /// The stride.
    #[config(default = "kernel_size")]
    pub stride: usize,
    /// The padding configuration. `Same` padding with an even kernel pads asymmetrically (with
    /// `-inf`), as Burn's does.
    #[config(default = "PaddingConfig1d::Valid")]
    pub padding: PaddingConfig1d,
    /// The dilation.
    #[config(default = "1")]
    pub dilation: usize,
    /// If true, use ceiling instead of floor for output size calculation.
    #[config(default = "false")]
    pub ceil_mode: bool,
}

config_conversions!(
    MaxPool1dConfig,
    nn::pool::MaxPool1dConfig,
    [kernel_size, stride, padding, dilation, ceil_mode]
);

/// Applies a 1D max pooling over input tensors: Burn's module, with flex's direct kernel.
///
/// Should be created with [MaxPool1dConfig], or converted from Burn's `nn::pool::MaxPool1d`
/// with `From`.
#[derive(Module, Clone, Debug)]
pub struct MaxPool1d {
    /// The stride.
    pub stride: usize,
    /// The size of the kernel.
    pub kernel_size: usize,
    /// The padding configuration.
    pub padding: PaddingConfig1d,
    /// The dilation.
    pub dilation: usize,
    /// If true, use ceiling instead of floor for output size calculation.
    pub ceil_mode: bool,
}

impl MaxPool1dConfig {
    /// Initialize a new [max pool 1d](MaxPool1d) module.
    pub fn init(&self) -> MaxPool1d {
        MaxPool1d {
            stride: self.stride,
            kernel_size: self.kernel_size,
            padding: self.padding.clone(),
            dilation: self.dilation,
            ceil_mode: self.ceil_mode,
        }
    }
}

impl From<nn::pool::MaxPool1d> for MaxPool1d {
    fn from(pool: nn::pool::MaxPool1d) -> Self {
        Self {
            stride: pool.stride,
            kernel_size: pool.kernel_size,
            padding: pool.padding,
            dilation: pool.dilation,
            ceil_mode: pool.ceil_mode,
        }
    }
}

impl MaxPool1d {
    /// Applies the forward pass on the input tensor.
    ///
    /// # Shapes
    ///
    /// - input: `[batch_size, channels, length_in]`
    /// - output: `[batch_size, channels, length_out]`
    pub fn forward<B: Backend>(&self, input: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, _, length] = input.dims();
        let padding = padding_pair_1d(&self.padding, length, self.kernel_size, self.stride);
        crate::kernels::max_pool1d(
            input,
            self.kernel_size,
            self.stride,
            padding,
            self.dilation,
            self.ceil_mode,
        )
    }
}
