//! `gemma3 export-gguf` on a tiny synthetic checkpoint (so it always runs): a file that loads
//! back as the same model, no replacement of an existing file without `--overwrite`, and a
//! config llama.cpp cannot express refused with nothing written. The Q8_0 round trip on the
//! real checkpoint is burn-int8-gemma3's tests/gguf_q8_0.rs.

use crate::gemma3_common::tiny::{tiny_config, write_hf_dir};

use std::process::Command;

use burn::backend::Flex;
use burn_int8_gemma3 as gemma3;

#[test]
fn export_gguf_writes_a_file_that_loads_back() {
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let mut config = tiny_config();
    // llama.cpp derives Gemma3's pattern (6); the tiny model's own (2) is refused below.
    config.sliding_window_pattern = 6;
    let dir = write_hf_dir("cli-export-gguf", &config, |_| {});
    let out = dir.join("model.gguf");
    let run = |model: &std::path::Path, extra: &[&str]| {
        Command::new(binary)
            .args(["gemma3", "export-gguf", "--model"])
            .arg(model)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = run(&dir, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("0 Q8_0 tensors as held, 28 F32"),
        "{stderr}"
    );
    let device = Default::default();
    let (original, _) = gemma3::load_model::<Flex>(&dir, false, &device, |_| {}).unwrap();
    let (exported, tokenizer) = gemma3::load_model::<Flex>(&out, false, &device, |_| {}).unwrap();
    // GGUF stores the epsilon as f32.
    assert_eq!(
        exported.config.rms_norm_eps,
        original.config.rms_norm_eps as f32 as f64
    );
    let exported_config = gemma3::Gemma3Config {
        rms_norm_eps: original.config.rms_norm_eps,
        ..exported.config.clone()
    };
    assert_eq!(exported_config, original.config);
    assert_eq!(tokenizer.vocab_size(), config.vocab_size);

    // Not replaced without --overwrite; replaced with it.
    let output = run(&dir, &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("exists; pass --overwrite"));
    let output = run(&dir, &["--overwrite", "--int8"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("dequantized to F32"), "{stderr}");

    // The tiny model's sliding-window pattern has no GGUF key: refused, nothing written.
    std::fs::remove_file(&out).unwrap();
    let tiny = write_hf_dir("cli-export-gguf-pattern", &tiny_config(), |_| {});
    let output = run(&tiny, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("sliding_window_pattern = 2"), "{stderr}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&tiny).ok();
}
