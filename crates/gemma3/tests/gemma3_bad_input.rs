//! Bad input to the Gemma3 loaders, generation and CLI: typed errors that name what is wrong,
//! never a panic. Uses a tiny synthetic checkpoint, so it always runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::Flex;
use burn_int8_gemma3::load::expected_tensors;
use burn_int8_gemma3::tokenizer::{Tokenizer, Vocab};
use burn_int8_gemma3::{self as gemma3, Gemma3Config, Gemma3Error, Sampler};

/// A 2-layer Gemma3 (layer 1 global) small enough to write in a test.
fn tiny_config() -> Gemma3Config {
    let mut config = Gemma3Config::new(300, 8, 16, 2, 2, 1, 4, 4.0, 4);
    config.sliding_window_pattern = 2;
    config.max_position_embeddings = 64;
    config
}

/// 256 byte pieces, specials, and a few merges: enough to encode any text.
fn tiny_vocab(size: usize) -> Vocab {
    let mut tokens = vec![
        "<pad>".to_string(),
        "<eos>".into(),
        "<bos>".into(),
        "<unk>".into(),
    ];
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
    Vocab {
        tokens,
        scores,
        token_types: types,
        bos_id: 2,
        eos_id: 1,
        unknown_id: Some(3),
        padding_id: Some(0),
        add_bos: true,
        add_space_prefix: false,
    }
}

/// Writes an HF directory for `config`, letting `edit` change the tensor list first.
fn write_hf_dir(
    name: &str,
    config: &Gemma3Config,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>),
) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-int8-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = expected_tensors(config)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = (0..n)
                .map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.2)
                .collect();
            (name, shape, values)
        })
        .collect();
    edit(&mut tensors);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config.to_hf_json()).unwrap();
    tiny_vocab(config.vocab_size)
        .save_json(dir.join("tokenizer.vocab.json"))
        .unwrap();
    dir
}

fn load(dir: &Path) -> Result<(gemma3::Gemma3<Flex>, Tokenizer), Gemma3Error> {
    gemma3::load_model::<Flex>(dir, false, &Default::default(), |_| {})
}

