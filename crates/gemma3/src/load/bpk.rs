//! A preset's `model.bpk` checked against its `config.json` BEFORE the model is built: the
//! Burnpack header lists every tensor with its shape, read without the data, so a config that
//! describes another architecture (more layers, other head counts, a wider model) is refused
//! naming the field, and the file must be large enough for the weights the config implies.
//! Without this, a preset would first build a zero-filled model of whatever size its
//! `config.json` states, and only then find out that the record does not fit.
//!
//! The preset's `config.json` is the source of truth for the scalars the record does not
//! carry (`rms_norm_eps`, `sliding_window`, the RoPE bases and scaling,
//! `query_pre_attn_scalar`): they are range-checked by [`Gemma3Config::validate_in`], and an
//! edit after the save is caught by the preset's checksums (`checksums.json` covers
//! `config.json` too) unless verification is turned off.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::tensor::DType;
use burn_int8::io::burnpack_header::TensorTable;
use burn_int8::io::record;

use crate::config::Gemma3Config;
use crate::error::{Gemma3Error, io};

/// Tensor name → shape, from the record's header.
type Shapes = BTreeMap<String, Vec<usize>>;

/// What the record's header says: every tensor's shape, and whether any float tensor is stored
/// in half precision (2 bytes per weight instead of 4).
struct Record {
    shapes: Shapes,
    half_precision: bool,
}

/// Checks the record at `path` against `config` (`int8`: the preset says its weights are int8):
/// the architecture first (naming the `config.json` field that disagrees), then the file size.
pub fn check_preset_record(
    path: &Path,
    config: &Gemma3Config,
    int8: bool,
) -> Result<(), Gemma3Error> {
    let record = read_record(path)?;
    check_architecture(path, config, &record.shapes)?;
    // Int8 layers are stored under an `Int8` segment. A preset says its precision in
    // config.json (`burn_int8.precision`): a record of the other precision is the preset
    // disagreeing with itself, not something to quantize or dequantize on the way.
    let record_int8 = record.shapes.keys().any(|name| record::is_int8(name));
    if record_int8 != int8 {
        let name = |int8: bool| if int8 { "int8" } else { "float32" };
        return Err(Gemma3Error::PresetMismatch {
            path: path.to_path_buf(),
            field: "burn_int8.precision",
            config: name(int8).into(),
            record: format!("{} weights", name(record_int8)),
        });
    }
    let bytes_per_weight = if int8 {
        1
    } else if record.half_precision {
        2
    } else {
        4
    };
    check_size(path, config, bytes_per_weight)
}

/// Every tensor of the record with its shape, from the header only (no tensor data is read).
fn read_record(path: &Path) -> Result<Record, Gemma3Error> {
    let table = TensorTable::read(path).map_err(|e| Gemma3Error::Format {
        path: path.to_path_buf(),
        message: format!("reading the record's tensor list: {e}"),
    })?;
    let half_precision = table
        .tensors
        .values()
        .any(|tensor| matches!(tensor.dtype, DType::F16 | DType::BF16));
    let shapes = table
        .tensors
        .into_iter()
        .map(|(name, tensor)| (name, tensor.shape))
        .collect();
    Ok(Record {
        shapes,
        half_precision,
    })
}

/// The weight of the swappable layer at `prefix`, float or int8 (`PREFIX.weight`, Burn's name;
/// `PREFIX.Int8.weight.values`; `PREFIX.Float.weight` in presets saved before float layers had
/// Burn's names).
fn layer_weight<'a>(shapes: &'a Shapes, prefix: &str) -> Option<(String, &'a [usize])> {
    [
        record::float_weight(prefix),
        record::int8_values(&record::variant(prefix, record::INT8)),
        record::float_weight(&record::variant(prefix, record::LEGACY_FLOAT)),
    ]
    .into_iter()
    .find_map(|name| {
        let shape = shapes.get(&name)?;
        Some((name, shape.as_slice()))
    })
}

