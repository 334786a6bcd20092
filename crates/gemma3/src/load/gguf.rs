//! llama.cpp GGUF checkpoints: weights dequantized tensor by tensor (bit-exact with ggml),
//! names mapped to HF's, and the norm convention undone (llama.cpp stores `w + 1`).

use std::ops::Range;
use std::path::Path;

use burn_int8_gguf::q8_0::Q8_0Blocks;
use burn_int8_gguf::{GgmlType, GgufFile};

use super::WeightSource;
use crate::config::{ConfigSource, Gemma3Config};
use crate::error::{Gemma3Error, in_gguf};

/// A GGUF file served under HF tensor names.
pub struct GgufSource {
    file: GgufFile,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<Self, Gemma3Error> {
        let file = GgufFile::open(path).map_err(|source| Gemma3Error::Gguf {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self { file })
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The model config from `gemma3.*` metadata (the local RoPE base is not stored: 10k),
    /// validated ([`Gemma3Config::validate_in`], errors naming the GGUF keys) before anything
    /// is allocated. The tensors are checked against it by [`super::build_model`], all of them
    /// before the first is read.
    pub fn config(&self) -> Result<Gemma3Config, Gemma3Error> {
        let file = &self.file;
        let source_name = format!("{} (GGUF metadata)", file.path().display());
        let gguf = in_gguf(file);
        let architecture = file.get_str("general.architecture").map_err(&gguf)?;
        if architecture != "gemma3" {
            return Err(Gemma3Error::InvalidConfig {
                source_name,
                field: "general.architecture".into(),
                value: format!("{architecture:?}"),
                expected: "\"gemma3\"".into(),
            });
        }
        let key = |name: &str| format!("gemma3.{name}");
        let usize_of = |name: &str| -> Result<usize, Gemma3Error> {
            Ok(file.get_u32(&key(name)).map_err(&gguf)? as usize)
        };
        let vocab_size = match file.tensor_info("token_embd.weight") {
            Some(info) => info.shape_row_major().first().copied().unwrap_or(0),
            None => return Err(Gemma3Error::MissingTensor("token_embd.weight".into())),
        };
        let (hidden, heads, layers) = (
            usize_of("embedding_length")?,
            usize_of("attention.head_count")?,
            usize_of("block_count")?,
        );
        let head_dim = usize_of("attention.key_length")?;
        if let Ok(value_length) = file.get_u32(&key("attention.value_length"))
            && value_length as usize != head_dim
        {
            return Err(Gemma3Error::InvalidConfig {
                source_name,
                field: key("attention.value_length"),
                value: value_length.to_string(),
                expected: format!(
                    "gemma3.attention.key_length ({head_dim}): Gemma3 keys and values have one head width"
                ),
            });
        }
        // llama.cpp scales queries by `(hidden / heads)^-0.5` for the 62-layer 27B (HF's
        // query_pre_attn_scalar 168 there) and by `head_dim^-0.5` otherwise.
        let query_pre_attn_scalar = match hidden.checked_div(heads) {
            Some(per_head) if layers == 62 && per_head > 0 => per_head as f64,
            _ => head_dim as f64,
        };
        let mut config = Gemma3Config::new(
            vocab_size,
            hidden,
            usize_of("feed_forward_length")?,
            layers,
            heads,
            usize_of("attention.head_count_kv")?,
            head_dim,
            query_pre_attn_scalar,
            usize_of("attention.sliding_window")?,
        );
        config.rope_global_base = file.get_f32(&key("rope.freq_base")).map_err(&gguf)? as f64;
        config.rms_norm_eps = file
            .get_f32(&key("attention.layer_norm_rms_epsilon"))
            .map_err(&gguf)? as f64;
        config.max_position_embeddings = usize_of("context_length")?;
        // llama.cpp reads a factor of 0 as no scaling.
        if let Ok(factor) = file.get_f32(&key("rope.scaling.factor"))
            && factor != 0.0
        {
            config.rope_global_scaling = factor as f64;
        }
        if let Ok(id) = file.get_u32("tokenizer.ggml.bos_token_id") {
            config.bos_token_id = id;
        }
        if let Ok(id) = file.get_u32("tokenizer.ggml.eos_token_id") {
            config.eos_token_id = id;
        }
        config.validate_in(&source_name, ConfigSource::Gguf)?;
        Ok(config)
    }
}

/// HF name → GGUF name.
pub fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let gguf = match suffix {
        "input_layernorm.weight" => "attn_norm",
        "post_attention_layernorm.weight" => "post_attention_norm",
        "pre_feedforward_layernorm.weight" => "ffn_norm",
        "post_feedforward_layernorm.weight" => "post_ffw_norm",
        "self_attn.q_proj.weight" => "attn_q",
        "self_attn.k_proj.weight" => "attn_k",
        "self_attn.v_proj.weight" => "attn_v",
        "self_attn.o_proj.weight" => "attn_output",
        "self_attn.q_norm.weight" => "attn_q_norm",
        "self_attn.k_norm.weight" => "attn_k_norm",
        "mlp.gate_proj.weight" => "ffn_gate",
        "mlp.up_proj.weight" => "ffn_up",
        "mlp.down_proj.weight" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf}.weight"))
}

/// GGUF name → HF name (the inverse of [`gguf_name`]).
fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?.strip_suffix(".weight")?;
    let (layer, short) = rest.split_once('.')?;
    let hf = [
        "input_layernorm.weight",
        "post_attention_layernorm.weight",
        "pre_feedforward_layernorm.weight",
        "post_feedforward_layernorm.weight",
        "self_attn.q_proj.weight",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
        "self_attn.o_proj.weight",
        "self_attn.q_norm.weight",
        "self_attn.k_norm.weight",
        "mlp.gate_proj.weight",
        "mlp.up_proj.weight",
        "mlp.down_proj.weight",
    ]
    .into_iter()
    .map(|suffix| format!("model.layers.{layer}.{suffix}"))
    .find(|candidate| {
        gguf_name(candidate).as_deref() == Some(&format!("blk.{layer}.{short}.weight"))
    })?;
    Some(hf)
}

