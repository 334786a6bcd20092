//! Configs of the four swappable layers, with Burn's fields and defaults: `init` builds Burn's
//! layer and wraps it as the `Float` variant.

use burn::config::Config;
use burn::module::Initializer;
use burn::nn::{self, LinearLayout};
use burn::tensor::backend::Backend;

use crate::{Embedding, Linear};

/// `burn::nn::LinearConfig`, giving a swappable [`Linear`].
#[derive(Config, Debug)]
pub struct LinearConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the output features.
    pub d_output: usize,
    /// If a bias should be applied during the linear transformation.
    #[config(default = true)]
    pub bias: bool,
    /// The type of function used to initialize neural network parameters.
    #[config(default = "Initializer::KaimingUniform{gain:1.0/f64::sqrt(3.0), fan_out_only:false}")]
    pub initializer: Initializer,
    /// The layout in which the linear parameters are stored.
    #[config(default = "LinearLayout::Row")]
    pub layout: LinearLayout,
}

impl LinearConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Linear<B> {
        Linear::Float(self.to_burn().init(device))
    }

    /// Burn's config with the same values.
    pub fn to_burn(&self) -> nn::LinearConfig {
        nn::LinearConfig::new(self.d_input, self.d_output)
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone())
            .with_layout(self.layout)
    }
}

/// `burn::nn::EmbeddingConfig`, giving a swappable [`Embedding`].
#[derive(Config, Debug)]
pub struct EmbeddingConfig {
    /// The number of embedding vectors.
    pub n_embedding: usize,
    /// The size of each vector.
    pub d_model: usize,
    /// The type of function used to initialize neural network parameters.
    #[config(default = "Initializer::Normal{mean:0.0, std:1.0}")]
    pub initializer: Initializer,
}

impl EmbeddingConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Embedding<B> {
        Embedding::Float(self.to_burn().init(device))
    }

    /// Burn's config with the same values.
    pub fn to_burn(&self) -> nn::EmbeddingConfig {
        nn::EmbeddingConfig::new(self.n_embedding, self.d_model)
            .with_initializer(self.initializer.clone())
    }
}
