//! Saving and loading models as Burnpack records (burn-store), int8 kept as 1 byte per weight.
//!
//! - Saves are atomic: the record is written to a temporary file next to the target, synced,
//!   then renamed over it, so an interrupted save never damages an existing file.
//! - Loads go into a copy of the model that replaces it only on success: a truncated, foreign
//!   or wrong-precision record leaves the model as it was.
//! - An int8 record needs an int8 model: quantize the freshly built model first (as Keras
//!   does when loading a quantized `.keras` file), then load. Mixing precisions is a typed
//!   [`Int8Error::PrecisionMismatch`].

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{BurnpackStore, ModuleSnapshot, TensorSnapshot};

use super::burnpack_header::{ExpectedTensor, TensorTable};
use super::record;
use crate::Int8Error;

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
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .allow_partial(true)
        .validate(false);
    // The tensor table, read once here: backends trust its byte ranges (`burnpack_header`).
    let mut table = TensorTable::read(path).map_err(|e| record_error(e.to_string()))?;
    let snapshots = candidate.collect(None, None, false);
    let model_keys: Vec<String> = snapshots.iter().map(|s| s.full_path()).collect();
    if reads_legacy_float_names(&table, &model_keys) {
        // A float record written while the swappable layers were enums (`a.Float.weight`):
        // read under today's names, which are Burn's (`a.weight`).
        table.tensors = std::mem::take(&mut table.tensors)
            .into_iter()
            .map(|(key, entry)| (record::legacy_float_as_current(&key).unwrap_or(key), entry))
            .collect();
        store = store.with_remap_pattern(format!(r"(^|\.){}\.", record::LEGACY_FLOAT), "${1}");
    }
    let file_keys: Vec<String> = table.tensors.keys().cloned().collect();
    check_precision(path, &file_keys, &model_keys)?;
    check_tensor_table(path, &table, snapshots)?;

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
/// file before burn-store reads it.
fn check_tensor_table(
    path: &Path,
    table: &TensorTable,
    model: Vec<TensorSnapshot>,
) -> Result<(), Int8Error> {
    let expected = model
        .into_iter()
        .map(|s| {
            let tensor = ExpectedTensor {
                dtype: s.dtype,
                shape: s.shape.to_vec(),
            };
            (s.full_path(), tensor)
        })
        .collect();
    let problems = table.mismatches(&expected);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Int8Error::Record {
        path: path.to_path_buf(),
        message: summarize_lines("tensor(s) do not fit the model", &problems),
    })
}

/// True when the record names float layers' tensors as before they had Burn's names
/// (`a.Float.weight` where the model has `a.weight`).
fn reads_legacy_float_names(table: &TensorTable, model_keys: &[String]) -> bool {
    table.tensors.keys().any(|key| {
        !model_keys.contains(key)
            && record::legacy_float_as_current(key)
                .is_some_and(|current| model_keys.contains(&current))
    })
}

/// Names the precision problem before touching the model: int8 layers' tensors are under an
/// `Int8` segment, float ones under Burn's names ([`record`]).
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
    let in_model = |key: Option<String>| key.is_some_and(|key| model_keys.contains(&key));
    for key in file_keys.iter().filter(|key| !model_keys.contains(key)) {
        if in_model(record::int8_as_float(key)) {
            return Err(mismatch(
                "int8",
                "float",
                key,
                "quantize the model (`quantize_int8`) before loading",
            ));
        }
        if in_model(record::float_as_int8(key)) {
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
