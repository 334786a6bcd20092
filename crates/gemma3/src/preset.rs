//! Presets: a directory with `config.json`, the tokenizer and the weights as one Burnpack
//! record, `model.bpk`, in which int8 weights stay 1 byte. Saving is atomic (a temporary
//! directory swapped into place) and records the xxh3-64 checksum of every file in
//! `checksums.json`; loading verifies them, so a flipped byte or an edit anywhere in the preset
//! (a `config.json` scalar such as `rms_norm_eps` included) is an error that names the file, and
//! checks every file and names what is wrong.
//!
//! A save never loses the preset it replaces. The new preset is written and synced in a
//! sibling `.NAME.tmp-PID`; on Linux one `renameat2(RENAME_EXCHANGE)` then swaps it with the old
//! one, so the path holds a complete preset, old or new, whenever the process dies. Elsewhere,
//! or on a filesystem without the exchange, two renames replace it (old to `.NAME.old-PID`, new
//! into place): a process killed between them leaves no preset at the path for a moment, and
//! the next save or load ([`recover_interrupted_save`]) moves the old copy back. Each save
//! first removes what dead saves left behind. [`SAVE_ABORT_AT_ENV`], [`SAVE_FAIL_AT_ENV`] and
//! [`SAVE_NO_EXCHANGE_ENV`] are the test hooks.

use std::io::Read;
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
/// The xxh3-64 checksum of every other file of a preset, written last by a save:
/// `{"algorithm": "xxh3-64", "files": {"config.json": "<16 hex digits>", ...}}`.
pub const CHECKSUMS_FILE: &str = "checksums.json";

/// Test hook: when this environment variable names the step a save has reached, the process
/// aborts there (`std::process::abort`), to test interrupted saves deterministically. Steps:
/// `filled` (the new preset written and synced, the old one untouched), `first-rename` (the
/// two-rename fallback only: the old preset moved aside, the new one not yet in place) and
/// `swapped` (the new preset in place, the old copy not yet removed). Not for production use.
pub const SAVE_ABORT_AT_ENV: &str = "BURN_INT8_SAVE_ABORT_AT";

/// Test hook: like [`SAVE_ABORT_AT_ENV`], but the save fails there with an error instead of
/// aborting the process, to test that a failed save cleans up after itself.
pub const SAVE_FAIL_AT_ENV: &str = "BURN_INT8_SAVE_FAIL_AT";

/// Test hook: set to anything but `0` or the empty string, saves replace an existing preset with
/// the two-rename fallback instead of the atomic exchange (Linux), as on filesystems without
/// `RENAME_EXCHANGE`.
pub const SAVE_NO_EXCHANGE_ENV: &str = "BURN_INT8_SAVE_NO_EXCHANGE";

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
    write_atomically(dir, overwrite, |tmp| {
        write_tokenizer(tokenizer, tmp)?;
        // The weights first: config.json records their checksum.
        let weights = tmp.join(WEIGHTS_FILE);
        store::save(model, &weights)?;
        let checksum = weights_checksum(&weights)?;
        config["burn_int8"] = serde_json::json!({ "precision": precision.name(), "weights": WEIGHTS_FILE, "weights_xxh3": checksum });
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| Gemma3Error::Preset(e.to_string()))?;
        let path = tmp.join(CONFIG_FILE);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        write_checksums(tmp)
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
    let skeleton = build_model::<B>(
        &config,
        &mut ZeroSource::new(&config),
        precision == Precision::Int8,
        device,
        |_| {},
    )?;
    let model = store::load_skeleton(skeleton, dir.join(WEIGHTS_FILE))?;
    Ok((model, tokenizer))
}

/// When `dir` is missing because a save replacing it was killed between the two renames of
/// the two-rename fallback (leaving `.NAME.old-PID` of a process that is gone),
/// moves that previous preset back to `dir`; true when it did. Loading ([`from_preset`],
/// [`crate::load_model`]) and saving call it.
pub fn recover_interrupted_save(dir: &Path) -> Result<bool, Gemma3Error> {
    if exists(dir) {
        return Ok(false);
    }
    let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(false);
    };
    let mut leftovers = dead_leftovers(dir, &name, false);
    restore_interrupted(dir, &mut leftovers.old)
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

