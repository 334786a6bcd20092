//! Presets: a directory with `config.json`, the tokenizer and the weights as one Burnpack
//! record, `model.bpk`, in which int8 weights stay 1 byte. Saving records the xxh3-64 checksum
//! of every file in `checksums.json`; loading verifies them, so a flipped byte or an edit
//! anywhere in the preset (a `config.json` scalar such as `rms_norm_eps` included) is an error
//! that names the file, and checks every file and names what is wrong.
//!
//! A save never loses the preset it replaces: the directory is written with
//! [`burn_int8::io::atomic::write_dir`] (filled and synced in a sibling, then swapped into place
//! atomically), and a load first recovers a preset left aside by an interrupted save
//! ([`recover_interrupted_save`]).

use std::io::Read;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn_int8::io::atomic;
use burn_int8::store;
use burn_int8_tokenizer::Tokenizer;

use crate::config::Gemma3Config;
use crate::error::{Gemma3Error, io};
use crate::load::{LayerFormats, ZeroSource, build_model};
use crate::model::Gemma3;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.bpk";
/// The tokenizer of a preset or export: HF's `tokenizer.json` when the model came with one,
/// otherwise the SentencePiece vocabulary read from GGUF.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const VOCAB_FILE: &str = "tokenizer.vocab.json";
/// The xxh3-64 checksum of every other file of a preset, written last by a save:
/// `{"algorithm": "xxh3-64", "files": {"config.json": "<16 hex digits>", ...}}`.
pub const CHECKSUMS_FILE: &str = "checksums.json";

/// How [`from_preset_with`] loads a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetOptions {
    /// Hash every file `checksums.json` lists (`config.json`, the tokenizer and `model.bpk`)
    /// and compare with the recorded xxh3-64 before building the model; a mismatch is
    /// [`Gemma3Error::Checksum`]. On by default; off is the way to load a preset edited by hand
    /// on purpose. A preset saved before `checksums.json` is checked against the checksum of
    /// `model.bpk` in its `config.json` (`burn_int8.weights_xxh3`), and one saved before any
    /// checksum loads with a warning.
    pub verify_checksum: bool,
}

impl Default for PresetOptions {
    fn default() -> Self {
        Self {
            verify_checksum: true,
        }
    }
}

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
    dir.join(WEIGHTS_FILE).is_file()
        || (dir.join(CONFIG_FILE).is_file() && read_precision(dir).is_ok())
}

/// Saves `model` and `tokenizer` to `dir`. Refuses to replace an existing `dir` unless
/// `overwrite`; an interrupted save leaves a loadable preset at `dir`, the previous one or the
/// new one (see the module docs). `checksums.json` records the xxh3-64 checksum of every
/// file (and `config.json` that of `model.bpk`, `burn_int8.weights_xxh3`, as earlier versions
/// wrote it), which [`from_preset`] verifies.
pub fn save_to_preset<B: Backend>(
    model: &Gemma3<B>,
    tokenizer: &Tokenizer,
    dir: &Path,
    overwrite: bool,
) -> Result<(), Gemma3Error> {
    let precision = if model.is_quantized() {
        Precision::Int8
    } else {
        Precision::Float32
    };
    let mut config: serde_json::Value = serde_json::from_str(&model.config.to_hf_json())
        .map_err(|e| Gemma3Error::Preset(e.to_string()))?;
    if overwrite {
        check_replaceable(dir)?;
    }
    atomic::write_dir(dir, overwrite, |tmp| {
        write_tokenizer(tokenizer, tmp)?;
        // The weights first: config.json records their checksum.
        let weights = tmp.join(WEIGHTS_FILE);
        store::save(model, &weights)?;
        let checksum = weights_checksum(&weights)?;
        config["burn_int8"] = serde_json::json!({ "precision": precision.name(), "weights": WEIGHTS_FILE, "weights_xxh3": checksum });
        if precision == Precision::Int8 {
            // The format is the layers' configuration, not in the record (`Int8Weight`).
            let formats: serde_json::Map<String, serde_json::Value> = model
                .int8_formats()
                .into_iter()
                .map(|(path, format)| (path, format.to_string().into()))
                .collect();
            config["burn_int8"]["formats"] = formats.into();
        }
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| Gemma3Error::Preset(e.to_string()))?;
        let path = tmp.join(CONFIG_FILE);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        write_checksums(tmp)
    })
}

