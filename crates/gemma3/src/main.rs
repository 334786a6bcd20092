//! `burn-int8`: the command line. Results go to stdout; logs and progress bars to stderr.
//!
//! ```text
//! burn-int8 gemma3 generate --model PATH --prompt TEXT [--max-length 50] [--backend flex] [--int8]
//! burn-int8 gemma3 logits   --model PATH --tokens 2,236855,9840 --out FILE.safetensors [--int8]
//! burn-int8 gemma3 save     --model PATH --out DIR [--int8] [--overwrite]
//! burn-int8 gemma3 export-hf --model PATH --out DIR
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::backend::BackendKind;
use burn_int8_gemma3::{self as gemma3, Gemma3, Sampler, Tokenizer};
use burn_int8_gemma3::with_backend;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(name = "burn-int8", version, about = "INT8 post-training quantization for Burn, and Gemma3 on it")]
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
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        prompt: String,
        /// Tokens in all: BOS, prompt and new tokens (KerasHub's `max_length`).
        #[arg(long, default_value_t = 50)]
        max_length: usize,
        /// Sample at this temperature instead of greedy decoding.
        #[arg(long)]
        temperature: Option<f32>,
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long)]
        top_p: Option<f32>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// One forward pass over exactly these token ids; writes `logits` f32 [seq, vocab].
    Logits {
        #[command(flatten)]
        model: ModelArgs,
        /// Comma-separated token ids (BOS is not added).
        #[arg(long, value_delimiter = ',', required = true)]
        tokens: Vec<u32>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Save a preset directory (config.json, tokenizer, model.bpk).
    Save {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing directory.
        #[arg(long)]
        overwrite: bool,
    },
    /// Prefill and decode speed and peak RSS, fp32 and int8, each in its own child process.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// CPU threads (rayon); default: all cores.
        #[arg(long)]
        threads: Option<usize>,
        /// End with one JSON object on stdout.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        new_tokens: usize,
        /// Prefill passes; the median is reported.
        #[arg(long, default_value_t = 3)]
        prefill_runs: usize,
        /// Internal: measure one precision (`fp32` or `int8`) in this process.
        #[arg(long, hide = true)]
        only: Option<String>,
    },
    /// Export an HF directory (config.json, model.safetensors in f32, tokenizer).
    ExportHf {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// A `.gguf` file, an HF directory, or a preset directory written by `save`.
    #[arg(long)]
    model: PathBuf,
    /// ndarray, flex, wgpu or cuda (those compiled in).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Quantize to int8 (while loading, for GGUF and HF checkpoints).
    #[arg(long)]
    int8: bool,
}

type Error = Box<dyn std::error::Error>;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let cli = Cli::parse();
    let print_peak_rss = cli.print_peak_rss;
    let result = run(cli);
    if print_peak_rss && let Some(bytes) = peak_rss_bytes() {
        eprintln!("peak_rss_bytes={bytes}");
    }
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

/// The process's peak resident set (`VmHWM`), where /proc has it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn run(cli: Cli) -> Result<(), Error> {
    let Command::Gemma3(command) = cli.command;
    let args = match &command {
        Gemma3Command::Generate { model, .. }
        | Gemma3Command::Logits { model, .. }
        | Gemma3Command::Save { model, .. }
        | Gemma3Command::ExportHf { model, .. }
        | Gemma3Command::Bench { model, .. } => model.clone(),
    };
    if let Gemma3Command::Bench { threads, json, only: None, prompt_tokens, new_tokens, .. } = &command {
        return bench_parent(&args, *threads, *json, [*prompt_tokens, *new_tokens]);
    }
    if let Gemma3Command::Bench { threads: Some(threads), .. } = &command {
        burn_int8_gemma3::backend::set_num_threads(*threads)?;
    }
    let kind: BackendKind = args.backend.parse()?;
    with_backend!(kind, |B, device| {
        burn_int8_gemma3::backend::probe_device::<B>(kind, &device)?;
        run_gemma3::<B>(&command, &args, &device)
    })
}

