//! The fuzz harnesses: one plain function per target, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/<target>.rs`) and the stable seeded mutation test
//! (`crates/gemma3/tests/mutation_corpus.rs`), which both include this file with
//! `#[path = "..."] mod harness;`. It uses only crates that `burn-int8-gemma3` depends on
//! (`burn` and `burn-int8-gemma3`, with the GGUF reader and the tokenizer through its
//! re-exports), so the test needs no extra dev-dependency.
//!
//! Every function takes arbitrary bytes and returns whether the input was accepted all the way
//! (parsed, or loaded and run); the mutation test uses that to check that its seeds still reach
//! past the parsers. Errors are the expected outcome of most inputs and are only formatted
//! (their `Display` runs too). A panic, a hang or unbounded memory is a bug; so is a broken
//! documented invariant, which the functions assert (each assert names the documentation it
//! checks).
//!
//! Inputs that name files are written to a scratch directory under the system temp dir, one per
//! process and thread (`burn-int8-fuzz-PID-THREAD/TARGET`), overwritten by the next input:
//! the loaders only read from paths.
//!
//! Input layouts:
//! - `gguf_reader`, `gguf_model`: a GGUF file.
//! - `hf_loader`: `[u16 LE n][n bytes of config.json][model.safetensors]` (a short input is
//!   cut where it ends); the directory also gets the fixed `tokenizer.vocab.json`.
//! - `preset_loader`: `[u16 LE n][n bytes of config.json][model.bpk]`, plus the same vocabulary.
//! - `gemma3_config`: a `config.json` text (invalid UTF-8 replaced by U+FFFD).
//! - `tokenizer`: a mode byte, then: mode 0 (mod 3) a `tokenizer.vocab.json`; mode 1 text for
//!   the fixed vocabulary `fixtures/tokenizer.vocab.json` (every byte token, so any text
//!   encodes); mode 2 a HF `tokenizer.json`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn_int8_gemma3::gguf::{Array, GgmlType, GgufFile, Value};
use burn_int8_gemma3::preset::{self, PresetOptions};
use burn_int8_gemma3::tokenizer::{TokenType, Tokenizer, Vocab};
use burn_int8_gemma3::{self as gemma3, Gemma3, Gemma3Config, Sampler};

/// The backend every model target runs on: the lightest CPU one.
pub type Backend = burn::backend::NdArray;

/// The 32-token vocabulary of every seed model (`fuzz/make_seeds.py`).
pub const LOADER_VOCAB: &[u8] = include_bytes!("fixtures/loader.vocab.json");
/// Every byte token plus a few merges: any text encodes without the unknown token.
pub const ROUND_TRIP_VOCAB: &[u8] = include_bytes!("fixtures/tokenizer.vocab.json");

/// A tensor above this many values is not dequantized (bounds the work per input).
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 16;
/// Nor more than this many values in all, per input.
pub const MAX_TOTAL_ELEMENTS: u64 = 1 << 20;
/// Tokens generated from a loaded model (BOS and prompt included).
pub const GENERATE_LENGTH: usize = 8;

/// Text for every loaded tokenizer: spaces, user-defined and control pieces, bytes, emoji.
const SAMPLE_TEXT: &str = "Hello world, ab abc  the\n\t\tcd \u{e9}\u{20ac}\u{1F600} <bos><start_of_turn>user\nhi<end_of_turn>\u{2581}x\u{FFFD}";

// ------------------------------------------------------------------------------- scratch

/// This process's and thread's scratch directory (the mutation test runs targets on threads).
fn scratch_root() -> PathBuf {
    let thread: String = format!("{:?}", std::thread::current().id())
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    std::env::temp_dir().join(format!("burn-int8-fuzz-{}-{thread}", std::process::id()))
}

fn scratch_dir(target: &str) -> PathBuf {
    let dir = scratch_root().join(target);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating the scratch directory {}: {e}", dir.display()));
    dir
}

/// Removes this thread's scratch directory (the mutation test calls it when done).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch_root());
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// `[u16 LE n][n bytes][rest]` as (the n bytes, the rest); a short input is cut where it ends.
fn split_json(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    Some(rest.split_at(len))
}

