//! Building a [`Gemma3`] from a checkpoint, one tensor at a time.
//!
//! A [`WeightSource`] serves tensors by their HF name (`model.layers.0.self_attn.q_proj.weight`)
//! as row-major f32 in HF layout (`[out, in]` for projections, norms as HF's `w`). The builder
//! transposes projections to Burn's `[in, out]`, checks every shape, and — with `int8` — quantizes
//! each layer as soon as it is read, so the whole f32 model never sits in memory at once.

pub mod bpk;
pub mod gguf;
pub mod hf;

use std::ops::Range;

use burn::module::Param;
use burn::nn;
use burn::tensor::{DType, Int};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use burn_int8::{
    Embedding, Int8Format, Int8Weight, Linear, QuantizedEmbedding, QuantizedLinear, Rotation,
    Scheme,
};
use burn_int8_gguf::q8_0::Q8_0Blocks;
use burn_int8_tokenizer::Tokenizer;

use crate::config::Gemma3Config;
use crate::error::Gemma3Error;
use crate::model::{Attention, DecoderLayer, Gemma3, Mlp, RmsNorm, ShardedEmbedding};

/// The int8 format of each layer, by its path in the model (`layers.3.mlp.down_proj`,
/// `embed_tokens.shards.0`), for a model quantized while loading.
pub type LayerFormats<'a> = &'a dyn Fn(&str) -> Int8Format;

/// Where weights come from: HF safetensors, GGUF, ...
pub trait WeightSource {
    /// Row-major shape of a tensor (HF layout), or `MissingTensor`.
    fn shape(&self, name: &str) -> Result<Vec<usize>, Gemma3Error>;
    /// A whole tensor as row-major f32.
    fn read(&mut self, name: &str) -> Result<Vec<f32>, Gemma3Error>;
    /// Rows `rows` (outermost dimension) of a tensor as row-major f32.
    fn read_rows(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, Gemma3Error>;
    /// Every tensor name, to reject checkpoints with extra tensors.
    fn names(&self) -> Vec<String>;
    /// Rows `rows` (outermost dimension) of a tensor stored as Q8_0 (ggml's blocks of 32 int8
    /// values and one f16 scale, running along the innermost dimension), exactly as stored;
    /// `None` when the tensor is stored otherwise (the default: the source has no Q8_0). A
    /// layer asked for unrotated `q8_0` is then built from these values and scales as they
    /// are, with no dequantize-requantize.
    fn read_q8_0_rows(
        &mut self,
        _name: &str,
        _rows: Range<usize>,
    ) -> Result<Option<Q8_0Blocks>, Gemma3Error> {
        Ok(None)
    }
}

/// The format whose values and scales are a Q8_0 tensor's own: a Q8_0 checkpoint loads as
/// stored in it.
const AS_STORED: Int8Format = Int8Format {
    scheme: Scheme::Q8_0,
    rotation: Rotation::None,
};

/// The HF name and row-major HF shape of every tensor a Gemma3 checkpoint must hold.
pub fn expected_tensors(config: &Gemma3Config) -> Vec<(String, Vec<usize>)> {
    let (hidden, ffn, head_dim) = (
        config.hidden_size,
        config.intermediate_size,
        config.head_dim,
    );
    // Saturating: a config that passed `validate` never overflows, and one that did not must
    // not wrap to a small (wrong) shape.
    let (q_dim, kv_dim) = (
        config.num_heads.saturating_mul(head_dim),
        config.num_kv_heads.saturating_mul(head_dim),
    );
    let mut tensors = vec![
        (
            "model.embed_tokens.weight".to_string(),
            vec![config.vocab_size, hidden],
        ),
        ("model.norm.weight".to_string(), vec![hidden]),
    ];
    for i in 0..config.num_layers {
        let layer: [(&str, Vec<usize>); 13] = [
            ("input_layernorm.weight", vec![hidden]),
            ("post_attention_layernorm.weight", vec![hidden]),
            ("pre_feedforward_layernorm.weight", vec![hidden]),
            ("post_feedforward_layernorm.weight", vec![hidden]),
            ("self_attn.q_proj.weight", vec![q_dim, hidden]),
            ("self_attn.k_proj.weight", vec![kv_dim, hidden]),
            ("self_attn.v_proj.weight", vec![kv_dim, hidden]),
            ("self_attn.o_proj.weight", vec![hidden, q_dim]),
            ("self_attn.q_norm.weight", vec![head_dim]),
            ("self_attn.k_norm.weight", vec![head_dim]),
            ("mlp.gate_proj.weight", vec![ffn, hidden]),
            ("mlp.up_proj.weight", vec![ffn, hidden]),
            ("mlp.down_proj.weight", vec![hidden, ffn]),
        ];
        tensors.extend(
            layer
                .into_iter()
                .map(|(suffix, shape)| (format!("model.layers.{i}.{suffix}"), shape)),
        );
    }
    tensors
}

/// Zeros of the expected shapes: the skeleton a preset record is loaded into.
pub struct ZeroSource {
    shapes: std::collections::BTreeMap<String, Vec<usize>>,
}

impl ZeroSource {
    pub fn new(config: &Gemma3Config) -> Self {
        Self {
            shapes: expected_tensors(config).into_iter().collect(),
        }
    }
}

impl WeightSource for ZeroSource {
    fn shape(&self, name: &str) -> Result<Vec<usize>, Gemma3Error> {
        self.shapes
            .get(name)
            .cloned()
            .ok_or_else(|| Gemma3Error::MissingTensor(name.into()))
    }
    fn read(&mut self, name: &str) -> Result<Vec<f32>, Gemma3Error> {
        let shape = self.shape(name)?;
        Ok(vec![0.0; checked_elements(name, &shape, &shape)?])
    }
    fn read_rows(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, Gemma3Error> {
        let shape = self.shape(name)?;
        let mut part = shape.clone();
        if let Some(first) = part.first_mut() {
            *first = rows.len();
        }
        Ok(vec![0.0; checked_elements(name, &part, &shape)?])
    }
    fn names(&self) -> Vec<String> {
        self.shapes.keys().cloned().collect()
    }
}

/// The product of `shape`, or a [`Gemma3Error::ShapeMismatch`] naming `full` when it overflows.
fn checked_elements(name: &str, shape: &[usize], full: &[usize]) -> Result<usize, Gemma3Error> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Gemma3Error::ShapeMismatch {
            name: name.into(),
            expected: vec![usize::MAX],
            found: full.to_vec(),
        })
}