fn run_gemma3<B: Backend>(command: &Gemma3Command, args: &ModelArgs, device: &B::Device) -> Result<(), Error> {
    let (model, tokenizer) = load::<B>(args, device)?;
    match command {
        Gemma3Command::Generate { prompt, max_length, temperature, top_k, top_p, seed, .. } => {
            let sampler = match temperature {
                None if top_k.is_none() && top_p.is_none() => Sampler::Greedy,
                _ => Sampler::Random { temperature: temperature.unwrap_or(1.0), top_k: *top_k, top_p: *top_p, seed: *seed },
            };
            generate(&model, &tokenizer, prompt, *max_length, &sampler)
        }
        Gemma3Command::Logits { tokens, out, .. } => logits(&model, tokens, out),
        Gemma3Command::Save { out, overwrite, .. } => {
            gemma3::preset::save_to_preset(&model, &tokenizer, out, *overwrite)?;
            let bytes = std::fs::metadata(out.join(gemma3::preset::WEIGHTS_FILE))?.len();
            eprintln!("saved {} ({:.2} MiB of weights)", out.display(), bytes as f64 / (1024.0 * 1024.0));
            Ok(())
        }
        Gemma3Command::ExportHf { out, .. } => Ok(gemma3::export::export_hf(&model, &tokenizer, out)?),
        Gemma3Command::Bench { prompt_tokens, new_tokens, prefill_runs, .. } => {
            bench_child(&model, &tokenizer, *prompt_tokens, *new_tokens, (*prefill_runs).max(1))
        }
    }
}

/// Runs `bench --only fp32` and `--only int8` as child processes (peak RSS only grows, so each
/// precision needs its own process) and reports both with the int8/fp32 ratios.
fn bench_parent(args: &ModelArgs, threads: Option<usize>, json: bool, [prompt_tokens, new_tokens]: [usize; 2]) -> Result<(), Error> {
    let _: BackendKind = args.backend.parse()?;
    let binary = std::env::current_exe()?;
    let mut results = Vec::new();
    for precision in ["fp32", "int8"] {
        let mut command = std::process::Command::new(&binary);
        command.args(std::env::args_os().skip(1)).args(["--only", precision]);
        if precision == "int8" && !args.int8 {
            command.arg("--int8");
        }
        let output = command.stderr(std::process::Stdio::inherit()).output()?;
        if !output.status.success() {
            return Err(format!("bench child for {precision} failed ({})", output.status).into());
        }
        let stdout = String::from_utf8(output.stdout)?;
        let line = stdout.lines().last().ok_or("bench child printed nothing")?;
        results.push(serde_json::from_str::<serde_json::Value>(line)?);
    }
    let ratio = |key: &str| results[1][key].as_f64().unwrap_or(0.0) / results[0][key].as_f64().unwrap_or(1.0).max(1e-12);
    let threads = threads.map_or_else(|| "all".to_string(), |t| t.to_string());
    println!("backend {} ({threads} threads), {}", args.backend, args.model.display());
    println!("{:<6} {:>14} {:>14} {:>14}", "", "prefill tok/s", "decode tok/s", "peak RSS MiB");
    for (name, result) in ["fp32", "int8"].iter().zip(&results) {
        let mib = result["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0;
        println!("{name:<6} {:>14.1} {:>14.2} {mib:>14.0}", result["prefill_tok_s"].as_f64().unwrap_or(0.0), result["decode_tok_s"].as_f64().unwrap_or(0.0));
    }
    println!("{:<6} {:>13.2}x {:>13.2}x {:>13.2}x", "int8/fp32", ratio("prefill_tok_s"), ratio("decode_tok_s"), ratio("peak_rss_bytes"));
    if json {
        let summary = serde_json::json!({
            "backend": args.backend,
            "threads": threads,
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "cpu_kernels": cpu_kernels(),
            "fp32": results[0],
            "int8": results[1],
        });
        println!("{summary}");
    }
    Ok(())
}

/// One precision: prefill (one forward pass over the prompt, logits of the last position; the
/// median of `prefill_runs`) and greedy decode of `new_tokens`, timed after a warm-up; prints one JSON line.
fn bench_child<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompt_tokens: usize,
    new_tokens: usize,
    prefill_runs: usize,
) -> Result<(), Error> {
    const TEXT: &str = "Keras is a deep learning API written in Python that runs on top of JAX, TensorFlow, or PyTorch. \
        It was developed with a focus on enabling fast experimentation. ";
    let mut ids = tokenizer.encode(&TEXT.repeat(prompt_tokens / 8 + 1), true)?;
    ids.truncate(prompt_tokens.max(1));
    if ids.len() + new_tokens > model.config.max_position_embeddings {
        return Err("prompt_tokens + new_tokens exceed the model's context".into());
    }
    let device = model.device();
    let next_token = |logits: burn::tensor::Tensor<B, 2>| -> u32 { burn::tensor::ElementConversion::elem::<i64>(logits.argmax(1).into_scalar()) as u32 };

    // Warm-up: kernels compiled, caches filled.
    let mut cache = model.new_cache();
    let token = next_token(model.forward_last(gemma3::generate::token_tensor::<B>(&ids[..ids.len().min(8)], &device), &mut cache));
    let _ = next_token(model.forward_last(gemma3::generate::token_tensor::<B>(&[token], &device), &mut cache));

    // Prefill: the median of several passes (one pass is at the mercy of a noisy machine).
    let mut prefill_times = Vec::new();
    let (mut token, mut cache) = loop {
        let mut cache = model.new_cache();
        let start = Instant::now();
        let token = next_token(model.forward_last(gemma3::generate::token_tensor::<B>(&ids, &device), &mut cache));
        prefill_times.push(start.elapsed().as_secs_f64());
        if prefill_times.len() == prefill_runs {
            break (token, cache);
        }
    };
    prefill_times.sort_by(f64::total_cmp);
    let prefill = prefill_times[prefill_times.len() / 2];
    let bar = ProgressBar::new(new_tokens as u64).with_style(ProgressStyle::with_template("decode {bar:30} {pos}/{len} {per_sec}")?);
    let start = Instant::now();
    for _ in 0..new_tokens {
        token = next_token(model.forward_last(gemma3::generate::token_tensor::<B>(&[token], &device), &mut cache));
        bar.inc(1);
    }
    let decode = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let result = serde_json::json!({
        "prefill_tok_s": ids.len() as f64 / prefill,
        "decode_tok_s": new_tokens as f64 / decode,
        "peak_rss_bytes": peak_rss_bytes().unwrap_or(0),
    });
    println!("{result}");
    Ok(())
}

