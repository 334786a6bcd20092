//! Export to an HF checkpoint directory: `config.json`, `model.safetensors` (f32, HF layout)
//! and the tokenizer. It lets a GGUF model be written in HF layout, and it tests the HF loader
//! on a real checkpoint (GGUF, then HF directory, then load: the same logits).

use std::io::{BufWriter, Write};
use std::path::Path;

use burn::tensor::{Tensor, backend::Backend};
use burn_int8::{Linear, QuantizeExt};
use burn_int8_tokenizer::Tokenizer;

use crate::error::{Gemma3Error, io};
use crate::model::{Gemma3, RmsNorm};
use crate::preset::write_tokenizer;

/// Writes `model` (dequantized if int8) and `tokenizer` as an HF directory at `dir`.
pub fn export_hf<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    dir: &Path,
) -> Result<(), Gemma3Error> {
    let mut model = model.clone();
    model.dequantize()?;
    let tensors = hf_tensors(&model);
    burn_int8::io::atomic::write_dir(dir, false, |tmp| {
        std::fs::write(tmp.join("config.json"), model.config.to_hf_json())
            .map_err(|e| io(tmp, e))?;
        write_safetensors(&tmp.join("model.safetensors"), &tensors)?;
        write_tokenizer(tokenizer, tmp)
    })
}

/// A tensor to export: its HF name, row-major shape, and how to get its values.
struct Export<'a, B: Backend> {
    name: String,
    shape: Vec<usize>,
    values: Box<dyn Fn() -> Vec<f32> + 'a>,
    _backend: std::marker::PhantomData<B>,
}

fn hf_tensors<B: Backend>(model: &Gemma3<B>) -> Vec<Export<'_, B>> {
    fn host<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
        tensor
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default()
    }
    fn linear<'a, B: Backend>(name: String, layer: &'a Linear<B>) -> Export<'a, B> {
        // Float: the model was dequantized above.
        let [d_in, d_out] = layer.weight_dims();
        // Burn's [in, out] back to HF's [out, in].
        Export {
            name,
            shape: vec![d_out, d_in],
            values: Box::new(move || host(layer.weight.val().transpose())),
            _backend: Default::default(),
        }
    }
    fn norm<'a, B: Backend>(name: String, layer: &'a RmsNorm<B>) -> Export<'a, B> {
        Export {
            name,
            shape: layer.weight.val().dims().to_vec(),
            values: Box::new(move || host(layer.weight.val())),
            _backend: Default::default(),
        }
    }

    let config = &model.config;
    let shards = &model.embed_tokens.shards;
    let mut tensors = vec![Export {
        name: "model.embed_tokens.weight".into(),
        shape: vec![config.vocab_size, config.hidden_size],
        values: Box::new(move || {
            shards
                .iter()
                .flat_map(|shard| host(shard.weight.val()))
                .collect()
        }),
        _backend: Default::default(),
    }];
    for (i, layer) in model.layers.iter().enumerate() {
        let name = |suffix: &str| format!("model.layers.{i}.{suffix}");
        let attention = &layer.self_attn;
        tensors.extend([
            norm(name("input_layernorm.weight"), &layer.input_layernorm),
            norm(
                name("post_attention_layernorm.weight"),
                &layer.post_attention_layernorm,
            ),
            norm(
                name("pre_feedforward_layernorm.weight"),
                &layer.pre_feedforward_layernorm,
            ),
            norm(
                name("post_feedforward_layernorm.weight"),
                &layer.post_feedforward_layernorm,
            ),
            linear(name("self_attn.q_proj.weight"), &attention.q_proj),
            linear(name("self_attn.k_proj.weight"), &attention.k_proj),
            linear(name("self_attn.v_proj.weight"), &attention.v_proj),
            linear(name("self_attn.o_proj.weight"), &attention.o_proj),
            norm(name("self_attn.q_norm.weight"), &attention.q_norm),
            norm(name("self_attn.k_norm.weight"), &attention.k_norm),
            linear(name("mlp.gate_proj.weight"), &layer.mlp.gate_proj),
            linear(name("mlp.up_proj.weight"), &layer.mlp.up_proj),
            linear(name("mlp.down_proj.weight"), &layer.mlp.down_proj),
        ]);
    }
    tensors.push(norm("model.norm.weight".into(), &model.norm));
    tensors
}

/// Streams a safetensors file: the header from shapes, then one tensor at a time, so only
/// one tensor's values are on the host at once.
fn write_safetensors<B: Backend>(
    path: &Path,
    tensors: &[Export<'_, B>],
) -> Result<(), Gemma3Error> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for tensor in tensors {
        let bytes = tensor.shape.iter().product::<usize>() * 4;
        header.insert(
            tensor.name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + bytes] }),
        );
        offset += bytes;
    }
    let mut header =
        serde_json::to_string(&header).map_err(|e| Gemma3Error::Preset(e.to_string()))?;
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let file = std::fs::File::create(path).map_err(|e| io(path, e))?;
    let mut out = BufWriter::new(file);
    let mut write = |bytes: &[u8]| out.write_all(bytes).map_err(|e| io(path, e));
    write(&(header.len() as u64).to_le_bytes())?;
    write(header.as_bytes())?;
    for tensor in tensors {
        let values = (tensor.values)();
        if values.len() != tensor.shape.iter().product::<usize>() {
            return Err(Gemma3Error::ShapeMismatch {
                name: tensor.name.clone(),
                expected: tensor.shape.clone(),
                found: vec![values.len()],
            });
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        write(&bytes)?;
    }
    out.flush().map_err(|e| io(path, e))?;
    out.get_ref().sync_all().map_err(|e| io(path, e))
}
