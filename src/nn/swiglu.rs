//! `SwiGlu`: Burn's `nn::SwiGlu` (Swish gated linear unit) with swappable float-or-int8
//! linears. The forward pass is Burn's; `From` converts a Burn module.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::{self, LinearLayout};
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

use crate::{Linear, Quantize};

/// Configuration to create a [SwiGlu](SwiGlu) activation layer using the [init function](SwiGluConfig::init).
#[derive(Config, Debug)]
pub struct SwiGluConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the output features.
    pub d_output: usize,
    /// If a bias should be applied during the linear transformation. Default behaviour is False
    /// for SwiGLU activation implementations.
    #[config(default = false)]
    pub bias: bool,
    /// The type of function used to initialize the linear layer parameters
    // Burn writes `num_traits::Float::sqrt(3.0)`, the same correctly rounded `f64` square root.
    #[config(default = "Initializer::KaimingUniform{gain:1.0/f64::sqrt(3.0), fan_out_only:false}")]
    pub initializer: Initializer,
    /// The layout in which the linear parameters are stored.
    #[config(default = "LinearLayout::Row")]
    pub layout: LinearLayout,
}

/// Burn's SwiGLU, `SwiGLU(x) = Swish(W_inner * x + b_inner) * (W_outer * x + b_outer)`, whose
/// two linears can be int8.
///
/// Should be created with [SwiGluConfig], or converted from a Burn `nn::SwiGlu` with `From`.
#[derive(Module, Debug, Quantize)]
pub struct SwiGlu<B: Backend> {
    /// The inner linear layer for Swish activation function
    /// with `d_input` input features and `d_output` output features.
    pub linear_inner: Linear<B>,
    /// The outer linear layer for element wise multiplication
    /// with `d_input` input features and `d_output` output features.
    pub linear_outer: Linear<B>,
}

impl SwiGluConfig {
    /// Initialize a new [SwiGLU](SwiGlu) activation layer: Burn's own initialisation, then
    /// converted.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SwiGlu<B> {
        self.to_burn().init(device).into()
    }

    /// The equivalent `burn::nn::SwiGluConfig`.
    fn to_burn(&self) -> nn::SwiGluConfig {
        nn::SwiGluConfig {
            d_input: self.d_input,
            d_output: self.d_output,
            bias: self.bias,
            initializer: self.initializer.clone(),
            layout: self.layout,
        }
    }
}

impl<B: Backend> From<nn::SwiGlu<B>> for SwiGlu<B> {
    fn from(swiglu: nn::SwiGlu<B>) -> Self {
        Self {
            linear_inner: swiglu.linear_inner.into(),
            linear_outer: swiglu.linear_outer.into(),
        }
    }
}

impl<B: Backend> SwiGlu<B> {
    /// Applies the Swish Gated Linear Unit to the input tensor.
    ///
    /// # Shapes
    ///
    /// - input: `[batch_size, seq_length, d_input]`
    /// - output: `[batch_size, seq_length, d_output]`
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        let x = self.linear_inner.forward(input.clone());
        let x = silu(x);
        x.mul(self.linear_outer.forward(input))
    }
}

crate::layers::config_conversions::config_conversions!(
    SwiGluConfig,
    nn::SwiGluConfig,
    [d_input, d_output, bias, initializer, layout]
);
