//! `bench`: prefill and decode speed and peak RSS, fp32 and int8, each precision measured in
//! a child process of its own (peak RSS only grows) that prints one [`PrecisionResult`] line.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn_int8_gemma3::{Gemma3, Tokenizer};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::model_args::{ModelArgs, load};
use crate::output::out;
use crate::peak_rss::peak_rss_bytes;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// CPU threads (rayon), 1 to 4× the cores; default: all cores.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::limits::threads)]
    pub threads: Option<usize>,
    /// End with one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Prefill passes; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub prefill_runs: usize,
    /// Batch sizes to measure (comma-separated, each at least 1), each row a copy of the prompt.
    #[arg(long, value_delimiter = ',', default_value = "1", allow_hyphen_values = true,
          value_parser = crate::limits::positive)]
    pub batch: Vec<usize>,
    /// Internal: measure one precision in this process (the parent runs one child for each).
    #[arg(long, hide = true)]
    pub only: Option<Precision>,
}

/// The precision a bench child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    Fp32,
    Int8,
}

/// One batch size's speed. Fields in alphabetical order: the order the JSON has always had.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchResult {
    pub batch: usize,
    pub decode_tok_s: f64,
    pub prefill_tok_s: f64,
}

/// What a child prints: every batch size, the first one's figures also at the top level (the
/// format of earlier results), and the process's peak RSS (0 where /proc has none).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecisionResult {
    pub batch: usize,
    pub batches: Vec<BatchResult>,
    pub decode_tok_s: f64,
    pub peak_rss_bytes: u64,
    pub prefill_tok_s: f64,
}

/// The parent: runs `bench --only fp32` and `--only int8` as child processes and reports both
/// with the int8/fp32 ratios.
pub fn run_parent(args: &BenchArgs) -> Result<(), Error> {
    let binary = std::env::current_exe()?;
    let mut results = Vec::new();
    for precision in [Precision::Fp32, Precision::Int8] {
        let name = precision_name(precision);
        let mut command = std::process::Command::new(&binary);
        command
            .args(std::env::args_os().skip(1))
            .args(["--only", name]);
        if precision == Precision::Int8 && !args.model.quantizes() {
            command.arg("--int8");
        }
        let output = command.stderr(std::process::Stdio::inherit()).output()?;
        if !output.status.success() {
            return Err(format!("bench child for {name} failed ({})", output.status).into());
        }
        let stdout = String::from_utf8(output.stdout)?;
        let line = stdout.lines().last().ok_or("bench child printed nothing")?;
        let result: PrecisionResult = serde_json::from_str(line).map_err(|e| {
            format!("bench child for {name} printed an unexpected line ({e}): {line}")
        })?;
        if result.batches.len() != args.batch.len() {
            return Err(format!(
                "bench child for {name} measured {} batch sizes, {} were asked for",
                result.batches.len(),
                args.batch.len()
            )
            .into());
        }
        results.push(result);
    }
    let [fp32, int8] = <[PrecisionResult; 2]>::try_from(results)
        .map_err(|_| "bench: expected one result per precision")?;
    let threads = args
        .threads
        .map_or_else(|| "all".to_string(), |t| t.to_string());
    let shown = args
        .threads
        .unwrap_or_else(crate::limits::cores)
        .to_string();
    out(table(args, &shown, &fp32, &int8))?;
    if args.json {
        let summary = serde_json::json!({
            "backend": args.model.backend.name(),
            "threads": threads,
            "prompt_tokens": args.prompt_tokens,
            "new_tokens": args.new_tokens,
            "batch": args.batch,
            "cpu_kernels": cpu_kernels(),
            "int8_format": args.model.format_json(),
            "fp32": fp32,
            "int8": int8,
        });
        out(summary)?;
    }
    Ok(())
}

fn precision_name(precision: Precision) -> &'static str {
    match precision {
        Precision::Fp32 => "fp32",
        Precision::Int8 => "int8",
    }
}

/// `new / base`, with a base of (about) zero kept from dividing by zero.
fn ratio(new: f64, base: f64) -> f64 {
    new / base.max(1e-12)
}

