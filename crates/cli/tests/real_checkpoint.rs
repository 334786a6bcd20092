//! The CLI on the real Gemma3 270M checkpoint (skipped with a loud notice when it is absent,
//! a failure under `CI`): an interrupted `save` keeps the previous preset, and `--int8` cuts
//! the peak RSS of generation.

use crate::gemma3_common::{gemma3_checkpoint as checkpoint, gemma3_logits_all as logits_all};

use std::process::Command;

use burn_int8::io::atomic::SAVE_ABORT_AT_ENV;
use burn_int8_gemma3 as gemma3;
use burn_int8_gemma3::preset::{from_preset, save_to_preset};

/// A `save` over an existing preset, aborted by the test hook once the new preset is written
/// and before it replaces the old one: the previous preset is intact (identical logits).
#[test]
fn a_save_killed_before_its_swap_leaves_the_previous_preset() {
    let Some(path) = checkpoint() else { return };
    type B = burn::backend::Flex;
    let (fp32, tokenizer) =
        gemma3::load_model::<B>(&path, false, &Default::default(), |_| {}).unwrap();
    let p0 = tokenizer
        .encode("Keras is a deep learning API", true)
        .unwrap();
    let root = std::env::temp_dir().join(format!("burn-int8-cli-presets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let fp32_dir = root.join("gemma3_270m_fp32");
    save_to_preset(&fp32, &tokenizer, &fp32_dir, false).unwrap();
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let status = Command::new(binary)
        .args(["gemma3", "save", "--model"])
        .arg(&path)
        .args(["--overwrite", "--out"])
        .arg(&fp32_dir)
        .env(SAVE_ABORT_AT_ENV, "filled")
        .status()
        .unwrap();
    assert!(!status.success(), "the save was not interrupted: {status}");
    let (survivor, _) = from_preset::<B>(&fp32_dir, &Default::default()).unwrap();
    assert_eq!(logits_all(&survivor, &p0), logits_all(&fp32, &p0));
    eprintln!("a save killed before its swap left the previous preset loadable and identical");
    std::fs::remove_dir_all(&root).ok();
}

/// Peak RSS of `generate --int8` straight from the GGUF is at most 45% of fp32's, each
/// measured in its own process.
#[test]
fn int8_generation_peak_rss_is_under_45_percent_of_fp32() {
    let Some(path) = checkpoint() else { return };
    let binary = env!("CARGO_BIN_EXE_burn-int8");
    let peak = |int8: bool| -> u64 {
        let mut command = Command::new(binary);
        command
            .args([
                "gemma3",
                "generate",
                "--print-peak-rss",
                "--max-length",
                "12",
                "--prompt",
                "Keras is a",
                "--model",
            ])
            .arg(&path);
        if int8 {
            command.arg("--int8");
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak_rss_bytes="))
            .and_then(|v| v.trim().parse().ok())
            .expect("peak_rss_bytes")
    };
    let (fp32, int8) = (peak(false), peak(true));
    let ratio = int8 as f64 / fp32 as f64;
    eprintln!(
        "peak RSS: fp32 {:.0} MiB, int8 {:.0} MiB, ratio {ratio:.3}",
        fp32 as f64 / 1048576.0,
        int8 as f64 / 1048576.0
    );
    assert!(ratio <= 0.45);
}
