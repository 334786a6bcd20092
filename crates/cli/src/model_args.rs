//! The options every command shares (`--model`, `--backend`, `--int8`, `--no-verify`) and the
//! load they drive, drawn as a spinner on stderr.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn_int8::{QuantizeConfig, Rotation, Scheme};
use burn_int8_gemma3::{self as gemma3, Gemma3, Tokenizer};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Error;
use crate::backend::BackendKind;

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A `.gguf` file, an HF directory, or a preset directory written by `save`.
    #[arg(long)]
    pub model: PathBuf,
    /// ndarray, flex, wgpu or cuda (those compiled in).
    #[arg(long, default_value = "flex", value_parser = BackendKind::parse_compiled)]
    pub backend: BackendKind,
    /// Quantize to int8 (while loading, for GGUF and HF checkpoints). `eval` measures both
    /// precisions and ignores it.
    #[arg(long)]
    pub int8: bool,
    /// Load a preset without verifying `model.bpk` against the checksum in its config.json.
    #[arg(long)]
    pub no_verify: bool,
    /// The int8 scale scheme: `keras` (Keras-exact, per channel and per row; the default) or
    /// `q8_0` (llama.cpp's blocks of 32 with f16 scales). Implies `--int8`.
    #[arg(long, value_parser = parse_scheme)]
    pub scheme: Option<Scheme>,
    /// Rotate each int8 layer's inputs first: `none` (the default) or `hadamard` (the
    /// Walsh–Hadamard transform, which spreads outlier features). Implies `--int8`.
    #[arg(long, value_parser = |s: &str| s.parse::<Rotation>())]
    pub rotate: Option<Rotation>,
    /// The scheme of one layer or module, e.g. `layers.5.mlp.down_proj=keras`; repeatable, the
    /// longest matching path wins. Implies `--int8`.
    #[arg(long, value_name = "PATH=SCHEME", value_parser = parse_scheme_for)]
    pub scheme_for: Vec<(String, Scheme)>,
}

/// A scheme Gemma3's layers can hold: `sample` (one activation scale per sample) is a
/// convolution scheme, and the model has no convolution.
fn parse_scheme(value: &str) -> Result<Scheme, String> {
    match value.parse::<Scheme>().map_err(|e| e.to_string())? {
        Scheme::Sample => Err(
            "`sample` is a convolution scheme (one activation scale per image); Gemma3's layers \
             are dense: use `keras` or `q8_0`"
                .into(),
        ),
        scheme => Ok(scheme),
    }
}

fn parse_scheme_for(value: &str) -> Result<(String, Scheme), String> {
    let (path, scheme) = value
        .rsplit_once('=')
        .ok_or_else(|| format!("`{value}`: expected PATH=SCHEME, e.g. layers.5.mlp=keras"))?;
    Ok((path.to_string(), parse_scheme(scheme)?))
}

impl ModelArgs {
    /// Whether the model is to be int8 (`--int8`, or any format option).
    pub fn quantizes(&self) -> bool {
        self.int8 || self.scheme.is_some() || self.rotate.is_some() || !self.scheme_for.is_empty()
    }

    /// The same options with every quantization option off: the float model.
    pub fn float(&self) -> Self {
        Self {
            int8: false,
            scheme: None,
            rotate: None,
            scheme_for: Vec::new(),
            ..self.clone()
        }
    }

    /// The quantize config the format options ask for.
    pub fn quantize_config(&self) -> QuantizeConfig {
        let mut config = QuantizeConfig::default()
            .scheme(self.scheme.unwrap_or_default())
            .rotate(self.rotate.unwrap_or_default());
        for (path, scheme) in &self.scheme_for {
            config = config.scheme_for(path.clone(), *scheme);
        }
        config
    }

    /// The format options as JSON, for reports: `{"scheme", "rotate", "scheme_for"}`.
    pub fn format_json(&self) -> serde_json::Value {
        let overrides: serde_json::Map<String, serde_json::Value> = self
            .scheme_for
            .iter()
            .map(|(path, scheme)| (path.clone(), scheme.name().into()))
            .collect();
        serde_json::json!({
            "scheme": self.scheme.unwrap_or_default().name(),
            "rotate": self.rotate.unwrap_or_default().name(),
            "scheme_for": overrides,
        })
    }
}

/// A quantize error in the words of the options that caused it.
pub fn option_error(error: burn_int8::Int8Error, keep_float: &str) -> Error {
    use burn_int8::Int8Error as E;
    match error {
        E::UnknownSkip { path, closest } => format!(
            "{keep_float} `{path}` names no layer of the model; closest: {}",
            closest.join(", ")
        )
        .into(),
        E::UnknownSchemePath { path, closest } => format!(
            "--scheme-for `{path}` names no layer of the model; closest: {}",
            closest.join(", ")
        )
        .into(),
        other => other.into(),
    }
}

/// Loads `--model` on `device`, a spinner naming each tensor as it is read.
pub fn load<B: Backend>(
    args: &ModelArgs,
    device: &B::Device,
) -> Result<(Gemma3<B>, Tokenizer), Error> {
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{spinner} loading {msg} [{elapsed}]",
    )?);
    let start = Instant::now();
    let options = gemma3::PresetOptions {
        verify_checksum: !args.no_verify,
    };
    let config = args.quantize_config();
    let quantize = args.quantizes().then_some(&config);
    let loaded = gemma3::load_model_as::<B>(&args.model, quantize, options, device, |tensor| {
        bar.set_message(tensor.to_string());
        bar.tick();
    })
    .map_err(|error| -> Error {
        use gemma3::Gemma3Error as E;
        match error {
            E::Int8(error) => option_error(error, "--keep-float"),
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