/// The files a preset is made of: a directory holding only these (or nothing) may be replaced.
const PRESET_FILES: [&str; 5] = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    TOKENIZER_FILE,
    VOCAB_FILE,
    CHECKSUMS_FILE,
];

/// A save with overwrite replaces only a preset: a directory whose every entry is one of the
/// [`PRESET_FILES`] as a regular file (an empty directory too). Anything else in it (a
/// `thesis.txt`, a sub-directory) is [`Gemma3Error::NotAPreset`], naming the first few.
/// What is not a directory is refused by the atomic write itself.
fn check_replaceable(dir: &Path) -> Result<(), Gemma3Error> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        _ => return Ok(()),
    }
    let mut foreign = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
        if !(is_file && PRESET_FILES.contains(&name.as_str())) {
            foreign.push(if is_file { name } else { format!("{name}/") });
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    if foreign.len() > 5 {
        let more = foreign.len() - 4;
        foreign.truncate(4);
        foreign.push(format!("{more} more"));
    }
    Err(Gemma3Error::NotAPreset {
        path: dir.into(),
        found: foreign,
    })
}

/// Writes `checksums.json` for every regular file already in `dir`.
fn write_checksums(dir: &Path) -> Result<(), Gemma3Error> {
    let mut files = serde_json::Map::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        if entry
            .file_type()
            .map_err(|e| io(entry.path(), e))?
            .is_file()
        {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    for name in names.into_iter().filter(|name| name != CHECKSUMS_FILE) {
        files.insert(name.clone(), weights_checksum(&dir.join(&name))?.into());
    }
    let manifest = serde_json::json!({ "algorithm": "xxh3-64", "files": files });
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| Gemma3Error::Preset(e.to_string()))?;
    let path = dir.join(CHECKSUMS_FILE);
    std::fs::write(&path, text).map_err(|e| io(&path, e))
}

/// Loads a preset written by [`save_to_preset`], on any backend, after verifying the checksum
/// of its weights ([`PresetOptions::default`]).
pub fn from_preset<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(Gemma3<B>, Tokenizer), Gemma3Error> {
    from_preset_with(dir, device, PresetOptions::default())
}