/// Fills a temporary sibling of `dir` (`.NAME.tmp-PID`) with `fill`, syncs it, then puts it in
/// place of `dir`. An existing `dir` (a preset, another directory or a regular file) is
/// replaced only with `overwrite`, and only after the new one is complete. A failed `fill`
/// removes the temporary directory; nothing else is left behind.
///
/// Replacing is atomic on Linux: one `renameat2(RENAME_EXCHANGE)` swaps the two paths, so `dir`
/// always holds a complete preset, the old one or the new one, whenever the process dies; the
/// old one, now at the temporary path, is removed after. Where the exchange is not available
/// (other systems, or a filesystem that answers `EINVAL`/`ENOSYS`/`EOPNOTSUPP`) `dir` is
/// replaced with two renames, `dir` to `.NAME.old-PID` and the temporary directory to `dir`: a
/// process killed between the two leaves no `dir`, only `.NAME.old-PID` (and a complete
/// `.NAME.tmp-PID`). The next save (or [`from_preset`]) of `dir` recovers: it moves the old
/// copy back to `dir` first.
///
/// Each save starts by cleaning up after earlier ones: `.NAME.tmp-PID` and `.NAME.old-PID`
/// siblings whose process is gone (on Linux, no `/proc/PID`; elsewhere, only this process's
/// own pid counts as gone) are removed, after the recovery above. Two processes saving the same
/// path at once leave one complete preset there (one of the saves may fail); two threads of
/// one process must not save the same path at once.
///
/// Test hooks: [`SAVE_ABORT_AT_ENV`] aborts the process at a named step, and
/// [`SAVE_NO_EXCHANGE_ENV`] forces the two-rename fallback.
pub(crate) fn write_atomically(
    dir: &Path,
    overwrite: bool,
    fill: impl FnOnce(&Path) -> Result<(), Gemma3Error>,
) -> Result<(), Gemma3Error> {
    let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(Gemma3Error::Preset(format!(
            "{}: not a directory name to save to",
            dir.display()
        )));
    };
    let parent = parent_of(dir);
    if !parent.is_dir() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }

    // Recovery and cleanup after earlier saves that were killed.
    let mut leftovers = dead_leftovers(dir, &name, true);
    restore_interrupted(dir, &mut leftovers.old)?;
    for path in leftovers.tmp.iter().chain(&leftovers.old) {
        match remove_any(path) {
            Ok(()) => tracing::info!("removed {}, left by an interrupted save", path.display()),
            Err(e) => tracing::warn!(
                "could not remove {}, left by an interrupted save: {e}",
                path.display()
            ),
        }
    }

    if exists(dir) && !overwrite {
        return Err(Gemma3Error::Preset(format!(
            "{} exists; pass overwrite to replace it",
            dir.display()
        )));
    }
    let sibling = |tag: &str| -> PathBuf {
        dir.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
    };
    let tmp = sibling("tmp");
    let _ = remove_any(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
    let result = fill(&tmp).and_then(|()| {
        sync_contents(&tmp)?;
        abort_at("filled")?;
        if exists(dir) {
            replace(dir, &tmp, &sibling("old"))
        } else {
            std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
            sync_dir(parent);
            abort_at("swapped")?;
            Ok(())
        }
    });
    if result.is_err() {
        let _ = remove_any(&tmp);
    }
    result
}

/// Puts the complete `tmp` in place of the existing `dir`: one exchange where available, else
/// two renames through `old`. Once the new preset is in place, the old one is removed (a
/// failure to remove it is only a warning: the next save removes it).
fn replace(dir: &Path, tmp: &Path, old: &Path) -> Result<(), Gemma3Error> {
    if exchange(tmp, dir)? {
        sync_dir(parent_of(dir));
        abort_at("swapped")?;
        // `tmp` now holds the old preset (or the regular file that was at `dir`).
        if let Err(e) = remove_any(tmp) {
            tracing::warn!(
                "could not remove the previous {} (now {}): {e}",
                dir.display(),
                tmp.display()
            );
        }
        return Ok(());
    }
    std::fs::rename(dir, old).map_err(|e| io(dir, e))?;
    abort_at("first-rename")?;
    if let Err(e) = std::fs::rename(tmp, dir) {
        if let Err(back) = std::fs::rename(old, dir) {
            tracing::warn!(
                "could not move {} back to {}: {back}; the next save or load of {} restores it",
                old.display(),
                dir.display(),
                dir.display()
            );
        }
        return Err(io(dir, e));
    }
    sync_dir(parent_of(dir));
    abort_at("swapped")?;
    if let Err(e) = remove_any(old) {
        tracing::warn!(
            "could not remove the previous {} (now {}): {e}",
            dir.display(),
            old.display()
        );
    }
    Ok(())
}