fn load<B: Backend>(args: &ModelArgs, device: &B::Device) -> Result<(Gemma3<B>, Tokenizer), Error> {
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} loading {msg} [{elapsed}]")?);
    let start = Instant::now();
    let loaded = gemma3::load_model::<B>(&args.model, args.int8, device, |tensor| {
        bar.set_message(tensor.to_string());
        bar.tick();
    })?;
    bar.finish_and_clear();
    tracing::info!(seconds = start.elapsed().as_secs_f64(), int8 = loaded.0.is_quantized(), "loaded {}", args.model.display());
    Ok(loaded)
}

fn generate<B: Backend>(model: &Gemma3<B>, tokenizer: &Tokenizer, prompt: &str, max_length: usize, sampler: &Sampler) -> Result<(), Error> {
    let ids = gemma3::generate::encode_prompt(model, tokenizer, prompt, max_length)?;
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{}", tokenizer.decode(&ids)?)?;
    stdout.flush()?;
    let bar = ProgressBar::new((max_length - ids.len()) as u64)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} tokens {per_sec} [{elapsed}]")?);
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

fn logits<B: Backend>(model: &Gemma3<B>, tokens: &[u32], out: &Path) -> Result<(), Error> {
    if tokens.is_empty() {
        return Err(gemma3::Gemma3Error::EmptyPrompt.into());
    }
    let device = model.device();
    for &id in tokens {
        if id as usize >= model.config.vocab_size {
            return Err(gemma3::Gemma3Error::TokenOutOfRange { id, vocab_size: model.config.vocab_size }.into());
        }
    }
    if tokens.len() > model.config.max_position_embeddings {
        return Err(gemma3::Gemma3Error::PromptTooLong { tokens: tokens.len(), limit: model.config.max_position_embeddings, why: "the model's context" }.into());
    }
    let mut cache = model.new_cache();
    let logits = model.forward(gemma3::generate::token_tensor::<B>(tokens, &device), &mut cache);
    let [_, seq, vocab] = logits.dims();
    let values = logits.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![seq, vocab], &bytes)?;
    let tmp = out.with_extension("safetensors.tmp");
    safetensors::serialize_to_file([("logits", view)], None, &tmp)?;
    std::fs::rename(&tmp, out)?;
    eprintln!("wrote {} (logits [{seq}, {vocab}])", out.display());
    Ok(())
}

/// The int8 CPU kernel level this machine runs (AVX-512 VNNI, AVX-VNNI, AVX2 or portable).
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn cpu_kernels() -> String {
    format!("{:?}", burn_int8::cpu::Isa::detect())
}

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
fn cpu_kernels() -> String {
    "none".into()
}