thread_local! {
    /// The message of the last error [`refused`] saw on this thread.
    static LAST_REFUSAL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Formats an expected error (runs its `Display`) and reports the input as refused.
fn refused(error: impl std::fmt::Display) -> bool {
    let message = error.to_string();
    LAST_REFUSAL.with(|last| *last.borrow_mut() = message);
    false
}

/// Takes the message of the last error a harness function met on this thread (the mutation
/// test prints it for a seed that is not accepted whole).
pub fn take_last_refusal() -> String {
    LAST_REFUSAL.with(|last| std::mem::take(&mut *last.borrow_mut()))
}

// ----------------------------------------------------------------------------------- GGUF

/// Opens the bytes as a GGUF file, touches every metadata value through every getter, and
/// dequantizes every tensor of at most [`MAX_TENSOR_ELEMENTS`] values, through the reader and
/// directly through `gguf::dequant`. True when the file opened and every tensor was read.
pub fn gguf_reader(data: &[u8]) -> bool {
    let path = scratch_dir("gguf_reader").join("input.gguf");
    write_file(&path, data);
    let file = match GgufFile::open(&path) {
        Ok(file) => file,
        Err(e) => return refused(e),
    };
    assert_eq!(file.path(), path.as_path());
    assert_eq!(file.file_len(), data.len() as u64);
    assert!(
        matches!(file.version(), 2 | 3),
        "version {}",
        file.version()
    );
    assert!(
        file.alignment().is_power_of_two() && file.data_offset().is_multiple_of(file.alignment())
    );

    for (key, value) in file.metadata() {
        check_metadata(&file, key, value);
    }

    let mut budget = MAX_TOTAL_ELEMENTS;
    let mut all_read = true;
    let infos: Vec<_> = file.tensors().cloned().collect();
    assert_eq!(infos.len(), file.tensor_count());
    for info in &infos {
        // Duplicate names are refused at open, so the index finds this very info.
        assert_eq!(file.tensor_info(&info.name), Some(info));
        let ty = info.ggml_type;
        assert_eq!(GgmlType::from_id(ty.id()), Some(ty));
        let _ = (ty.name(), ty.to_string());
        let (block, type_size) = (ty.block_size() as u64, ty.type_size() as u64);
        // Validated at open (`checked_sizes`): no overflow, whole blocks per row, data in the file.
        let n = info.n_elements();
        assert_eq!(
            info.n_rows().checked_mul(info.row_len()),
            Some(n),
            "{info:?}"
        );
        assert_eq!(info.byte_size(), n / block * type_size, "{info:?}");
        let end = file
            .data_offset()
            .checked_add(info.offset)
            .and_then(|start| start.checked_add(info.byte_size()));
        assert!(
            end.is_some_and(|end| end <= file.file_len()),
            "{info:?} ends past the file"
        );
        assert_eq!(info.shape_row_major().len(), info.dims.len());
        if n > MAX_TENSOR_ELEMENTS || n > budget {
            all_read = refused(format!(
                "tensor '{}': {n} values, more than this harness dequantizes",
                info.name
            ));
            continue;
        }
        budget -= n;

        let raw = file
            .read_raw(&info.name)
            .unwrap_or_else(|e| panic!("read_raw of '{}', validated at open: {e}", info.name));
        assert_eq!(raw.len() as u64, info.byte_size());
        let Some(dequant) = gguf_dequantizer(ty) else {
            assert!(
                !ty.can_dequantize(),
                "{ty} has no dequantizer but says it can dequantize"
            );
            assert!(
                file.read_f32(&info.name).is_err(),
                "read_f32 of unsupported {ty}"
            );
            all_read = refused(format!(
                "tensor '{}': {ty} cannot be dequantized",
                info.name
            ));
            continue;
        };
        assert!(
            ty.can_dequantize(),
            "{ty} has a dequantizer but says it cannot dequantize"
        );
        let values = file.read_f32(&info.name).unwrap_or_else(|e| {
            panic!("read_f32 of '{}' ({ty}), validated at open: {e}", info.name)
        });
        assert_eq!(values.len() as u64, n);
        // The reader dequantizes chunk by chunk with the same function: same bits.
        let mut direct = vec![0.0f32; values.len()];
        dequant(&raw, &mut direct);
        assert_same_bits(&values, &direct, &info.name);
        // "They never panic": mismatched lengths convert min(src blocks, dst blocks) blocks.
        dequant(&raw[..raw.len() / 2], &mut direct);
        dequant(&raw[..raw.len().saturating_sub(1)], &mut direct);
        let half = direct.len() / 2;
        dequant(&raw, &mut direct[..half]);

        // At most 2^16 values, but a row of 0 values allows (almost) any number of rows.
        let n_rows =
            usize::try_from(info.n_rows()).expect("a u64 row count fits usize on 64-bit targets");
        let row_len = usize::try_from(info.row_len()).expect("a row of at most 2^16 values");
        if n_rows > 0 {
            let last = file
                .read_f32_rows(&info.name, n_rows - 1..n_rows)
                .unwrap_or_else(|e| panic!("last row of '{}': {e}", info.name));
            assert_same_bits(&values[(n_rows - 1) * row_len..], &last, &info.name);
        }
        if let Some(past) = n_rows.checked_add(1) {
            assert!(
                file.read_f32_rows(&info.name, n_rows..past).is_err(),
                "a row past the end of '{}'",
                info.name
            );
        }
        let mut wrong = vec![0.0f32; values.len() + 1];
        assert!(
            file.read_f32_rows_into(&info.name, 0..n_rows, &mut wrong)
                .is_err(),
            "a buffer of the wrong size for '{}'",
            info.name
        );
    }
    all_read
}

fn gguf_dequantizer(ty: GgmlType) -> Option<burn_int8_gemma3::gguf::dequant::DequantFn> {
    burn_int8_gemma3::gguf::dequant::dequantizer(ty)
}

fn assert_same_bits(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
        panic!("{what}: value {i} differs: {} vs {}", a[i], b[i]);
    }
}

