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
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run<B: Backend>(args: &ExportHfArgs, device: &B::Device) -> Result<(), Error> {
    let (model, tokenizer) = load::<B>(&args.model, device)?;
    Ok(export::export_hf(&model, &tokenizer, &args.out)?)
}
