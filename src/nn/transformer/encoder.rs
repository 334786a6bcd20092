//! Transformer encoder: Burn's `burn::nn::transformer::TransformerEncoder`, with swappable
//! float-or-int8 linear layers in its attention and feed-forward blocks.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::activation::ActivationConfig;
use burn::nn::{Dropout, LayerNorm};
use burn::tensor::{Bool, Tensor, backend::Backend};

use super::PositionWiseFeedForward;
use crate::Quantize;
use crate::nn::attention::{MhaCache, MhaInput, MultiHeadAttention, TensorCache};

/// Configuration of a [`TransformerEncoder`]: the fields and defaults of Burn's
/// `TransformerEncoderConfig`; [`init`](Self::init) initialises exactly as Burn does.
#[derive(Config, Debug)]
pub struct TransformerEncoderConfig {
    /// The size of the model.
    pub d_model: usize,
    /// The size of the position-wise feed-forward network.
    pub d_ff: usize,
    /// The number of attention heads.
    pub n_heads: usize,
    /// The number of layers.
    pub n_layers: usize,
    /// The dropout rate. Default: 0.1
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Layer norm will be applied first instead of after the other modules.
    #[config(default = false)]
    pub norm_first: bool,
    /// Use "quiet softmax" instead of regular softmax.
    ///
    /// Reference: <https://www.evanmiller.org/attention-is-off-by-one.html>
    #[config(default = false)]
    pub quiet_softmax: bool,
    /// The type of function used to initialize neural network parameters
    #[config(default = "Initializer::KaimingUniform{gain:1.0/f64::sqrt(3.0), fan_out_only:false}")]
    pub initializer: Initializer,
    /// The activation function used in the position-wise feed-forward network. Default: Gelu
    #[config(default = "ActivationConfig::Gelu")]
    pub activation: ActivationConfig,
    /// The epsilon value for layer normalization. Default: 1e-5
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
}

impl From<&TransformerEncoderConfig> for burn::nn::transformer::TransformerEncoderConfig {
    fn from(config: &TransformerEncoderConfig) -> Self {
        burn::nn::transformer::TransformerEncoderConfig::new(
            config.d_model,
            config.d_ff,
            config.n_heads,
            config.n_layers,
        )
        .with_dropout(config.dropout)
        .with_norm_first(config.norm_first)
        .with_quiet_softmax(config.quiet_softmax)
        .with_initializer(config.initializer.clone())
        .with_activation(config.activation.clone())
        .with_layer_norm_eps(config.layer_norm_eps)
    }
}

impl From<TransformerEncoderConfig> for burn::nn::transformer::TransformerEncoderConfig {
    fn from(config: TransformerEncoderConfig) -> Self {
        (&config).into()
    }
}

impl From<burn::nn::transformer::TransformerEncoderConfig> for TransformerEncoderConfig {
    fn from(config: burn::nn::transformer::TransformerEncoderConfig) -> Self {
        TransformerEncoderConfig::new(config.d_model, config.d_ff, config.n_heads, config.n_layers)
            .with_dropout(config.dropout)
            .with_norm_first(config.norm_first)
            .with_quiet_softmax(config.quiet_softmax)
            .with_initializer(config.initializer)
            .with_activation(config.activation)
            .with_layer_norm_eps(config.layer_norm_eps)
    }
}

impl TransformerEncoderConfig {
    /// Initializes a new [`TransformerEncoder`] (float), through Burn's own init.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerEncoder<B> {
        burn::nn::transformer::TransformerEncoderConfig::from(self)
            .init(device)
            .into()
    }
}

/// The transformer encoder of [Attention Is All You Need](https://arxiv.org/abs/1706.03762),
/// as Burn's, with int8-capable linear layers.
///
/// Create it with [`TransformerEncoderConfig`], or convert a Burn module with `From`.
#[derive(Module, Debug, Quantize)]
pub struct TransformerEncoder<B: Backend> {
    /// The transformer encoder layers.
    pub layers: Vec<TransformerEncoderLayer<B>>,
    /// The size of the model.
    pub d_model: usize,
    /// The size of the position-wise feed-forward network.
    pub d_ff: usize,
    /// The number of attention heads.
    pub n_heads: usize,
    /// The number of layers.
    pub n_layers: usize,
    /// The dropout rate.
    pub dropout: f64,
    /// Layer norm will be applied first instead of after the other modules.
    pub norm_first: bool,
    /// Use "quiet softmax" instead of regular softmax.
    pub quiet_softmax: bool,
}