/// Every getter on one key, against what the value is (the getters' documented contracts).
fn check_metadata(file: &GgufFile, key: &str, value: &Value) {
    // Duplicate keys are refused at open: `get` finds this very value.
    assert!(
        file.get(key).is_some_and(|v| std::ptr::eq(v, value)),
        "get({key:?})"
    );
    let _ = (
        value.value_type().name(),
        value.type_description(),
        value.to_string(),
        value.as_str(),
    );
    if let Some(array) = value.as_array() {
        touch_array(array);
    }
    // "An integer key (of any GGUF integer type) as u32/u64/i64, range-checked."
    let integer = value.as_integer();
    assert_eq!(
        file.get_u32(key).ok(),
        integer.and_then(|i| u32::try_from(i).ok()),
        "get_u32({key:?})"
    );
    assert_eq!(
        file.get_u64(key).ok(),
        integer.and_then(|i| u64::try_from(i).ok()),
        "get_u64({key:?})"
    );
    assert_eq!(
        file.get_i64(key).ok(),
        integer.and_then(|i| i64::try_from(i).ok()),
        "get_i64({key:?})"
    );
    assert_eq!(
        file.get_f32(key).is_ok(),
        matches!(value, Value::F32(_)),
        "get_f32({key:?})"
    );
    assert_eq!(
        file.get_bool(key).is_ok(),
        matches!(value, Value::Bool(_)),
        "get_bool({key:?})"
    );
    assert_eq!(
        file.get_str(key).is_ok(),
        matches!(value, Value::String(_)),
        "get_str({key:?})"
    );
    assert_eq!(
        file.get_string_array(key).is_ok(),
        matches!(value, Value::Array(Array::String(_))),
        "get_string_array({key:?})"
    );
    assert_eq!(
        file.get_f32_array(key).is_ok(),
        matches!(value, Value::Array(Array::F32(_))),
        "get_f32_array({key:?})"
    );
    // An integer array whose every element fits i32.
    let i32_array = match value {
        Value::Array(a) if a.is_integer() => {
            (0..a.len()).all(|i| a.integer_at(i).is_some_and(|x| i32::try_from(x).is_ok()))
        }
        _ => false,
    };
    match file.get_i32_array(key) {
        Ok(got) => {
            assert!(
                i32_array,
                "get_i32_array({key:?}) accepted {}",
                value.type_description()
            );
            assert_eq!(got.len(), value.as_array().map_or(0, Array::len));
        }
        Err(e) => {
            assert!(
                !i32_array,
                "get_i32_array({key:?}) refused an i32-range integer array: {e}"
            );
        }
    }
}

