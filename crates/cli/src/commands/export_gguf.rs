//! `export-gguf`: a GGUF file that llama.cpp loads. Unrotated `q8_0` layers are written as the
//! Q8_0 blocks they hold (byte for byte), everything else as F32 (norms, float layers, and
//! layers in another int8 format, dequantized); see `burn_int8_gemma3::export_gguf`.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn_int8::io::atomic::OutputKind;
use burn_int8_gemma3::export_gguf;
use clap::Args;

use crate::Error;
use crate::model_args::{ModelArgs, load};
use crate::output::{OutFile, note};

#[derive(Args)]
pub struct ExportGgufArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The `.gguf` file to write (atomically), a FIFO or device written through, or `-` for
    /// stdout.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing regular file at `--out`.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run<B: Backend>(args: &ExportGgufArgs, device: &B::Device) -> Result<(), Error> {
    // Checked before the load: an existing file is replaced only when asked.
    if OutputKind::of(&args.out) == OutputKind::RegularFile && !args.overwrite {
        return Err(format!(
            "--out {}: exists; pass --overwrite to replace it",
            args.out.display()
        )
        .into());
    }
    let out = OutFile::check("--out", &args.out)?;
    let (model, tokenizer) = load::<B>(&args.model, device)?;
    let mut report = None;
    out.write("--out", |writer| {
        let written =
            export_gguf::write_gguf(&model, &tokenizer, writer).map_err(std::io::Error::other)?;
        report = Some(written);
        Ok(())
    })?;
    if let Some(report) = report {
        note!(
            "wrote {} ({:.2} MiB: {} Q8_0 tensors as held, {} F32)",
            out.name(),
            report.bytes as f64 / (1024.0 * 1024.0),
            report.q8_0_tensors,
            report.f32_tensors
        );
        if !report.dequantized.is_empty() {
            note!(
                "{} int8 layer(s) not in unrotated q8_0 were dequantized to F32 (llama.cpp has no type for them): {}",
                report.dequantized.len(),
                burn_int8_gemma3::load::cut_names(report.dequantized).join(", ")
            );
        }
    }
    Ok(())
}
