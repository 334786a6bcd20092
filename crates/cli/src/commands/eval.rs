//! `eval`: perplexity of the float model and of its int8 quantization, and the KL divergence
//! between them.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn_int8::QuantizeExt;
use burn_int8_gemma3 as gemma3;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Error;
use crate::model_args::{ModelArgs, load, option_error};
use crate::output::{note, out};

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A UTF-8 text file (e.g. /usr/share/common-licenses/GPL-3), `-` for stdin; at most
    /// 256 MiB.
    #[arg(long)]
    pub text: PathBuf,
    /// Tokens per window (at least 4); the second half of each window is scored.
    #[arg(long, default_value_t = 512, allow_negative_numbers = true,
          value_parser = crate::limits::positive)]
    pub context: usize,
    /// Score at most this many windows, at least 1 (default: every whole window of the text).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::limits::positive)]
    pub chunks: Option<usize>,
    /// Keep this layer (and everything under it; `*` for one path segment) float on the int8 side, e.g.
    /// `layers.5.mlp.down_proj`; repeatable. The quantize report names the worst layers.
    #[arg(long)]
    pub keep_float: Vec<String>,
    /// CPU threads (rayon), 1 to 4× the cores; default: all cores.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::limits::threads)]
    pub threads: Option<usize>,
    /// End with one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Loads the model once as float; the int8 side is its quantization (or, for an int8 preset,
/// the float side is its dequantization, and the output says so).
pub fn run<B: Backend>(args: &EvalArgs, device: &B::Device) -> Result<(), Error> {
    let options = gemma3::EvalOptions {
        context: args.context,
        max_windows: args.chunks,
    };
    let text = &args.text;
    // What needs no model is checked before the (slow) load.
    if args.context < 4 {
        return Err(format!(
            "--context {}: expected at least 4 tokens (the second half of each window is scored)",
            args.context
        )
        .into());
    }
    let content = crate::limits::read_text(text)?;
    let (loaded, tokenizer) = load::<B>(&args.model.float(), device)?;
    // One window's pass, both precisions' scored logits kept: checked before allocating.
    if args.context <= loaded.config.max_position_embeddings {
        let bytes = crate::limits::forward_bytes(&loaded.config, 1, args.context, 0, args.context);
        crate::limits::check_memory(bytes, &format!("--context {}", args.context))?;
    }
    let tokens = tokenizer.encode(&content, true)?;
    gemma3::eval::window_count(
        tokens.len(),
        loaded.config.max_position_embeddings,
        &options,
    )
    .map_err(|e| format!("{e} (--text, --context)"))?;
    if loaded.is_quantized() && !args.keep_float.is_empty() {
        return Err(format!(
            "--keep-float: {} is already int8, so no layer can be kept float; pass its float checkpoint",
            args.model.model.display()
        )
        .into());
    }
    let (fp32, int8, fp32_source) = if loaded.is_quantized() {
        let mut fp32 = loaded.clone();
        fp32.dequantize()?;
        (fp32, loaded, "dequantized from the int8 preset")
    } else {
        let mut config = args.model.quantize_config();
        for layer in &args.keep_float {
            config = config.skip(layer.clone());
        }
        let mut int8 = loaded.clone();
        let report = int8
            .quantize_with(&config)
            .map_err(|e| option_error(e, "--keep-float"))?;
        note!("quantize: {report}");
        (loaded, int8, "the checkpoint's float weights")
    };
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "eval {bar:30} {pos}/{len} windows [{elapsed}<{eta}]",
    )?);
    let report = gemma3::evaluate(&fp32, &int8, &tokens, &options, |done, windows| {
        bar.set_length(windows as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    out(format!(
        "{} ({}), fp32: {fp32_source}",
        args.model.model.display(),
        text.display()
    ))?;
    out(&report)?;
    if args.json {
        let mut summary = report.to_json();
        summary["fp32"]["source"] = fp32_source.into();
        summary["keep_float"] = args.keep_float.clone().into();
        summary["int8_format"] = args.model.format_json();
        summary["int8"]["parameter_bytes"] = burn_int8::param_bytes::<B, _>(&int8).into();
        out(summary)?;
    }
    Ok(())
}
