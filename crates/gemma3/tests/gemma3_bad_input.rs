//! Bad input to the Gemma3 loaders, generation and CLI: typed errors that name what is wrong,
//! never a panic. Uses a tiny synthetic checkpoint, so it always runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::Flex;
use burn_int8_gemma3::load::expected_tensors;
use burn_int8_gemma3::{self as gemma3, Gemma3Config, Gemma3Error, Sampler};
use burn_int8_gemma3::tokenizer::{Tokenizer, Vocab};

/// A 2-layer Gemma3 (layer 1 global) small enough to write in a test.
fn tiny_config() -> Gemma3Config {
    let mut config = Gemma3Config::new(300, 8, 16, 2, 2, 1, 4, 4.0, 4);
    config.sliding_window_pattern = 2;
    config.max_position_embeddings = 64;
    config
}

/// 256 byte pieces, specials, and a few merges: enough to encode any text.
fn tiny_vocab(size: usize) -> Vocab {
    let mut tokens = vec!["<pad>".to_string(), "<eos>".into(), "<bos>".into(), "<unk>".into()];
    let mut types = vec![3, 3, 3, 3];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    types.extend(std::iter::repeat_n(6, 256));
    for piece in ["▁", "a", "b", "▁a", "ab"] {
        tokens.push(piece.into());
        types.push(1);
    }
    while tokens.len() < size {
        tokens.push(format!("<unused{}>", tokens.len()));
        types.push(3);
    }
    let scores = (0..tokens.len()).map(|i| -(i as f32)).collect();
    Vocab { tokens, scores, token_types: types, bos_id: 2, eos_id: 1, unknown_id: Some(3), padding_id: Some(0), add_bos: true, add_space_prefix: false }
}

/// Writes an HF directory for `config`, letting `edit` change the tensor list first.
fn write_hf_dir(name: &str, config: &Gemma3Config, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-int8-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = expected_tensors(config)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = (0..n).map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.2).collect();
            (name, shape, values)
        })
        .collect();
    edit(&mut tensors);
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config.to_hf_json()).unwrap();
    tiny_vocab(config.vocab_size).save_json(dir.join("tokenizer.vocab.json")).unwrap();
    dir
}

fn load(dir: &Path) -> Result<(gemma3::Gemma3<Flex>, Tokenizer), Gemma3Error> {
    gemma3::load_model::<Flex>(dir, false, &Default::default(), |_| {})
}