/// [`from_preset`] with options, e.g. `PresetOptions { verify_checksum: false }` to load a preset
/// whose `model.bpk` no longer matches its checksum.
///
/// When `dir` is missing because a save replacing it was killed between its two renames (the
/// two-rename fallback, see the module docs), the previous preset is first moved back into place.
pub fn from_preset_with<B: Backend>(
    dir: &Path,
    device: &B::Device,
    options: PresetOptions,
) -> Result<(Gemma3<B>, Tokenizer), Gemma3Error> {
    recover_interrupted_save(dir)?;
    for file in [CONFIG_FILE, WEIGHTS_FILE] {
        if !dir.join(file).is_file() {
            return Err(Gemma3Error::Preset(format!(
                "{} is not a preset: it lacks {file}",
                dir.display()
            )));
        }
    }
    let precision = read_precision(dir)?;
    if options.verify_checksum {
        verify_files(dir)?;
    }
    let config = Gemma3Config::from_hf_file(&dir.join(CONFIG_FILE))?;
    let tokenizer = read_tokenizer(dir)?;
    crate::load::check_vocabulary(&tokenizer, config.vocab_size, &dir.display().to_string())?;
    // Before the skeleton is allocated: model.bpk must hold the architecture config.json
    // describes (see `load::bpk`; config.json stays the source of truth for the scalars).
    crate::load::bpk::check_preset_record(
        &dir.join(WEIGHTS_FILE),
        &config,
        precision == Precision::Int8,
    )?;
    let formats = read_formats(dir)?;
    let format_of = |layer: &str| formats.get(layer).copied().unwrap_or_default();
    let skeleton = build_model::<B>(
        &config,
        &mut ZeroSource::new(&config),
        (precision == Precision::Int8).then_some(&format_of as LayerFormats<'_>),
        device,
        |_| {},
    )?;
    let model = store::load_skeleton(skeleton, dir.join(WEIGHTS_FILE))?;
    Ok((model, tokenizer))
}

/// When `dir` is missing because a save replacing it was killed between the two renames of
/// the two-rename fallback of [`atomic::write_dir`], moves that previous preset back to `dir`;
/// true when it did. Loading ([`from_preset`], [`crate::load_model`]) and saving call it.
pub fn recover_interrupted_save(dir: &Path) -> Result<bool, Gemma3Error> {
    Ok(atomic::recover_dir(dir)?)
}

/// The xxh3-64 checksum of a file as 16 lowercase hex digits, read in 1 MiB chunks (what
/// `checksums.json` records for each file, and `config.json` as `burn_int8.weights_xxh3` for
/// `model.bpk`).
pub fn weights_checksum(path: &Path) -> Result<String, Gemma3Error> {
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path, e)),
        }
    }
    Ok(format!("{:016x}", hasher.digest()))
}

/// Compares every file `checksums.json` lists with its checksum. It must list `config.json` and
/// `model.bpk`, and names only files of the preset directory itself. A preset without
/// `checksums.json` (saved by an earlier version) falls back to [`verify_weights`].
fn verify_files(dir: &Path) -> Result<(), Gemma3Error> {
    let manifest_path = dir.join(CHECKSUMS_FILE);
    if !manifest_path.is_file() {
        return verify_weights(dir);
    }
    let manifest = read_json(&manifest_path)?;
    let bad = |message: String| Gemma3Error::Format {
        path: manifest_path.clone(),
        message,
    };
    match manifest.get("algorithm").and_then(|a| a.as_str()) {
        Some("xxh3-64") => {}
        other => {
            return Err(bad(format!(
                "`algorithm` should be \"xxh3-64\", found {other:?}"
            )));
        }
    }
    let Some(files) = manifest.get("files").and_then(|f| f.as_object()) else {
        return Err(bad(
            "`files` should be an object of file name to checksum".into()
        ));
    };
    for required in [CONFIG_FILE, WEIGHTS_FILE] {
        if !files.contains_key(required) {
            return Err(bad(format!("`files` lacks {required}")));
        }
    }
    for (name, expected) in files {
        // A bare file name: a hostile manifest must not make the load hash files elsewhere.
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(bad(format!(
                "`files` names {name:?}, which is not a file of the preset"
            )));
        }
        let Some(expected) = expected.as_str() else {
            return Err(bad(format!(
                "the checksum of {name} should be a string of 16 hex digits, found {expected}"
            )));
        };
        let path = dir.join(name);
        let found = weights_checksum(&path)?;
        if !found.eq_ignore_ascii_case(expected.trim()) {
            return Err(Gemma3Error::Checksum {
                path,
                expected: expected.to_string(),
                found,
            });
        }
    }
    Ok(())
}

