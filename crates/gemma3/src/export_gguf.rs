//! Export to a GGUF file that llama.cpp loads (`gemma3` architecture, llama.cpp's tensor names
//! and conventions, the mirror of [`crate::load::gguf`]).
//!
//! - **Q8_0 layers as we hold them.** A projection or an embedding quantized unrotated with the
//!   `q8_0` scheme is written as Q8_0 blocks: its int8 values and its block scales as f16, which
//!   they are exactly (a Q8_0 scale is an f16 value held as f32), so every byte is what we hold
//!   (a Q8_0 GGUF loaded as stored and exported gives back its tensors byte for byte).
//! - **Everything else as F32**: norms (with llama.cpp's `w + 1`), float layers, and layers in
//!   another int8 format (Keras-exact, rotated), dequantized. llama.cpp has no type for a
//!   per-channel or rotated int8 weight, and F32 of the dequantized weight is what those layers
//!   compute with, so the file still runs the same model; the report counts what was
//!   dequantized. An embedding whose shards are not all unrotated `q8_0` is F32 as a whole (a
//!   GGUF tensor has one type).
//! - **Metadata from the model and its tokenizer**, not copied from a source file, so a preset
//!   exports too: `gemma3.*` from the config, `tokenizer.ggml.*` from the SentencePiece
//!   vocabulary (a tokenizer loaded from an HF `tokenizer.json` has none: refused). The keys
//!   and types are those llama.cpp's converter writes. A config that llama.cpp could not
//!   express (a query scale, local RoPE base or sliding-window pattern other than the ones it
//!   derives for Gemma3) is refused rather than exported as another model.
//! - The file is written atomically ([`burn_int8::io::atomic::write_file`]) and streamed one
//!   tensor at a time through [`GgufWriter`]: no second copy of the model is held.

use std::io::{BufWriter, Write};
use std::path::Path;

use burn::tensor::{Tensor, backend::Backend};
use burn_int8::{Embedding, Int8Format, Int8Weight, Linear, Rotation, Scheme};
use burn_int8_gguf::requantize::FILE_TYPE_MOSTLY_Q8_0;
use burn_int8_gguf::{Array, GgmlType, GgufError, GgufWriter, TensorInfo, Value, q8_0};
use burn_int8_tokenizer::Tokenizer;
use half::f16;

use crate::config::Gemma3Config;
use crate::error::{Gemma3Error, io};
use crate::load::gguf::gguf_name;
use crate::model::{Gemma3, RmsNorm};

/// llama.cpp's `LLAMA_FTYPE_ALL_F32`: a file with no quantized tensor.
pub const FILE_TYPE_ALL_F32: u32 = 0;
/// ggml's quantization version, written beside a quantized file type.
pub const QUANTIZATION_VERSION: u32 = 2;

/// The format a layer is written as Q8_0 in: its values and scales are Q8_0's own.
const Q8_0_AS_HELD: Int8Format = Int8Format {
    scheme: Scheme::Q8_0,
    rotation: Rotation::None,
};

/// What [`export_gguf`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufExport {
    /// The file's length in bytes.
    pub bytes: u64,
    /// Tensors written as Q8_0 blocks, byte for byte as held.
    pub q8_0_tensors: usize,
    /// Tensors written as F32 (norms and float layers).
    pub f32_tensors: usize,
    /// The GGUF names of int8 layers in another format than unrotated `q8_0`, dequantized
    /// to F32.
    pub dequantized: Vec<String>,
}

/// Writes `model` and `tokenizer` as a GGUF file at `path`, atomically (an existing regular
/// file is replaced only by the complete new one; the caller decides whether to allow that).
pub fn export_gguf<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    path: &Path,
) -> Result<GgufExport, Gemma3Error> {
    let mut report = None;
    burn_int8::io::atomic::write_file::<Gemma3Error>(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| io(tmp, e))?;
        let mut out = BufWriter::new(file);
        let written = write_gguf(model, tokenizer, &mut out).map_err(|error| match error {
            Gemma3Error::Gguf { source, .. } => Gemma3Error::Gguf {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })?;
        out.flush().map_err(|e| io(tmp, e))?;
        report = Some(written);
        Ok(())
    })?;
    report.ok_or_else(|| Gemma3Error::GgufExport("the write reported nothing".into()))
}

