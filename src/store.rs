//! Saving and loading models as Burnpack records (burn-store), int8 kept as 1 byte per weight.
//!
//! - Saves are atomic: the record is written to a temporary file next to the target, synced,
//!   then renamed over it, so an interrupted save never damages an existing file.
//! - Loads go into a copy of the model that replaces it only on success: a truncated, foreign
//!   or wrong-precision record leaves the model as it was.
//! - An int8 record needs an int8 model: quantize the freshly built model first (as Keras
//!   does when loading a quantized `.keras` file), then load. Mixing precisions is a typed
//!   [`Int8Error::PrecisionMismatch`].

use std::collections::HashSet;
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{BurnpackStore, KeyRemapper, ModuleSnapshot, ModuleStore, TensorSnapshot};

use crate::Int8Error;
use crate::record_header::{self, ExpectedTensor};

/// Writes `model` to `path` (a `.bpk` Burnpack file) atomically; returns the file size.
pub fn save<B: Backend, M: Module<B>>(model: &M, path: impl AsRef<Path>) -> Result<u64, Int8Error> {
    let path = path.as_ref();
    crate::io::atomic::write_file(path, |temp| {
        let mut store = BurnpackStore::from_file(temp)
            .auto_extension(false)
            .overwrite(true);
        model.save_into(&mut store).map_err(|e| Int8Error::Record {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    })?;
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| io(path, source))
}

/// Loads the record at `path` into `model`, which must have the same structure and precision.
pub fn load<B: Backend, M: Module<B>>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<(), Int8Error> {
    *model = load_skeleton(model.clone(), path)?;
    Ok(())
}

/// [`load`] into a model built only to receive the record (a skeleton): it is consumed, so
/// each of its tensors is freed as the record's replaces it, instead of living on as a backup
/// until the end. Peak memory is then about the model plus the file, not twice the model.
/// The model comes back only when every tensor fitted.
pub fn load_skeleton<B: Backend, M: Module<B>>(
    mut candidate: M,
    path: impl AsRef<Path>,
) -> Result<M, Int8Error> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such record file"),
        ));
    }
    let record_error = |message: String| Int8Error::Record {
        path: path.to_path_buf(),
        message,
    };
    // Missing and misfitting tensors come back in the result (not as burn-store's error, which
    // lists every name: megabytes for a foreign record) and are summarized below.
    let open = || {
        BurnpackStore::from_file(path)
            .auto_extension(false)
            .allow_partial(true)
            .validate(false)
    };
    let mut store = open();
    let file_keys = store.keys().map_err(|e| record_error(e.to_string()))?;
    let snapshots = candidate.collect(None, None, false);
    let model_keys: Vec<String> = snapshots.iter().map(|s| s.full_path()).collect();
    let renames = legacy_renames(&file_keys, &model_keys);
    if !renames.is_empty() {
        tracing::debug!(path = %path.display(), tensors = renames.len(), "reading a record saved before Int8Weight");
        let patterns = renames
            .iter()
            .map(|(old, new)| (format!("^{}$", escape(old)), new.clone()));
        // A fresh store: the first one has cached its tensor table under the old names.
        store = open().remap(
            KeyRemapper::from_pattern_iter(patterns).map_err(|e| record_error(e.to_string()))?,
        );
    }
    let file_keys: Vec<String> = file_keys
        .into_iter()
        .map(|key| renamed(&renames, key))
        .collect();
    check_precision(path, &file_keys, &model_keys)?;
    check_tensor_table(path, snapshots, &renames)?;

    let result = candidate
        .load_from(&mut store)
        .map_err(|e| record_error(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(record_error(summarize(
            "tensor(s) do not fit the model",
            &result.errors,
        )));
    }
    if !result.missing.is_empty() || !result.unused.is_empty() {
        let missing: Vec<_> = result
            .missing
            .iter()
            .map(|(path, _)| path.as_str())
            .collect();
        return Err(record_error(format!(
            "not a record of this model: {}; {}",
            summarize("missing tensor(s)", &missing),
            summarize("unexpected tensor(s)", &result.unused)
        )));
    }
    // Int8 weights re-lay their values as they load them (`Int8Weight`'s load mapper), so there
    // is nothing left to do here.
    Ok(candidate)
}