#[test]
fn a_good_tiny_checkpoint_loads_and_generates() {
    let dir = write_hf_dir("good", &tiny_config(), |_| {});
    let (model, tokenizer) = load(&dir).unwrap();
    let output =
        gemma3::generate(&model, &tokenizer, "ab a", 12, &Sampler::Greedy, |_| {}).unwrap();
    assert!(output.token_ids.len() <= 12 && output.text.starts_with("ab a"));
    // Sampling is reproducible from its seed.
    let sampler = Sampler::Random {
        temperature: 0.8,
        top_k: Some(20),
        top_p: Some(0.9),
        seed: 7,
    };
    let first = gemma3::generate(&model, &tokenizer, "ab", 10, &sampler, |_| {}).unwrap();
    let second = gemma3::generate(&model, &tokenizer, "ab", 10, &sampler, |_| {}).unwrap();
    assert_eq!(first.token_ids, second.token_ids);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn prompts_that_cannot_run_are_typed_errors() {
    let dir = write_hf_dir("prompts", &tiny_config(), |_| {});
    let (model, tokenizer) = load(&dir).unwrap();
    let generate = |prompt: &str, max_length| {
        gemma3::generate(
            &model,
            &tokenizer,
            prompt,
            max_length,
            &Sampler::Greedy,
            |_| {},
        )
    };
    assert!(matches!(generate("", 10), Err(Gemma3Error::EmptyPrompt)));
    assert!(matches!(
        generate("abababababab", 4),
        Err(Gemma3Error::PromptTooLong { limit: 4, .. })
    ));
    // max_length beyond the model's context (64 here).
    let error = generate("ab", 65).unwrap_err();
    assert!(
        matches!(
            error,
            Gemma3Error::ExceedsContext {
                value: 65,
                context: 64,
                ..
            }
        ),
        "{error}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_extra_misshaped_and_nan_tensors_are_named() {
    let config = tiny_config();
    type Edit = Box<dyn FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)>;
    // Each case: the edit, the tensor its error names, and the error's variant.
    let cases: Vec<(&str, Edit, &str, fn(&Gemma3Error) -> bool)> = vec![
        (
            "missing",
            Box::new(|t| t.retain(|(n, _, _)| n != "model.layers.1.mlp.up_proj.weight")),
            "model.layers.1.mlp.up_proj.weight",
            |e| matches!(e, Gemma3Error::MissingTensor(_)),
        ),
        (
            "extra",
            Box::new(|t| t.push(("lm_head.weight".into(), vec![2], vec![0.0, 0.0]))),
            "lm_head.weight",
            |e| matches!(e, Gemma3Error::UnexpectedTensors(_)),
        ),
        (
            "misshaped",
            Box::new(|t| {
                let entry = t
                    .iter_mut()
                    .find(|(n, _, _)| n == "model.layers.0.self_attn.k_proj.weight")
                    .unwrap();
                entry.1 = vec![8, 4];
            }),
            "model.layers.0.self_attn.k_proj.weight",
            |e| matches!(e, Gemma3Error::ShapeMismatch { .. }),
        ),
        (
            "nan",
            Box::new(|t| {
                let entry = t
                    .iter_mut()
                    .find(|(n, _, _)| n == "model.norm.weight")
                    .unwrap();
                entry.2[3] = f32::NAN;
            }),
            "model.norm.weight",
            |e| matches!(e, Gemma3Error::NonFinite { count: 1, .. }),
        ),
    ];
    for (name, edit, tensor, is_expected) in cases {
        let dir = write_hf_dir(name, &config, edit);
        let error = load(&dir).err().unwrap_or_else(|| panic!("{name}: loaded"));
        eprintln!("{name}: {error}");
        assert!(
            is_expected(&error) && error.to_string().contains(tensor),
            "{name}: {error:?}"
        );
        // The CLI names the checkpoint too.
        let output = Command::new(env!("CARGO_BIN_EXE_burn-int8"))
            .args([
                "gemma3",
                "generate",
                "--model",
                dir.to_str().unwrap(),
                "--prompt",
                "ab",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success()
                && stderr.contains(tensor)
                && stderr.contains(dir.to_str().unwrap()),
            "{name}: {stderr}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn configs_out_of_range_are_typed_errors() {
    let mut config = tiny_config();
    config.num_kv_heads = 3;
    assert!(
        matches!(config.validate(), Err(Gemma3Error::InvalidConfig { field, .. }) if field == "num_kv_heads")
    );
    let field_of = |config: &Gemma3Config| match config.validate() {
        Err(Gemma3Error::InvalidConfig { field, .. }) => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    let mut config = tiny_config();
    config.head_dim = 5;
    assert_eq!(field_of(&config), "head_dim");
    let mut config = tiny_config();
    config.rms_norm_eps = f64::NAN;
    assert_eq!(field_of(&config), "rms_norm_eps");
    let mut config = tiny_config();
    config.vocab_size = 0;
    assert_eq!(field_of(&config), "vocab_size");
    // Every tensor within bounds, but 4096 layers of them are more than 2^41 parameters.
    let mut config = tiny_config();
    (
        config.hidden_size,
        config.intermediate_size,
        config.num_layers,
    ) = (1 << 16, 1 << 20, 4096);
    assert!(
        field_of(&config).starts_with("parameters"),
        "{}",
        field_of(&config)
    );
    // Another architecture: refused by its model_type, not by some field it lacks.
    let mut json: serde_json::Value = serde_json::from_str(&tiny_config().to_hf_json()).unwrap();
    json["model_type"] = "llama".into();
    let error = Gemma3Config::from_hf_json(&json.to_string()).unwrap_err();
    assert!(
        matches!(&error, Gemma3Error::InvalidConfig { field, .. } if field == "model_type"),
        "{error}"
    );
    let mut json: serde_json::Value = serde_json::from_str(&tiny_config().to_hf_json()).unwrap();
    json["num_hidden_layers"] = 0.into();
    let error = Gemma3Config::from_hf_json(&json.to_string()).unwrap_err();
    assert!(error.to_string().contains("num_hidden_layers"), "{error}");
    assert_eq!(
        Gemma3Config::from_hf_json(&tiny_config().to_hf_json()).unwrap(),
        tiny_config()
    );
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
    assert!(matches!(error, Gemma3Error::Gguf { .. }), "{error}");
    let mut v9 = b"GGUF".to_vec();
    v9.extend(9u32.to_le_bytes());
    v9.extend([0u8; 16]);
    std::fs::write(&truncated, &v9).unwrap();
    let error = load(&truncated).err().unwrap();
    assert!(
        error.to_string().to_lowercase().contains("version"),
        "{error}"
    );
    let absent = dir.join("absent");
    match load(&absent) {
        Err(Gemma3Error::Io { path, source }) => {
            assert!(path == absent && source.kind() == std::io::ErrorKind::NotFound)
        }
        other => panic!("an absent path: {:?}", other.err()),
    }
    assert!(
        matches!(load(&dir), Err(Gemma3Error::Format { .. })),
        "an empty directory is neither format"
    );
    std::fs::remove_dir_all(dir).ok();

    // An HF checkpoint cut in half says so, with the sizes, not only safetensors' "incomplete
    // metadata, file not fully covered".
    let hf = write_hf_dir("half", &tiny_config(), |_| {});
    let weights = hf.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    match load(&hf) {
        Err(Gemma3Error::Format { path, message }) => {
            assert_eq!(path, weights);
            let sizes = format!(
                "describes {} bytes but the file has {}",
                bytes.len(),
                bytes.len() / 2
            );
            assert!(
                message.contains("not a complete safetensors file") && message.contains(&sizes),
                "{message}"
            );
        }
        other => panic!("a truncated safetensors file: {:?}", other.err()),
    }
    std::fs::remove_dir_all(hf).ok();
}

#[test]
fn the_cli_names_bad_backends_and_writes_logits() {
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let dir = write_hf_dir("cli", &tiny_config(), |_| {});
    let run = |args: &[&str]| Command::new(binary).args(args).output().unwrap();
    let model = dir.to_str().unwrap();
    let output = run(&[
        "gemma3",
        "generate",
        "--model",
        model,
        "--prompt",
        "ab",
        "--backend",
        "tpu",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown backend `tpu`"));
    if !cfg!(feature = "cuda") {
        let output = run(&[
            "gemma3",
            "generate",
            "--model",
            model,
            "--prompt",
            "ab",
            "--backend",
            "cuda",
        ]);
        assert!(String::from_utf8_lossy(&output.stderr).contains("not compiled in"));
    }
    // A backend compiled in whose device is absent: a typed error, not a panic. Pointing the
    // Vulkan loader at no driver hides lavapipe.
    if cfg!(feature = "wgpu") {
        let output = Command::new(binary)
            .args([
                "gemma3",
                "generate",
                "--model",
                model,
                "--prompt",
                "ab",
                "--backend",
                "wgpu",
            ])
            .env("VK_ICD_FILENAMES", "/nonexistent.json")
            .env("VK_DRIVER_FILES", "/nonexistent.json")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("backend `wgpu` has no usable device"),
            "{stderr}"
        );
    }
    // Generation prints only the text on stdout.
    let output = run(&[
        "gemma3",
        "generate",
        "--model",
        model,
        "--prompt",
        "ab a",
        "--max-length",
        "10",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ab a"));
    // Logits over exact ids.
    let out = dir.join("logits.safetensors");
    let output = run(&[
        "gemma3",
        "logits",
        "--model",
        model,
        "--tokens",
        "2,260,261",
        "--out",
        out.to_str().unwrap(),
        "--int8",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(tensors.tensor("logits").unwrap().shape(), &[3, 300]);
    let output = run(&[
        "gemma3",
        "logits",
        "--model",
        model,
        "--tokens",
        "2,999",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("999"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn sampling_options_read_as_hf_and_llamacpp() {
    use gemma3::Sampler as S;
    // Temperature 0 is greedy; no option at all is greedy.
    assert_eq!(
        S::from_options(Some(0.0), Some(40), Some(0.9), 1).unwrap(),
        S::Greedy
    );
    assert_eq!(S::from_options(None, None, None, 1).unwrap(), S::Greedy);
    for bad in [f32::NAN, f32::INFINITY, -1.0] {
        let error = S::from_options(Some(bad), None, None, 1).unwrap_err();
        assert!(
            matches!(
                error,
                Gemma3Error::InvalidSampler {
                    option: "temperature",
                    ..
                }
            ),
            "{bad}: {error}"
        );
    }
    for bad in [f32::NAN, -0.1, 0.0, 1.5] {
        let error = S::from_options(Some(0.8), None, Some(bad), 1).unwrap_err();
        assert!(
            matches!(
                error,
                Gemma3Error::InvalidSampler {
                    option: "top_p",
                    ..
                }
            ),
            "{bad}: {error}"
        );
        // Checked even where greedy decoding would then ignore it.
        let error = S::from_options(Some(0.0), None, Some(bad), 1).unwrap_err();
        assert!(
            matches!(
                error,
                Gemma3Error::InvalidSampler {
                    option: "top_p",
                    ..
                }
            ),
            "temperature 0, top-p {bad}: {error}"
        );
    }
    assert!(S::from_options(Some(0.8), None, Some(1.0), 1).is_ok());

    let dir = write_hf_dir("sampling", &tiny_config(), |_| {});
    let (model, tokenizer) = load(&dir).unwrap();
    let run = |sampler: &S| gemma3::generate(&model, &tokenizer, "ab a", 16, sampler, |_| {});
    // The library validates too, not only the CLI.
    let nan = S::Random {
        temperature: f32::NAN,
        top_k: None,
        top_p: None,
        seed: 3,
    };
    assert!(matches!(
        run(&nan),
        Err(Gemma3Error::InvalidSampler {
            option: "temperature",
            ..
        })
    ));
    // A Random sampler at temperature 0 is greedy.
    let cold = S::Random {
        temperature: 0.0,
        top_k: None,
        top_p: None,
        seed: 3,
    };
    assert_eq!(
        run(&cold).unwrap().token_ids,
        run(&S::Greedy).unwrap().token_ids
    );
    // top-k 0 keeps every token: the same draws as no top-k.
    let without = S::Random {
        temperature: 1.5,
        top_k: None,
        top_p: None,
        seed: 3,
    };
    let zero = S::Random {
        temperature: 1.5,
        top_k: Some(0),
        top_p: None,
        seed: 3,
    };
    assert_eq!(
        run(&zero).unwrap().token_ids,
        run(&without).unwrap().token_ids
    );
    // top-k 1 is greedy whatever the temperature.
    let one = S::Random {
        temperature: 1.5,
        top_k: Some(1),
        top_p: None,
        seed: 3,
    };
    assert_eq!(
        run(&one).unwrap().token_ids,
        run(&S::Greedy).unwrap().token_ids
    );

    // The CLI says which option is wrong before loading anything.
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let model_dir = dir.to_str().unwrap();
    for (option, value) in [
        ("--temperature", "nan"),
        ("--temperature", "-1"),
        ("--top-p", "0"),
    ] {
        let output = Command::new(binary)
            .args([
                "gemma3", "generate", "--model", model_dir, "--prompt", "ab", option, value,
            ])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&option[2..].replace('-', "_")) && stderr.contains(option),
            "{option} {value}: {stderr}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Batched generation gives every prompt the tokens it gets alone: prompts whose lengths differ
/// by more than the sliding window (4), greedy and sampled, streamed per prompt.
#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    let dir = write_hf_dir("batch", &tiny_config(), |_| {});
    let (model, tokenizer) = load(&dir).unwrap();
    let prompts = ["ab a", "a", "ababab ab a b abba", "b b"];
    let samplers = [
        Sampler::Greedy,
        Sampler::Random {
            temperature: 0.9,
            top_k: Some(50),
            top_p: Some(0.95),
            seed: 11,
        },
    ];
    for sampler in &samplers {
        for max_length in [16, 30] {
            let mut streamed = vec![String::new(); prompts.len()];
            let batch = gemma3::generate_batch(
                &model,
                &tokenizer,
                &prompts,
                max_length,
                sampler,
                |i, piece| streamed[i].push_str(piece),
            )
            .unwrap();
            assert_eq!(batch.len(), prompts.len());
            for (i, prompt) in prompts.iter().enumerate() {
                let mut alone_streamed = String::new();
                let alone =
                    gemma3::generate(&model, &tokenizer, prompt, max_length, sampler, |piece| {
                        alone_streamed.push_str(piece)
                    })
                    .unwrap();
                assert_eq!(
                    batch[i], alone,
                    "prompt {i} ({prompt:?}), {sampler:?}, max_length {max_length}"
                );
                assert_eq!(streamed[i], alone_streamed, "prompt {i} streamed");
                assert!(batch[i].token_ids.len() <= max_length);
            }
        }
    }
    // Every prompt is checked before anything runs.
    let error = gemma3::generate_batch(
        &model,
        &tokenizer,
        &["ab", ""],
        12,
        &Sampler::Greedy,
        |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(error, Gemma3Error::EmptyPrompt));

    // The CLI: one JSON line per prompt whose text is what the single-prompt command prints.
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let model_dir = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let output = Command::new(binary)
            .args([
                "gemma3",
                "generate",
                "--model",
                model_dir,
                "--max-length",
                "20",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let lines = run(&["--prompt", prompts[0], "--prompt", prompts[2], "--json"]);
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (line, prompt) in lines.iter().zip([prompts[0], prompts[2]]) {
        assert_eq!(line["prompt"], prompt);
        let single = run(&["--prompt", prompt]);
        assert_eq!(
            line["text"].as_str().unwrap(),
            single.strip_suffix('\n').unwrap()
        );
    }
    let plain = run(&["--prompt", prompts[0], "--prompt", prompts[1]]);
    assert!(
        plain.starts_with("--- 1/2 ---\n") && plain.contains("\n--- 2/2 ---\n"),
        "{plain}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// `eval` over a tiny model: the scored-token count of llama-perplexity's scheme, a model
/// against itself (no divergence), and the perplexity of one window recomputed independently
/// from the logits with Burn's own `log_softmax`.
#[test]
fn eval_scores_the_second_half_of_each_window() {
    use burn::tensor::activation::log_softmax;
    let dir = write_hf_dir("eval", &tiny_config(), |_| {});
    let (model, tokenizer) = load(&dir).unwrap();
    let tokens = tokenizer
        .encode(&"ab a abba b ba ".repeat(20), true)
        .unwrap();
    let options = gemma3::EvalOptions {
        context: 16,
        max_windows: Some(3),
    };
    let same = gemma3::evaluate(&model, &model, &tokens, &options, |_, _| {}).unwrap();
    assert_eq!(
        (same.windows, same.tokens, same.context),
        (3, 3 * (16 - 1 - 8), 16)
    );
    assert_eq!(same.fp32_perplexity, same.int8_perplexity);
    assert_eq!(
        (same.kl.max, same.top1_agreement, same.top5_contains_top1),
        (0.0, 1.0, 1.0)
    );

    // One window by hand: BOS first, positions 8..=14 predict tokens 9..=15.
    let one = gemma3::evaluate(
        &model,
        &model,
        &tokens,
        &gemma3::EvalOptions {
            context: 16,
            max_windows: Some(1),
        },
        |_, _| {},
    )
    .unwrap();
    let mut ids = tokens[..16].to_vec();
    ids[0] = model.config.bos_token_id;
    let device = model.device();
    let logits = model.forward(
        gemma3::generate::token_tensor::<Flex>(&ids, &device),
        &mut model.new_cache(),
    );
    let log_probs: Vec<f32> = log_softmax(logits, 2).into_data().to_vec().unwrap();
    let vocab = model.config.vocab_size;
    let nll: f64 = (8..15)
        .map(|i| -(log_probs[i * vocab + ids[i + 1] as usize] as f64))
        .sum::<f64>()
        / 7.0;
    assert!(
        (one.fp32_perplexity.ln() - nll).abs() < 1e-5,
        "{} vs {}",
        one.fp32_perplexity.ln(),
        nll
    );

    // Too short a text, or too long a context, is a typed error.
    assert!(matches!(
        gemma3::evaluate(&model, &model, &tokens[..10], &options, |_, _| {}),
        Err(Gemma3Error::Eval(_))
    ));
    let huge = gemma3::EvalOptions {
        context: 65,
        max_windows: None,
    };
    assert!(matches!(
        gemma3::evaluate(&model, &model, &tokens, &huge, |_, _| {}),
        Err(Gemma3Error::ExceedsContext {
            value: 65,
            context: 64,
            ..
        })
    ));

    // The CLI on an int8 preset: the fp32 side is its dequantization and says so.
    let preset = dir.join("preset");
    let (mut int8, _) = load(&dir).unwrap();
    burn_int8::QuantizeExt::quantize_int8(&mut int8).unwrap();
    gemma3::preset::save_to_preset(&int8, &tokenizer, &preset, false).unwrap();
    let text = dir.join("text.txt");
    std::fs::write(&text, "ab a abba b ba ".repeat(20)).unwrap();
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    for (model_path, source) in [(&dir, "float weights"), (&preset, "dequantized")] {
        let output = Command::new(binary)
            .args([
                "gemma3",
                "eval",
                "--model",
                model_path.to_str().unwrap(),
                "--text",
                text.to_str().unwrap(),
                "--context",
                "16",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert!(
            json["fp32"]["source"].as_str().unwrap().contains(source),
            "{json}"
        );
        assert_eq!(json["context"], 16);
        assert_eq!(
            json["tokens"].as_u64().unwrap() as usize,
            (tokens.len() / 16) * 7
        );
        for key in ["mean", "median", "p99", "max"] {
            assert!(json["kl"][key].as_f64().unwrap() >= 0.0);
        }
        assert!(
            json["int8"]["ppl"].as_f64().unwrap() > 1.0
                && json["top1_agreement"].as_f64().unwrap() > 0.0
        );
    }
    std::fs::remove_dir_all(dir).ok();
}