/// Swaps `tmp` and `dir` atomically with `renameat2(RENAME_EXCHANGE)`. `Ok(false)`: not
/// supported here (or disabled with [`SAVE_NO_EXCHANGE_ENV`]), nothing was changed.
#[cfg(target_os = "linux")]
fn exchange(tmp: &Path, dir: &Path) -> Result<bool, Gemma3Error> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    if env_flag(SAVE_NO_EXCHANGE_ENV) {
        return Ok(false);
    }
    let c_path = |path: &Path| {
        CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            Gemma3Error::Preset(format!("{}: the path contains a NUL byte", path.display()))
        })
    };
    let (from, to) = (c_path(tmp)?, c_path(dir)?);
    // SAFETY: both pointers are NUL-terminated strings that live until the call returns;
    // renameat2 reads nothing else.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
            tracing::debug!(
                "renameat2(RENAME_EXCHANGE) is not supported for {} ({error}): replacing it with two renames",
                dir.display()
            );
            Ok(false)
        }
        _ => Err(io(dir, error)),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_tmp: &Path, _dir: &Path) -> Result<bool, Gemma3Error> {
    Ok(false)
}

/// The test hooks of [`SAVE_ABORT_AT_ENV`] and [`SAVE_FAIL_AT_ENV`].
fn abort_at(step: &str) -> Result<(), Gemma3Error> {
    if std::env::var(SAVE_ABORT_AT_ENV).is_ok_and(|at| at == step) {
        eprintln!("{SAVE_ABORT_AT_ENV}={step}: aborting the save here (test hook)");
        std::process::abort();
    }
    if std::env::var(SAVE_FAIL_AT_ENV).is_ok_and(|at| at == step) {
        return Err(Gemma3Error::Preset(format!(
            "{SAVE_FAIL_AT_ENV}={step}: the save fails here (test hook)"
        )));
    }
    Ok(())
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.is_empty() && value != "0")
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Whether anything (a directory, a file, a link, even a dangling one) is at `path`.
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Removes whatever is at `path`: a directory with its contents, a file or a link (not its
/// target). Nothing there is not an error.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Syncs every file of the filled temporary directory, then the directory itself.
fn sync_contents(tmp: &Path) -> Result<(), Gemma3Error> {
    for entry in std::fs::read_dir(tmp).map_err(|e| io(tmp, e))? {
        let path = entry.map_err(|e| io(tmp, e))?.path();
        if path.is_dir() {
            sync_dir(&path);
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&path, e))?;
        }
    }
    sync_dir(tmp);
    Ok(())
}

/// Syncs a directory's entries (renames into it) where the system allows it; best effort.
fn sync_dir(path: &Path) {
    if cfg!(unix) {
        let _ = std::fs::File::open(path).and_then(|f| f.sync_all());
    }
}

/// `.NAME.tmp-PID` and `.NAME.old-PID` siblings of a save of `dir` whose process is gone.
#[derive(Default)]
struct Leftovers {
    tmp: Vec<PathBuf>,
    old: Vec<PathBuf>,
}

/// The leftovers of earlier saves of `dir` (named `name`) by processes that no longer run; with
/// `own`, this process's own pid counts as gone (a save about to reuse those names).
fn dead_leftovers(dir: &Path, name: &str, own: bool) -> Leftovers {
    let mut found = Leftovers::default();
    let Ok(entries) = std::fs::read_dir(parent_of(dir)) else {
        return found;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some((old, pid)) = file_name.to_str().and_then(|f| leftover_of(f, name)) else {
            continue;
        };
        let gone = if pid == me { own } else { !process_alive(pid) };
        if gone {
            if old {
                found.old.push(entry.path())
            } else {
                found.tmp.push(entry.path())
            }
        }
    }
    found
}

/// `.NAME.tmp-PID` is `Some((false, PID))`, `.NAME.old-PID` is `Some((true, PID))`.
fn leftover_of(file_name: &str, name: &str) -> Option<(bool, u32)> {
    let rest = file_name
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix('.')?;
    let (old, pid) = match rest.strip_prefix("tmp-") {
        Some(pid) => (false, pid),
        None => (true, rest.strip_prefix("old-")?),
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((old, pid.parse().ok()?))
}

/// Whether process `pid` runs (or may run: without `/proc`, every other pid counts as alive).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// When `dir` is missing and a dead save left its old copy aside (`.NAME.old-PID`: killed
/// between the two renames of the fallback), moves the newest such copy back to `dir`.
fn restore_interrupted(dir: &Path, old: &mut Vec<PathBuf>) -> Result<bool, Gemma3Error> {
    if exists(dir) || old.is_empty() {
        return Ok(false);
    }
    old.sort_by_key(|path| {
        std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
    });
    let Some(newest) = old.pop() else {
        return Ok(false);
    };
    std::fs::rename(&newest, dir).map_err(|e| io(&newest, e))?;
    sync_dir(parent_of(dir));
    tracing::warn!(
        "{} was missing (a save replacing it was interrupted): restored the previous copy from {}",
        dir.display(),
        newest.display()
    );
    Ok(true)
}
