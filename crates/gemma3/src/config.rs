//! Gemma3 text-model hyper-parameters: from an HF `config.json`, from GGUF metadata, or a preset.

use std::path::Path;

use burn::config::Config;
use serde::Deserialize;

use crate::error::{Gemma3Error, io};

/// Hyper-parameters of a Gemma3 text model (`Gemma3ForCausalLM`, `gemma3_text`).
#[derive(Config, Debug, PartialEq)]
pub struct Gemma3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// Queries are scaled by `query_pre_attn_scalar^-0.5`.
    pub query_pre_attn_scalar: f64,
    /// Keys a local layer sees, the current token included.
    pub sliding_window: usize,
    /// Layer `i` is global when `i % sliding_window_pattern == sliding_window_pattern - 1`.
    #[config(default = 6)]
    pub sliding_window_pattern: usize,
    /// RoPE base of global layers.
    #[config(default = 1_000_000.0)]
    pub rope_global_base: f64,
    /// RoPE base of local layers (not stored in GGUF files).
    #[config(default = 10_000.0)]
    pub rope_local_base: f64,
    /// Linear RoPE scaling of global layers (8 for Gemma3 4B and larger).
    #[config(default = 1.0)]
    pub rope_global_scaling: f64,
    #[config(default = 1e-6)]
    pub rms_norm_eps: f64,
    #[config(default = 32768)]
    pub max_position_embeddings: usize,
    #[config(default = 2)]
    pub bos_token_id: u32,
    #[config(default = 1)]
    pub eos_token_id: u32,
    #[config(default = 0)]
    pub pad_token_id: u32,
}

/// `<end_of_turn>`: generation stops there as at `<eos>`.
pub const END_OF_TURN_ID: u32 = 106;

// Bounds of [`Gemma3Config::validate_in`]: generous for any real model (Gemma3 27B has hidden
// 5376, 62 layers, 32 heads of 128, a 262,144-token vocabulary and a 128k context) yet small
// enough that no product of them overflows and that a corrupt or hostile config is refused
// before it allocates anything.

/// Vocabulary rows: 2^24 (16.7M), 64 times Gemma3's.
pub const MAX_VOCAB_SIZE: usize = 1 << 24;
/// Hidden width: 2^20.
pub const MAX_HIDDEN_SIZE: usize = 1 << 20;
/// Feed-forward width: 2^22.
pub const MAX_INTERMEDIATE_SIZE: usize = 1 << 22;
/// Transformer blocks: 4096.
pub const MAX_LAYERS: usize = 4096;
/// Query (and key/value) heads: 4096.
pub const MAX_HEADS: usize = 4096;
/// Width of one head: 65,536.
pub const MAX_HEAD_DIM: usize = 65_536;
/// Context length and sliding window: 2^24 positions.
pub const MAX_POSITIONS: usize = 1 << 24;
/// Elements of any one tensor: 2^40 (4 TiB of f32).
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 40;
/// Parameters of the whole model: 2^41 (2.2 trillion).
pub const MAX_PARAMETERS: u64 = 1 << 41;

/// Where a config came from: how [`Gemma3Config::validate_in`] names its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Built in code: the names of [`Gemma3Config`]'s fields.
    Struct,
    /// An HF `config.json` (also a preset's): `num_hidden_layers`, `rope_theta`, ...
    HfJson,
    /// GGUF metadata: `gemma3.block_count`, `gemma3.embedding_length`, ...
    Gguf,
}

