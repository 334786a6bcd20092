//! Transformer decoder: Burn's `burn::nn::transformer::TransformerDecoder`, with swappable
//! float-or-int8 linear layers in its attention and feed-forward blocks.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::activation::ActivationConfig;
use burn::nn::{Dropout, LayerNorm};
use burn::tensor::{Bool, Tensor, backend::Backend};

use super::PositionWiseFeedForward;
use crate::Quantize;
use crate::nn::attention::{MhaCache, MhaInput, MultiHeadAttention, TensorCache};

/// Configuration of a [`TransformerDecoder`]: the fields and defaults of Burn's
/// `TransformerDecoderConfig`; [`init`](Self::init) initialises exactly as Burn does.
#[derive(Config, Debug)]
pub struct TransformerDecoderConfig {
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

impl From<&TransformerDecoderConfig> for burn::nn::transformer::TransformerDecoderConfig {
    fn from(config: &TransformerDecoderConfig) -> Self {
        burn::nn::transformer::TransformerDecoderConfig::new(
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

impl From<TransformerDecoderConfig> for burn::nn::transformer::TransformerDecoderConfig {
    fn from(config: TransformerDecoderConfig) -> Self {
        (&config).into()
    }
}

impl From<burn::nn::transformer::TransformerDecoderConfig> for TransformerDecoderConfig {
    fn from(config: burn::nn::transformer::TransformerDecoderConfig) -> Self {
        TransformerDecoderConfig::new(config.d_model, config.d_ff, config.n_heads, config.n_layers)
            .with_dropout(config.dropout)
            .with_norm_first(config.norm_first)
            .with_quiet_softmax(config.quiet_softmax)
            .with_initializer(config.initializer)
            .with_activation(config.activation)
            .with_layer_norm_eps(config.layer_norm_eps)
    }
}

impl TransformerDecoderConfig {
    /// Initializes a new [`TransformerDecoder`] (float), through Burn's own init.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerDecoder<B> {
        burn::nn::transformer::TransformerDecoderConfig::from(self)
            .init(device)
            .into()
    }
}

/// The transformer decoder of [Attention Is All You Need](https://arxiv.org/abs/1706.03762),
/// as Burn's, with int8-capable linear layers.
///
/// Create it with [`TransformerDecoderConfig`], or convert a Burn module with `From`.
#[derive(Module, Debug, Quantize)]
pub struct TransformerDecoder<B: Backend> {
    /// Transformer decoder layers.
    pub layers: Vec<TransformerDecoderLayer<B>>,
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

impl<B: Backend> From<burn::nn::transformer::TransformerDecoder<B>> for TransformerDecoder<B> {
    fn from(decoder: burn::nn::transformer::TransformerDecoder<B>) -> Self {
        Self {
            layers: decoder
                .layers
                .into_iter()
                .map(TransformerDecoderLayer::from)
                .collect(),
            d_model: decoder.d_model,
            d_ff: decoder.d_ff,
            n_heads: decoder.n_heads,
            n_layers: decoder.n_layers,
            dropout: decoder.dropout,
            norm_first: decoder.norm_first,
            quiet_softmax: decoder.quiet_softmax,
        }
    }
}

/// [`TransformerDecoder`] forward pass input argument.
#[derive(Debug)]
pub struct TransformerDecoderInput<B: Backend> {
    target: Tensor<B, 3>,
    target_mask_pad: Option<Tensor<B, 2, Bool>>,
    target_mask_attn: Option<Tensor<B, 3, Bool>>,
    memory: Tensor<B, 3>,
    memory_mask_pad: Option<Tensor<B, 2, Bool>>,
    memory_mask_attn: Option<Tensor<B, 3, Bool>>,
}

impl<B: Backend> TransformerDecoderInput<B> {
    /// An input: `target` `[batch_size, seq_length, d_model]` attending to `memory`
    /// `[batch_size, seq_length_memory, d_model]`, without masks.
    pub fn new(target: Tensor<B, 3>, memory: Tensor<B, 3>) -> Self {
        Self {
            target,
            target_mask_pad: None,
            target_mask_attn: None,
            memory,
            memory_mask_pad: None,
            memory_mask_attn: None,
        }
    }

    /// Register the memory padding mask.
    pub fn memory_mask_pad(mut self, mask_pad: Tensor<B, 2, Bool>) -> Self {
        self.memory_mask_pad = Some(mask_pad);
        self
    }

    /// Register the memory attention mask.
    pub fn memory_mask_attn(mut self, mask_attn: Tensor<B, 3, Bool>) -> Self {
        self.memory_mask_attn = Some(mask_attn);
        self
    }

    /// Register the target padding mask.
    pub fn target_mask_pad(mut self, mask_pad: Tensor<B, 2, Bool>) -> Self {
        self.target_mask_pad = Some(mask_pad);
        self
    }

    /// Register the target attention mask.
    pub fn target_mask_attn(mut self, mask_attn: Tensor<B, 3, Bool>) -> Self {
        self.target_mask_attn = Some(mask_attn);
        self
    }
}

/// [`TransformerDecoder`] layer module.
#[derive(Module, Debug, Quantize)]
pub struct TransformerDecoderLayer<B: Backend> {
    /// Cross-attention module.
    pub cross_attn: MultiHeadAttention<B>,
    /// Self-attention module.
    pub self_attn: MultiHeadAttention<B>,
    /// Position-wise feed-forward module.
    pub pwff: PositionWiseFeedForward<B>,
    /// First layer norm.
    pub norm_1: LayerNorm<B>,
    /// Second layer norm.
    pub norm_2: LayerNorm<B>,
    /// Third layer norm.
    pub norm_3: LayerNorm<B>,
    /// Dropout.
    pub dropout: Dropout,
    /// Whether to apply norm first.
    pub norm_first: bool,
}

impl<B: Backend> From<burn::nn::transformer::TransformerDecoderLayer<B>>
    for TransformerDecoderLayer<B>
{
    fn from(layer: burn::nn::transformer::TransformerDecoderLayer<B>) -> Self {
        Self {
            cross_attn: layer.cross_attn.into(),
            self_attn: layer.self_attn.into(),
            pwff: layer.pwff.into(),
            norm_1: layer.norm_1,
            norm_2: layer.norm_2,
            norm_3: layer.norm_3,
            dropout: layer.dropout,
            norm_first: layer.norm_first,
        }
    }
}

/// Autoregressive cache for a single [`TransformerDecoderLayer`].
pub struct TransformerDecoderLayerAutoregressiveCache<B: Backend> {
    /// Cross-attention cache.
    pub cross_attn: MhaCache<B>,
    /// Self-attention cache.
    pub self_attn: MhaCache<B>,
    /// Position-wise feed-forward cache.
    pub pwff: TensorCache<B, 3>,
    /// First layer norm cache.
    pub norm_1: TensorCache<B, 3>,
    /// Second layer norm cache.
    pub norm_2: TensorCache<B, 3>,
    /// Third layer norm cache.
    pub norm_3: TensorCache<B, 3>,
}

impl<B: Backend> TransformerDecoderLayerAutoregressiveCache<B> {
    /// Create an empty cache.
    pub fn empty() -> Self {
        Self {
            cross_attn: MhaCache::autoregressive_cross_attention(),
            self_attn: MhaCache::autoregressive(),
            pwff: TensorCache::empty(),
            norm_1: TensorCache::empty(),
            norm_2: TensorCache::empty(),
            norm_3: TensorCache::empty(),
        }
    }
}

/// Autoregressive cache for the [`TransformerDecoder`], used when decoding tokens.
pub struct TransformerDecoderAutoregressiveCache<B: Backend> {
    layers: Vec<TransformerDecoderLayerAutoregressiveCache<B>>,
}

impl<B: Backend> TransformerDecoderAutoregressiveCache<B> {
    fn empty(num_layers: usize) -> Self {
        Self {
            layers: (0..num_layers)
                .map(|_| TransformerDecoderLayerAutoregressiveCache::empty())
                .collect(),
        }
    }
}

impl<B: Backend> TransformerDecoderLayer<B> {
    /// Create a new [`TransformerDecoderLayer`] from the given configuration (Burn's init).
    pub fn new(config: &TransformerDecoderConfig, device: &B::Device) -> Self {
        let config = burn::nn::transformer::TransformerDecoderConfig::from(config);
        burn::nn::transformer::TransformerDecoderLayer::new(&config, device).into()
    }

    /// Applies the decoder layer to `input.target`; the rest of `input` is passed through.
    pub fn forward(&self, mut input: TransformerDecoderInput<B>) -> TransformerDecoderInput<B> {
        // Self attention residual path.
        let x = input.target;
        let mut residual_path = x.clone();

        // Normalize.
        if self.norm_first {
            residual_path = self.norm_3.forward(residual_path);
        }

        // Self attention.
        let mut self_attn_input = MhaInput::self_attn(residual_path);
        if let Some(mask_pad) = &input.target_mask_pad {
            self_attn_input = self_attn_input.mask_pad(mask_pad.clone());
        }
        if let Some(mask_attn) = &input.target_mask_attn {
            self_attn_input = self_attn_input.mask_attn(mask_attn.clone());
        }
        let residual_path = self.self_attn.forward(self_attn_input).context;

        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Cross attention residual path.
        // Normalize.
        let residual_path = if self.norm_first {
            self.norm_1.forward(x.clone())
        } else {
            x = self.norm_1.forward(x);
            x.clone()
        };

        // Cross attention.
        let mut cross_attn_input =
            MhaInput::new(residual_path, input.memory.clone(), input.memory.clone());
        if let Some(mask_pad) = &input.memory_mask_pad {
            cross_attn_input = cross_attn_input.mask_pad(mask_pad.clone());
        }
        if let Some(mask_attn) = &input.memory_mask_attn {
            cross_attn_input = cross_attn_input.mask_attn(mask_attn.clone());
        }
        let residual_path = self.cross_attn.forward(cross_attn_input).context;

        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Feed forward residual path.
        // Normalize.
        let residual_path = if self.norm_first {
            self.norm_2.forward(x.clone())
        } else {
            x = self.norm_2.forward(x);
            x.clone()
        };

        let residual_path = self.pwff.forward(residual_path);
        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Main path.
        // Normalize.
        if !self.norm_first {
            x = self.norm_3.forward(x)
        }

        input.target = x;
        input
    }

    /// Applies the forward pass using an autoregressive cache.
    pub fn forward_autoregressive_inference(
        &self,
        mut input: TransformerDecoderInput<B>,
        cache: &mut TransformerDecoderLayerAutoregressiveCache<B>,
    ) -> TransformerDecoderInput<B> {
        // Self attention residual path.
        let x = input.target;
        let mut residual_path = x.clone();

        // Normalize.
        if self.norm_first {
            residual_path = cache
                .norm_3
                .forward_autoregressive(residual_path, 1, |x| self.norm_3.forward(x));
        }

        // Self attention.
        let mut self_attn_input = MhaInput::self_attn(residual_path);
        if let Some(mask_pad) = &input.target_mask_pad {
            self_attn_input = self_attn_input.mask_pad(mask_pad.clone());
        }
        if let Some(mask_attn) = &input.target_mask_attn {
            self_attn_input = self_attn_input.mask_attn(mask_attn.clone());
        }
        let residual_path = self
            .self_attn
            .forward_cache(self_attn_input, &mut cache.self_attn)
            .context;

        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Cross attention residual path.
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

        // Cross attention.
        let mut cross_attn_input =
            MhaInput::new(residual_path, input.memory.clone(), input.memory.clone());
        if let Some(mask_pad) = &input.memory_mask_pad {
            cross_attn_input = cross_attn_input.mask_pad(mask_pad.clone());
        }
        if let Some(mask_attn) = &input.memory_mask_attn {
            cross_attn_input = cross_attn_input.mask_attn(mask_attn.clone());
        }
        let residual_path = self
            .cross_attn
            .forward_cache(cross_attn_input, &mut cache.cross_attn)
            .context;

        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Feed forward residual path.
        // Normalize.
        let residual_path = if self.norm_first {
            cache
                .norm_2
                .forward_autoregressive(x.clone(), 1, |x| self.norm_2.forward(x))
        } else {
            x = cache
                .norm_2
                .forward_autoregressive(x, 1, |x| self.norm_2.forward(x));
            x.clone()
        };

        let residual_path = cache
            .pwff
            .forward_autoregressive(residual_path, 1, |x| self.pwff.forward(x));
        let residual_path = self.dropout.forward(residual_path);
        let mut x = x + residual_path;

        // Main path.
        // Normalize.
        if !self.norm_first {
            x = cache
                .norm_3
                .forward_autoregressive(x, 1, |x| self.norm_3.forward(x))
        }

        input.target = x;
        input
    }
}

impl<B: Backend> TransformerDecoder<B> {
    /// Applies the forward pass; the output has the shape of the target.
    pub fn forward(&self, mut input: TransformerDecoderInput<B>) -> Tensor<B, 3> {
        for layer in self.layers.iter() {
            input = layer.forward(input);
        }

        input.target
    }

    /// Applies the forward pass using an autoregressive cache (from
    /// [`Self::new_autoregressive_cache`]).
    ///
    /// # Panics
    /// When the cache was made for a different number of layers.
    pub fn forward_autoregressive_inference(
        &self,
        mut input: TransformerDecoderInput<B>,
        cache: &mut TransformerDecoderAutoregressiveCache<B>,
    ) -> Tensor<B, 3> {
        assert_eq!(
            cache.layers.len(),
            self.layers.len(),
            "the autoregressive cache was made for another decoder"
        );
        for (layer, cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            input = layer.forward_autoregressive_inference(input, cache);
        }

        input.target
    }

    /// Create an empty autoregressive cache.
    pub fn new_autoregressive_cache(&self) -> TransformerDecoderAutoregressiveCache<B> {
        TransformerDecoderAutoregressiveCache::empty(self.layers.len())
    }
}
