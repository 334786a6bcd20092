//! Bad input to the Gemma3 loaders and generation: typed errors that name what is wrong, never
//! a panic. Uses a tiny synthetic checkpoint, so it always runs. The CLI's side of these cases
//! is crates/cli/tests/gemma3_bad_input.rs.

use crate::gemma3_common::tiny::{tiny_config, write_hf_dir};

use std::path::Path;

use burn::backend::Flex;
use burn_int8_gemma3::tokenizer::Tokenizer;
use burn_int8_gemma3::{self as gemma3, Gemma3Config, Gemma3Error, Sampler};

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
    type IsVariant = fn(&Gemma3Error) -> bool;
    let cases: Vec<(&str, Edit, &str, IsVariant)> = vec![
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
        // The CLI names the checkpoint too: tests/gemma3_bad_input.rs of crates/cli.
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

    // The CLI says which option is wrong: tests/gemma3_bad_input.rs of crates/cli.
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

    // The CLI prints them as JSON lines: tests/gemma3_bad_input.rs of crates/cli.
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

    // The CLI on an int8 preset: tests/gemma3_bad_input.rs of crates/cli.
    std::fs::remove_dir_all(dir).ok();
}