/// Nested arrays are at most 8 deep (the reader refuses deeper ones).
fn touch_array(array: &Array) {
    let n = array.len();
    assert_eq!(array.is_empty(), n == 0);
    let _ = (array.elem_type().name(), array.type_description());
    assert_eq!(array.integer_at(n), None, "integer_at past the end");
    if array.is_integer() {
        assert!((0..n.min(64)).all(|i| array.integer_at(i).is_some()));
    } else {
        assert_eq!(
            array.integer_at(0),
            None,
            "integer_at on {}",
            array.type_description()
        );
    }
    if let Array::Array(items) = array {
        for item in items.iter().take(64) {
            touch_array(item);
        }
    }
}

// --------------------------------------------------------------------------------- models

/// Loads the bytes as a GGUF model (`load_model_with`: metadata config, tokenizer, tensors by
/// name, dequantized), generates a few tokens, then does both again with int8.
pub fn gguf_model(data: &[u8]) -> bool {
    let path = scratch_dir("gguf_model").join("model.gguf");
    write_file(&path, data);
    load_float_then_int8(&path)
}

/// Loads `[u16 LE n][config.json][model.safetensors]` as an HF directory (with the fixed
/// vocabulary), generates a few tokens, then does both again with int8.
pub fn hf_loader(data: &[u8]) -> bool {
    let Some((config, weights)) = split_json(data) else {
        return false;
    };
    let dir = scratch_dir("hf_loader");
    write_file(&dir.join("config.json"), config);
    write_file(&dir.join("model.safetensors"), weights);
    write_file(&dir.join(preset::VOCAB_FILE), LOADER_VOCAB);
    load_float_then_int8(&dir)
}

/// Loads `[u16 LE n][config.json][model.bpk]` (with the fixed vocabulary) as a preset without
/// the checksum (so the record parsing is what gets fuzzed), generates a few tokens; then
/// through `load_model_with` with int8 (a float preset is quantized after loading).
pub fn preset_loader(data: &[u8]) -> bool {
    let Some((config, record)) = split_json(data) else {
        return false;
    };
    let dir = scratch_dir("preset_loader");
    write_file(&dir.join(preset::CONFIG_FILE), config);
    write_file(&dir.join(preset::WEIGHTS_FILE), record);
    write_file(&dir.join(preset::VOCAB_FILE), LOADER_VOCAB);
    assert!(
        preset::is_preset(&dir),
        "a directory with {} is a preset",
        preset::WEIGHTS_FILE
    );
    let options = PresetOptions {
        verify_checksum: false,
    };
    let device = Default::default();
    let (model, tokenizer) = match preset::from_preset_with::<Backend>(&dir, &device, options) {
        Ok(loaded) => loaded,
        Err(e) => return refused(e),
    };
    check_loaded(&model, &tokenizer);
    generate_a_little(&model, &tokenizer);
    drop(model);
    match gemma3::load_model_with::<Backend>(&dir, true, options, &device, |_| {}) {
        Ok((model, tokenizer)) => {
            assert!(
                model.is_quantized(),
                "load_model_with(int8) of a preset gave a float model"
            );
            check_loaded(&model, &tokenizer);
            generate_a_little(&model, &tokenizer);
        }
        Err(e) => {
            let _ = refused(e);
        }
    }
    true
}

/// `load_model_with` float (the model must come back float), then int8 (quantized while
/// loading) when the float load worked; a short generation from each.
fn load_float_then_int8(path: &Path) -> bool {
    let options = PresetOptions {
        verify_checksum: false,
    };
    let device = Default::default();
    let (model, tokenizer) =
        match gemma3::load_model_with::<Backend>(path, false, options, &device, |_| {}) {
            Ok(loaded) => loaded,
            Err(e) => return refused(e),
        };
    assert!(!model.is_quantized(), "a float load gave int8 weights");
    check_loaded(&model, &tokenizer);
    generate_a_little(&model, &tokenizer);
    drop(model);
    match gemma3::load_model_with::<Backend>(path, true, options, &device, |_| {}) {
        Ok((model, tokenizer)) => {
            assert!(model.is_quantized(), "an int8 load gave a float model");
            check_loaded(&model, &tokenizer);
            generate_a_little(&model, &tokenizer);
        }
        Err(e) => {
            let _ = refused(e);
        }
    }
    true
}

