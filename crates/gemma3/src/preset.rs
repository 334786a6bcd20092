//! Presets: a directory with `config.json`, the tokenizer and the weights as one Burnpack
//! record, `model.bpk`, in which int8 weights stay 1 byte. Saving is atomic (a temporary
//! directory renamed into place); loading checks every file and names what is wrong.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_int8::store;
use burn_int8_tokenizer::Tokenizer;

use crate::config::Gemma3Config;
use crate::error::{Gemma3Error, io};
use crate::load::{ZeroSource, build_model};
use crate::model::Gemma3;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.bpk";
/// The tokenizer of a preset or export: HF's `tokenizer.json` when the model came with one,
/// otherwise the SentencePiece vocabulary read from GGUF.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const VOCAB_FILE: &str = "tokenizer.vocab.json";

/// Precision of the weights in a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Float32,
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Int8 => "int8",
        }
    }
}

/// True when `dir` looks like a preset written by this crate.
pub fn is_preset(dir: &Path) -> bool {
    dir.join(WEIGHTS_FILE).is_file() || (dir.join(CONFIG_FILE).is_file() && read_precision(dir).is_ok())
}

/// Saves `model` and `tokenizer` to `dir`. Refuses to replace an existing `dir` unless
/// `overwrite`; an interrupted save leaves any previous preset intact.
pub fn save_to_preset<B: Backend>(model: &Gemma3<B>, tokenizer: &Tokenizer, dir: &Path, overwrite: bool) -> Result<(), Gemma3Error> {
    let precision = if model.is_quantized() { Precision::Int8 } else { Precision::Float32 };
    let mut config: serde_json::Value = serde_json::from_str(&model.config.to_hf_json()).map_err(|e| Gemma3Error::Preset(e.to_string()))?;
    config["burn_int8"] = serde_json::json!({ "precision": precision.name(), "weights": WEIGHTS_FILE });
    let config = serde_json::to_string_pretty(&config).map_err(|e| Gemma3Error::Preset(e.to_string()))?;
    write_atomically(dir, overwrite, |tmp| {
        std::fs::write(tmp.join(CONFIG_FILE), &config).map_err(|e| io(tmp.join(CONFIG_FILE), e))?;
        write_tokenizer(tokenizer, tmp)?;
        store::save(model, tmp.join(WEIGHTS_FILE))?;
        Ok(())
    })
}

/// Loads a preset written by [`save_to_preset`], on any backend.
pub fn from_preset<B: Backend>(dir: &Path, device: &B::Device) -> Result<(Gemma3<B>, Tokenizer), Gemma3Error> {
    for file in [CONFIG_FILE, WEIGHTS_FILE] {
        if !dir.join(file).is_file() {
            return Err(Gemma3Error::Preset(format!("{} is not a preset: it lacks {file}", dir.display())));
        }
    }
    let precision = read_precision(dir)?;
    let config = Gemma3Config::from_hf_file(&dir.join(CONFIG_FILE))?;
    let tokenizer = read_tokenizer(dir)?;
    let skeleton = build_model::<B>(&config, &mut ZeroSource::new(&config), precision == Precision::Int8, device, |_| {})?;
    let model = store::load_skeleton(skeleton, dir.join(WEIGHTS_FILE))?;
    Ok((model, tokenizer))
}

fn read_precision(dir: &Path) -> Result<Precision, Gemma3Error> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Gemma3Error::Format { path: path.clone(), message: e.to_string() })?;
    match value.pointer("/burn_int8/precision").and_then(|p| p.as_str()) {
        Some("int8") => Ok(Precision::Int8),
        Some("float32") => Ok(Precision::Float32),
        Some(other) => Err(Gemma3Error::Preset(format!("{}: unknown precision `{other}`", path.display()))),
        None => Err(Gemma3Error::Preset(format!("{}: not a burn-int8 preset (no `burn_int8.precision`)", path.display()))),
    }
}

/// Writes the tokenizer into `dir` under its conventional file name.
pub(crate) fn write_tokenizer(tokenizer: &Tokenizer, dir: &Path) -> Result<(), Gemma3Error> {
    match tokenizer {
        Tokenizer::HuggingFace(hf) => hf
            .inner()
            .save(dir.join(TOKENIZER_FILE), false)
            .map_err(|e| Gemma3Error::Preset(format!("writing {TOKENIZER_FILE}: {e}"))),
        Tokenizer::SentencePiece(sp) => Ok(sp.vocab().save_json(dir.join(VOCAB_FILE))?),
    }
}

/// Reads the tokenizer of a preset or HF directory: `tokenizer.json`, else the vocabulary file.
pub fn read_tokenizer(dir: &Path) -> Result<Tokenizer, Gemma3Error> {
    let hf = dir.join(TOKENIZER_FILE);
    let vocab = dir.join(VOCAB_FILE);
    if hf.is_file() {
        Ok(Tokenizer::from_hf_file(&hf)?)
    } else if vocab.is_file() {
        Ok(Tokenizer::from_vocab(burn_int8_tokenizer::Vocab::load_json(&vocab)?)?)
    } else {
        Err(Gemma3Error::Preset(format!("{} has no tokenizer ({TOKENIZER_FILE} or {VOCAB_FILE})", dir.display())))
    }
}

/// Fills a temporary sibling of `dir` with `fill`, then renames it to `dir`. An existing
/// `dir` is replaced only with `overwrite`, and only after the new one is complete.
pub(crate) fn write_atomically(dir: &Path, overwrite: bool, fill: impl FnOnce(&Path) -> Result<(), Gemma3Error>) -> Result<(), Gemma3Error> {
    if dir.exists() && !overwrite {
        return Err(Gemma3Error::Preset(format!("{} exists; pass overwrite to replace it", dir.display())));
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "preset".into());
    let sibling = |tag: &str| -> PathBuf { dir.with_file_name(format!(".{name}.{tag}-{}", std::process::id())) };
    let tmp = sibling("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let result = fill(&tmp).and_then(|()| {
        for entry in std::fs::read_dir(&tmp).map_err(|e| io(&tmp, e))? {
            let path = entry.map_err(|e| io(&tmp, e))?.path();
            std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| io(&path, e))?;
        }
        if dir.exists() {
            let old = sibling("old");
            std::fs::rename(dir, &old).map_err(|e| io(dir, e))?;
            std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
