//! `logits`: one forward pass over exact token ids, `logits` f32 [seq, vocab] written to a
//! safetensors file atomically.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_int8::io::atomic;
use burn_int8_gemma3::{self as gemma3, Gemma3};
use clap::Args;

use crate::Error;
use crate::model_args::{ModelArgs, load};

#[derive(Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Comma-separated token ids (BOS is not added).
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run<B: Backend>(args: &LogitsArgs, device: &B::Device) -> Result<(), Error> {
    check_out_file(&args.out)?;
    let (model, _) = load::<B>(&args.model, device)?;
    let (seq, vocab) = write_logits(&model, &args.tokens, &args.out)?;
    eprintln!("wrote {} (logits [{seq}, {vocab}])", args.out.display());
    Ok(())
}

/// Runs the forward pass and writes its logits to `out`; returns their shape.
fn write_logits<B: Backend>(
    model: &Gemma3<B>,
    tokens: &[u32],
    out: &Path,
) -> Result<(usize, usize), Error> {
    if tokens.is_empty() {
        return Err(gemma3::Gemma3Error::EmptyPrompt.into());
    }
    for &id in tokens {
        if id as usize >= model.config.vocab_size {
            return Err(gemma3::Gemma3Error::TokenOutOfRange {
                id,
                vocab_size: model.config.vocab_size,
            }
            .into());
        }
    }
    if tokens.len() > model.config.max_position_embeddings {
        return Err(gemma3::Gemma3Error::PromptTooLong {
            tokens: tokens.len(),
            limit: model.config.max_position_embeddings,
            why: "the model's context",
        }
        .into());
    }
    let device = model.device();
    let mut cache = model.new_cache();
    let logits = model.forward(
        gemma3::generate::token_tensor::<B>(tokens, &device),
        &mut cache,
    );
    let [_, seq, vocab] = logits.dims();
    let values = logits
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![seq, vocab], &bytes)?;
    atomic::write_file::<Error>(out, |tmp| {
        safetensors::serialize_to_file([("logits", view)], None, tmp)
            .map_err(|e| format!("writing {}: {e}", tmp.display()).into())
    })
    .map_err(|e| format!("--out {}: {e}", out.display()))?;
    Ok((seq, vocab))
}

/// `--out FILE`: not a directory, and in a directory that exists; checked before the load.
fn check_out_file(out: &Path) -> Result<(), Error> {
    if out.is_dir() {
        return Err(format!(
            "--out {}: is a directory, expected a file path",
            out.display()
        )
        .into());
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(format!(
            "--out {}: its directory {} does not exist",
            out.display(),
            parent.display()
        )
        .into());
    }
    Ok(())
}
