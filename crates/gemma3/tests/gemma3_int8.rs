//! Gemma3 270M int8 end to end on the real checkpoint, against KerasHub's int8 model
//! (`tests/fixtures/gemma3-270m/`). Int8 logits are chaotic at the ulp level (see the README),
//! so fidelity is shown three ways: exact weights, teacher-forced blocks, and statistics.

use crate::common;
use crate::gemma3_common;

use std::path::Path;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use burn_int8::{Linear, QuantizeExt};
use burn_int8_gemma3::cache::LayerCache;
use burn_int8_gemma3::generate::token_tensor;
use burn_int8_gemma3::preset::{
    PresetOptions, WEIGHTS_FILE, from_preset, from_preset_with, save_to_preset,
};
use burn_int8_gemma3::{self as gemma3, Gemma3, Sampler, Tokenizer};
use common::{Fixture, argmax, f32_of, i8_of};
use gemma3_common::{gemma3_checkpoint as checkpoint, gemma3_logits_all as logits_all};

const LOGITS: &str = "gemma3-270m/keras-gemma3-270m-logits.safetensors";
const WEIGHTS: &str = "gemma3-270m/keras-gemma3-270m-int8-weights.safetensors";

fn reference_json(name: &str) -> serde_json::Value {
    let path = common::fixtures_dir().join("gemma3-270m").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids_of(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn int8_of<B: Backend>(linear: &Linear<B>) -> (Vec<i8>, Vec<f32>) {
    let weight = linear.int8_weight().expect("not quantized");
    (i8_of(weight.values.val()), f32_of(weight.scale()))
}

/// Feeds Keras's `block_outputs[i]` into our block i and returns, per block×position row,
/// `max |ours - keras[i+1]| / max |keras[i+1]|`.
fn teacher_forced_blocks<B: Backend>(
    model: &Gemma3<B>,
    fixture: &Fixture,
    precision: &str,
) -> Vec<f32> {
    let device = model.device();
    let name = format!("p0_keras.{precision}.block_outputs");
    let [blocks, seq, hidden] = <[usize; 3]>::try_from(fixture.shape(&name)).unwrap();
    let outputs = fixture.f32_values(&name);
    let [local, global] = model.layer_inputs(0, seq, &[], &device);
    let mut errors = Vec::new();
    for (i, layer) in model.layers.iter().enumerate().take(blocks - 1) {
        let input = &outputs[i * seq * hidden..(i + 1) * seq * hidden];
        let x =
            Tensor::<B, 3>::from_data(TensorData::new(input.to_vec(), [1, seq, hidden]), &device);
        let global_layer = model.config.is_global_layer(i);
        let window = (!global_layer).then_some(model.config.sliding_window);
        let inputs = if global_layer { &global } else { &local };
        let ours = f32_of(layer.forward(x, inputs, &mut LayerCache::new(window), 0));
        let expected = &outputs[(i + 1) * seq * hidden..(i + 2) * seq * hidden];
        for (row, reference) in ours.chunks(hidden).zip(expected.chunks(hidden)) {
            let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            errors.push(
                row.iter()
                    .zip(reference)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max)
                    / scale,
            );
        }
    }
    errors
}

/// Int8 weights, blocks, logits, generation and presets, on flex (one load for all).
#[test]
fn int8_gemma3_matches_kerashub() {
    let Some(path) = checkpoint() else { return };
    type B = burn::backend::Flex;
    let device = Default::default();
    let (fp32, tokenizer) = gemma3::load_model::<B>(&path, false, &device, |_| {}).unwrap();
    let logits = Fixture::open(LOGITS);

    // fp32 blocks, teacher-forced: every row within 1e-5 × the row's max.
    let errors = teacher_forced_blocks(&fp32, &logits, "fp32");
    let worst = errors.iter().fold(0.0f32, |m, e| m.max(*e));
    eprintln!(
        "fp32 teacher-forced blocks: {} rows, worst relative error {worst:.2e}",
        errors.len()
    );
    assert!(worst <= 1e-5);

    // Quantize in place, like Keras's model.quantize("int8").
    let mut model = fp32.clone();
    let report = model.quantize_int8().unwrap();
    eprintln!("quantize: {report}");
    assert_eq!(
        report.changed.len(),
        18 * 7 + model.embed_tokens.shards.len()
    );
    assert!(
        report
            .changed
            .iter()
            .all(|(path, _)| !path.contains("norm"))
    );
    assert!(report.bytes_after * 100 <= report.bytes_before * 26);

    // Weights: layer 0 q, k, down and the embedding equal Keras's exactly.
    let weights = Fixture::open(WEIGHTS);
    let attention = &model.layers[0].self_attn;
    let (q, q_scale) = int8_of(&attention.q_proj);
    let keras_q = weights.i8_values("layer0.q_proj.kernel_int8"); // [heads, hidden, head_dim]
    let (heads, hidden, head_dim) = (4, 640, 256);
    for n in 0..heads {
        for d in 0..hidden {
            for h in 0..head_dim {
                assert_eq!(
                    q[d * heads * head_dim + n * head_dim + h],
                    keras_q[(n * hidden + d) * head_dim + h],
                    "q[{n},{d},{h}]"
                );
            }
        }
    }
    assert_eq!(q_scale, weights.f32_values("layer0.q_proj.kernel_scale"));
    let (k, k_scale) = int8_of(&attention.k_proj);
    assert_eq!(
        k,
        weights.i8_values("layer0.k_proj.kernel_int8"),
        "k_proj: [1, 640, 256] is our [640, 256]"
    );
    assert_eq!(k_scale, weights.f32_values("layer0.k_proj.kernel_scale"));
    let (down, down_scale) = int8_of(&model.layers[0].mlp.down_proj);
    assert_eq!(down, weights.i8_values("layer0.ffw_down.kernel_int8"));
    assert_eq!(
        down_scale,
        weights.f32_values("layer0.ffw_down.kernel_scale")
    );
    let (mut scales, mut rows) = (Vec::new(), Vec::new());
    for shard in &model.embed_tokens.shards {
        let weight = shard.int8_weight().expect("embedding not quantized");
        scales.extend(f32_of(weight.scale()));
        if rows.is_empty() {
            rows = i8_of(weight.values.val().slice([0..16, 0..hidden]));
        }
    }
    assert_eq!(scales, weights.f32_values("token_embedding.scale"));
    assert_eq!(rows, weights.i8_values("token_embedding.rows_0_16_int8"));
    eprintln!(
        "weights: layer 0 q/k/down and the embedding's scales and rows 0..16 equal Keras's bit for bit"
    );

    // Quantizing while loading gives the same int8 model.
    let (streamed, _) = gemma3::load_model::<B>(&path, true, &device, |_| {}).unwrap();
    assert_eq!(
        int8_of(&streamed.layers[5].mlp.up_proj),
        int8_of(&model.layers[5].mlp.up_proj)
    );
    drop(streamed);

    // int8 blocks, teacher-forced.
    let errors = teacher_forced_blocks(&model, &logits, "int8");
    let tight = errors.iter().filter(|e| **e <= 1e-5).count();
    let worst = errors.iter().fold(0.0f32, |m, e| m.max(*e));
    eprintln!(
        "int8 teacher-forced blocks: {tight}/{} rows within 1e-5 × row max, worst {worst:.2e}",
        errors.len()
    );
    assert!(tight * 100 >= errors.len() * 95 && worst <= 1e-2);

    // Logits, statistically: p0 every position and p3 last.
    let vocab = model.config.vocab_size;
    let p0: Vec<u32> = logits
        .i32_values("p0_keras.token_ids")
        .into_iter()
        .map(|i| i as u32)
        .collect();
    let p3: Vec<u32> = logits
        .i32_values("p3_long.token_ids")
        .into_iter()
        .map(|i| i as u32)
        .collect();
    let mut ours = logits_all(&model, &p0);
    let mut keras = logits.f32_values("p0_keras.int8.logits_all");
    ours.extend(f32_of(model.forward_last(
        token_tensor::<B>(&p3, &device),
        &mut model.new_cache(),
    )));
    keras.extend(logits.f32_values("p3_long.int8.logits_last"));
    let positions = ours.len() / vocab;
    let same_top1 = ours
        .chunks(vocab)
        .zip(keras.chunks(vocab))
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    let mean = ours
        .iter()
        .zip(&keras)
        .map(|(a, b)| (a - b).abs() as f64)
        .sum::<f64>()
        / ours.len() as f64;
    let fp32_ref = [
        logits.f32_values("p0_keras.fp32.logits_all"),
        logits.f32_values("p3_long.fp32.logits_last"),
    ]
    .concat();
    let keras_own = keras
        .iter()
        .zip(&fp32_ref)
        .map(|(a, b)| (a - b).abs() as f64)
        .sum::<f64>()
        / keras.len() as f64;
    eprintln!(
        "int8 logits vs KerasHub int8: same top-1 at {same_top1}/{positions} positions, mean |diff| {mean:.3} (KerasHub's own int8 vs fp32: {keras_own:.3})"
    );
    assert!(same_top1 * 100 >= positions * 80 && mean <= 1.0);

    // Generation: greedy text, and teacher-forced next tokens on KerasHub's int8 ids.
    let reference = reference_json("keras-int8-generation.json");
    let keras_ids = ids_of(&reference["token_ids"]);
    let forced = logits_all(&model, &keras_ids);
    let prompt = reference["n_prompt_tokens"].as_u64().unwrap() as usize;
    let steps = keras_ids.len() - prompt;
    let agree = (prompt - 1..keras_ids.len() - 1)
        .filter(|&i| argmax(&forced[i * vocab..(i + 1) * vocab]) == keras_ids[i + 1] as usize)
        .count();
    eprintln!("teacher-forced on KerasHub's int8 ids: {agree}/{steps} next tokens agree");
    assert!(agree * 100 >= steps * 80);
    let generated = gemma3::generate(
        &model,
        &tokenizer,
        "Keras is a",
        50,
        &Sampler::Greedy,
        |_| {},
    )
    .unwrap();
    eprintln!(
        "ours int8:    {:?}\nKerasHub int8: {:?}",
        generated.text,
        reference["text"].as_str().unwrap()
    );

    presets_round_trip(&fp32, &model, &tokenizer, &generated.text, &p0);
}

fn presets_round_trip(
    fp32: &Gemma3<burn::backend::Flex>,
    int8: &Gemma3<burn::backend::Flex>,
    tokenizer: &Tokenizer,
    text: &str,
    p0: &[u32],
) {
    type B = burn::backend::Flex;
    let root = std::env::temp_dir().join(format!("burn-int8-presets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (fp32_dir, int8_dir) = (root.join("gemma3_270m_fp32"), root.join("gemma3_270m_int8"));
    save_to_preset(fp32, tokenizer, &fp32_dir, false).unwrap();
    save_to_preset(int8, tokenizer, &int8_dir, false).unwrap();
    let size = |dir: &Path| std::fs::metadata(dir.join(WEIGHTS_FILE)).unwrap().len();
    let (fp32_bytes, int8_bytes) = (size(&fp32_dir), size(&int8_dir));
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "presets: fp32 {:.2} MiB, int8 {:.2} MiB ({:.1}% of fp32)",
        mib(fp32_bytes),
        mib(int8_bytes),
        100.0 * int8_bytes as f64 / fp32_bytes as f64
    );
    assert!(int8_bytes * 100 <= fp32_bytes * 26);
    let mut files: Vec<String> = std::fs::read_dir(&int8_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "checksums.json",
            "config.json",
            WEIGHTS_FILE,
            "tokenizer.vocab.json"
        ]
    );

    // Reloaded int8 preset: identical logits and text.
    let (reloaded, reloaded_tokenizer) = from_preset::<B>(&int8_dir, &Default::default()).unwrap();
    assert!(reloaded.is_quantized());
    assert_eq!(
        logits_all(&reloaded, p0),
        logits_all(int8, p0),
        "reloaded int8 logits differ"
    );
    let again = gemma3::generate(
        &reloaded,
        &reloaded_tokenizer,
        "Keras is a",
        50,
        &Sampler::Greedy,
        |_| {},
    )
    .unwrap();
    assert_eq!(again.text, text);
    drop(reloaded);

    // The preset loads and runs on wgpu too.
    #[cfg(feature = "wgpu")]
    {
        type W = burn::backend::Vulkan;
        let (on_wgpu, _) =
            from_preset::<W>(&int8_dir, &burn::backend::wgpu::WgpuDevice::Cpu).unwrap();
        let wgpu_logits = logits_all(&on_wgpu, p0);
        let flex_logits = logits_all(int8, p0);
        let vocab = flex_logits.len() / p0.len();
        assert!(wgpu_logits.iter().all(|v| v.is_finite()));
        assert_eq!(
            argmax(&wgpu_logits[(p0.len() - 1) * vocab..]),
            argmax(&flex_logits[(p0.len() - 1) * vocab..])
        );
        eprintln!("int8 preset on wgpu: runs, same next token as flex");
    }

    // Bad presets: clear errors, nothing lost.
    let error = save_to_preset(int8, tokenizer, &int8_dir, false).unwrap_err();
    assert!(error.to_string().contains("exists"), "{error}");
    let broken = root.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(int8_dir.join("config.json"), broken.join("config.json")).unwrap();
    let error = from_preset::<B>(&broken, &Default::default()).unwrap_err();
    assert!(error.to_string().contains(WEIGHTS_FILE), "{error}");
    let bytes = std::fs::read(int8_dir.join(WEIGHTS_FILE)).unwrap();
    std::fs::write(broken.join(WEIGHTS_FILE), &bytes[..bytes.len() / 3]).unwrap();
    for entry in std::fs::read_dir(&int8_dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != WEIGHTS_FILE && entry.file_name() != "config.json" {
            std::fs::copy(entry.path(), broken.join(entry.file_name())).unwrap();
        }
    }
    // Verified (the default), a truncated record is a checksum mismatch; unverified, the
    // record itself is found wanting.
    let error = from_preset::<B>(&broken, &Default::default()).unwrap_err();
    assert!(
        matches!(error, gemma3::Gemma3Error::Checksum { .. }),
        "{error}"
    );
    let unverified = PresetOptions {
        verify_checksum: false,
    };
    let error = from_preset_with::<B>(&broken, &Default::default(), unverified).unwrap_err();
    eprintln!("truncated record: {error}");
    // A preset of another model: gemma3_1b's config with 270m weights.
    std::fs::copy(int8_dir.join(WEIGHTS_FILE), broken.join(WEIGHTS_FILE)).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(int8_dir.join("config.json")).unwrap())
            .unwrap();
    config["hidden_size"] = 1152.into();
    config["intermediate_size"] = 6912.into();
    std::fs::write(broken.join("config.json"), config.to_string()).unwrap();
    let error = from_preset::<B>(&broken, &Default::default()).unwrap_err();
    assert!(
        matches!(&error, gemma3::Gemma3Error::Checksum { path, .. } if path.ends_with("config.json")),
        "{error}"
    );
    let error = from_preset_with::<B>(&broken, &Default::default(), unverified).unwrap_err();
    eprintln!("preset of another model: {error}");
    assert!(
        matches!(error, gemma3::Gemma3Error::PresetMismatch { .. }),
        "{error}"
    );
    // A float preset is not an int8 one (unverified: the checksum would catch it first).
    std::fs::copy(fp32_dir.join(WEIGHTS_FILE), broken.join(WEIGHTS_FILE)).unwrap();
    std::fs::copy(int8_dir.join("config.json"), broken.join("config.json")).unwrap();
    let error = from_preset_with::<B>(&broken, &Default::default(), unverified).unwrap_err();
    eprintln!("float record under an int8 config: {error}");
    assert!(
        matches!(
            error,
            gemma3::Gemma3Error::PresetMismatch {
                field: "burn_int8.precision",
                ..
            }
        ),
        "{error}"
    );

    // A save killed half way leaves the previous preset intact: with the CLI on this model
    // in tests/real_checkpoint.rs of crates/cli, at every kill point on a tiny model in
    // tests/preset_saves.rs.
    std::fs::remove_dir_all(&root).ok();
}