/// What every loader promises of a model it returns.
fn check_loaded(model: &Gemma3<Backend>, tokenizer: &Tokenizer) {
    // Configs are validated before anything is built.
    if let Err(e) = model.config.validate() {
        panic!("a loaded model has an invalid config: {e}");
    }
    assert_eq!(
        model.embed_tokens.vocab_size(),
        model.config.vocab_size,
        "embedding rows vs vocab_size"
    );
    assert_eq!(
        model.layers.len(),
        model.config.num_layers,
        "layers vs num_layers"
    );
    // `check_vocabulary`: every SentencePiece token has an embedding row.
    if tokenizer.vocab().is_some() {
        assert!(
            tokenizer.vocab_size() <= model.config.vocab_size,
            "{} tokens, {} embedding rows",
            tokenizer.vocab_size(),
            model.config.vocab_size
        );
    }
}

/// A few greedy and sampled tokens: the forward pass, the KV cache, the samplers and the
/// stream decoder, on whatever (finite) weights and in-range hyper-parameters the input gave.
fn generate_a_little(model: &Gemma3<Backend>, tokenizer: &Tokenizer) {
    let max_length = GENERATE_LENGTH.min(model.config.max_position_embeddings);
    let samplers = [
        Sampler::Greedy,
        Sampler::Random {
            temperature: 0.8,
            top_k: Some(5),
            top_p: Some(0.9),
            seed: 7,
        },
    ];
    for sampler in &samplers {
        match gemma3::generate(model, tokenizer, "ab a", max_length, sampler, |_| {}) {
            Ok(generation) => {
                assert!(
                    generation.token_ids.len() <= max_length,
                    "{} tokens past max_length {max_length}",
                    generation.token_ids.len()
                );
                assert!(generation.prompt_tokens <= generation.token_ids.len());
            }
            Err(e) => {
                let _ = refused(e);
            }
        }
    }
}

// -------------------------------------------------------------------------------- config

/// Parses the bytes as an HF `config.json`; an accepted config must validate, count its
/// parameters, and come back unchanged through `to_hf_json` (what presets save and load).
pub fn gemma3_config(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let config = match Gemma3Config::from_hf_json(&text) {
        Ok(config) => config,
        Err(e) => return refused(e),
    };
    // `from_hf_json` runs `validate_in`, the same checks as `validate`.
    if let Err(e) = config.validate() {
        panic!("from_hf_json accepted a config that validate() refuses: {e}\n{config:?}");
    }
    assert!(
        config.parameter_count().is_some() && config.quantizable_parameter_count().is_some(),
        "{config:?}"
    );
    for layer in 0..config.num_layers.min(64) {
        let _ = config.is_global_layer(layer);
    }
    let _ = burn_int8_gemma3::load::expected_tensors(&config);
    let json = config.to_hf_json();
    let again = match Gemma3Config::from_hf_json(&json) {
        Ok(again) => again,
        Err(e) => panic!("to_hf_json of an accepted config does not parse back: {e}\n{json}"),
    };
    assert_same_config(&config, &again, &json);
    true
}

