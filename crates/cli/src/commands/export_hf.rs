//! `export-hf`: an HF directory (config.json, model.safetensors in f32, tokenizer).

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::export;
use clap::Args;

use crate::Error;
use crate::model_args::{ModelArgs, load};

#[derive(Args)]
pub struct ExportHfArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A new directory (an existing path, whatever it is, is never replaced).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run<B: Backend>(args: &ExportHfArgs, device: &B::Device) -> Result<(), Error> {
    // Checked before the load; the export's atomic write refuses it again.
    if std::fs::symlink_metadata(&args.out).is_ok() {
        return Err(format!(
            "--out {}: exists; export-hf writes a new directory and never replaces anything",
            args.out.display()
        )
        .into());
    }
    let (model, tokenizer) = load::<B>(&args.model, device)?;
    Ok(export::export_hf(&model, &tokenizer, &args.out)?)
}
