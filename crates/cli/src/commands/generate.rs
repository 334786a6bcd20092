//! `generate`: text streamed to stdout, or several prompts as one batch.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::{self as gemma3, Gemma3, Sampler, Tokenizer};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Error;
use crate::model_args::{ModelArgs, load};
use crate::output::{out, stdout_error};

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt (repeatable: several run as one batch). Taken as raw bytes so that one that
    /// is not UTF-8 gets an error naming it.
    #[arg(long, required = true, value_parser = clap::builder::OsStringValueParser::new())]
    pub prompt: Vec<OsString>,
    /// Tokens in all: BOS, prompt and new tokens (KerasHub's `max_length`).
    #[arg(long, default_value_t = 50)]
    pub max_length: usize,
    /// Sample at this temperature instead of greedy decoding (0: greedy).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Sample among the k most likely tokens (0: all of them).
    #[arg(long, allow_negative_numbers = true)]
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
    let prompts = prompts(&args.prompt)?;
    let (model, tokenizer) = load::<B>(&args.model, device)?;
    match prompts.as_slice() {
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

/// The `--prompt`s as text: each must be UTF-8 and not empty, and the error says which one
/// (`--prompt #2 of 3`) when there are several.
fn prompts(given: &[OsString]) -> Result<Vec<String>, Error> {
    let which = |index: usize| match given.len() {
        1 => "--prompt".to_string(),
        n => format!("--prompt #{} of {n}", index + 1),
    };
    given
        .iter()
        .enumerate()
        .map(|(index, prompt)| {
            let text = prompt.to_str().ok_or_else(|| {
                format!(
                    "{}: not valid UTF-8 ({:?}); prompts are text",
                    which(index),
                    prompt
                )
            })?;
            if text.is_empty() {
                return Err(format!("{} is empty", which(index)).into());
            }
            Ok(text.to_string())
        })
        .collect()
}

/// One prompt: the prompt as given, then each new piece as it is decoded. The progress bar
/// is drawn only when stdout is not a terminal: on a terminal its redraws (`\r`, erase line)
/// would wipe the text being streamed on the same screen.
fn one<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompt: &str,
    max_length: usize,
    sampler: &Sampler,
) -> Result<(), Error> {
    let ids = gemma3::generate::encode_prompt(model, tokenizer, prompt, max_length)?;
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{prompt}")
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)?;
    let bar = if std::io::stdout().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((max_length - ids.len()) as u64).with_style(ProgressStyle::with_template(
            "{bar:30} {pos}/{len} tokens {per_sec} [{elapsed}]",
        )?)
    };
    let start = Instant::now();
    // A write that fails (a full disk) is kept and reported; a closed pipe ends the process
    // at that write (SIGPIPE, see `interrupt`), so nothing decodes on for nobody.
    let mut failed = None;
    let output = gemma3::generate(model, tokenizer, prompt, max_length, sampler, |piece| {
        bar.inc(1);
        if failed.is_none()
            && let Err(e) = write!(stdout, "{piece}").and_then(|()| stdout.flush())
        {
            failed = Some(e);
        }
    })?;
    bar.finish_and_clear();
    if let Some(error) = failed {
        return Err(stdout_error(error));
    }
    writeln!(stdout).map_err(stdout_error)?;
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
    for (index, (prompt, output)) in prompts.iter().zip(&outputs).enumerate() {
        if json {
            out(serde_json::json!({"prompt": prompt, "text": output.text}))?;
        } else {
            out(format_args!(
                "--- {}/{} ---\n{}",
                index + 1,
                prompts.len(),
                output.text
            ))?;
        }
    }
    Ok(())
}