/// Every tensor the model takes must have its dtype, its shape and exactly its bytes in the
/// file before burn-store reads it (`record_header`: backends trust those bytes).
fn check_tensor_table(
    path: &Path,
    model: Vec<TensorSnapshot>,
    renames: &[(String, String)],
) -> Result<(), Int8Error> {
    // Keyed by the file's names: a legacy record's tensors under their old ones.
    let expected = model
        .into_iter()
        .map(|s| {
            let key = s.full_path();
            let key = renames
                .iter()
                .find(|(_, new)| *new == key)
                .map_or(key, |(old, _)| old.clone());
            (
                key,
                ExpectedTensor {
                    dtype: s.dtype,
                    shape: s.shape.to_vec(),
                },
            )
        })
        .collect();
    let record_error = |message: String| Int8Error::Record {
        path: path.to_path_buf(),
        message,
    };
    let problems = record_header::mismatches(path, &expected).map_err(record_error)?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(record_error(summarize_lines(
        "tensor(s) do not fit the model",
        &problems,
    )))
}

/// Records saved before [`crate::Int8Weight`] name an int8 weight `P.weight` and its scale
/// `P.weight_scale`; the layers now hold `P.weight.values` and `P.weight.scale`. Where the
/// file has the old pair and the model the new one, the old names are read as the new:
/// `(old, new)` for each such tensor. Nothing else is renamed.
fn legacy_renames(file_keys: &[String], model_keys: &[String]) -> Vec<(String, String)> {
    let file: HashSet<&str> = file_keys.iter().map(String::as_str).collect();
    let model: HashSet<&str> = model_keys.iter().map(String::as_str).collect();
    let mut renames = Vec::new();
    for key in file_keys {
        let Some(prefix) = key.strip_suffix("weight_scale") else {
            continue;
        };
        if !(prefix.is_empty() || prefix.ends_with('.')) {
            continue;
        }
        let (old_values, values, scale) = (
            format!("{prefix}weight"),
            format!("{prefix}weight.values"),
            format!("{prefix}weight.scale"),
        );
        if file.contains(old_values.as_str())
            && !file.contains(values.as_str())
            && model.contains(values.as_str())
            && model.contains(scale.as_str())
        {
            renames.push((old_values, values));
            renames.push((key.clone(), scale));
        }
    }
    renames
}

fn renamed(renames: &[(String, String)], key: String) -> String {
    renames
        .iter()
        .find(|(old, _)| *old == key)
        .map_or(key, |(_, new)| new.clone())
}

/// `key` as a regex matching itself: tensor paths are words joined by dots.
fn escape(key: &str) -> String {
    key.chars().fold(String::new(), |mut out, c| {
        if !(c.is_ascii_alphanumeric() || c == '_') {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// Names the precision problem before touching the model: int8 layers are stored under an
/// `Int8` enum variant, float ones under `Float`.
fn check_precision(
    path: &Path,
    file_keys: &[String],
    model_keys: &[String],
) -> Result<(), Int8Error> {
    let mismatch = |found, expected, example: &str, hint| Int8Error::PrecisionMismatch {
        path: path.to_path_buf(),
        found,
        expected,
        example: example.to_string(),
        hint,
    };
    for key in file_keys.iter().filter(|key| !model_keys.contains(key)) {
        if model_keys.contains(&key.replacen(".Int8.", ".Float.", 1)) {
            return Err(mismatch(
                "int8",
                "float",
                key,
                "quantize the model (`quantize_int8`) before loading",
            ));
        }
        if model_keys.contains(&key.replacen(".Float.", ".Int8.", 1)) {
            return Err(mismatch(
                "float",
                "int8",
                key,
                "load it into a float model, then quantize",
            ));
        }
    }
    Ok(())
}

/// `N what: first, ..., tenth ... and M more`, so a wholly foreign record gives a short message.
fn summarize<T: std::fmt::Debug>(what: &str, items: &[T]) -> String {
    summarize_lines(
        what,
        &items
            .iter()
            .map(|item| format!("{item:?}"))
            .collect::<Vec<_>>(),
    )
}

fn summarize_lines(what: &str, items: &[String]) -> String {
    const SHOWN: usize = 10;
    let shown: Vec<&str> = items.iter().take(SHOWN).map(String::as_str).collect();
    let more = items.len().saturating_sub(SHOWN);
    let tail = if more > 0 {
        format!(" ... and {more} more")
    } else {
        String::new()
    };
    format!("{} {what}: {}{tail}", items.len(), shown.join(", "))
}

fn io(path: &Path, source: std::io::Error) -> Int8Error {
    Int8Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
