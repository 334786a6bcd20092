//! The options every command shares (`--model`, `--backend`, `--int8`, `--no-verify`) and the
//! load they drive, drawn as a spinner on stderr.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::{self as gemma3, Gemma3, Tokenizer};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Error;
use crate::backend::BackendKind;

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A `.gguf` file, an HF directory, or a preset directory written by `save`.
    #[arg(long)]
    pub model: PathBuf,
    /// ndarray, flex, wgpu or cuda (those compiled in).
    #[arg(long, default_value = "flex", value_parser = BackendKind::parse_compiled)]
    pub backend: BackendKind,
    /// Quantize to int8 (while loading, for GGUF and HF checkpoints). `eval` measures both
    /// precisions and ignores it.
    #[arg(long)]
    pub int8: bool,
    /// Load a preset without verifying `model.bpk` against the checksum in its config.json.
    #[arg(long)]
    pub no_verify: bool,
}

/// Loads `--model` on `device`, a spinner naming each tensor as it is read.
pub fn load<B: Backend>(
    args: &ModelArgs,
    device: &B::Device,
) -> Result<(Gemma3<B>, Tokenizer), Error> {
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{spinner} loading {msg} [{elapsed}]",
    )?);
    let start = Instant::now();
    let options = gemma3::PresetOptions {
        verify_checksum: !args.no_verify,
    };
    let loaded = gemma3::load_model_with::<B>(&args.model, args.int8, options, device, |tensor| {
        bar.set_message(tensor.to_string());
        bar.tick();
    })
    .map_err(|error| -> Error {
        use gemma3::Gemma3Error as E;
        match error {
            // These name a tensor, not the file (the library's caller knows which it passed).
            E::MissingTensor(_)
            | E::UnexpectedTensors(_)
            | E::ShapeMismatch { .. }
            | E::NonFinite { .. } => format!("{}: {error}", args.model.display()).into(),
            other => other.into(),
        }
    })?;
    bar.finish_and_clear();
    tracing::info!(
        seconds = start.elapsed().as_secs_f64(),
        int8 = loaded.0.is_quantized(),
        "loaded {}",
        args.model.display()
    );
    Ok(loaded)
}
