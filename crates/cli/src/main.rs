//! `burn-int8`: the command line. Results go to stdout; logs and progress bars to stderr.
//!
//! ```text
//! burn-int8 gemma3 generate --model PATH --prompt TEXT [--prompt TEXT ...] [--max-length 50] [--backend flex] [--int8] [--json]
//! burn-int8 gemma3 eval     --model PATH --text FILE [--context 512] [--chunks N] [--keep-float LAYER] [--json]
//! burn-int8 gemma3 bench    --model PATH [--batch 1,4,16] [--threads N] [--json]
//! burn-int8 gemma3 logits   --model PATH --tokens 2,236855,9840 --out FILE.safetensors [--int8]
//! burn-int8 gemma3 save     --model PATH --out DIR [--int8] [--overwrite]
//! burn-int8 gemma3 export-hf --model PATH --out DIR
//! burn-int8 gemma3 export-gguf --model PATH --out FILE.gguf [--scheme q8_0] [--overwrite]
//! ```
//!
//! This file parses the command line and dispatches; each command is a module of `commands/`.
//! `output` is where results go (stdout, stderr, `--out` paths), `limits` what a user controls
//! (option values, memory, `--text`), `interrupt` the signals.

mod backend;
mod commands;
mod interrupt;
mod limits;
mod model_args;
mod output;
mod peak_rss;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::Gemma3Error;
use clap::{Parser, Subcommand};

use backend::with_backend;
use commands::{bench, eval, export_gguf, export_hf, generate, logits, save};
use model_args::ModelArgs;

pub type Error = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(
    name = "burn-int8",
    version,
    about = "INT8 post-training quantization for Burn, and Gemma3 on it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print `peak_rss_bytes=N` (this process's high-water mark) on stderr at exit.
    #[arg(long, global = true)]
    print_peak_rss: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Gemma3 text models.
    #[command(subcommand)]
    Gemma3(Gemma3Command),
}

#[derive(Subcommand)]
enum Gemma3Command {
    /// Generate text, streaming it to stdout (the prompt included, as KerasHub returns it).
    /// Several `--prompt`s run as one batch; each result is printed when all are done.
    Generate(generate::GenerateArgs),
    /// Perplexity of the float model and of its int8 quantization on a text, and the KL
    /// divergence between them, scored like llama.cpp's `llama-perplexity`.
    Eval(eval::EvalArgs),
    /// One forward pass over exactly these token ids; writes `logits` f32 [seq, vocab].
    Logits(logits::LogitsArgs),
    /// Save a preset directory (config.json, tokenizer, model.bpk).
    Save(save::SaveArgs),
    /// Prefill and decode speed and peak RSS, fp32 and int8, each in its own child process.
    Bench(bench::BenchArgs),
    /// Export an HF directory (config.json, model.safetensors in f32, tokenizer).
    ExportHf(export_hf::ExportHfArgs),
    /// Export a GGUF file that llama.cpp loads: unrotated q8_0 layers as the Q8_0 blocks they
    /// hold, byte for byte; norms, float layers and other int8 formats as F32.
    ExportGguf(export_gguf::ExportGgufArgs),
}

impl Gemma3Command {
    fn model(&self) -> &ModelArgs {
        match self {
            Gemma3Command::Generate(args) => &args.model,
            Gemma3Command::Eval(args) => &args.model,
            Gemma3Command::Logits(args) => &args.model,
            Gemma3Command::Save(args) => &args.model,
            Gemma3Command::Bench(args) => &args.model,
            Gemma3Command::ExportHf(args) => &args.model,
            Gemma3Command::ExportGguf(args) => &args.model,
        }
    }

    /// `--threads`, for the commands that take it.
    fn threads(&self) -> Option<usize> {
        match self {
            Gemma3Command::Eval(args) => args.threads,
            Gemma3Command::Bench(args) => args.threads,
            _ => None,
        }
    }

    /// Runs the command on backend `B`.
    fn run<B: Backend>(&self, device: &B::Device) -> Result<(), Error> {
        match self {
            Gemma3Command::Generate(args) => generate::run::<B>(args, device),
            Gemma3Command::Eval(args) => eval::run::<B>(args, device),
            Gemma3Command::Logits(args) => logits::run::<B>(args, device),
            Gemma3Command::Save(args) => save::run::<B>(args, device),
            Gemma3Command::Bench(args) => bench::run_child::<B>(args, device),
            Gemma3Command::ExportHf(args) => export_hf::run::<B>(args, device),
            Gemma3Command::ExportGguf(args) => export_gguf::run::<B>(args, device),
        }
    }
}

fn main() {
    interrupt::install();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let print_peak_rss = cli.print_peak_rss;
    let result = run(cli);
    if print_peak_rss && let Some(bytes) = peak_rss::peak_rss_bytes() {
        output::note!("peak_rss_bytes={bytes}");
    }
    if let Err(error) = result {
        output::note!("error: {}", cli_message(error.as_ref()));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let Command::Gemma3(command) = cli.command;
    // `bench` without `--only` runs no model itself: it runs one child process per precision.
    if let Gemma3Command::Bench(args) = &command
        && args.only.is_none()
    {
        return bench::run_parent(args);
    }
    if let Some(threads) = command.threads() {
        backend::set_num_threads(threads)?;
    }
    let kind = command.model().backend;
    with_backend!(kind, |B, device| {
        backend::probe_device::<B>(kind, &device)?;
        command.run::<B>(&device)
    })
}

/// The library's message, with its API remedies reworded as the command line's options.
fn cli_message(error: &(dyn std::error::Error + 'static)) -> String {
    match error.downcast_ref::<Gemma3Error>() {
        Some(Gemma3Error::Checksum {
            path,
            expected,
            found,
        }) => format!(
            "{} is corrupt or was changed after the save: its xxh3-64 checksum is {found} but the preset records \
             {expected}; save the preset again, or pass --no-verify to load it as it is",
            path.display()
        ),
        _ => error.to_string(),
    }
}