/// Compares `model.bpk` with the checksum in `config.json` (presets saved before
/// `checksums.json`); a preset without one (saved before checksums) passes with a warning.
fn verify_weights(dir: &Path) -> Result<(), Gemma3Error> {
    let config_path = dir.join(CONFIG_FILE);
    let value = read_json(&config_path)?;
    let weights = dir.join(WEIGHTS_FILE);
    match value.pointer("/burn_int8/weights_xxh3") {
        None => {
            tracing::warn!(
                "{} records no checksum (`burn_int8.weights_xxh3`; a preset saved before checksums): {} cannot be verified. Save the preset again to add one.",
                config_path.display(),
                weights.display()
            );
            Ok(())
        }
        Some(serde_json::Value::String(expected)) => {
            let found = weights_checksum(&weights)?;
            if found.eq_ignore_ascii_case(expected.trim()) {
                Ok(())
            } else {
                Err(Gemma3Error::Checksum {
                    path: weights,
                    expected: expected.clone(),
                    found,
                })
            }
        }
        Some(other) => Err(Gemma3Error::Format {
            path: config_path,
            message: format!(
                "`burn_int8.weights_xxh3` should be a string of 16 hex digits, found {other}"
            ),
        }),
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, Gemma3Error> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Gemma3Error::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The int8 format of each layer (`burn_int8.formats`; a layer not listed, or a preset written
/// before formats existed, is Keras-exact).
fn read_formats(
    dir: &Path,
) -> Result<std::collections::BTreeMap<String, burn_int8::Int8Format>, Gemma3Error> {
    let path = dir.join(CONFIG_FILE);
    let value = read_json(&path)?;
    let Some(formats) = value.pointer("/burn_int8/formats") else {
        return Ok(Default::default());
    };
    let bad = |message: String| Gemma3Error::Preset(format!("{}: {message}", path.display()));
    let formats = formats
        .as_object()
        .ok_or_else(|| bad("`burn_int8.formats` is not an object".into()))?;
    formats
        .iter()
        .map(|(layer, format)| {
            let format = format
                .as_str()
                .ok_or_else(|| bad(format!("the format of `{layer}` is not a string")))?
                .parse()
                .map_err(|e| bad(format!("`{layer}`: {e}")))?;
            Ok((layer.clone(), format))
        })
        .collect()
}

fn read_precision(dir: &Path) -> Result<Precision, Gemma3Error> {
    let path = dir.join(CONFIG_FILE);
    let value = read_json(&path)?;
    match value
        .pointer("/burn_int8/precision")
        .and_then(|p| p.as_str())
    {
        Some("int8") => Ok(Precision::Int8),
        Some("float32") => Ok(Precision::Float32),
        Some(other) => Err(Gemma3Error::Preset(format!(
            "{}: unknown precision `{other}`",
            path.display()
        ))),
        None => Err(Gemma3Error::Preset(format!(
            "{}: not a burn-int8 preset (no `burn_int8.precision`)",
            path.display()
        ))),
    }
}

/// Writes the tokenizer into `dir` under its conventional file name.
pub(crate) fn write_tokenizer(tokenizer: &Tokenizer, dir: &Path) -> Result<(), Gemma3Error> {
    match tokenizer.vocab() {
        Some(vocab) => Ok(vocab.save_json(dir.join(VOCAB_FILE))?),
        None => tokenizer
            .inner()
            .save(dir.join(TOKENIZER_FILE), false)
            .map_err(|e| Gemma3Error::Preset(format!("writing {TOKENIZER_FILE}: {e}"))),
    }
}

/// Reads the tokenizer of a preset or HF directory: `tokenizer.json`, else the vocabulary file.
pub fn read_tokenizer(dir: &Path) -> Result<Tokenizer, Gemma3Error> {
    let hf = dir.join(TOKENIZER_FILE);
    let vocab = dir.join(VOCAB_FILE);
    if hf.is_file() {
        Ok(Tokenizer::from_hf_file(&hf)?)
    } else if vocab.is_file() {
        Ok(Tokenizer::from_vocab(
            burn_int8_tokenizer::Vocab::load_json(&vocab)?,
        )?)
    } else {
        Err(Gemma3Error::Preset(format!(
            "{} has no tokenizer ({TOKENIZER_FILE} or {VOCAB_FILE})",
            dir.display()
        )))
    }
}