fn table(
    args: &BenchArgs,
    threads: &str,
    fp32: &PrecisionResult,
    int8: &PrecisionResult,
) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "backend {} ({threads} threads), {}",
        args.model.backend,
        args.model.model.display()
    );
    let _ = writeln!(
        text,
        "{:<6} {:>14} {:>14} {:>14}",
        "", "prefill tok/s", "decode tok/s", "peak RSS MiB"
    );
    for (name, result) in [("fp32", fp32), ("int8", int8)] {
        let mib = result.peak_rss_bytes as f64 / 1048576.0;
        let _ = writeln!(
            text,
            "{name:<6} {:>14.1} {:>14.2} {mib:>14.0}",
            result.prefill_tok_s, result.decode_tok_s
        );
    }
    let _ = writeln!(
        text,
        "{:<6} {:>13.2}x {:>13.2}x {:>13.2}x",
        "int8/fp32",
        ratio(int8.prefill_tok_s, fp32.prefill_tok_s),
        ratio(int8.decode_tok_s, fp32.decode_tok_s),
        ratio(int8.peak_rss_bytes as f64, fp32.peak_rss_bytes as f64)
    );
    if args.batch.len() > 1 || args.batch.first().is_some_and(|&b| b > 1) {
        let _ = writeln!(
            text,
            "\n{:<6} {:>6} {:>14} {:>14} {:>10} {:>10}",
            "", "batch", "prefill tok/s", "decode tok/s", "prefill x", "decode x"
        );
        for ((batch, base), int8_row) in args.batch.iter().zip(&fp32.batches).zip(&int8.batches) {
            for (name, row) in [("fp32", base), ("int8", int8_row)] {
                let _ = writeln!(
                    text,
                    "{name:<6} {batch:>6} {:>14.1} {:>14.2} {:>9.2}x {:>9.2}x",
                    row.prefill_tok_s,
                    row.decode_tok_s,
                    ratio(row.prefill_tok_s, base.prefill_tok_s),
                    ratio(row.decode_tok_s, base.decode_tok_s)
                );
            }
        }
    }
    text.pop(); // `out` adds the last newline
    text
}

/// A child: measures every `--batch` size in this process and prints one [`PrecisionResult`].
pub fn run_child<B: Backend>(args: &BenchArgs, device: &B::Device) -> Result<(), Error> {
    // The parent passes its options on: the fp32 child drops the format options.
    let model_args = match args.only {
        Some(Precision::Fp32) => args.model.float(),
        _ => args.model.clone(),
    };
    let (model, tokenizer) = load::<B>(&model_args, device)?;
    // Before any pass: a batch too large for this machine is an error, not an abort.
    for &batch in &args.batch {
        let bytes = crate::limits::forward_bytes(
            &model.config,
            batch,
            args.prompt_tokens,
            args.new_tokens,
            1,
        );
        crate::limits::check_memory(
            bytes,
            &format!(
                "--batch {batch} with --prompt-tokens {}",
                args.prompt_tokens
            ),
        )?;
    }
    let mut batches = Vec::new();
    for &batch in &args.batch {
        batches.push(measure(
            &model,
            &tokenizer,
            args.prompt_tokens,
            args.new_tokens,
            args.prefill_runs.max(1),
            batch,
        )?);
    }
    let first = batches.first().cloned().ok_or("bench: no --batch size")?;
    let result = PrecisionResult {
        batch: first.batch,
        batches,
        decode_tok_s: first.decode_tok_s,
        peak_rss_bytes: peak_rss_bytes().unwrap_or(0),
        prefill_tok_s: first.prefill_tok_s,
    };
    out(serde_json::to_string(&result)?)?;
    Ok(())
}

/// One batch size: prefill (one forward pass over `batch` copies of the prompt, logits of the
/// last position; the median of `prefill_runs`) and greedy decode of `new_tokens` per row,
/// timed after a warm-up. Tokens per second count every row.
fn measure<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    prompt_tokens: usize,
    new_tokens: usize,
    prefill_runs: usize,
    batch: usize,
) -> Result<BatchResult, Error> {
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
    Ok(BatchResult {
        batch,
        prefill_tok_s: (batch * ids.len()) as f64 / prefill,
        decode_tok_s: (batch * new_tokens) as f64 / decode,
    })
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