/// Error lists are cut to their first [`SHOWN_NAMES`] items and a count, so that a foreign
/// checkpoint with thousands of tensors gives a short message.
pub const SHOWN_NAMES: usize = 10;

/// The first [`SHOWN_NAMES`] of `names`, then `... and N more` when there are more.
pub fn cut_names(mut names: Vec<String>) -> Vec<String> {
    if names.len() > SHOWN_NAMES {
        let more = names.len() - SHOWN_NAMES;
        names.truncate(SHOWN_NAMES);
        names.push(format!("... and {more} more"));
    }
    names
}

/// Checks that every token of `tokenizer` has a row in an embedding table of `embedding_rows`
/// rows (`source_name` names the checkpoint in the error).
///
/// A table with MORE rows than the tokenizer has tokens is fine: the extra rows are padding
/// (some checkpoints pad the table to a multiple of 64 or 128), never produced by the tokenizer.
/// A tokenizer with more tokens is a [`Gemma3Error::VocabMismatch`], with one exception: an HF
/// `tokenizer.json` whose tokens past the table are all special added tokens (Gemma3's
/// `<image_soft_token>`, id 262,144, which only the vision model uses). Text never encodes to
/// those unless it spells them out, and generation then refuses the id
/// ([`Gemma3Error::TokenOutOfRange`]), never looking it up as a zero embedding.
pub fn check_vocabulary(
    tokenizer: &Tokenizer,
    embedding_rows: usize,
    source_name: &str,
) -> Result<(), Gemma3Error> {
    let tokens = tokenizer.vocab_size();
    if tokens <= embedding_rows {
        return Ok(());
    }
    if tokenizer.vocab().is_none()
        && (embedding_rows..tokens)
            .all(|id| u32::try_from(id).is_ok_and(|id| tokenizer.is_control(id)))
    {
        return Ok(());
    }
    Err(Gemma3Error::VocabMismatch {
        source_name: source_name.to_string(),
        tokenizer: tokens,
        embedding: embedding_rows,
    })
}

