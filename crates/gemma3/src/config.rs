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

    /// Checks that the values can build a model.
    pub fn validate(&self) -> Result<(), Gemma3Error> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("sliding_window", self.sliding_window),
            ("sliding_window_pattern", self.sliding_window_pattern),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Gemma3Error::Config(format!("{name} must be positive")));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(Gemma3Error::Config(format!(
                "num_heads ({}) must be a multiple of num_kv_heads ({})",
                self.num_heads, self.num_kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(Gemma3Error::Config(format!("head_dim ({}) must be even for RoPE", self.head_dim)));
        }
        let finite_positive = [
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
            ("rope_global_base", self.rope_global_base),
            ("rope_local_base", self.rope_local_base),
            ("rope_global_scaling", self.rope_global_scaling),
            ("rms_norm_eps", self.rms_norm_eps),
        ];
        for (name, value) in finite_positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(Gemma3Error::Config(format!("{name} must be finite and positive, got {value}")));
            }
        }
        for (name, id) in [("bos", self.bos_token_id), ("eos", self.eos_token_id), ("pad", self.pad_token_id)] {
            if id as usize >= self.vocab_size {
                return Err(Gemma3Error::Config(format!("{name}_token_id {id} is outside the vocabulary")));
            }
        }
        Ok(())
    }

    /// Reads an HF `config.json` (`Gemma3ForCausalLM` / `gemma3_text`).
    pub fn from_hf_file(path: &Path) -> Result<Self, Gemma3Error> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        Self::from_hf_json(&text).map_err(|e| match e {
            Gemma3Error::Config(message) => Gemma3Error::Config(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    pub fn from_hf_json(text: &str) -> Result<Self, Gemma3Error> {
        let hf: HfConfig = serde_json::from_str(text).map_err(|e| Gemma3Error::Config(e.to_string()))?;
        if let Some(model_type) = &hf.model_type
            && model_type != "gemma3_text"
            && model_type != "gemma3"
        {
            return Err(Gemma3Error::Config(format!("model_type `{model_type}` is not gemma3_text")));
        }
        let scaling = match &hf.rope_scaling {
            None => 1.0,
            Some(scaling) if scaling.rope_type.as_deref().unwrap_or("linear") == "linear" => scaling.factor,
            Some(scaling) => {
                return Err(Gemma3Error::Config(format!(
                    "rope_scaling type {:?} is not supported (only linear)",
                    scaling.rope_type
                )));
            }
        };
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
        config.validate()?;
        Ok(config)
    }

    /// The HF `config.json` text for this config (used by exports and presets).
    pub fn to_hf_json(&self) -> String {
        let layer_types: Vec<&str> = (0..self.num_layers)
            .map(|i| if self.is_global_layer(i) { "full_attention" } else { "sliding_attention" })
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