fn is_norm(hf: &str) -> bool {
    hf.ends_with("norm.weight")
}

impl GgufSource {
    fn resolve(&self, hf: &str) -> Result<String, Gemma3Error> {
        let name = gguf_name(hf).ok_or_else(|| Gemma3Error::MissingTensor(hf.into()))?;
        if self.file.tensor_info(&name).is_none() {
            return Err(Gemma3Error::MissingTensor(format!("{hf} (GGUF `{name}`)")));
        }
        Ok(name)
    }
}

impl WeightSource for GgufSource {
    fn shape(&self, name: &str) -> Result<Vec<usize>, Gemma3Error> {
        let gguf = self.resolve(name)?;
        Ok(self
            .file
            .tensor_info(&gguf)
            .map(|info| info.shape_row_major())
            .unwrap_or_default())
    }

    fn read(&mut self, name: &str) -> Result<Vec<f32>, Gemma3Error> {
        let gguf = self.resolve(name)?;
        let mut values = self.file.read_f32(&gguf).map_err(in_gguf(&self.file))?;
        if is_norm(name) {
            // llama.cpp's converter stores Gemma norms as `w + 1`.
            values.iter_mut().for_each(|v| *v -= 1.0);
        }
        Ok(values)
    }

    fn read_rows(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, Gemma3Error> {
        let gguf = self.resolve(name)?;
        self.file
            .read_f32_rows(&gguf, rows)
            .map_err(in_gguf(&self.file))
    }

    fn read_q8_0_rows(
        &mut self,
        name: &str,
        rows: Range<usize>,
    ) -> Result<Option<Q8_0Blocks>, Gemma3Error> {
        let gguf = self.resolve(name)?;
        let stored_q8_0 = self
            .file
            .tensor_info(&gguf)
            .is_some_and(|info| info.ggml_type == GgmlType::Q8_0);
        if !stored_q8_0 || is_norm(name) {
            return Ok(None);
        }
        tracing::debug!(tensor = gguf, rows = ?rows, "Q8_0 as stored");
        self.file
            .read_q8_0_rows(&gguf, rows)
            .map(Some)
            .map_err(in_gguf(&self.file))
    }

    fn names(&self) -> Vec<String> {
        self.file
            .tensors()
            .map(|info| hf_name(&info.name).unwrap_or_else(|| info.name.clone()))
            .collect()
    }
}
