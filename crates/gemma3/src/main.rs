//! `burn-int8`: the command line. Results go to stdout; logs and progress bars to stderr.
//!
//! ```text
//! burn-int8 gemma3 generate --model PATH --prompt TEXT [--prompt TEXT ...] [--max-length 50] [--backend flex] [--int8] [--json]
//! burn-int8 gemma3 eval     --model PATH --text FILE [--context 512] [--chunks N] [--keep-float LAYER] [--json]
//! burn-int8 gemma3 logits   --model PATH --tokens 2,236855,9840 --out FILE.safetensors [--int8]
//! burn-int8 gemma3 save     --model PATH --out DIR [--int8] [--overwrite]
//! burn-int8 gemma3 export-hf --model PATH --out DIR
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::backend::BackendKind;
use burn_int8_gemma3::with_backend;
use burn_int8_gemma3::{self as gemma3, Gemma3, Sampler, Tokenizer};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

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
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, required = true)]
        prompt: Vec<String>,
        /// Tokens in all: BOS, prompt and new tokens (KerasHub's `max_length`).
        #[arg(long, default_value_t = 50)]
        max_length: usize,
        /// Sample at this temperature instead of greedy decoding (0: greedy).
        #[arg(long, allow_negative_numbers = true)]
        temperature: Option<f32>,
        /// Sample among the k most likely tokens (0: all of them).
        #[arg(long)]
        top_k: Option<usize>,
        /// Sample among the most likely tokens whose probabilities reach p, in (0, 1].
        #[arg(long, allow_negative_numbers = true)]
        top_p: Option<f32>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// One JSON line per prompt, `{"prompt": ..., "text": ...}`, instead of plain text.
        #[arg(long)]
        json: bool,
    },
    /// Perplexity of the float model and of its int8 quantization on a text, and the KL
    /// divergence between them, scored like llama.cpp's `llama-perplexity`.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// A UTF-8 text file (e.g. /usr/share/common-licenses/GPL-3).
        #[arg(long)]
        text: PathBuf,
        /// Tokens per window; the second half of each window is scored.
        #[arg(long, default_value_t = 512)]
        context: usize,
        /// Score at most this many windows (default: every whole window of the text).
        #[arg(long)]
        chunks: Option<usize>,
        /// Keep this layer (and everything under it) float on the int8 side, e.g.
        /// `layers.5.mlp.down_proj`; repeatable. The quantize report names the worst layers.
        #[arg(long)]
        keep_float: Vec<String>,
        /// CPU threads (rayon); default: all cores.
        #[arg(long)]
        threads: Option<usize>,
        /// End with one JSON object on stdout.
        #[arg(long)]
        json: bool,
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
        /// Batch sizes to measure (comma-separated), each row a copy of the prompt.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        batch: Vec<usize>,
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
    /// Quantize to int8 (while loading, for GGUF and HF checkpoints). `eval` measures both
    /// precisions and ignores it.
    #[arg(long)]
    int8: bool,
    /// Load a preset without verifying `model.bpk` against the checksum in its config.json.
    #[arg(long)]
    no_verify: bool,
}

type Error = Box<dyn std::error::Error>;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let print_peak_rss = cli.print_peak_rss;
    let result = run(cli);
    if print_peak_rss && let Some(bytes) = peak_rss_bytes() {
        eprintln!("peak_rss_bytes={bytes}");
    }
    if let Err(error) = result {
        eprintln!("error: {}", cli_message(error.as_ref()));
        std::process::exit(1);
    }
}

