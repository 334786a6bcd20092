//! `save`: a preset directory (config.json, tokenizer, model.bpk), written atomically.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::preset;
use clap::Args;

use crate::Error;
use crate::model_args::{ModelArgs, load};

#[derive(Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing directory.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run<B: Backend>(args: &SaveArgs, device: &B::Device) -> Result<(), Error> {
    let (model, tokenizer) = load::<B>(&args.model, device)?;
    preset::save_to_preset(&model, &tokenizer, &args.out, args.overwrite)?;
    let bytes = std::fs::metadata(args.out.join(preset::WEIGHTS_FILE))?.len();
    eprintln!(
        "saved {} ({:.2} MiB of weights)",
        args.out.display(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
