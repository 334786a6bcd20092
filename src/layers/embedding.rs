//! `QuantizedEmbedding`: Keras's int8 `Embedding` and `ReversibleEmbedding` (tied logits).

use burn::config::Config;
use burn::module::Initializer;
use burn::module::{Module, Param};
use burn::nn;
use burn::tensor::{Int, Tensor, backend::Backend};

use crate::kernels::{embedding_lookup, map_rows, quantized_matmul};
use crate::{Int8Error, Int8Format, Int8Weight};

/// An embedding table with int8 rows and one scale per vocabulary row.
///
/// - [`Self::forward`] looks rows up: `E_q[id] * (1 / scale[id])`, a multiplication by the
///   reciprocal, which is what reproduces Keras bit for bit.
/// - [`Self::reverse`] is the tied output projection `h @ E^T` of Keras's
///   `ReversibleEmbedding`: `h` is quantized per row, the product is int8×int8→int32, and the
///   result is divided by `h_scale * scale[vocab]`.
#[derive(Module, Debug)]
pub struct QuantizedEmbedding<B: Backend> {
    /// `[n_embedding, d_model]` (the layout of `nn::Embedding`), one scale per row.
    pub weight: Int8Weight<B, 2>,
}

impl<B: Backend> QuantizedEmbedding<B> {
    /// Quantizes a float table `[n_embedding, d_model]`, one scale per row.
    pub fn from_weights(weight: Tensor<B, 2>) -> Result<Self, Int8Error> {
        Self::from_weights_as(weight, Int8Format::KERAS)
    }

    /// [`Self::from_weights`] in the given format ([`crate::scheme`]): Q8_0 blocks run along
    /// `d_model`, and a rotated table is rotated back at each lookup.
    pub fn from_weights_as(weight: Tensor<B, 2>, format: Int8Format) -> Result<Self, Int8Error> {
        crate::layers::refuse_per_sample(format, "embedding table")?;
        Ok(Self {
            weight: Int8Weight::quantize_as(weight, 0, "embedding table", format)?,
        })
    }

    pub fn from_float(embedding: &nn::Embedding<B>) -> Result<Self, Int8Error> {
        Self::from_weights(embedding.weight.val())
    }

    /// [`Self::from_float`] in the given format.
    pub fn from_float_as(
        embedding: &nn::Embedding<B>,
        format: Int8Format,
    ) -> Result<Self, Int8Error> {
        Self::from_weights_as(embedding.weight.val(), format)
    }

    pub fn dequantize(&self) -> nn::Embedding<B> {
        nn::Embedding {
            weight: Param::from_tensor(self.weight.dequantize()),
        }
    }

    /// `[n_embedding, d_model]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.dims()
    }

    /// Looks up `ids [batch, seq]`, giving `[batch, seq, d_model]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [batch, seq] = ids.dims();
        let [_, d_model] = self.dims();
        embedding_lookup(&self.weight, ids.reshape([batch * seq])).reshape([batch, seq, d_model])
    }

    /// Tied logits: `hidden [..., d_model]` to `[..., n_embedding]`.
    pub fn reverse<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        let [n_embedding, _] = self.dims();
        map_rows(hidden, n_embedding, |rows| {
            quantized_matmul(rows, &self.weight, None)
        })
    }
}

/// An embedding that is float or int8, with lookup and tied-logits paths for both: Burn's
/// `nn::Embedding` until `model.quantize_int8()` turns it int8 in place.
///
/// Burn's field (`weight`) and Burn's record while float, so `burn::nn` checkpoints load into
/// it and code that reads or edits `embedding.weight` works unchanged. Once int8 the table is
/// [`Self::int8_weight`] (one scale per row), and `weight` keeps no tensor: `weight.val()`
/// panics with a message naming `int8_weight()` and `dequantize()`, and assigning it changes
/// nothing until the model is dequantized (as [`crate::Linear`] explains).
#[derive(Debug, Clone)]
pub struct Embedding<B: Backend> {
    /// `[n_embedding, d_model]` while float; no tensor once int8.
    pub weight: Param<Tensor<B, 2>>,
    /// The int8 table `[n_embedding, d_model]`, one scale per row, once quantized.
    int8: Option<Int8Weight<B, 2>>,
}

crate::layers::swappable::swappable_module!(
    Embedding,
    EmbeddingRecord,
    burn = nn::Embedding,
    int8 = QuantizedEmbedding,
    rank = 2,
    channel_axis = 0,
    params = [],
    consts = [],
    optional_params = []
);

impl<B: Backend> Embedding<B> {
    pub fn new(config: &nn::EmbeddingConfig, device: &B::Device) -> Self {
        Self::from(config.init(device))
    }

    /// Looks up `ids [batch, seq]`, giving `[batch, seq, d_model]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        match self.int8_layer() {
            None => self.as_burn().forward(ids),
            Some(layer) => layer.forward(ids),
        }
    }

    /// Tied logits `hidden @ E^T`.
    pub fn reverse<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        match self.int8_layer() {
            None => {
                let weight = self.weight.val();
                let [n_embedding, _] = weight.dims();
                map_rows(hidden, n_embedding, |rows| {
                    rows.matmul(weight.clone().transpose())
                })
            }
            Some(layer) => layer.reverse(hidden),
        }
    }
}

crate::quantize::swappable_layer!(
    Embedding,
    QuantizedEmbedding,
    nn::Embedding<B>,
    channel_axis = 0
);

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
        Embedding::from(self.to_burn().init(device))
    }

    /// Burn's config with the same values.
    pub fn to_burn(&self) -> nn::EmbeddingConfig {
        nn::EmbeddingConfig::new(self.n_embedding, self.d_model)
            .with_initializer(self.initializer.clone())
    }
}

crate::layers::config_conversions::config_conversions!(
    EmbeddingConfig,
    nn::EmbeddingConfig,
    [n_embedding, d_model, initializer]
);