/// Builds the model from `source`; with `int8`, every projection and the embedding are
/// quantized while loading (one layer of f32 in memory at a time), each in the format `int8`
/// gives its path.
///
/// Nothing is allocated before the config is validated and every expected tensor is found in
/// `source` with its expected shape: a config that disagrees with its checkpoint (more layers,
/// other head counts, a wider model) fails here naming the first tensor that disagrees, and a
/// checkpoint file holds the data of every tensor it lists (the GGUF and safetensors readers
/// check that), so what is built is bounded by what the file holds.
pub fn build_model<B: Backend>(
    config: &Gemma3Config,
    source: &mut dyn WeightSource,
    int8: Option<LayerFormats<'_>>,
    device: &B::Device,
    mut progress: impl FnMut(&str),
) -> Result<Gemma3<B>, Gemma3Error> {
    config.validate()?;
    let expected: std::collections::BTreeSet<String> = expected_tensors(config)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let extra: Vec<String> = source
        .names()
        .into_iter()
        .filter(|name| !expected.contains(name))
        .collect();
    if !extra.is_empty() {
        return Err(Gemma3Error::UnexpectedTensors(cut_names(extra)));
    }
    for (name, shape) in expected_tensors(config) {
        let found = source.shape(&name)?;
        if found != shape {
            return Err(Gemma3Error::ShapeMismatch {
                name,
                expected: shape,
                found,
            });
        }
    }
    let mut loader = Loader {
        source,
        int8,
        device,
    };
    let (hidden, heads, kv_heads, head_dim) = (
        config.hidden_size,
        config.num_heads,
        config.num_kv_heads,
        config.head_dim,
    );

    progress("model.embed_tokens.weight");
    let embed_tokens = loader.embedding("model.embed_tokens.weight", config.vocab_size, hidden)?;
    let mut layers = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let name = |suffix: &str| format!("model.layers.{i}.{suffix}");
        progress(&name(""));
        let norm = |loader: &mut Loader<B>, suffix: &str, dim| {
            loader.norm(&name(suffix), dim, config.rms_norm_eps)
        };
        let self_attn = Attention {
            q_proj: loader.linear(&name("self_attn.q_proj.weight"), hidden, heads * head_dim)?,
            k_proj: loader.linear(
                &name("self_attn.k_proj.weight"),
                hidden,
                kv_heads * head_dim,
            )?,
            v_proj: loader.linear(
                &name("self_attn.v_proj.weight"),
                hidden,
                kv_heads * head_dim,
            )?,
            o_proj: loader.linear(&name("self_attn.o_proj.weight"), heads * head_dim, hidden)?,
            q_norm: norm(&mut loader, "self_attn.q_norm.weight", head_dim)?,
            k_norm: norm(&mut loader, "self_attn.k_norm.weight", head_dim)?,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim,
            query_scale: config.query_pre_attn_scalar.powf(-0.5),
            sliding_window: (!config.is_global_layer(i)).then_some(config.sliding_window),
        };
        let mlp = Mlp {
            gate_proj: loader.linear(
                &name("mlp.gate_proj.weight"),
                hidden,
                config.intermediate_size,
            )?,
            up_proj: loader.linear(
                &name("mlp.up_proj.weight"),
                hidden,
                config.intermediate_size,
            )?,
            down_proj: loader.linear(
                &name("mlp.down_proj.weight"),
                config.intermediate_size,
                hidden,
            )?,
        };
        layers.push(DecoderLayer {
            input_layernorm: norm(&mut loader, "input_layernorm.weight", hidden)?,
            self_attn,
            post_attention_layernorm: norm(&mut loader, "post_attention_layernorm.weight", hidden)?,
            pre_feedforward_layernorm: norm(
                &mut loader,
                "pre_feedforward_layernorm.weight",
                hidden,
            )?,
            mlp,
            post_feedforward_layernorm: norm(
                &mut loader,
                "post_feedforward_layernorm.weight",
                hidden,
            )?,
        });
    }
    let norm = loader.norm("model.norm.weight", hidden, config.rms_norm_eps)?;
    Ok(Gemma3 {
        embed_tokens,
        layers,
        norm,
        config: config.clone(),
    })
}