impl<B: Backend> From<burn::nn::transformer::TransformerEncoder<B>> for TransformerEncoder<B> {
    fn from(encoder: burn::nn::transformer::TransformerEncoder<B>) -> Self {
        Self {
            layers: encoder
                .layers
                .into_iter()
                .map(TransformerEncoderLayer::from)
                .collect(),
            d_model: encoder.d_model,
            d_ff: encoder.d_ff,
            n_heads: encoder.n_heads,
            n_layers: encoder.n_layers,
            dropout: encoder.dropout,
            norm_first: encoder.norm_first,
            quiet_softmax: encoder.quiet_softmax,
        }
    }
}

/// [`TransformerEncoder`] forward pass input argument.
#[derive(Debug)]
pub struct TransformerEncoderInput<B: Backend> {
    tensor: Tensor<B, 3>,
    mask_pad: Option<Tensor<B, 2, Bool>>,
    mask_attn: Option<Tensor<B, 3, Bool>>,
}

impl<B: Backend> TransformerEncoderInput<B> {
    /// An input `[batch_size, seq_length, d_model]`, without masks.
    pub fn new(tensor: Tensor<B, 3>) -> Self {
        Self {
            tensor,
            mask_pad: None,
            mask_attn: None,
        }
    }

    /// Register the padding mask `[batch_size, seq_length]`.
    pub fn mask_pad(mut self, mask_pad: Tensor<B, 2, Bool>) -> Self {
        self.mask_pad = Some(mask_pad);
        self
    }

    /// Register the attention mask `[batch_size, seq_length, seq_length]`.
    pub fn mask_attn(mut self, mask_attn: Tensor<B, 3, Bool>) -> Self {
        self.mask_attn = Some(mask_attn);
        self
    }
}

impl<B: Backend> TransformerEncoder<B> {
    /// Applies the forward pass: `[batch_size, seq_length, d_model]` to the same shape.
    pub fn forward(&self, input: TransformerEncoderInput<B>) -> Tensor<B, 3> {
        let mut x = input.tensor;

        for layer in self.layers.iter() {
            x = layer.forward(x, input.mask_pad.clone(), input.mask_attn.clone());
        }

        x
    }

    /// Applies the forward pass using an autoregressive cache (from
    /// [`Self::new_autoregressive_cache`]).
    ///
    /// # Panics
    /// When the cache was made for a different number of layers.
    pub fn forward_autoregressive_inference(
        &self,
        input: TransformerEncoderInput<B>,
        cache: &mut TransformerEncoderAutoregressiveCache<B>,
    ) -> Tensor<B, 3> {
        assert_eq!(
            cache.layers.len(),
            self.layers.len(),
            "the autoregressive cache was made for another encoder"
        );
        let mut x = input.tensor;

        for (layer, cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward_autoregressive_inference(
                x,
                input.mask_pad.clone(),
                input.mask_attn.clone(),
                cache,
            );
        }

        x
    }

    /// Create an empty autoregressive cache.
    pub fn new_autoregressive_cache(&self) -> TransformerEncoderAutoregressiveCache<B> {
        TransformerEncoderAutoregressiveCache::empty(self.layers.len())
    }
}

/// Transformer encoder layer module.
#[derive(Module, Debug, Quantize)]
pub struct TransformerEncoderLayer<B: Backend> {
    /// Multi-head self-attention sub-layer.
    pub mha: MultiHeadAttention<B>,
    /// Position-wise feed-forward sub-layer.
    pub pwff: PositionWiseFeedForward<B>,
    /// Layer normalization applied around the feed-forward sub-layer.
    pub norm_1: LayerNorm<B>,
    /// Layer normalization applied around the attention sub-layer.
    pub norm_2: LayerNorm<B>,
    /// Dropout module applied to residual connections.
    pub dropout: Dropout,
    /// If `true`, apply layer normalization before sub-layers (pre-norm),
    /// otherwise apply it after (post-norm).
    pub norm_first: bool,
}

impl<B: Backend> From<burn::nn::transformer::TransformerEncoderLayer<B>>
    for TransformerEncoderLayer<B>
{
    fn from(layer: burn::nn::transformer::TransformerEncoderLayer<B>) -> Self {
        Self {
            mha: layer.mha.into(),
            pwff: layer.pwff.into(),
            norm_1: layer.norm_1,
            norm_2: layer.norm_2,
            dropout: layer.dropout,
            norm_first: layer.norm_first,
        }
    }
}

impl<B: Backend> TransformerEncoderLayer<B> {
    /// Create a new transformer encoder layer from the given configuration (Burn's init).
    pub fn new(config: &TransformerEncoderConfig, device: &B::Device) -> Self {
        let config = burn::nn::transformer::TransformerEncoderConfig::from(config);
        burn::nn::transformer::TransformerEncoderLayer::new(&config, device).into()
    }