#[test]
fn a_good_tiny_checkpoint_loads_and_generates() {
    let dir = write_hf_dir("good", &tiny_config(), |_| {});
    let (model, tokenizer) = load(&dir).unwrap();
    let output = gemma3::generate(&model, &tokenizer, "ab a", 12, &Sampler::Greedy, |_| {}).unwrap();
    assert!(output.token_ids.len() <= 12 && output.text.starts_with("ab a"));
    // Sampling is reproducible from its seed.
    let sampler = Sampler::Random { temperature: 0.8, top_k: Some(20), top_p: Some(0.9), seed: 7 };
    let first = gemma3::generate(&model, &tokenizer, "ab", 10, &sampler, |_| {}).unwrap();
    let second = gemma3::generate(&model, &tokenizer, "ab", 10, &sampler, |_| {}).unwrap();
    assert_eq!(first.token_ids, second.token_ids);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn prompts_that_cannot_run_are_typed_errors() {
    let dir = write_hf_dir("prompts", &tiny_config(), |_| {});
    let (model, tokenizer) = load(&dir).unwrap();
    let generate = |prompt: &str, max_length| gemma3::generate(&model, &tokenizer, prompt, max_length, &Sampler::Greedy, |_| {});
    assert!(matches!(generate("", 10), Err(Gemma3Error::EmptyPrompt)));
    assert!(matches!(generate("abababababab", 4), Err(Gemma3Error::PromptTooLong { limit: 4, .. })));
    // max_length beyond the model's context (64 here).
    let error = generate("ab", 65).unwrap_err();
    assert!(matches!(error, Gemma3Error::PromptTooLong { limit: 64, .. }), "{error}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_extra_misshaped_and_nan_tensors_are_named() {
    let config = tiny_config();
    type Edit = Box<dyn FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("missing", Box::new(|t| t.retain(|(n, _, _)| n != "model.layers.1.mlp.up_proj.weight")), "model.layers.1.mlp.up_proj.weight"),
        ("extra", Box::new(|t| t.push(("lm_head.weight".into(), vec![2], vec![0.0, 0.0]))), "lm_head.weight"),
        (
            "misshaped",
            Box::new(|t| {
                let entry = t.iter_mut().find(|(n, _, _)| n == "model.layers.0.self_attn.k_proj.weight").unwrap();
                entry.1 = vec![8, 4];
            }),
            "model.layers.0.self_attn.k_proj.weight",
        ),
        (
            "nan",
            Box::new(|t| {
                let entry = t.iter_mut().find(|(n, _, _)| n == "model.norm.weight").unwrap();
                entry.2[3] = f32::NAN;
            }),
            "model.norm.weight",
        ),
    ];
    for (name, edit, tensor) in cases {
        let dir = write_hf_dir(name, &config, edit);
        let error = load(&dir).err().unwrap_or_else(|| panic!("{name}: loaded"));
        eprintln!("{name}: {error}");
        assert!(error.to_string().contains(tensor), "{name}: {error}");
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn configs_out_of_range_are_typed_errors() {
    let mut config = tiny_config();
    config.num_kv_heads = 3;
    assert!(matches!(config.validate(), Err(Gemma3Error::Config(m)) if m.contains("num_kv_heads")));
    let mut config = tiny_config();
    config.head_dim = 5;
    assert!(config.validate().is_err());
    let mut config = tiny_config();
    config.rms_norm_eps = f64::NAN;
    assert!(config.validate().is_err());
    let mut config = tiny_config();
    config.vocab_size = 0;
    assert!(config.validate().is_err());
    assert!(Gemma3Config::from_hf_json("{\"model_type\": \"llama\"}").is_err());
    let mut json: serde_json::Value = serde_json::from_str(&tiny_config().to_hf_json()).unwrap();
    json["num_hidden_layers"] = 0.into();
    let error = Gemma3Config::from_hf_json(&json.to_string()).unwrap_err();
    assert!(error.to_string().contains("num_layers"), "{error}");
    assert_eq!(Gemma3Config::from_hf_json(&tiny_config().to_hf_json()).unwrap(), tiny_config());
}

#[test]
fn foreign_and_truncated_files_are_typed_errors() {
    let dir = std::env::temp_dir().join(format!("burn-int8-bad-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_gguf = dir.join("model.gguf");
    std::fs::write(&not_gguf, b"PK\x03\x04 definitely a zip file").unwrap();
    assert!(matches!(load(&not_gguf), Err(Gemma3Error::Format { .. })));
    let truncated = dir.join("truncated.gguf");
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(1000u64.to_le_bytes()); // 1000 tensors promised, none present
    std::fs::write(&truncated, &bytes).unwrap();
    let error = load(&truncated).err().unwrap();
    assert!(matches!(error, Gemma3Error::Gguf(_)), "{error}");
    let mut v9 = b"GGUF".to_vec();
    v9.extend(9u32.to_le_bytes());
    v9.extend([0u8; 16]);
    std::fs::write(&truncated, &v9).unwrap();
    let error = load(&truncated).err().unwrap();
    assert!(error.to_string().to_lowercase().contains("version"), "{error}");
    assert!(load(&dir.join("absent")).is_err());
    assert!(matches!(load(&dir), Err(Gemma3Error::Format { .. })), "an empty directory is neither format");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_cli_names_bad_backends_and_writes_logits() {
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let dir = write_hf_dir("cli", &tiny_config(), |_| {});
    let run = |args: &[&str]| Command::new(binary).args(args).output().unwrap();
    let model = dir.to_str().unwrap();
    let output = run(&["gemma3", "generate", "--model", model, "--prompt", "ab", "--backend", "tpu"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown backend `tpu`"));
    if !cfg!(feature = "cuda") {
        let output = run(&["gemma3", "generate", "--model", model, "--prompt", "ab", "--backend", "cuda"]);
        assert!(String::from_utf8_lossy(&output.stderr).contains("not compiled in"));
    }
    // A backend compiled in whose device is absent: a typed error, not a panic. Pointing the
    // Vulkan loader at no driver hides lavapipe.
    if cfg!(feature = "wgpu") {
        let output = Command::new(binary)
            .args(["gemma3", "generate", "--model", model, "--prompt", "ab", "--backend", "wgpu"])
            .env("VK_ICD_FILENAMES", "/nonexistent.json")
            .env("VK_DRIVER_FILES", "/nonexistent.json")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("backend `wgpu` has no usable device"), "{stderr}");
    }
    // Generation prints only the text on stdout.
    let output = run(&["gemma3", "generate", "--model", model, "--prompt", "ab a", "--max-length", "10"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ab a"));
    // Logits over exact ids.
    let out = dir.join("logits.safetensors");
    let output = run(&["gemma3", "logits", "--model", model, "--tokens", "2,260,261", "--out", out.to_str().unwrap(), "--int8"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(tensors.tensor("logits").unwrap().shape(), &[3, 300]);
    let output = run(&["gemma3", "logits", "--model", model, "--tokens", "2,999", "--out", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("999"));
    std::fs::remove_dir_all(dir).ok();
}