/// Writes `model` and `tokenizer` as GGUF to `out` (see the module's documentation); errors of
/// the writer are [`Gemma3Error::Gguf`] with an empty path ([`export_gguf`] names its file).
pub fn write_gguf<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    out: impl Write,
) -> Result<GgufExport, Gemma3Error> {
    let tensors = gguf_tensors(model);
    let any_q8_0 = tensors.iter().any(|t| t.ggml_type == GgmlType::Q8_0);
    let mut writer = GgufWriter::new();
    let gguf = |source: GgufError| Gemma3Error::Gguf {
        path: Default::default(),
        source,
    };
    for (key, value) in gguf_metadata(&model.config, tokenizer, any_q8_0)? {
        writer.add_metadata(key, value).map_err(gguf)?;
    }
    for tensor in &tensors {
        writer
            .add_tensor(&tensor.name, tensor.dims.clone(), tensor.ggml_type)
            .map_err(gguf)?;
    }
    let mut next = tensors.iter();
    let bytes = writer
        .write(out, |info: &TensorInfo, out: &mut dyn Write| {
            let tensor = next
                .next()
                .filter(|t| t.name == info.name)
                .ok_or_else(|| std::io::Error::other("tensors written out of order"))?;
            (tensor.write)(out)
        })
        .map_err(gguf)?;
    Ok(GgufExport {
        bytes,
        q8_0_tensors: tensors
            .iter()
            .filter(|t| t.ggml_type == GgmlType::Q8_0)
            .count(),
        f32_tensors: tensors
            .iter()
            .filter(|t| t.ggml_type == GgmlType::F32)
            .count(),
        dequantized: tensors
            .iter()
            .filter(|t| t.dequantized)
            .map(|t| t.name.clone())
            .collect(),
    })
}

/// The metadata llama.cpp reads for a Gemma3 model, in the order its converter writes it.
/// `quantized` says whether any tensor is Q8_0 (the file type).
pub fn gguf_metadata(
    config: &Gemma3Config,
    tokenizer: &Tokenizer,
    quantized: bool,
) -> Result<Vec<(String, Value)>, Gemma3Error> {
    check_expressible(config)?;
    let vocab = tokenizer.vocab().ok_or_else(|| {
        Gemma3Error::GgufExport(
            "the tokenizer is an HF tokenizer.json, which has no SentencePiece vocabulary \
             (tokens, scores, types) to write as tokenizer.ggml.*; export from a GGUF or a preset made from one"
                .into(),
        )
    })?;
    if vocab.len() != config.vocab_size {
        return Err(Gemma3Error::GgufExport(format!(
            "the tokenizer has {} tokens but the embedding has {} rows; llama.cpp needs one row per token",
            vocab.len(),
            config.vocab_size
        )));
    }
    let u32_of = |field: &str, value: usize| {
        u32::try_from(value).map(Value::U32).map_err(|_| {
            Gemma3Error::GgufExport(format!("{field} = {value} does not fit GGUF's u32"))
        })
    };
    let key = |name: &str| format!("gemma3.{name}");
    let mut metadata = vec![
        (
            "general.architecture".into(),
            Value::String("gemma3".into()),
        ),
        (
            key("context_length"),
            u32_of("max_position_embeddings", config.max_position_embeddings)?,
        ),
        (
            key("embedding_length"),
            u32_of("hidden_size", config.hidden_size)?,
        ),
        (key("block_count"), u32_of("num_layers", config.num_layers)?),
        (
            key("feed_forward_length"),
            u32_of("intermediate_size", config.intermediate_size)?,
        ),
        (
            key("attention.head_count"),
            u32_of("num_heads", config.num_heads)?,
        ),
        (
            key("attention.layer_norm_rms_epsilon"),
            Value::F32(config.rms_norm_eps as f32),
        ),
        (
            key("attention.key_length"),
            u32_of("head_dim", config.head_dim)?,
        ),
        (
            key("attention.value_length"),
            u32_of("head_dim", config.head_dim)?,
        ),
        (
            key("rope.freq_base"),
            Value::F32(config.rope_global_base as f32),
        ),
        (
            key("attention.sliding_window"),
            u32_of("sliding_window", config.sliding_window)?,
        ),
        (
            key("attention.head_count_kv"),
            u32_of("num_kv_heads", config.num_kv_heads)?,
        ),
    ];
    if config.rope_global_scaling != 1.0 {
        metadata.push((key("rope.scaling.type"), Value::String("linear".into())));
        metadata.push((
            key("rope.scaling.factor"),
            Value::F32(config.rope_global_scaling as f32),
        ));
    }
    let id = |value: u32| Value::U32(value);
    metadata.extend([
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(vocab.tokens.clone())),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(Array::F32(vocab.scores.clone())),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(vocab.token_types.clone())),
        ),
        ("tokenizer.ggml.bos_token_id".into(), id(vocab.bos_id)),
        ("tokenizer.ggml.eos_token_id".into(), id(vocab.eos_id)),
    ]);
    if let Some(unknown) = vocab.unknown_id {
        metadata.push(("tokenizer.ggml.unknown_token_id".into(), id(unknown)));
    }
    if let Some(padding) = vocab.padding_id {
        metadata.push(("tokenizer.ggml.padding_token_id".into(), id(padding)));
    }
    metadata.extend([
        (
            "tokenizer.ggml.add_bos_token".into(),
            Value::Bool(vocab.add_bos),
        ),
        ("tokenizer.ggml.add_sep_token".into(), Value::Bool(false)),
        ("tokenizer.ggml.add_eos_token".into(), Value::Bool(false)),
        (
            "tokenizer.ggml.add_space_prefix".into(),
            Value::Bool(vocab.add_space_prefix),
        ),
    ]);
    if quantized {
        metadata.push((
            "general.quantization_version".into(),
            Value::U32(QUANTIZATION_VERSION),
        ));
    }
    metadata.push((
        "general.file_type".into(),
        Value::U32(if quantized {
            FILE_TYPE_MOSTLY_Q8_0
        } else {
            FILE_TYPE_ALL_F32
        }),
    ));
    Ok(metadata)
}

