//! The CLI on presets: a corrupt preset is refused unless `--no-verify`, a preset that
//! disagrees with itself is named in the CLI's words, and `logits --out` writes atomically.
//! Uses the tiny synthetic Gemma3, so it always runs. (The library's side of each is in
//! burn-int8-gemma3's tests/preset_saves.rs.)

use crate::gemma3_common::tiny::tiny;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn_int8::QuantizeExt;
use burn_int8_gemma3::preset::{CONFIG_FILE, WEIGHTS_FILE, save_to_preset};

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "burn-int8-cli-presets-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// A JSON file of a preset, parsed.
fn json_of(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A flipped byte in model.bpk: the CLI refuses the preset in its own words (`--no-verify`,
/// not the library's `PresetOptions`), and `--no-verify` loads it.
#[test]
fn a_flipped_byte_in_the_weights_is_refused_unless_no_verify() {
    let root = scratch("flipped");
    let dir = root.join("preset");
    let (model, tokenizer) = tiny(1);
    save_to_preset(&model, &tokenizer, &dir, false).unwrap();
    let weights = dir.join(WEIGHTS_FILE);
    let mut bytes = std::fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&weights, &bytes).unwrap();

    // The CLI: refused by default, `--no-verify` skips the check.
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let generate = |no_verify: bool| {
        let mut command = Command::new(binary);
        command.args([
            "gemma3",
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            "ab",
            "--max-length",
            "6",
        ]);
        if no_verify {
            command.arg("--no-verify");
        }
        command.output().unwrap()
    };
    let output = generate(false);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The CLI speaks CLI: its option, not the library's `PresetOptions`.
    assert!(
        stderr.contains("corrupt")
            && stderr.contains("--no-verify")
            && !stderr.contains("PresetOptions"),
        "{stderr}"
    );
    let output = generate(true);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("corrupt"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&root).ok();
}

/// A preset whose config.json says float32 over an int8 model.bpk: the CLI names
/// `burn_int8.precision` and does not advise a library call.
#[test]
fn a_preset_whose_precision_disagrees_with_its_record_names_the_field() {
    let root = scratch("precision");
    let dir = root.join("preset");
    let (mut model, tokenizer) = tiny(1);
    model.quantize_int8().unwrap();
    save_to_preset(&model, &tokenizer, &dir, false).unwrap();
    let config_path = dir.join(CONFIG_FILE);
    let mut config = json_of(&config_path);
    config["burn_int8"]["precision"] = "float32".into();
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_burn-int8"))
        .args([
            "gemma3",
            "generate",
            "--no-verify",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            "ab",
            "--max-length",
            "6",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("burn_int8.precision")
            && !stderr.contains("quantize_int8"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&root).ok();
}

/// `logits --out`: a directory, or a path whose directory is missing, is an error naming the
/// path, and no `.safetensors.tmp` is left.
#[test]
fn logits_out_errors_name_the_path_and_leave_no_temporary_file() {
    let root = scratch("logits");
    let dir = root.join("preset");
    let (model, tokenizer) = tiny(1);
    save_to_preset(&model, &tokenizer, &dir, false).unwrap();
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let logits = |out: &Path| {
        Command::new(binary)
            .args([
                "gemma3",
                "logits",
                "--model",
                dir.to_str().unwrap(),
                "--tokens",
                "2,260",
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let into_dir = root.join("a-directory");
    std::fs::create_dir_all(&into_dir).unwrap();
    let missing = root.join("missing").join("logits.safetensors");
    for out in [&into_dir, &missing] {
        let output = logits(out.as_path());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}", out.display());
        assert!(stderr.contains(&out.display().to_string()), "{stderr}");
    }
    let temporary: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        // The old temporary name (`.safetensors.tmp`) and the atomic writer's (`.NAME.tmp-PID`).
        .filter(|name| name.ends_with(".tmp") || name.contains(".tmp-"))
        .collect();
    assert!(temporary.is_empty(), "{temporary:?}");
    // And a good path still works.
    let good = root.join("logits.safetensors");
    let output = logits(good.as_path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(good.is_file() && !root.join("logits.safetensors.tmp").exists());
    std::fs::remove_dir_all(&root).ok();
}