impl ConfigSource {
    /// The name of [`Gemma3Config`] field `field` in this source.
    pub fn key(self, field: &'static str) -> &'static str {
        match self {
            ConfigSource::Struct => field,
            ConfigSource::HfJson => match field {
                "num_layers" => "num_hidden_layers",
                "num_heads" => "num_attention_heads",
                "num_kv_heads" => "num_key_value_heads",
                "rope_global_base" => "rope_theta",
                "rope_local_base" => "rope_local_base_freq",
                "rope_global_scaling" => "rope_scaling.factor",
                other => other,
            },
            ConfigSource::Gguf => match field {
                "vocab_size" => "token_embd.weight rows",
                "hidden_size" => "gemma3.embedding_length",
                "intermediate_size" => "gemma3.feed_forward_length",
                "num_layers" => "gemma3.block_count",
                "num_heads" => "gemma3.attention.head_count",
                "num_kv_heads" => "gemma3.attention.head_count_kv",
                "head_dim" => "gemma3.attention.key_length",
                "query_pre_attn_scalar" => {
                    "query_pre_attn_scalar (from gemma3.attention.key_length)"
                }
                "sliding_window" => "gemma3.attention.sliding_window",
                "sliding_window_pattern" => "sliding_window_pattern (6 for GGUF)",
                "rope_global_base" => "gemma3.rope.freq_base",
                "rope_local_base" => "rope_local_base (10000 for GGUF)",
                "rope_global_scaling" => "gemma3.rope.scaling.factor",
                "rms_norm_eps" => "gemma3.attention.layer_norm_rms_epsilon",
                "max_position_embeddings" => "gemma3.context_length",
                "bos_token_id" => "tokenizer.ggml.bos_token_id",
                "eos_token_id" => "tokenizer.ggml.eos_token_id",
                "pad_token_id" => "tokenizer.ggml.padding_token_id",
                other => other,
            },
        }
    }
}

impl Gemma3Config {
    /// `google/gemma-3-270m`.
    pub fn gemma3_270m() -> Self {
        Self::new(262_144, 640, 2048, 18, 4, 1, 256, 256.0, 512)
    }

    /// `google/gemma-3-1b`.
    pub fn gemma3_1b() -> Self {
        Self::new(262_144, 1152, 6912, 26, 4, 1, 256, 256.0, 512)
    }

