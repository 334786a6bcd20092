//! `logits`: one forward pass over exact token ids, `logits` f32 [seq, vocab] written to a
//! safetensors file (atomically), or through a FIFO, a device or stdout (`-`) as a stream.
//! The pass runs in chunks of positions continuing one cache, each chunk's rows written as they
//! come, so memory holds one chunk of logits, not all of them.

use std::io::Write;
use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::{self as gemma3, Gemma3};
use clap::Args;

use crate::Error;
use crate::model_args::{ModelArgs, load};
use crate::output::{OutFile, note, safetensors_f32_header};

/// Positions per forward pass: one chunk's logits are `CHUNK × vocab` f32 (256 MiB for
/// Gemma3's 262,144 tokens); inputs up to this length run as one pass, as before.
const CHUNK: usize = 256;

#[derive(Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Comma-separated token ids, used exactly as given (no BOS is added).
    #[arg(long, value_delimiter = ',', required = true, allow_hyphen_values = true,
          value_parser = crate::limits::token_id)]
    pub tokens: Vec<u32>,
    /// A `.safetensors` file (replaced atomically if it exists), a FIFO or device written
    /// through, or `-` for stdout. A directory or a symbolic link to a file is refused.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run<B: Backend>(args: &LogitsArgs, device: &B::Device) -> Result<(), Error> {
    let out = OutFile::check("--out", &args.out)?;
    let (model, _) = load::<B>(&args.model, device)?;
    check_tokens(&model, &args.tokens)?;
    let vocab = model.config.vocab_size;
    let seq = args.tokens.len();
    let bytes = crate::limits::forward_bytes(&model.config, 1, seq.min(CHUNK), seq, CHUNK);
    crate::limits::check_memory(bytes, &format!("--tokens ({seq} ids)"))?;
    out.write("--out", |writer| write_logits(&model, &args.tokens, writer))?;
    note!("wrote {} (logits [{seq}, {vocab}])", out.name());
    Ok(())
}

/// The ids fit the vocabulary and the context (checked before any pass).
fn check_tokens<B: Backend>(model: &Gemma3<B>, tokens: &[u32]) -> Result<(), Error> {
    gemma3::generate::check_token_ids(model, tokens).map_err(|e| format!("--tokens: {e}"))?;
    let limit = model.config.max_position_embeddings;
    if tokens.len() > limit {
        return Err(format!(
            "--tokens: {} ids, but the model's context holds {limit} (the ids are used as given: no BOS is added)",
            tokens.len()
        )
        .into());
    }
    Ok(())
}

/// The safetensors header, then the logits of each chunk of positions as it is computed. A
/// chunk whose logits are not finite stops the write with an error naming the first layer
/// whose output was not (the caller's atomic write then keeps nothing).
fn write_logits<B: Backend>(
    model: &Gemma3<B>,
    tokens: &[u32],
    writer: &mut dyn Write,
) -> std::io::Result<()> {
    let vocab = model.config.vocab_size;
    writer.write_all(&safetensors_f32_header("logits", &[tokens.len(), vocab]))?;
    let device = model.device();
    let mut cache = model.new_cache();
    for chunk in tokens.chunks(CHUNK) {
        let logits = model.forward(
            gemma3::generate::token_tensor::<B>(chunk, &device),
            &mut cache,
        );
        let values = logits
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| std::io::Error::other(format!("reading the logits back: {e:?}")))?;
        if !values.iter().all(|v| v.is_finite()) {
            let end = cache.next_position();
            return Err(std::io::Error::other(
                model.non_finite_error(&tokens[..end]).to_string(),
            ));
        }
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for value in values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        writer.write_all(&bytes)?;
    }
    Ok(())
}