struct Loader<'a, B: Backend> {
    source: &'a mut dyn WeightSource,
    int8: Option<LayerFormats<'a>>,
    device: &'a B::Device,
}

impl<B: Backend> Loader<'_, B> {
    fn check_shape(&self, name: &str, expected: &[usize]) -> Result<(), Gemma3Error> {
        let found = self.source.shape(name)?;
        if found != expected {
            return Err(Gemma3Error::ShapeMismatch {
                name: name.into(),
                expected: expected.to_vec(),
                found,
            });
        }
        Ok(())
    }

    /// A whole tensor as f32, checked to hold the values of its (already checked) shape, all
    /// finite.
    fn read_finite(&mut self, name: &str) -> Result<Vec<f32>, Gemma3Error> {
        let values = self.source.read(name)?;
        let shape = self.source.shape(name)?;
        if values.len() != shape.iter().product::<usize>() {
            return Err(Gemma3Error::ShapeMismatch {
                name: name.into(),
                expected: shape,
                found: vec![values.len()],
            });
        }
        check_finite(name, &values)?;
        Ok(values)
    }

    /// Q8_0 blocks as stored, as int8 channel rows `[rows, inputs]` and their f32 block scales
    /// (f16 values, exact in f32), checked: the count, finite scales, and no value of -128.
    ///
    /// -128 is refused rather than requantized: ggml never writes it (its quantizer rounds
    /// into -127..=127), so a file holding one was not made by llama.cpp's tools, and the int8
    /// kernels negate values (sign tricks of the SIMD dot products), which -128 does not
    /// survive. Requantizing would silently change a foreign file's weights; an error naming
    /// the tensor lets its user decide (e.g. load it with `--scheme keras`, which quantizes
    /// from the dequantized values).
    fn stored_q8_0(
        &self,
        name: &str,
        blocks: Q8_0Blocks,
        rows: usize,
        inputs: usize,
    ) -> Result<(Tensor<B, 2, Int>, Tensor<B, 1>), Gemma3Error> {
        let block = burn_int8_gguf::q8_0::BLOCK_VALUES;
        if blocks.values.len() != rows * inputs || blocks.scales.len() * block != rows * inputs {
            return Err(Gemma3Error::ShapeMismatch {
                name: name.into(),
                expected: vec![rows, inputs],
                found: vec![blocks.values.len(), blocks.scales.len()],
            });
        }
        let minus_128 = blocks.values.iter().filter(|&&q| q == i8::MIN).count();
        if minus_128 > 0 {
            return Err(Gemma3Error::Q8_0MinusOneTwentyEight {
                name: name.into(),
                count: minus_128,
            });
        }
        let scales: Vec<f32> = blocks.scales.iter().map(|d| d.to_f32()).collect();
        check_finite(name, &scales)?;
        let values = Tensor::from_data(
            TensorData::new(blocks.values, [rows, inputs]),
            (self.device, DType::I8),
        );
        let count = scales.len();
        let scale = Tensor::from_data(TensorData::new(scales, [count]), self.device);
        Ok((values, scale))
    }

    /// An HF `[out, in]` projection as a Burn `[in, out]` layer.
    fn linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Linear<B>, Gemma3Error> {
        self.check_shape(name, &[d_out, d_in])?;
        // HF's `[out, in]` is the int8 weight's own channel-major layout: quantized from a view
        // of it, laid out once. A float layer takes Burn's `[in, out]` as a dense copy.
        Ok(if let Some(formats) = self.int8 {
            // `model.layers.3.mlp.down_proj.weight` is the layer at `layers.3.mlp.down_proj`.
            let path = name
                .trim_start_matches("model.")
                .trim_end_matches(".weight");
            let format = formats(path);
            if format == AS_STORED
                && let Some(blocks) = self.source.read_q8_0_rows(name, 0..d_out)?
            {
                let (values, scale) = self.stored_q8_0(name, blocks, d_out, d_in)?;
                let weight = Int8Weight::from_parts_as(values.transpose(), scale, 1, format)?;
                return Ok(Linear::from(QuantizedLinear { weight, bias: None }));
            }
            let values = self.read_finite(name)?;
            let out_in = TensorData::new(values, [d_out, d_in]);
            let weight = Tensor::<B, 2>::from_data(out_in, self.device).transpose();
            Linear::from(QuantizedLinear::from_weights_as(weight, None, format)?)
        } else {
            let values = self.read_finite(name)?;
            let mut transposed = vec![0.0f32; values.len()];
            for (row, chunk) in values.chunks_exact(d_in).enumerate() {
                for (col, &value) in chunk.iter().enumerate() {
                    transposed[col * d_out + row] = value;
                }
            }
            let weight =
                Tensor::<B, 2>::from_data(TensorData::new(transposed, [d_in, d_out]), self.device);
            Linear::from(nn::Linear {
                weight: Param::from_tensor(weight),
                bias: None,
            })
        })
    }

    fn norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<RmsNorm<B>, Gemma3Error> {
        self.check_shape(name, &[dim])?;
        let values = self.read_finite(name)?;
        let weight = Tensor::<B, 1>::from_data(TensorData::new(values, [dim]), self.device);
        Ok(RmsNorm {
            weight: Param::from_tensor(weight),
            eps,
        })
    }

    /// The embedding, read shard by shard; with int8, each shard is quantized in slices of
    /// [`QUANTIZE_ROWS`] rows so no f32 shard is ever whole in memory (or, stored as Q8_0 and
    /// asked for unrotated `q8_0`, read in such slices as stored).
    fn embedding(
        &mut self,
        name: &str,
        vocab: usize,
        hidden: usize,
    ) -> Result<ShardedEmbedding<B>, Gemma3Error> {
        self.check_shape(name, &[vocab, hidden])?;
        let rows_per_shard = ShardedEmbedding::<B>::rows_per_shard(vocab, hidden);
        let mut shards = Vec::new();
        for (shard, start) in (0..vocab).step_by(rows_per_shard).enumerate() {
            let end = (start + rows_per_shard).min(vocab);
            shards.push(if let Some(formats) = self.int8 {
                let format = formats(&format!("embed_tokens.shards.{shard}"));
                let mut weights = Vec::new();
                let mut scales = Vec::new();
                for slice in (start..end).step_by(QUANTIZE_ROWS) {
                    let slice = slice..(slice + QUANTIZE_ROWS).min(end);
                    let count = slice.len();
                    let stored = match format == AS_STORED {
                        true => self.source.read_q8_0_rows(name, slice.clone())?,
                        false => None,
                    };
                    if let Some(blocks) = stored {
                        let (values, scale) = self.stored_q8_0(name, blocks, count, hidden)?;
                        weights.push(values);
                        scales.push(scale);
                        continue;
                    }
                    let rows = self.rows(name, slice, hidden)?;
                    let part = QuantizedEmbedding::from_weights_as(rows, format)?;
                    weights.push(part.weight.values.val());
                    scales.push(part.weight.scale());
                }
                // Rows are independent in every format: the slices' scales follow each other.
                Embedding::from(QuantizedEmbedding {
                    weight: Int8Weight::from_parts_as(
                        Tensor::cat(weights, 0),
                        Tensor::cat(scales, 0),
                        0,
                        format,
                    )?,
                })
            } else {
                Embedding::from(nn::Embedding {
                    weight: Param::from_tensor(self.rows(name, start..end, hidden)?),
                })
            });
        }
        Ok(ShardedEmbedding { shards })
    }

    fn rows(
        &mut self,
        name: &str,
        rows: Range<usize>,
        hidden: usize,
    ) -> Result<Tensor<B, 2>, Gemma3Error> {
        let count = rows.len();
        let values = self.source.read_rows(name, rows)?;
        if values.len() != count * hidden {
            return Err(Gemma3Error::ShapeMismatch {
                name: name.into(),
                expected: vec![count, hidden],
                found: vec![values.len()],
            });
        }
        check_finite(name, &values)?;
        Ok(Tensor::from_data(
            TensorData::new(values, [count, hidden]),
            self.device,
        ))
    }
}

/// Embedding rows quantized at a time while loading (16 MiB of f32 at hidden 640).
const QUANTIZE_ROWS: usize = 6554;

fn check_finite(name: &str, values: &[f32]) -> Result<(), Gemma3Error> {
    let count = values.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(Gemma3Error::NonFinite {
            name: name.into(),
            count,
        });
    }
    Ok(())
}