/// The library's message, with its API remedies reworded as the command line's options.
fn cli_message(error: &(dyn std::error::Error + 'static)) -> String {
    match error.downcast_ref::<gemma3::Gemma3Error>() {
        Some(gemma3::Gemma3Error::Checksum {
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
        | Gemma3Command::Eval { model, .. }
        | Gemma3Command::Bench { model, .. } => model.clone(),
    };
    if let Gemma3Command::Bench {
        threads,
        json,
        only: None,
        prompt_tokens,
        new_tokens,
        batch,
        ..
    } = &command
    {
        return bench_parent(&args, *threads, *json, [*prompt_tokens, *new_tokens], batch);
    }
    if let Gemma3Command::Bench {
        threads: Some(threads),
        ..
    }
    | Gemma3Command::Eval {
        threads: Some(threads),
        ..
    } = &command
    {
        burn_int8_gemma3::backend::set_num_threads(*threads)?;
    }
    let kind: BackendKind = args.backend.parse()?;
    with_backend!(kind, |B, device| {
        burn_int8_gemma3::backend::probe_device::<B>(kind, &device)?;
        run_gemma3::<B>(&command, &args, &device)
    })
}

fn run_gemma3<B: Backend>(
    command: &Gemma3Command,
    args: &ModelArgs,
    device: &B::Device,
) -> Result<(), Error> {
    // Options are checked before the (slow) load.
    let sampler = match command {
        Gemma3Command::Generate {
            temperature,
            top_k,
            top_p,
            seed,
            ..
        } => Sampler::from_options(*temperature, *top_k, *top_p, *seed)
            .map_err(|e| format!("{e} (--temperature, --top-k, --top-p)"))?,
        _ => Sampler::Greedy,
    };
    if let Gemma3Command::Logits { out, .. } = command {
        check_out_file(out)?;
    }
    if let Gemma3Command::Eval {
        model,
        text,
        context,
        chunks,
        keep_float,
        json,
        ..
    } = command
    {
        return eval::<B>(
            model,
            text,
            &gemma3::EvalOptions {
                context: *context,
                max_windows: *chunks,
            },
            keep_float,
            *json,
            device,
        );
    }
    let (model, tokenizer) = load::<B>(args, device)?;
    match command {
        Gemma3Command::Generate {
            prompt,
            max_length,
            json,
            ..
        } => match prompt.as_slice() {
            [single] if !json => generate(&model, &tokenizer, single, *max_length, &sampler),
            prompts => generate_many(&model, &tokenizer, prompts, *max_length, &sampler, *json),
        },
        Gemma3Command::Eval { .. } => Ok(()),
        Gemma3Command::Logits { tokens, out, .. } => logits(&model, tokens, out),
        Gemma3Command::Save { out, overwrite, .. } => {
            gemma3::preset::save_to_preset(&model, &tokenizer, out, *overwrite)?;
            let bytes = std::fs::metadata(out.join(gemma3::preset::WEIGHTS_FILE))?.len();
            eprintln!(
                "saved {} ({:.2} MiB of weights)",
                out.display(),
                bytes as f64 / (1024.0 * 1024.0)
            );
            Ok(())
        }
        Gemma3Command::ExportHf { out, .. } => {
            Ok(gemma3::export::export_hf(&model, &tokenizer, out)?)
        }
        Gemma3Command::Bench {
            prompt_tokens,
            new_tokens,
            prefill_runs,
            batch,
            ..
        } => {
            let mut measured = Vec::new();
            for &batch in batch {
                measured.push(bench_child(
                    &model,
                    &tokenizer,
                    *prompt_tokens,
                    *new_tokens,
                    (*prefill_runs).max(1),
                    batch.max(1),
                )?);
            }
            // The first batch size's figures at the top level: the format of earlier results.
            let mut result = measured.first().cloned().unwrap_or_default();
            result["peak_rss_bytes"] = peak_rss_bytes().unwrap_or(0).into();
            result["batches"] = measured.into();
            println!("{result}");
            Ok(())
        }
    }
}

/// Runs `bench --only fp32` and `--only int8` as child processes (peak RSS only grows, so each
/// precision needs its own process) and reports both with the int8/fp32 ratios.
fn bench_parent(
    args: &ModelArgs,
    threads: Option<usize>,
    json: bool,
    [prompt_tokens, new_tokens]: [usize; 2],
    batches: &[usize],
) -> Result<(), Error> {
    let _: BackendKind = args.backend.parse()?;
    let binary = std::env::current_exe()?;
    let mut results = Vec::new();
    for precision in ["fp32", "int8"] {
        let mut command = std::process::Command::new(&binary);
        command
            .args(std::env::args_os().skip(1))
            .args(["--only", precision]);
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
    let ratio = |key: &str| {
        results[1][key].as_f64().unwrap_or(0.0) / results[0][key].as_f64().unwrap_or(1.0).max(1e-12)
    };
    let threads = threads.map_or_else(|| "all".to_string(), |t| t.to_string());
    println!(
        "backend {} ({threads} threads), {}",
        args.backend,
        args.model.display()
    );
    println!(
        "{:<6} {:>14} {:>14} {:>14}",
        "", "prefill tok/s", "decode tok/s", "peak RSS MiB"
    );
    for (name, result) in ["fp32", "int8"].iter().zip(&results) {
        let mib = result["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0;
        println!(
            "{name:<6} {:>14.1} {:>14.2} {mib:>14.0}",
            result["prefill_tok_s"].as_f64().unwrap_or(0.0),
            result["decode_tok_s"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "{:<6} {:>13.2}x {:>13.2}x {:>13.2}x",
        "int8/fp32",
        ratio("prefill_tok_s"),
        ratio("decode_tok_s"),
        ratio("peak_rss_bytes")
    );
    if batches.len() > 1 || batches.first().is_some_and(|&b| b > 1) {
        println!(
            "\n{:<6} {:>6} {:>14} {:>14} {:>10} {:>10}",
            "", "batch", "prefill tok/s", "decode tok/s", "prefill x", "decode x"
        );
        let rows =
            |result: &serde_json::Value| result["batches"].as_array().cloned().unwrap_or_default();
        let (fp32, int8) = (rows(&results[0]), rows(&results[1]));
        for (index, batch) in batches.iter().enumerate() {
            for (name, row) in [("fp32", fp32.get(index)), ("int8", int8.get(index))] {
                let value = |key: &str| row.and_then(|r| r[key].as_f64()).unwrap_or(0.0);
                let base = |key: &str| {
                    fp32.get(index)
                        .and_then(|r| r[key].as_f64())
                        .unwrap_or(1.0)
                        .max(1e-12)
                };
                println!(
                    "{name:<6} {batch:>6} {:>14.1} {:>14.2} {:>9.2}x {:>9.2}x",
                    value("prefill_tok_s"),
                    value("decode_tok_s"),
                    value("prefill_tok_s") / base("prefill_tok_s"),
                    value("decode_tok_s") / base("decode_tok_s")
                );
            }
        }
    }
    if json {
        let summary = serde_json::json!({
            "backend": args.backend,
            "threads": threads,
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "batch": batches,
            "cpu_kernels": cpu_kernels(),
            "fp32": results[0],
            "int8": results[1],
        });
        println!("{summary}");
    }
    Ok(())
}

/// One precision and batch size: prefill (one forward pass over `batch` copies of the prompt,
/// logits of the last position; the median of `prefill_runs`) and greedy decode of
/// `new_tokens` per row, timed after a warm-up. Tokens per second count every row.
fn bench_child<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompt_tokens: usize,
    new_tokens: usize,
    prefill_runs: usize,
    batch: usize,
) -> Result<serde_json::Value, Error> {
    const TEXT: &str = "Keras is a deep learning API written in Python that runs on top of JAX, TensorFlow, or PyTorch. \
        It was developed with a focus on enabling fast experimentation. ";
    let mut ids = tokenizer.encode(&TEXT.repeat(prompt_tokens / 8 + 1), true)?;
    ids.truncate(prompt_tokens.max(1));
    if ids.len() + new_tokens > model.config.max_position_embeddings {
        return Err("prompt_tokens + new_tokens exceed the model's context".into());
    }
    let device = model.device();
    let tokens = |ids: &[u32], rows: usize| {
        let values: Vec<i64> = (0..rows)
            .flat_map(|_| ids.iter().map(|&id| id as i64))
            .collect();
        burn::tensor::Tensor::<B, 2, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(values, [rows, ids.len()]),
            &device,
        )
    };
    // Every row decodes the same greedy token (the rows are copies): one argmax per step.
    let next_token = |logits: burn::tensor::Tensor<B, 2>| -> u32 {
        let [rows, vocab] = logits.dims();
        let first = logits.slice([0..1.min(rows), 0..vocab]);
        burn::tensor::ElementConversion::elem::<i64>(first.argmax(1).into_scalar()) as u32
    };

    // Warm-up: kernels compiled, caches filled.
    let mut cache = model.new_cache();
    let token = next_token(model.forward_last(tokens(&ids[..ids.len().min(8)], batch), &mut cache));
    let _ = next_token(model.forward_last(tokens(&[token], batch), &mut cache));

    // Prefill: the median of several passes (one pass is at the mercy of a noisy machine).
    let mut prefill_times = Vec::new();
    let (mut token, mut cache) = loop {
        let mut cache = model.new_cache();
        let start = Instant::now();
        let token = next_token(model.forward_last(tokens(&ids, batch), &mut cache));
        prefill_times.push(start.elapsed().as_secs_f64());
        if prefill_times.len() == prefill_runs {
            break (token, cache);
        }
    };
    prefill_times.sort_by(f64::total_cmp);
    let prefill = prefill_times[prefill_times.len() / 2];
    let bar = ProgressBar::new(new_tokens as u64).with_style(ProgressStyle::with_template(
        "decode {bar:30} {pos}/{len} {per_sec}",
    )?);
    let start = Instant::now();
    for _ in 0..new_tokens {
        token = next_token(model.forward_last(tokens(&[token], batch), &mut cache));
        bar.inc(1);
    }
    let decode = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(serde_json::json!({
        "batch": batch,
        "prefill_tok_s": (batch * ids.len()) as f64 / prefill,
        "decode_tok_s": (batch * new_tokens) as f64 / decode,
    }))
}

fn load<B: Backend>(args: &ModelArgs, device: &B::Device) -> Result<(Gemma3<B>, Tokenizer), Error> {
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{spinner} loading {msg} [{elapsed}]",
    )?);
    let start = Instant::now();
    let options = gemma3::PresetOptions {
        verify_checksum: !args.no_verify,
    };
    let loaded = gemma3::load_model_with::<B>(&args.model, args.int8, options, device, |tensor| {
        bar.set_message(tensor.to_string());
        bar.tick();
    })
    .map_err(|error| -> Error {
        use gemma3::Gemma3Error as E;
        match error {
            // These name a tensor, not the file (the library's caller knows which it passed).
            E::MissingTensor(_)
            | E::UnexpectedTensors(_)
            | E::ShapeMismatch { .. }
            | E::NonFinite { .. } => format!("{}: {error}", args.model.display()).into(),
            other => other.into(),
        }
    })?;
    bar.finish_and_clear();
    tracing::info!(
        seconds = start.elapsed().as_secs_f64(),
        int8 = loaded.0.is_quantized(),
        "loaded {}",
        args.model.display()
    );
    Ok(loaded)
}

fn generate<B: Backend>(
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
fn generate_many<B: Backend>(
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

/// `eval`: loads the model once as float; the int8 side is its quantization (or, for an int8
/// preset, the float side is its dequantization, and the output says so).
fn eval<B: Backend>(
    args: &ModelArgs,
    text: &Path,
    options: &gemma3::EvalOptions,
    keep_float: &[String],
    json: bool,
    device: &B::Device,
) -> Result<(), Error> {
    use burn_int8::QuantizeExt;
    let content =
        std::fs::read_to_string(text).map_err(|e| format!("--text {}: {e}", text.display()))?;
    let float_args = ModelArgs {
        int8: false,
        ..args.clone()
    };
    let (loaded, tokenizer) = load::<B>(&float_args, device)?;
    let tokens = tokenizer.encode(&content, true)?;
    gemma3::eval::window_count(tokens.len(), loaded.config.max_position_embeddings, options)
        .map_err(|e| format!("{e} (--text, --context)"))?;
    let (fp32, int8, fp32_source) = if loaded.is_quantized() {
        let mut fp32 = loaded.clone();
        fp32.dequantize()?;
        (fp32, loaded, "dequantized from the int8 preset")
    } else {
        let mut config = burn_int8::QuantizeConfig::default();
        for layer in keep_float {
            config = config.skip(layer.clone());
        }
        let mut int8 = loaded.clone();
        let report = int8.quantize_with(&config)?;
        eprintln!("quantize: {report}");
        (loaded, int8, "the checkpoint's float weights")
    };
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "eval {bar:30} {pos}/{len} windows [{elapsed}<{eta}]",
    )?);
    let report = gemma3::evaluate(&fp32, &int8, &tokens, options, |done, windows| {
        bar.set_length(windows as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    println!(
        "{} ({}), fp32: {fp32_source}",
        args.model.display(),
        text.display()
    );
    println!("{report}");
    if json {
        let mut summary = report.to_json();
        summary["fp32"]["source"] = fp32_source.into();
        summary["keep_float"] = keep_float.into();
        println!("{summary}");
    }
    Ok(())
}

fn logits<B: Backend>(model: &Gemma3<B>, tokens: &[u32], out: &Path) -> Result<(), Error> {
    if tokens.is_empty() {
        return Err(gemma3::Gemma3Error::EmptyPrompt.into());
    }
    let device = model.device();
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
    let tmp = out.with_extension("safetensors.tmp");
    // Written beside `out`, then renamed over it; a failure leaves no temporary file.
    let written = safetensors::serialize_to_file([("logits", view)], None, &tmp)
        .map_err(|e| format!("--out {}: writing {}: {e}", out.display(), tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, out).map_err(|e| {
                format!(
                    "--out {}: renaming {} to it: {e}",
                    out.display(),
                    tmp.display()
                )
            })
        });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(error.into());
    }
    eprintln!("wrote {} (logits [{seq}, {vocab}])", out.display());
    Ok(())
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

/// The int8 CPU kernel level this machine runs (AVX-512 VNNI, AVX-VNNI, AVX2 or portable).
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn cpu_kernels() -> String {
    format!("{:?}", burn_int8::kernels::cpu::Isa::detect())
}

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
fn cpu_kernels() -> String {
    "none".into()
}