/// Refuses a config that llama.cpp would run as another model: it derives the query scale,
/// the local RoPE base and the sliding-window pattern of Gemma3 instead of reading them (the
/// same rules [`crate::load::gguf::GgufSource::config`] reads GGUF files with).
fn check_expressible(config: &Gemma3Config) -> Result<(), Gemma3Error> {
    let query_scalar = match config.hidden_size.checked_div(config.num_heads) {
        Some(per_head) if config.num_layers == 62 && per_head > 0 => per_head as f64,
        _ => config.head_dim as f64,
    };
    let checks = [
        (
            "query_pre_attn_scalar",
            config.query_pre_attn_scalar,
            query_scalar,
        ),
        ("rope_local_base", config.rope_local_base, 10_000.0),
        (
            "sliding_window_pattern",
            config.sliding_window_pattern as f64,
            6.0,
        ),
    ];
    for (field, value, llama_cpp) in checks {
        if value != llama_cpp {
            return Err(Gemma3Error::GgufExport(format!(
                "{field} = {value}, but llama.cpp derives {llama_cpp} for this Gemma3 and GGUF has no key for it"
            )));
        }
    }
    Ok(())
}

/// Writes one tensor's data to the file.
type WriteData<'a> = Box<dyn Fn(&mut dyn Write) -> std::io::Result<()> + 'a>;

/// A tensor to write: its GGUF name, ggml dims (innermost first), type, and its bytes.
struct GgufTensor<'a> {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    /// An int8 layer in another format, written dequantized.
    dequantized: bool,
    /// Writes the tensor's data (a large embedding shard by shard).
    write: WriteData<'a>,
}

/// Writes `bytes` to `out`, or gives `bytes`'s error as an I/O error for the writer to wrap.
fn put(out: &mut dyn Write, bytes: Result<Vec<u8>, Gemma3Error>) -> std::io::Result<()> {
    out.write_all(&bytes.map_err(std::io::Error::other)?)
}

fn gguf_tensors<B: Backend>(model: &Gemma3<B>) -> Vec<GgufTensor<'_>> {
    let config = &model.config;
    let mut tensors = vec![embedding(
        &model.embed_tokens.shards,
        config.vocab_size,
        config.hidden_size,
    )];
    for (i, layer) in model.layers.iter().enumerate() {
        let hf = |suffix: &str| format!("model.layers.{i}.{suffix}");
        let attention = &layer.self_attn;
        tensors.extend([
            norm(hf("input_layernorm.weight"), &layer.input_layernorm),
            norm(
                hf("post_attention_layernorm.weight"),
                &layer.post_attention_layernorm,
            ),
            norm(
                hf("pre_feedforward_layernorm.weight"),
                &layer.pre_feedforward_layernorm,
            ),
            norm(
                hf("post_feedforward_layernorm.weight"),
                &layer.post_feedforward_layernorm,
            ),
            linear(hf("self_attn.q_proj.weight"), &attention.q_proj),
            linear(hf("self_attn.k_proj.weight"), &attention.k_proj),
            linear(hf("self_attn.v_proj.weight"), &attention.v_proj),
            linear(hf("self_attn.o_proj.weight"), &attention.o_proj),
            norm(hf("self_attn.q_norm.weight"), &attention.q_norm),
            norm(hf("self_attn.k_norm.weight"), &attention.k_norm),
            linear(hf("mlp.gate_proj.weight"), &layer.mlp.gate_proj),
            linear(hf("mlp.up_proj.weight"), &layer.mlp.up_proj),
            linear(hf("mlp.down_proj.weight"), &layer.mlp.down_proj),
        ]);
    }
    tensors.push(norm("model.norm.weight".into(), &model.norm));
    tensors
}

