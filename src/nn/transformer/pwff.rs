//! Position-wise feed-forward: Burn's `burn::nn::transformer::PositionWiseFeedForward`, with
//! swappable float-or-int8 [`Linear`] layers.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::Dropout;
use burn::nn::activation::{Activation, ActivationConfig};
use burn::tensor::{Tensor, backend::Backend};

use crate::{Linear, Quantize};

/// Configuration of a [`PositionWiseFeedForward`]: the fields and defaults of Burn's
/// `PositionWiseFeedForwardConfig`; [`init`](Self::init) initialises exactly as Burn does.
#[derive(Config, Debug)]
pub struct PositionWiseFeedForwardConfig {
    /// The size of the input and output features.
    pub d_model: usize,
    /// The size of the hidden inner features.
    pub d_ff: usize,
    /// The dropout rate. Default: 0.1
    #[config(default = 0.1)]
    pub dropout: f64,
    /// The type of function used to initialize neural network parameters
    #[config(default = "Initializer::KaimingUniform{gain:1.0/f64::sqrt(3.0), fan_out_only:false}")]
    pub initializer: Initializer,
    /// The activation function used between the two linear layers. Default: Gelu
    #[config(default = "ActivationConfig::Gelu")]
    pub activation: ActivationConfig,
}

impl From<&PositionWiseFeedForwardConfig> for burn::nn::transformer::PositionWiseFeedForwardConfig {
    fn from(config: &PositionWiseFeedForwardConfig) -> Self {
        burn::nn::transformer::PositionWiseFeedForwardConfig::new(config.d_model, config.d_ff)
            .with_dropout(config.dropout)
            .with_initializer(config.initializer.clone())
            .with_activation(config.activation.clone())
    }
}

impl From<PositionWiseFeedForwardConfig> for burn::nn::transformer::PositionWiseFeedForwardConfig {
    fn from(config: PositionWiseFeedForwardConfig) -> Self {
        (&config).into()
    }
}

impl From<burn::nn::transformer::PositionWiseFeedForwardConfig> for PositionWiseFeedForwardConfig {
    fn from(config: burn::nn::transformer::PositionWiseFeedForwardConfig) -> Self {
        PositionWiseFeedForwardConfig::new(config.d_model, config.d_ff)
            .with_dropout(config.dropout)
            .with_initializer(config.initializer)
            .with_activation(config.activation)
    }
}

impl PositionWiseFeedForwardConfig {
    /// Initializes a new [`PositionWiseFeedForward`] (float), through Burn's own init.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PositionWiseFeedForward<B> {
        burn::nn::transformer::PositionWiseFeedForwardConfig::from(self)
            .init(device)
            .into()
    }
}

/// The position-wise feed-forward network of
/// [Attention Is All You Need](https://arxiv.org/pdf/1706.03762v7), as Burn's, with
/// `linear_inner` (`d_model → d_ff`) and `linear_outer` (`d_ff → d_model`) float or int8.
///
/// As in Burn, `activation` is `#[module(skip)]`: its state (SwiGLU's parameters) is not saved
/// in records, and it is not quantized.
#[derive(Module, Debug, Quantize)]
pub struct PositionWiseFeedForward<B: Backend> {
    /// Linear layer with `d_model` input features and `d_ff` output features.
    pub linear_inner: Linear<B>,
    /// Linear layer with `d_ff` input features and `d_model` output features.
    pub linear_outer: Linear<B>,
    /// Dropout layer.
    pub dropout: Dropout,
    /// Activation function.
    #[module(skip)]
    #[quantize(skip)]
    pub activation: Activation<B>,
}

impl<B: Backend> From<burn::nn::transformer::PositionWiseFeedForward<B>>
    for PositionWiseFeedForward<B>
{
    fn from(pwff: burn::nn::transformer::PositionWiseFeedForward<B>) -> Self {
        Self {
            linear_inner: pwff.linear_inner.into(),
            linear_outer: pwff.linear_outer.into(),
            dropout: pwff.dropout,
            activation: pwff.activation,
        }
    }
}

impl<B: Backend> PositionWiseFeedForward<B> {
    /// Applies the forward pass: `[..., d_model]` to `[..., d_model]`.
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        let x = self.linear_inner.forward(input);
        let x = self.activation.forward(x);
        let x = self.dropout.forward(x);

        self.linear_outer.forward(x)
    }
}