/// Integers exactly; floats to a few ulps (`serde_json` parses floats best-effort, not
/// correctly rounded, unless its `float_roundtrip` feature is on).
fn assert_same_config(a: &Gemma3Config, b: &Gemma3Config, json: &str) {
    let ints = |c: &Gemma3Config| {
        (
            [
                c.vocab_size,
                c.hidden_size,
                c.intermediate_size,
                c.num_layers,
                c.num_heads,
                c.num_kv_heads,
                c.head_dim,
            ],
            [
                c.sliding_window,
                c.sliding_window_pattern,
                c.max_position_embeddings,
            ],
            [c.bos_token_id, c.eos_token_id, c.pad_token_id],
        )
    };
    let floats = |c: &Gemma3Config| {
        [
            c.query_pre_attn_scalar,
            c.rope_global_base,
            c.rope_local_base,
            c.rope_global_scaling,
            c.rms_norm_eps,
        ]
    };
    assert_eq!(
        ints(a),
        ints(b),
        "to_hf_json round trip changed the config:\n{json}"
    );
    for (x, y) in floats(a).into_iter().zip(floats(b)) {
        assert!(
            (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
            "to_hf_json round trip changed {x} to {y}:\n{json}"
        );
    }
}

// ------------------------------------------------------------------------------ tokenizer

/// Mode byte (mod 3): 0 loads the rest as a `tokenizer.vocab.json`, 1 encodes and decodes the
/// rest with a fixed vocabulary, 2 loads the rest as a HF `tokenizer.json`.
pub fn tokenizer(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    match mode % 3 {
        0 => tokenizer_from_vocab_json(rest),
        1 => tokenizer_round_trip(rest),
        _ => tokenizer_from_hf_json(rest),
    }
}

fn tokenizer_from_vocab_json(json: &[u8]) -> bool {
    let dir = scratch_dir("tokenizer");
    let path = dir.join("input.vocab.json");
    write_file(&path, json);
    let vocab = match Vocab::load_json(&path) {
        Ok(vocab) => vocab,
        Err(e) => return refused(e),
    };
    // "Reads a vocabulary ... and validates it."
    if let Err(e) = vocab.validate() {
        panic!("load_json returned a vocabulary that does not validate: {e}");
    }
    // load_json "reads a vocabulary written by save_json": what it wrote comes back the same.
    let saved = dir.join("saved.vocab.json");
    if let Err(e) = vocab.save_json(&saved) {
        panic!("save_json of a loaded vocabulary: {e}");
    }
    match Vocab::load_json(&saved) {
        Ok(again) => assert!(
            again == vocab,
            "save_json then load_json changed the vocabulary"
        ),
        Err(e) => panic!("load_json of what save_json wrote: {e}"),
    }
    // `from_vocab` validates, then only indexes.
    let tokenizer = match Tokenizer::from_vocab(vocab) {
        Ok(tokenizer) => tokenizer,
        Err(e) => panic!("from_vocab refused a validated vocabulary: {e}"),
    };
    exercise_tokenizer(&tokenizer, true);
    true
}

fn tokenizer_from_hf_json(json: &[u8]) -> bool {
    let path = scratch_dir("tokenizer").join("tokenizer.json");
    write_file(&path, json);
    let tokenizer = match Tokenizer::from_hf_file(&path) {
        Ok(tokenizer) => tokenizer,
        Err(e) => return refused(e),
    };
    // The `tokenizers` crate runs this one: only the wrapper's own contracts are asserted.
    exercise_tokenizer(&tokenizer, false);
    true
}

/// Accessors, then `encode(SAMPLE_TEXT)`: BOS only when asked, and (with `strict`, for the
/// SentencePiece tokenizers of this project) the stream decoder's documented equality with
/// `decode`.
fn exercise_tokenizer(tokenizer: &Tokenizer, strict: bool) {
    let n = tokenizer.vocab_size();
    let _ = (
        tokenizer.bos_id(),
        tokenizer.eos_id(),
        tokenizer.padding_id(),
        tokenizer.unknown_id(),
    );
    let _ = (tokenizer.end_of_turn_id(), tokenizer.add_bos_default());
    for id in 0..n.min(512) as u32 {
        if let Some(piece) = tokenizer.id_to_piece(id) {
            let _ = tokenizer.token_id(&piece);
        }
        let _ = tokenizer.is_control(id);
    }
    let (with_bos, without) = match (
        tokenizer.encode(SAMPLE_TEXT, true),
        tokenizer.encode(SAMPLE_TEXT, false),
    ) {
        (Ok(with_bos), Ok(without)) => (with_bos, without),
        (Err(e), _) | (_, Err(e)) => {
            let _ = refused(e);
            return;
        }
    };
    // "encode(text, add_bos) puts BOS in front only when asked and adds nothing else."
    assert_eq!(
        with_bos.first(),
        Some(&tokenizer.bos_id()),
        "encode with BOS"
    );
    if strict {
        // (Not for HF files: a `tokenizer.json` may ask for BPE dropout, which is random.)
        assert_eq!(
            &with_bos[1..],
            without.as_slice(),
            "encode with and without BOS"
        );
        assert!(
            with_bos.iter().all(|&id| (id as usize) < n),
            "encode gave an id past the vocabulary"
        );
        check_stream(tokenizer, &with_bos);
    } else {
        let _ = tokenizer.decode(&with_bos);
        let mut stream = tokenizer.stream_decoder();
        for &id in &with_bos {
            let _ = stream.step(id);
        }
        let _ = stream.finish();
    }
    // "An id outside the vocabulary is an error" (SentencePiece: ids are 0..vocab_size).
    if strict {
        assert!(
            tokenizer.decode(&[n as u32]).is_err(),
            "decode of id {n} in a vocabulary of {n}"
        );
    }
}

/// "The concatenation of everything step and finish return equals decode of all the ids";
/// an out-of-range id "is an error and changes nothing".
fn check_stream(tokenizer: &Tokenizer, ids: &[u32]) {
    let n = tokenizer.vocab_size();
    let good: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|&id| (id as usize) < n)
        .collect();
    let decoded = tokenizer.decode(ids);
    assert_eq!(
        decoded.is_err(),
        good.len() != ids.len(),
        "decode errs exactly on an id past the vocabulary"
    );
    let mut stream = tokenizer.stream_decoder();
    let mut streamed = String::new();
    for &id in ids {
        match stream.step(id) {
            Ok(piece) => streamed.push_str(&piece),
            Err(e) => assert!(
                id as usize >= n,
                "stream step({id}) in a vocabulary of {n}: {e}"
            ),
        }
    }
    match stream.finish() {
        Ok(rest) => streamed.push_str(&rest),
        Err(e) => panic!("stream finish: {e}"),
    }
    let expected = tokenizer
        .decode(&good)
        .unwrap_or_else(|e| panic!("decode of in-range ids: {e}"));
    assert_eq!(
        streamed, expected,
        "stream decoding differs from decode of {good:?}"
    );
}

