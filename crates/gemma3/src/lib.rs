//! Gemma3 on Burn: one backend-generic implementation, real checkpoints (HF safetensors and
//! GGUF), KerasHub-style generation, presets, and int8 through `burn-int8`.
//!
//! A library: long work reports progress through callbacks (`load_model`'s per tensor,
//! `generate`'s per piece, `evaluate`'s per window), which the `burn-int8` command line
//! (`crates/cli`) draws as progress bars.

pub mod cache;
pub mod config;
mod error;
pub mod eval;
pub mod export;
pub mod export_gguf;
pub mod generate;
mod gguf_tokenizer;
pub mod load;
pub mod model;
pub mod preset;

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_int8::{QuantizeConfig, QuantizeExt};
pub use burn_int8_gguf as gguf;
pub use burn_int8_tokenizer as tokenizer;
pub use burn_int8_tokenizer::Tokenizer;

pub use cache::KvCache;
pub use config::Gemma3Config;
pub use error::Gemma3Error;
pub use eval::{EvalOptions, EvalReport, evaluate};
pub use generate::{Generation, Sampler, StopReason, generate, generate_batch};
pub use gguf_tokenizer::tokenizer_from_gguf;
pub use model::Gemma3;
pub use preset::PresetOptions;

/// What `--model` pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    Gguf,
    HfDirectory,
    Preset,
}

/// Detects the format of `path`: a `.gguf` file, an HF directory, or a preset directory.
pub fn detect_format(path: &Path) -> Result<ModelFormat, Gemma3Error> {
    if path.is_file() {
        let mut magic = [0u8; 4];
        let read = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
        return match read {
            Ok(()) if &magic == b"GGUF" => Ok(ModelFormat::Gguf),
            Ok(()) => Err(Gemma3Error::Format {
                path: path.into(),
                message: "not a GGUF file (bad magic)".into(),
            }),
            Err(e) => Err(error::io(path, e)),
        };
    }
    if !path.is_dir() {
        return Err(error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    if path.join(preset::WEIGHTS_FILE).is_file() {
        Ok(ModelFormat::Preset)
    } else if path.join("config.json").is_file() {
        Ok(ModelFormat::HfDirectory)
    } else {
        Err(Gemma3Error::Format {
            path: path.into(),
            message: "neither a preset (model.bpk) nor an HF directory (config.json)".into(),
        })
    }
}

/// Loads a model and its tokenizer from a GGUF file, an HF directory or a preset.
///
/// With `int8`, GGUF and HF checkpoints are quantized layer by layer while loading; a float
/// preset is quantized after loading; an int8 preset is loaded as it is (and stays int8
/// even without `int8`, since its float weights no longer exist). A preset's weights are
/// verified against their checksum ([`load_model_with`] can skip that).
pub fn load_model<B: Backend>(
    path: &Path,
    int8: bool,
    device: &B::Device,
    progress: impl FnMut(&str),
) -> Result<(Gemma3<B>, Tokenizer), Gemma3Error> {
    load_model_with(
        path,
        int8,
        preset::PresetOptions::default(),
        device,
        progress,
    )
}

/// [`load_model`] with the options used when `path` is a preset (e.g. no checksum check).
pub fn load_model_with<B: Backend>(
    path: &Path,
    int8: bool,
    options: preset::PresetOptions,
    device: &B::Device,
    progress: impl FnMut(&str),
) -> Result<(Gemma3<B>, Tokenizer), Gemma3Error> {
    let config = QuantizeConfig::default();
    load_model_as(path, int8.then_some(&config), options, device, progress)
}

/// [`load_model_with`] quantized as `quantize` says (scheme, rotation, per-layer schemes, layers
/// kept float). A config that gives every layer the same format quantizes GGUF and HF
/// checkpoints layer by layer while loading; one with skips or per-layer schemes loads float
/// and quantizes after (checking its paths). An int8 preset loads in the formats it was saved
/// with, whatever `quantize` says.
pub fn load_model_as<B: Backend>(
    path: &Path,
    quantize: Option<&QuantizeConfig>,
    options: preset::PresetOptions,
    device: &B::Device,
    progress: impl FnMut(&str),
) -> Result<(Gemma3<B>, Tokenizer), Gemma3Error> {
    // A preset left missing by a save killed between its two renames is moved back first.
    preset::recover_interrupted_save(path)?;
    let while_loading = quantize.filter(|config| config.is_uniform());
    let formats = while_loading.map(|config| move |layer: &str| config.format_at(layer));
    let formats = formats.as_ref().map(|f| f as load::LayerFormats<'_>);
    let (mut model, tokenizer) = match detect_format(path)? {
        ModelFormat::Gguf => {
            let mut source = load::gguf::GgufSource::open(path)?;
            let config = source.config()?;
            let tokenizer = tokenizer_from_gguf(source.file())?;
            load::check_vocabulary(&tokenizer, config.vocab_size, &path.display().to_string())?;
            let model = load::build_model(&config, &mut source, formats, device, progress)?;
            (model, tokenizer)
        }
        ModelFormat::HfDirectory => {
            let config = Gemma3Config::from_hf_file(&path.join("config.json"))?;
            let tokenizer = preset::read_tokenizer(path)?;
            load::check_vocabulary(&tokenizer, config.vocab_size, &path.display().to_string())?;
            let mut source = load::hf::HfSource::open(path)?;
            let model = load::build_model(&config, &mut source, formats, device, progress)?;
            (model, tokenizer)
        }
        ModelFormat::Preset => preset::from_preset_with::<B>(path, device, options)?,
    };
    if let Some(config) = quantize
        && !model.is_quantized()
    {
        model.quantize_with(config)?;
    }
    Ok((model, tokenizer))
}
