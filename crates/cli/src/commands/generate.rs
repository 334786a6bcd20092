//! `generate`: text streamed to stdout, or several prompts as one batch.

use std::io::Write;
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::{self as gemma3, Gemma3, Sampler, Tokenizer};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Error;
use crate::model_args::{ModelArgs, load};

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, required = true)]
    pub prompt: Vec<String>,
    /// Tokens in all: BOS, prompt and new tokens (KerasHub's `max_length`).
    #[arg(long, default_value_t = 50)]
    pub max_length: usize,
    /// Sample at this temperature instead of greedy decoding (0: greedy).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Sample among the k most likely tokens (0: all of them).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens whose probabilities reach p, in (0, 1].
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f32>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One JSON line per prompt, `{"prompt": ..., "text": ...}`, instead of plain text.
    #[arg(long)]
    pub json: bool,
}

pub fn run<B: Backend>(args: &GenerateArgs, device: &B::Device) -> Result<(), Error> {
    // Checked before the (slow) load.
    let sampler = Sampler::from_options(args.temperature, args.top_k, args.top_p, args.seed)
        .map_err(|e| format!("{e} (--temperature, --top-k, --top-p)"))?;
    let (model, tokenizer) = load::<B>(&args.model, device)?;
    match args.prompt.as_slice() {
        [single] if !args.json => one(&model, &tokenizer, single, args.max_length, &sampler),
        prompts => batch(
            &model,
            &tokenizer,
            prompts,
            args.max_length,
            &sampler,
            args.json,
        ),
    }
}

/// One prompt: the prompt, then each new piece as it is decoded.
fn one<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompt: &str,
    max_length: usize,
    sampler: &Sampler,
) -> Result<(), Error> {
    let ids = gemma3::generate::encode_prompt(model, tokenizer, prompt, max_length)?;
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{}", tokenizer.decode(&ids)?)?;
    stdout.flush()?;
    let bar = ProgressBar::new((max_length - ids.len()) as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tokens {per_sec} [{elapsed}]")?,
    );
    let start = Instant::now();
    let output = gemma3::generate(model, tokenizer, prompt, max_length, sampler, |piece| {
        bar.inc(1);
        let _ = write!(stdout, "{piece}");
        let _ = stdout.flush();
    })?;
    bar.finish_and_clear();
    writeln!(stdout)?;
    let new_tokens = output.token_ids.len() - output.prompt_tokens;
    tracing::info!(new_tokens, tokens_per_s = new_tokens as f64 / start.elapsed().as_secs_f64(), stop = ?output.stop, "generated");
    Ok(())
}

/// Several prompts as one batch; each result printed once all are done, between `--- i/n ---`
/// lines, or with `json` as one `{"prompt": ..., "text": ...}` line per prompt.
fn batch<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompts: &[String],
    max_length: usize,
    sampler: &Sampler,
    json: bool,
) -> Result<(), Error> {
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{bar:30} {pos} tokens {per_sec} [{elapsed}]",
    )?);
    let outputs =
        gemma3::generate_batch(model, tokenizer, &prompts, max_length, sampler, |_, _| {
            bar.inc(1)
        })?;
    bar.finish_and_clear();
    let mut stdout = std::io::stdout().lock();
    for (index, (prompt, output)) in prompts.iter().zip(&outputs).enumerate() {
        if json {
            writeln!(
                stdout,
                "{}",
                serde_json::json!({"prompt": prompt, "text": output.text})
            )?;
        } else {
            writeln!(
                stdout,
                "--- {}/{} ---\n{}",
                index + 1,
                prompts.len(),
                output.text
            )?;
        }
    }
    Ok(())
}