    /// Applies the forward pass: `[batch_size, seq_length, d_model]` to the same shape.
    pub fn forward(
        &self,
        input: Tensor<B, 3>,
        mask_pad: Option<Tensor<B, 2, Bool>>,
        mask_attn: Option<Tensor<B, 3, Bool>>,
    ) -> Tensor<B, 3> {
        // Multi-head attention residual path.
        let x = input;
        let mut residual_path = x.clone();

        // Normalize.
        if self.norm_first {
            residual_path = self.norm_2.forward(residual_path)
        }

        // Multi-head attention.
        let mut input_mhs = MhaInput::self_attn(residual_path);
        if let Some(mask_pad) = mask_pad {
            input_mhs = input_mhs.mask_pad(mask_pad);
        }
        if let Some(mask_attn) = mask_attn {
            input_mhs = input_mhs.mask_attn(mask_attn);
        }
        let residual_path = self.mha.forward(input_mhs).context;

        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Feed forward residual path.
        // Normalize.
        let residual_path = if self.norm_first {
            self.norm_1.forward(x.clone())
        } else {
            x = self.norm_1.forward(x);
            x.clone()
        };

        // Feed forward.
        let residual_path = self.pwff.forward(residual_path);
        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Main path.
        // Normalize.
        if !self.norm_first {
            x = self.norm_2.forward(x)
        }

        x
    }

    /// Applies the forward pass using an autoregressive cache.
    pub fn forward_autoregressive_inference(
        &self,
        input: Tensor<B, 3>,
        mask_pad: Option<Tensor<B, 2, Bool>>,
        mask_attn: Option<Tensor<B, 3, Bool>>,
        cache: &mut TransformerEncoderLayerAutoregressiveCache<B>,
    ) -> Tensor<B, 3> {
        // Multi-head attention residual path.
        let x = input;
        let mut residual_path = x.clone();

        // Normalize.
        if self.norm_first {
            residual_path = cache
                .norm_2
                .forward_autoregressive(residual_path, 1, |x| self.norm_2.forward(x))
        }

        // Multi-head attention.
        let mut input_mhs = MhaInput::self_attn(residual_path);
        if let Some(mask_pad) = mask_pad {
            input_mhs = input_mhs.mask_pad(mask_pad);
        }
        if let Some(mask_attn) = mask_attn {
            input_mhs = input_mhs.mask_attn(mask_attn);
        }
        let residual_path = self.mha.forward_cache(input_mhs, &mut cache.mha).context;

        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Feed forward residual path.
        // Normalize.
        let residual_path = if self.norm_first {
            cache
                .norm_1
                .forward_autoregressive(x.clone(), 1, |x| self.norm_1.forward(x))
        } else {
            x = cache
                .norm_1
                .forward_autoregressive(x, 1, |x| self.norm_1.forward(x));
            x.clone()
        };

        // Feed forward.
        let residual_path = cache
            .pwff
            .forward_autoregressive(residual_path, 1, |x| self.pwff.forward(x));
        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Main path.
        // Normalize.
        if !self.norm_first {
            x = cache
                .norm_2
                .forward_autoregressive(x, 1, |x| self.norm_2.forward(x))
        }

        x
    }
}

/// Autoregressive cache for a single [`TransformerEncoderLayer`].
pub struct TransformerEncoderLayerAutoregressiveCache<B: Backend> {
    /// Multi-head attention cache.
    pub mha: MhaCache<B>,
    /// Position-wise feed-forward cache.
    pub pwff: TensorCache<B, 3>,
    /// First layer norm cache.
    pub norm_1: TensorCache<B, 3>,
    /// Second layer norm cache.
    pub norm_2: TensorCache<B, 3>,
}

impl<B: Backend> TransformerEncoderLayerAutoregressiveCache<B> {
    /// Create an empty cache.
    pub fn empty() -> Self {
        Self {
            mha: MhaCache::autoregressive(),
            pwff: TensorCache::empty(),
            norm_1: TensorCache::empty(),
            norm_2: TensorCache::empty(),
        }
    }
}

/// Autoregressive cache for the [`TransformerEncoder`], used when decoding tokens.
pub struct TransformerEncoderAutoregressiveCache<B: Backend> {
    layers: Vec<TransformerEncoderLayerAutoregressiveCache<B>>,
}

impl<B: Backend> TransformerEncoderAutoregressiveCache<B> {
    fn empty(num_layers: usize) -> Self {
        Self {
            layers: (0..num_layers)
                .map(|_| TransformerEncoderLayerAutoregressiveCache::empty())
                .collect(),
        }
    }
}