struct RoundTrip {
    tokenizer: Tokenizer,
    /// Control and unknown pieces: matched literally in text and decoded as nothing.
    vanishing: Vec<String>,
}

fn round_trip_tokenizer() -> &'static RoundTrip {
    static FIXTURE: OnceLock<RoundTrip> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = scratch_dir("tokenizer-fixture").join("tokenizer.vocab.json");
        write_file(&path, ROUND_TRIP_VOCAB);
        let vocab = Vocab::load_json(&path)
            .unwrap_or_else(|e| panic!("the fixture fuzz/fixtures/tokenizer.vocab.json: {e}"));
        assert!(
            !vocab.add_space_prefix,
            "the round-trip fixture must not add a space prefix"
        );
        let tokenizer = Tokenizer::from_vocab(vocab)
            .unwrap_or_else(|e| panic!("the fixture fuzz/fixtures/tokenizer.vocab.json: {e}"));
        let vanishing = (0..tokenizer.vocab_size() as u32)
            .filter(|&id| {
                matches!(
                    tokenizer.token_type(id),
                    Some(TokenType::Control | TokenType::Unknown)
                )
            })
            .filter_map(|id| tokenizer.id_to_piece(id).map(|p| p.into_owned()))
            .collect();
        for b in 0..=255u8 {
            assert!(
                tokenizer.token_id(&format!("<0x{b:02X}>")).is_some(),
                "the round-trip fixture lacks byte token {b:#04x}"
            );
        }
        RoundTrip {
            tokenizer,
            vanishing,
        }
    })
}

/// Encodes the bytes (as lossy UTF-8) with a vocabulary that has every byte token, and checks
/// what the module docs of the tokenizer crate's `spm` imply: encoding cannot fail (byte
/// fallback), BOS only when asked, and decoding gives the text back unless it holds a control or
/// unknown piece (matched literally, decoded as nothing) or a literal `▁` (decoded as a space).
/// Then decodes the bytes read as u16 ids, some out of range, plainly and as a stream.
fn tokenizer_round_trip(bytes: &[u8]) -> bool {
    let fixture = round_trip_tokenizer();
    let tokenizer = &fixture.tokenizer;
    let n = tokenizer.vocab_size();
    let text = String::from_utf8_lossy(bytes);
    let ids = tokenizer
        .encode(&text, true)
        .unwrap_or_else(|e| panic!("encode with every byte token: {e}"));
    let without = tokenizer
        .encode(&text, false)
        .unwrap_or_else(|e| panic!("encode with every byte token: {e}"));
    assert_eq!(ids.first(), Some(&tokenizer.bos_id()));
    assert_eq!(&ids[1..], without.as_slice(), "encode with and without BOS");
    assert!(
        ids.iter().all(|&id| (id as usize) < n),
        "encode gave an id past the vocabulary"
    );
    let decoded = tokenizer
        .decode(&ids)
        .unwrap_or_else(|e| panic!("decode of encoded ids: {e}"));
    let round_trips = !text.contains('\u{2581}')
        && !fixture
            .vanishing
            .iter()
            .any(|piece| text.contains(piece.as_str()));
    if round_trips {
        assert_eq!(decoded, text, "decode(encode(text)) != text; ids {ids:?}");
    }
    check_stream(tokenizer, &ids);

    let bound = n as u32 + 8;
    let arbitrary: Vec<u32> = bytes
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])) % bound)
        .collect();
    check_stream(tokenizer, &arbitrary);
    true
}