    /// A built-in preset by name (`gemma3_270m`, `gemma3_1b`).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "gemma3_270m" => Some(Self::gemma3_270m()),
            "gemma3_1b" => Some(Self::gemma3_1b()),
            _ => None,
        }
    }

    pub fn is_global_layer(&self, layer: usize) -> bool {
        layer % self.sliding_window_pattern == self.sliding_window_pattern - 1
    }

    /// Checks that the values can build a model (see [`Gemma3Config::validate_in`]); errors
    /// name the fields as this struct spells them.
    pub fn validate(&self) -> Result<(), Gemma3Error> {
        self.validate_in("Gemma3Config", ConfigSource::Struct)
    }

    /// Checks every value before anything is allocated, naming `source_name` (a file) and the
    /// fields as `source` spells them in an [`Gemma3Error::InvalidConfig`]:
    ///
    /// - every size positive and at most its `MAX_*` bound (see the constants), `head_dim`
    ///   even, `num_heads` a multiple of `num_kv_heads`;
    /// - every tensor at most [`MAX_TENSOR_ELEMENTS`] and the whole model at most
    ///   [`MAX_PARAMETERS`], products computed with `checked_mul` (an overflow is an error,
    ///   never a wrapped size);
    /// - `query_pre_attn_scalar` in [1e-3, 1e8], `rms_norm_eps` in [1e-12, 0.1], the RoPE bases
    ///   in [1, 1e12], the RoPE scaling in [1e-3, 1e6], all finite: outside these, f32 attention
    ///   or normalization turns to NaN, infinity or zero (silently wrong logits);
    /// - the BOS, EOS and padding ids inside the vocabulary.
    pub fn validate_in(&self, source_name: &str, source: ConfigSource) -> Result<(), Gemma3Error> {
        let key = |field: &'static str| source.key(field);
        let invalid = |field: String, value: String, expected: String| Gemma3Error::InvalidConfig {
            source_name: source_name.to_string(),
            field,
            value,
            expected,
        };
        let sizes: [(&'static str, usize, Option<usize>); 10] = [
            ("vocab_size", self.vocab_size, Some(MAX_VOCAB_SIZE)),
            ("hidden_size", self.hidden_size, Some(MAX_HIDDEN_SIZE)),
            (
                "intermediate_size",
                self.intermediate_size,
                Some(MAX_INTERMEDIATE_SIZE),
            ),
            ("num_layers", self.num_layers, Some(MAX_LAYERS)),
            ("num_heads", self.num_heads, Some(MAX_HEADS)),
            ("num_kv_heads", self.num_kv_heads, Some(MAX_HEADS)),
            ("head_dim", self.head_dim, Some(MAX_HEAD_DIM)),
            ("sliding_window", self.sliding_window, Some(MAX_POSITIONS)),
            ("sliding_window_pattern", self.sliding_window_pattern, None),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                Some(MAX_POSITIONS),
            ),
        ];
        for (field, value, max) in sizes {
            let in_range = value >= 1 && max.is_none_or(|max| value <= max);
            if !in_range {
                let expected = match max {
                    Some(max) => format!("an integer from 1 to {max}"),
                    None => "a positive integer".to_string(),
                };
                return Err(invalid(key(field).into(), value.to_string(), expected));
            }
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(invalid(
                key("head_dim").into(),
                self.head_dim.to_string(),
                "an even number (RoPE rotates pairs)".into(),
            ));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(invalid(
                key("num_kv_heads").into(),
                self.num_kv_heads.to_string(),
                format!("a divisor of {} ({})", key("num_heads"), self.num_heads),
            ));
        }

        // Tensor sizes, with overflow as an error: a wrapped product would build a tensor of
        // the wrong (even zero) size.
        let (vocab, hidden, ffn) = (
            self.vocab_size as u64,
            self.hidden_size as u64,
            self.intermediate_size as u64,
        );
        let (heads, kv_heads, head_dim) = (
            self.num_heads as u64,
            self.num_kv_heads as u64,
            self.head_dim as u64,
        );
        let tensors: [(String, String, Option<u64>); 4] = [
            (
                format!("{} × {}", key("vocab_size"), key("hidden_size")),
                format!("{vocab} × {hidden}"),
                vocab.checked_mul(hidden),
            ),
            (
                format!(
                    "{} × {} × {}",
                    key("num_heads"),
                    key("head_dim"),
                    key("hidden_size")
                ),
                format!("{heads} × {head_dim} × {hidden}"),
                heads
                    .checked_mul(head_dim)
                    .and_then(|n| n.checked_mul(hidden)),
            ),
            (
                format!(
                    "{} × {} × {}",
                    key("num_kv_heads"),
                    key("head_dim"),
                    key("hidden_size")
                ),
                format!("{kv_heads} × {head_dim} × {hidden}"),
                kv_heads
                    .checked_mul(head_dim)
                    .and_then(|n| n.checked_mul(hidden)),
            ),
            (
                format!("{} × {}", key("intermediate_size"), key("hidden_size")),
                format!("{ffn} × {hidden}"),
                ffn.checked_mul(hidden),
            ),
        ];
        for (field, factors, elements) in tensors {
            match elements {
                Some(n) if n <= MAX_TENSOR_ELEMENTS => {}
                Some(n) => {
                    return Err(invalid(
                        field,
                        format!("{factors} = {n} elements"),
                        format!("at most {MAX_TENSOR_ELEMENTS} (2^40) elements in one tensor"),
                    ));
                }
                None => {
                    return Err(invalid(
                        field,
                        format!("{factors} (overflows 64 bits)"),
                        format!("at most {MAX_TENSOR_ELEMENTS} (2^40) elements in one tensor"),
                    ));
                }
            }
        }
        match self.parameter_count() {
            Some(n) if n <= MAX_PARAMETERS => {}
            other => {
                let value = other.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
                return Err(invalid(
                    format!(
                        "parameters ({} layers of {} and {})",
                        key("num_layers"),
                        key("hidden_size"),
                        key("intermediate_size")
                    ),
                    value,
                    format!("at most {MAX_PARAMETERS} (2^41) parameters in all"),
                ));
            }
        }

        let floats: [(&'static str, f64, f64, f64); 5] = [
            (
                "query_pre_attn_scalar",
                self.query_pre_attn_scalar,
                1e-3,
                1e8,
            ),
            ("rms_norm_eps", self.rms_norm_eps, 1e-12, 0.1),
            ("rope_global_base", self.rope_global_base, 1.0, 1e12),
            ("rope_local_base", self.rope_local_base, 1.0, 1e12),
            ("rope_global_scaling", self.rope_global_scaling, 1e-3, 1e6),
        ];
        for (field, value, low, high) in floats {
            // NaN fails both comparisons.
            if !(value.is_finite() && value >= low && value <= high) {
                return Err(invalid(
                    key(field).into(),
                    show_float(value),
                    format!("a finite value in [{low:e}, {high:e}]"),
                ));
            }
        }
        for (field, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
            ("pad_token_id", self.pad_token_id),
        ] {
            if id as usize >= self.vocab_size {
                return Err(invalid(
                    key(field).into(),
                    id.to_string(),
                    format!("an id below {} ({})", key("vocab_size"), self.vocab_size),
                ));
            }
        }
        Ok(())
    }

    /// Weights of the projections (q, k, v, o, gate, up, down) of one layer, of its norms, and
    /// of the embedding; `None` on overflow.
    fn weight_counts(&self) -> Option<(u64, u64, u64)> {
        let (vocab, hidden, ffn) = (
            self.vocab_size as u64,
            self.hidden_size as u64,
            self.intermediate_size as u64,
        );
        let q_dim = (self.num_heads as u64).checked_mul(self.head_dim as u64)?;
        let kv_dim = (self.num_kv_heads as u64).checked_mul(self.head_dim as u64)?;
        let attention = q_dim
            .checked_add(kv_dim)?
            .checked_mul(2)?
            .checked_mul(hidden)?;
        let mlp = ffn.checked_mul(hidden)?.checked_mul(3)?;
        let norms = hidden
            .checked_mul(4)?
            .checked_add((self.head_dim as u64).checked_mul(2)?)?;
        Some((
            attention.checked_add(mlp)?,
            norms,
            vocab.checked_mul(hidden)?,
        ))
    }

    /// Parameters of the whole model (the embedding counted once: the output is tied); `None`
    /// when the count overflows 64 bits.
    pub fn parameter_count(&self) -> Option<u64> {
        let (projections, norms, embedding) = self.weight_counts()?;
        let layer = projections.checked_add(norms)?;
        layer
            .checked_mul(self.num_layers as u64)?
            .checked_add(embedding)?
            .checked_add(self.hidden_size as u64)
    }

    /// Weights int8 quantization turns to 1 byte each: every projection and the embedding.
    pub fn quantizable_parameter_count(&self) -> Option<u64> {
        let (projections, _, embedding) = self.weight_counts()?;
        projections
            .checked_mul(self.num_layers as u64)?
            .checked_add(embedding)
    }

    /// Reads an HF `config.json` (`Gemma3ForCausalLM` / `gemma3_text`); errors name the file.
    pub fn from_hf_file(path: &Path) -> Result<Self, Gemma3Error> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        Self::from_hf_json_in(&text, &path.display().to_string())
    }

    pub fn from_hf_json(text: &str) -> Result<Self, Gemma3Error> {
        Self::from_hf_json_in(text, "config.json")
    }

    /// [`Gemma3Config::from_hf_json`] naming `source_name` in errors. Beyond
    /// [`Gemma3Config::validate_in`], what this model does not implement is refused rather than
    /// ignored: logit soft-capping, another activation, a `layer_types` list that the
    /// sliding-window pattern does not reproduce.
    fn from_hf_json_in(text: &str, source_name: &str) -> Result<Self, Gemma3Error> {
        let hf: HfConfig = serde_json::from_str(text)
            .map_err(|e| Gemma3Error::Config(format!("{source_name}: {e}")))?;
        let invalid = |field: &str, value: String, expected: &str| Gemma3Error::InvalidConfig {
            source_name: source_name.to_string(),
            field: field.to_string(),
            value,
            expected: expected.to_string(),
        };
        if let Some(model_type) = &hf.model_type
            && model_type != "gemma3_text"
            && model_type != "gemma3"
        {
            return Err(invalid(
                "model_type",
                format!("{model_type:?}"),
                "\"gemma3_text\" (or \"gemma3\")",
            ));
        }
        let scaling = match &hf.rope_scaling {
            None => 1.0,
            Some(scaling) if scaling.rope_type.as_deref().unwrap_or("linear") == "linear" => {
                scaling.factor
            }
            Some(scaling) => {
                return Err(invalid(
                    "rope_scaling.rope_type",
                    format!("{:?}", scaling.rope_type),
                    "\"linear\" (the only RoPE scaling implemented)",
                ));
            }
        };
        for (field, value) in [
            ("final_logit_softcapping", hf.final_logit_softcapping),
            ("attn_logit_softcapping", hf.attn_logit_softcapping),
        ] {
            if let Some(value) = value {
                return Err(invalid(
                    field,
                    show_float(value),
                    "null (soft-capping is not implemented; Gemma3 uses none)",
                ));
            }
        }
        if let Some(activation) = &hf.hidden_activation
            && activation != "gelu_pytorch_tanh"
            && activation != "gelu_new"
        {
            return Err(invalid(
                "hidden_activation",
                format!("{activation:?}"),
                "\"gelu_pytorch_tanh\" (the tanh GELU implemented)",
            ));
        }
        let config = Self {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads: hf.num_key_value_heads,
            head_dim: hf.head_dim,
            query_pre_attn_scalar: hf.query_pre_attn_scalar,
            sliding_window: hf.sliding_window,
            sliding_window_pattern: hf.sliding_window_pattern.unwrap_or(6),
            rope_global_base: hf.rope_theta,
            rope_local_base: hf.rope_local_base_freq,
            rope_global_scaling: scaling,
            rms_norm_eps: hf.rms_norm_eps,
            max_position_embeddings: hf.max_position_embeddings,
            bos_token_id: hf.bos_token_id.unwrap_or(2),
            eos_token_id: hf.eos_token_id.unwrap_or(1),
            pad_token_id: hf.pad_token_id.unwrap_or(0),
        };
        config.validate_in(source_name, ConfigSource::HfJson)?;
        if let Some(layer_types) = &hf.layer_types {
            if layer_types.len() != config.num_layers {
                return Err(invalid(
                    "layer_types",
                    format!("{} entries", layer_types.len()),
                    &format!("num_hidden_layers ({}) entries", config.num_layers),
                ));
            }
            for (layer, kind) in layer_types.iter().enumerate() {
                let implied = if config.is_global_layer(layer) {
                    "full_attention"
                } else {
                    "sliding_attention"
                };
                if kind != implied {
                    return Err(invalid(
                        &format!("layer_types[{layer}]"),
                        format!("{kind:?}"),
                        &format!(
                            "{implied:?}, as sliding_window_pattern {} implies",
                            config.sliding_window_pattern
                        ),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// The HF `config.json` text for this config (used by exports and presets).
    pub fn to_hf_json(&self) -> String {
        let layer_types: Vec<&str> = (0..self.num_layers)
            .map(|i| {
                if self.is_global_layer(i) {
                    "full_attention"
                } else {
                    "sliding_attention"
                }
            })
            .collect();
        let rope_scaling = if self.rope_global_scaling == 1.0 {
            serde_json::Value::Null
        } else {
            serde_json::json!({ "rope_type": "linear", "factor": self.rope_global_scaling })
        };
        let value = serde_json::json!({
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": "gemma3_text",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "query_pre_attn_scalar": self.query_pre_attn_scalar,
            "sliding_window": self.sliding_window,
            "sliding_window_pattern": self.sliding_window_pattern,
            "layer_types": layer_types,
            "rope_theta": self.rope_global_base,
            "rope_local_base_freq": self.rope_local_base,
            "rope_scaling": rope_scaling,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "hidden_activation": "gelu_pytorch_tanh",
            "tie_word_embeddings": true,
            "torch_dtype": "float32",
        });
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

/// `value` for a message: very large or small magnitudes in exponent form (`1e300`, not 301
/// digits).
fn show_float(value: f64) -> String {
    if value != 0.0 && value.is_finite() && !(1e-4..1e9).contains(&value.abs()) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    head_dim: usize,
    query_pre_attn_scalar: f64,
    sliding_window: usize,
    sliding_window_pattern: Option<usize>,
    #[serde(default = "default_rope_theta")]
    rope_theta: f64,
    #[serde(default = "default_rope_local")]
    rope_local_base_freq: f64,
    rope_scaling: Option<HfRopeScaling>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    pad_token_id: Option<u32>,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
    #[serde(default)]
    final_logit_softcapping: Option<f64>,
    #[serde(default)]
    attn_logit_softcapping: Option<f64>,
    #[serde(default)]
    hidden_activation: Option<String>,
}

#[derive(Deserialize)]
struct HfRopeScaling {
    rope_type: Option<String>,
    factor: f64,
}

fn default_rope_theta() -> f64 {
    1_000_000.0
}
fn default_rope_local() -> f64 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    32768
}