/// The GGUF name of an HF tensor name the exporter itself builds.
fn gguf_of(hf: &str) -> String {
    gguf_name(hf).unwrap_or_else(|| hf.to_string())
}

fn f32_bytes<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<u8>, Gemma3Error> {
    let values = tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Gemma3Error::GgufExport(format!("reading a weight back: {e:?}")))?;
    Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// An int8 weight held as unrotated Q8_0, as Q8_0 blocks: its channel rows (GGUF's rows) and
/// each block's scale as the f16 it is.
fn q8_0_bytes<B: Backend, const D: usize>(
    name: &str,
    weight: &Int8Weight<B, D>,
) -> Result<Vec<u8>, Gemma3Error> {
    let values = weight
        .values
        .val()
        .swap_dims(0, weight.channel_axis())
        .into_data()
        .into_vec::<i8>()
        .map_err(|e| Gemma3Error::GgufExport(format!("{name}: reading the values: {e:?}")))?;
    let scales = weight
        .scale()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Gemma3Error::GgufExport(format!("{name}: reading the scales: {e:?}")))?;
    let mut halves = Vec::with_capacity(scales.len());
    for (block, &scale) in scales.iter().enumerate() {
        let half = f16::from_f32(scale);
        if half.to_f32().to_bits() != scale.to_bits() {
            return Err(Gemma3Error::GgufExport(format!(
                "{name}: block scale {block} = {scale:e} is not an f16 value, so Q8_0 cannot hold it as it is"
            )));
        }
        halves.push(half);
    }
    q8_0::join(&values, &halves).map_err(|source| Gemma3Error::Gguf {
        path: Default::default(),
        source,
    })
}

fn linear<'a, B: Backend>(hf: String, layer: &'a Linear<B>) -> GgufTensor<'a> {
    let [d_in, d_out] = layer.weight_dims();
    let name = gguf_of(&hf);
    let dims = vec![d_in as u64, d_out as u64];
    match layer.int8_weight() {
        Some(weight) if weight.format() == Q8_0_AS_HELD => GgufTensor {
            dims,
            ggml_type: GgmlType::Q8_0,
            dequantized: false,
            write: Box::new(move |out| put(out, q8_0_bytes(&hf, weight))),
            name,
        },
        // Burn's `[in, out]` back to GGUF's rows of `in` values, one per output.
        Some(weight) => GgufTensor {
            dims,
            ggml_type: GgmlType::F32,
            dequantized: true,
            write: Box::new(move |out| put(out, f32_bytes(weight.dequantize().transpose()))),
            name,
        },
        None => GgufTensor {
            dims,
            ggml_type: GgmlType::F32,
            dequantized: false,
            write: Box::new(move |out| put(out, f32_bytes(layer.weight.val().transpose()))),
            name,
        },
    }
}

fn embedding<B: Backend>(shards: &[Embedding<B>], vocab: usize, hidden: usize) -> GgufTensor<'_> {
    let dims = vec![hidden as u64, vocab as u64];
    let name = gguf_of("model.embed_tokens.weight");
    let as_held = shards.iter().all(|shard| {
        shard
            .int8_weight()
            .is_some_and(|w| w.format() == Q8_0_AS_HELD)
    });
    if as_held {
        return GgufTensor {
            dims,
            ggml_type: GgmlType::Q8_0,
            dequantized: false,
            write: Box::new(move |out| {
                for (i, shard) in shards.iter().enumerate() {
                    let bytes = shard
                        .int8_weight()
                        .ok_or_else(|| {
                            Gemma3Error::GgufExport(format!("embedding shard {i} is float"))
                        })
                        .and_then(|weight| q8_0_bytes(&format!("embed_tokens.shards.{i}"), weight));
                    put(out, bytes)?;
                }
                Ok(())
            }),
            name,
        };
    }
    GgufTensor {
        dims,
        ggml_type: GgmlType::F32,
        dequantized: shards.iter().any(Embedding::is_quantized),
        write: Box::new(move |out| {
            for shard in shards {
                put(
                    out,
                    match shard.int8_weight() {
                        Some(weight) => f32_bytes(weight.dequantize()),
                        None => f32_bytes(shard.weight.val()),
                    },
                )?;
            }
            Ok(())
        }),
        name,
    }
}

/// A Gemma norm as llama.cpp's converter stores it: `w + 1`.
fn norm<B: Backend>(hf: String, layer: &RmsNorm<B>) -> GgufTensor<'_> {
    let dims = layer
        .weight
        .val()
        .dims()
        .iter()
        .map(|&d| d as u64)
        .collect();
    GgufTensor {
        name: gguf_of(&hf),
        dims,
        ggml_type: GgmlType::F32,
        dequantized: false,
        write: Box::new(move |out| put(out, f32_bytes(layer.weight.val().add_scalar(1.0)))),
    }
}
