//! `save`: a preset directory (config.json, tokenizer, model.bpk), written atomically.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::preset;
use clap::Args;

use crate::Error;
use crate::model_args::{ModelArgs, load};
use crate::output::note;

#[derive(Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing preset (a directory holding only a preset's files; anything else
    /// is refused).
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run<B: Backend>(args: &SaveArgs, device: &B::Device) -> Result<(), Error> {
    // `--out` that exists is refused now, not after the load: without --overwrite, or when it
    // is not a directory (the preset check itself runs in the save).
    if let Ok(meta) = std::fs::symlink_metadata(&args.out) {
        if !args.overwrite {
            return Err(format!(
                "--out {}: exists; pass --overwrite to replace it",
                args.out.display()
            )
            .into());
        }
        if !meta.is_dir() {
            return Err(format!(
                "--out {}: exists and is not a directory (not a preset); it is never replaced",
                args.out.display()
            )
            .into());
        }
    }
    let (model, tokenizer) = load::<B>(&args.model, device)?;
    preset::save_to_preset(&model, &tokenizer, &args.out, args.overwrite)?;
    let bytes = std::fs::metadata(args.out.join(preset::WEIGHTS_FILE))?.len();
    note!(
        "saved {} ({:.2} MiB of weights)",
        args.out.display(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
