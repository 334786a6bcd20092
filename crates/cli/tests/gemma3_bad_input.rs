//! Bad input to the CLI, and what it prints for good input, on a tiny synthetic checkpoint
//! (so it always runs): errors that name the checkpoint, the option or the backend at fault,
//! never a panic. The library's side of each case is in burn-int8-gemma3's
//! tests/gemma3_bad_input.rs.

use crate::gemma3_common::tiny::{tiny_config, write_hf_dir};

use std::process::Command;

use burn::backend::Flex;
use burn_int8_gemma3 as gemma3;

type Edit = Box<dyn FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)>;

/// A missing, an extra, a misshaped and a NaN tensor: the CLI's error names the tensor and
/// the checkpoint (the library's names only the tensor).
#[test]
fn bad_tensors_name_the_checkpoint() {
    let config = tiny_config();
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "missing",
            Box::new(|t| t.retain(|(n, _, _)| n != "model.layers.1.mlp.up_proj.weight")),
            "model.layers.1.mlp.up_proj.weight",
        ),
        (
            "extra",
            Box::new(|t| t.push(("lm_head.weight".into(), vec![2], vec![0.0, 0.0]))),
            "lm_head.weight",
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
        ),
    ];
    for (name, edit, tensor) in cases {
        let dir = write_hf_dir(&format!("cli-{name}"), &config, edit);
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

/// Sampling options out of range: the CLI names the option before loading anything.
#[test]
fn bad_sampling_options_are_named_as_options() {
    let dir = write_hf_dir("cli-sampling", &tiny_config(), |_| {});
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

/// Several prompts: one JSON line per prompt whose text is what the single-prompt command
/// prints, or plain text between `--- i/n ---` lines.
#[test]
fn batched_prompts_print_as_the_single_prompt_command_does() {
    let dir = write_hf_dir("cli-batch", &tiny_config(), |_| {});
    let prompts = ["ab a", "a", "ababab ab a b abba", "b b"];
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

/// `eval --json` on a float checkpoint and on an int8 preset of it: the fp32 side of the preset
/// is its dequantization and says so; the scored-token count is llama-perplexity's.
#[test]
fn eval_on_an_int8_preset_says_its_fp32_side_is_dequantized() {
    let dir = write_hf_dir("cli-eval", &tiny_config(), |_| {});
    let load = || gemma3::load_model::<Flex>(&dir, false, &Default::default(), |_| {});
    let (_, tokenizer) = load().unwrap();
    let tokens = tokenizer
        .encode(&"ab a abba b ba ".repeat(20), true)
        .unwrap();
    let preset = dir.join("preset");
    let (mut int8, _) = load().unwrap();
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