/// A plain parameter (`NAME`, e.g. a norm's `weight`).
fn parameter<'a>(shapes: &'a Shapes, name: &str) -> Option<(String, &'a [usize])> {
    shapes
        .get(name)
        .map(|shape| (name.to_string(), shape.as_slice()))
}

/// Compares the shapes of the record with those `config` implies; the first disagreement names
/// the `config.json` field. Tensors the record lacks are left to the load, which names them.
fn check_architecture(
    path: &Path,
    config: &Gemma3Config,
    shapes: &Shapes,
) -> Result<(), Gemma3Error> {
    let mismatch =
        |field: &'static str, config_value: String, record: String| Gemma3Error::PresetMismatch {
            path: path.to_path_buf(),
            field,
            config: config_value,
            record,
        };
    let (hidden, ffn, head_dim) = (
        config.hidden_size,
        config.intermediate_size,
        config.head_dim,
    );
    let q_dim = config.num_heads.saturating_mul(head_dim);
    let kv_dim = config.num_kv_heads.saturating_mul(head_dim);

    // The width of the model: the final norm, then the embedding.
    if let Some((name, shape)) = parameter(shapes, "norm.weight")
        && shape != [hidden]
    {
        return Err(mismatch(
            "hidden_size",
            hidden.to_string(),
            format!("`{name}` of shape {shape:?}"),
        ));
    }
    let mut embedding_rows = 0usize;
    let mut embedding_shards = 0usize;
    for (name, shape) in shapes
        .iter()
        .filter(|(name, _)| name.starts_with("embed_tokens.shards."))
    {
        // A float shard's `weight`, an int8 one's `weight.values`.
        if !record::is_layer_weight(name) {
            continue;
        }
        if shape.len() != 2 || shape[1] != hidden {
            return Err(mismatch(
                "hidden_size",
                hidden.to_string(),
                format!("`{name}` of shape {shape:?}"),
            ));
        }
        embedding_rows = embedding_rows.saturating_add(shape[0]);
        embedding_shards += 1;
    }
    if embedding_shards > 0 && embedding_rows != config.vocab_size {
        return Err(mismatch(
            "vocab_size",
            config.vocab_size.to_string(),
            format!("an embedding table of {embedding_rows} rows"),
        ));
    }

    // The layers: `layers.N.…` for N in 0..num_layers, no gap.
    let layers: BTreeSet<usize> = shapes
        .keys()
        .filter_map(|name| {
            name.strip_prefix("layers.")?
                .split_once('.')?
                .0
                .parse::<usize>()
                .ok()
        })
        .collect();
    let record_layers = layers.last().map_or(0, |&last| last.saturating_add(1));
    if record_layers != config.num_layers || layers.len() != record_layers {
        let record = if layers.len() == record_layers {
            format!("{record_layers} layer(s)")
        } else {
            format!(
                "{} layer(s) numbered up to {}",
                layers.len(),
                record_layers.saturating_sub(1)
            )
        };
        return Err(mismatch(
            "num_hidden_layers",
            config.num_layers.to_string(),
            record,
        ));
    }

    // Every layer's tensors: (field, tensor, axis, size the config implies).
    for layer in 0..config.num_layers {
        let at = |suffix: &str| format!("layers.{layer}.{suffix}");
        let projections: [(&'static str, &str, usize, usize, String); 14] = [
            (
                "hidden_size",
                "self_attn.q_proj",
                0,
                hidden,
                hidden.to_string(),
            ),
            (
                "num_attention_heads",
                "self_attn.q_proj",
                1,
                q_dim,
                heads_text(config.num_heads, head_dim),
            ),
            (
                "hidden_size",
                "self_attn.k_proj",
                0,
                hidden,
                hidden.to_string(),
            ),
            (
                "num_key_value_heads",
                "self_attn.k_proj",
                1,
                kv_dim,
                heads_text(config.num_kv_heads, head_dim),
            ),
            (
                "hidden_size",
                "self_attn.v_proj",
                0,
                hidden,
                hidden.to_string(),
            ),
            (
                "num_key_value_heads",
                "self_attn.v_proj",
                1,
                kv_dim,
                heads_text(config.num_kv_heads, head_dim),
            ),
            (
                "num_attention_heads",
                "self_attn.o_proj",
                0,
                q_dim,
                heads_text(config.num_heads, head_dim),
            ),
            (
                "hidden_size",
                "self_attn.o_proj",
                1,
                hidden,
                hidden.to_string(),
            ),
            (
                "hidden_size",
                "mlp.gate_proj",
                0,
                hidden,
                hidden.to_string(),
            ),
            (
                "intermediate_size",
                "mlp.gate_proj",
                1,
                ffn,
                ffn.to_string(),
            ),
            ("hidden_size", "mlp.up_proj", 0, hidden, hidden.to_string()),
            ("intermediate_size", "mlp.up_proj", 1, ffn, ffn.to_string()),
            (
                "intermediate_size",
                "mlp.down_proj",
                0,
                ffn,
                ffn.to_string(),
            ),
            (
                "hidden_size",
                "mlp.down_proj",
                1,
                hidden,
                hidden.to_string(),
            ),
        ];
        let norms: [(&'static str, &str, usize, String); 6] = [
            (
                "head_dim",
                "self_attn.q_norm.weight",
                head_dim,
                head_dim.to_string(),
            ),
            (
                "head_dim",
                "self_attn.k_norm.weight",
                head_dim,
                head_dim.to_string(),
            ),
            (
                "hidden_size",
                "input_layernorm.weight",
                hidden,
                hidden.to_string(),
            ),
            (
                "hidden_size",
                "post_attention_layernorm.weight",
                hidden,
                hidden.to_string(),
            ),
            (
                "hidden_size",
                "pre_feedforward_layernorm.weight",
                hidden,
                hidden.to_string(),
            ),
            (
                "hidden_size",
                "post_feedforward_layernorm.weight",
                hidden,
                hidden.to_string(),
            ),
        ];
        // The norms first: a wrong head_dim then reads as head_dim, not as a head count.
        for (field, suffix, size, config_value) in norms {
            if let Some((name, shape)) = parameter(shapes, &at(suffix))
                && shape != [size]
            {
                return Err(mismatch(
                    field,
                    config_value,
                    format!("`{name}` of shape {shape:?}"),
                ));
            }
        }
        for (field, suffix, axis, size, config_value) in projections {
            // Burn's layout: `[in, out]`.
            if let Some((name, shape)) = layer_weight(shapes, &at(suffix))
                && (shape.len() != 2 || shape[axis] != size)
            {
                return Err(mismatch(
                    field,
                    config_value,
                    format!("`{name}` of shape {shape:?} (expected {size} on axis {axis})"),
                ));
            }
        }
    }
    Ok(())
}

fn heads_text(heads: usize, head_dim: usize) -> String {
    format!(
        "{heads} (× head_dim {head_dim} = {})",
        heads.saturating_mul(head_dim)
    )
}

/// The record must be large enough for the weights `config` implies: 4 bytes per parameter for
/// a float preset (2 for one stored in half precision), 1 byte per projection and embedding
/// weight for an int8 one (`bytes_per_weight` 1), less 1/32 of slack (the estimate counts
/// weights only; a record adds its header and the int8 scales, so any real shortfall means the
/// config describes a bigger model than was saved).
fn check_size(
    path: &Path,
    config: &Gemma3Config,
    bytes_per_weight: u64,
) -> Result<(), Gemma3Error> {
    let bytes = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
    let params = (if bytes_per_weight == 1 {
        config.quantizable_parameter_count()
    } else {
        config.parameter_count()
    })
    .unwrap_or(u64::MAX);
    let estimate = params.saturating_mul(bytes_per_weight);
    let needed = estimate - estimate / 32;
    if bytes < needed {
        return Err(Gemma3Error::CheckpointTooSmall {
            path: path.to_path_buf(),
            bytes,
            params,
            needed,
        });
    }
    Ok(())
}
