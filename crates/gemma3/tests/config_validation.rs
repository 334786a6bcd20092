//! Configs out of range, and configs that disagree with their weights or their tokenizer:
//! typed errors naming the file and the field, raised before anything big is allocated. Every
//! case here used to panic (a division by zero, an index out of bounds), hang (hundreds of
//! thousands of empty embedding shards), exhaust memory, or run silently wrong; each must now
//! fail within seconds. Tiny synthetic models (HF `config.json`, presets, a GGUF written here),
//! so it always runs.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::backend::Flex;
use burn_int8_gemma3::load::{WeightSource, build_model, expected_tensors};
use burn_int8_gemma3::preset::{
    CONFIG_FILE, PresetOptions, VOCAB_FILE, WEIGHTS_FILE, from_preset_with, save_to_preset,
};
use burn_int8_gemma3::tokenizer::Tokenizer;
use burn_int8_gemma3::{self as gemma3, Gemma3, Gemma3Config, Gemma3Error, Sampler};

use crate::gemma3_common::tiny::{tiny_config, tiny_vocab};

/// Deterministic small weights of the shapes a config implies (plus any extra tensors).
struct SeededSource {
    shapes: BTreeMap<String, Vec<usize>>,
}

impl SeededSource {
    fn new(config: &Gemma3Config) -> Self {
        Self {
            shapes: expected_tensors(config).into_iter().collect(),
        }
    }

    fn values(range: Range<usize>) -> Vec<f32> {
        range
            .map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.2)
            .collect()
    }
}

impl WeightSource for SeededSource {
    fn shape(&self, name: &str) -> Result<Vec<usize>, Gemma3Error> {
        self.shapes
            .get(name)
            .cloned()
            .ok_or_else(|| Gemma3Error::MissingTensor(name.into()))
    }
    fn read(&mut self, name: &str) -> Result<Vec<f32>, Gemma3Error> {
        let count: usize = self.shape(name)?.iter().product();
        Ok(Self::values(0..count))
    }
    fn read_rows(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, Gemma3Error> {
        let row: usize = self.shape(name)?.iter().skip(1).product();
        Ok(Self::values(rows.start * row..rows.end * row))
    }
    fn names(&self) -> Vec<String> {
        self.shapes.keys().cloned().collect()
    }
}

/// A float model of `config` with seeded weights.
fn model_of(config: &Gemma3Config) -> Gemma3<Flex> {
    build_model::<Flex>(
        config,
        &mut SeededSource::new(config),
        None,
        &Default::default(),
        |_| {},
    )
    .unwrap()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "burn-int8-config-validation-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// Runs `f`, failing the test when it takes more than a few seconds (it would have hung or
/// allocated without the checks).
fn quickly<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(20), "{what} took {elapsed:?}");
    out
}

fn load(path: &Path) -> Result<(Gemma3<Flex>, Tokenizer), Gemma3Error> {
    gemma3::load_model::<Flex>(path, false, &Default::default(), |_| {})
}

fn load_preset(dir: &Path) -> Result<(Gemma3<Flex>, Tokenizer), Gemma3Error> {
    // Unverified: these tests edit config.json, never model.bpk, and test what comes after the
    // checksum.
    from_preset_with::<Flex>(
        dir,
        &Default::default(),
        PresetOptions {
            verify_checksum: false,
        },
    )
}

/// The tiny config's `config.json` with `edit` applied.
fn edited_json(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut json: serde_json::Value = serde_json::from_str(&tiny_config().to_hf_json()).unwrap();
    edit(&mut json);
    json.to_string()
}

/// The field of an [`Gemma3Error::InvalidConfig`], else a panic naming the error.
fn invalid_field(what: &str, result: Result<impl Sized, Gemma3Error>) -> String {
    match result {
        Err(Gemma3Error::InvalidConfig { field, .. }) => field,
        Err(other) => panic!("{what}: expected InvalidConfig, got {other}"),
        Ok(_) => panic!("{what}: loaded"),
    }
}

/// Out-of-range HF `config.json` values, each alone on the tiny config: (key, value, the field
/// the error must name).
fn bad_values() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    use serde_json::json;
    vec![
        ("hidden_size", json!(1u64 << 62), "hidden_size"),
        ("intermediate_size", json!(1u64 << 61), "intermediate_size"),
        ("vocab_size", json!(1_000_000_000_000u64), "vocab_size"),
        (
            "num_hidden_layers",
            json!(1_000_000_000u64),
            "num_hidden_layers",
        ),
        ("num_hidden_layers", json!(100_000u64), "num_hidden_layers"),
        // 2^62 + 2 heads of 4 wrap to the right q_proj size in 64 bits: refused by its bound.
        (
            "num_attention_heads",
            json!((1u64 << 62) + 2),
            "num_attention_heads",
        ),
        ("head_dim", json!(1u64 << 40), "head_dim"),
        ("head_dim", json!(5), "head_dim"),
        ("num_key_value_heads", json!(3), "num_key_value_heads"),
        (
            "query_pre_attn_scalar",
            json!(1e-320),
            "query_pre_attn_scalar",
        ),
        ("query_pre_attn_scalar", json!(0.0), "query_pre_attn_scalar"),
        ("rms_norm_eps", json!(1e300), "rms_norm_eps"),
        ("rms_norm_eps", json!(0.0), "rms_norm_eps"),
        ("rope_theta", json!(0.0), "rope_theta"),
        ("rope_local_base_freq", json!(1e300), "rope_local_base_freq"),
        ("sliding_window", json!(0), "sliding_window"),
        (
            "max_position_embeddings",
            json!(0),
            "max_position_embeddings",
        ),
        (
            "max_position_embeddings",
            json!(1u64 << 40),
            "max_position_embeddings",
        ),
        ("bos_token_id", json!(300), "bos_token_id"),
        (
            "final_logit_softcapping",
            json!(30.0),
            "final_logit_softcapping",
        ),
        ("hidden_activation", json!("relu"), "hidden_activation"),
    ]
}

#[test]
fn hf_configs_out_of_range_are_refused_before_any_allocation() {
    let root = scratch("hf");
    for (index, (key, value, field)) in bad_values().into_iter().enumerate() {
        let dir = root.join(format!("case{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        let text = edited_json(|json| json[key] = value.clone());
        std::fs::write(dir.join("config.json"), &text).unwrap();
        tiny_vocab(300).save_json(dir.join(VOCAB_FILE)).unwrap();
        let what = format!("config.json {key} = {value}");
        let result = quickly(&what, || load(&dir));
        let error = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert_eq!(invalid_field(&what, result), field, "{what}: {error}");
        // The message names the file and the field, and is short.
        assert!(
            error.contains("config.json") && error.contains(field) && error.len() < 600,
            "{what}: {error}"
        );
        // The same text through the library's parser.
        assert!(
            matches!(
                Gemma3Config::from_hf_json(&text),
                Err(Gemma3Error::InvalidConfig { .. })
            ),
            "{what}"
        );
    }
    // Products too large for one tensor, each factor within its own bound.
    let text = edited_json(|json| {
        json["vocab_size"] = (1u64 << 22).into();
        json["hidden_size"] = (1u64 << 20).into();
    });
    let field = invalid_field(
        "vocab 2^22 x hidden 2^20",
        Gemma3Config::from_hf_json(&text),
    );
    assert!(
        field.contains("vocab_size") && field.contains("hidden_size"),
        "{field}"
    );
    // JSON has no NaN: a string where a number belongs is a parse error naming the file.
    let dir = root.join("nan");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        edited_json(|json| json["rms_norm_eps"] = "NaN".into()),
    )
    .unwrap();
    let error = load(&dir).err().unwrap();
    assert!(
        matches!(&error, Gemma3Error::Config(message) if message.contains("config.json")),
        "{error}"
    );
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn configs_built_in_code_are_validated_too() {
    type Edit = Box<dyn Fn(&mut Gemma3Config)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "NaN eps",
            Box::new(|c| c.rms_norm_eps = f64::NAN),
            "rms_norm_eps",
        ),
        (
            "infinite scalar",
            Box::new(|c| c.query_pre_attn_scalar = f64::INFINITY),
            "query_pre_attn_scalar",
        ),
        (
            "NaN rope base",
            Box::new(|c| c.rope_global_base = f64::NAN),
            "rope_global_base",
        ),
        (
            "zero scaling",
            Box::new(|c| c.rope_global_scaling = 0.0),
            "rope_global_scaling",
        ),
        (
            "hidden 2^62",
            Box::new(|c| c.hidden_size = 1 << 62),
            "hidden_size",
        ),
        (
            "zero pattern",
            Box::new(|c| c.sliding_window_pattern = 0),
            "sliding_window_pattern",
        ),
    ];
    for (what, edit, field) in cases {
        let mut config = tiny_config();
        edit(&mut config);
        assert_eq!(invalid_field(what, config.validate()), field, "{what}");
        // build_model validates before it allocates.
        let result = quickly(what, || {
            build_model::<Flex>(
                &config,
                &mut SeededSource::new(&tiny_config()),
                None,
                &Default::default(),
                |_| {},
            )
        });
        assert_eq!(invalid_field(what, result), field, "{what}");
    }
    // The bounds hold real models: Gemma3 270M and 1B.
    Gemma3Config::gemma3_270m().validate().unwrap();
    Gemma3Config::gemma3_1b().validate().unwrap();
    assert!(Gemma3Config::gemma3_1b().parameter_count().unwrap() > 900_000_000);
}

/// A float preset of the tiny model, saved once per test.
fn tiny_preset(root: &Path) -> PathBuf {
    let config = tiny_config();
    let dir = root.join("preset");
    let tokenizer = Tokenizer::from_vocab(tiny_vocab(config.vocab_size)).unwrap();
    save_to_preset(&model_of(&config), &tokenizer, &dir, true).unwrap();
    dir
}

/// A copy of the preset at `from` whose config.json is changed by `edit` (its `burn_int8`
/// section kept).
fn edited_preset(from: &Path, to: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let path = to.join(CONFIG_FILE);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, json.to_string()).unwrap();
    to.to_path_buf()
}

/// The tiny config changed by `change`, as config.json values (layer_types included), over
/// the preset's own config.json.
fn replace_config(json: &mut serde_json::Value, change: impl FnOnce(&mut Gemma3Config)) {
    let mut config = tiny_config();
    change(&mut config);
    let fresh: serde_json::Value = serde_json::from_str(&config.to_hf_json()).unwrap();
    for (key, value) in fresh.as_object().unwrap() {
        json[key.as_str()] = value.clone();
    }
}

#[test]
fn presets_with_configs_out_of_range_fail_before_the_model_is_built() {
    let root = scratch("preset-range");
    let preset = tiny_preset(&root);
    // The untouched preset loads.
    load_preset(&preset).unwrap();
    for (index, (key, value, field)) in bad_values().into_iter().enumerate() {
        let dir = edited_preset(&preset, &root.join(format!("case{index}")), |json| {
            json[key] = value.clone()
        });
        let what = format!("preset config.json {key} = {value}");
        let result = quickly(&what, || load_preset(&dir));
        let error = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert_eq!(invalid_field(&what, result), field, "{what}: {error}");
        // 100,000 layers once gave a 259 MB message.
        assert!(error.len() < 600, "{what}: a {}-byte message", error.len());
    }
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn a_preset_whose_config_disagrees_with_its_weights_names_the_field() {
    let root = scratch("preset-mismatch");
    let preset = tiny_preset(&root);
    type Change = Box<dyn Fn(&mut Gemma3Config)>;
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|c| c.num_layers = 3), "num_hidden_layers"),
        (Box::new(|c| c.num_layers = 1), "num_hidden_layers"),
        (Box::new(|c| c.intermediate_size = 32), "intermediate_size"),
        (Box::new(|c| c.num_heads = 4), "num_attention_heads"),
        (Box::new(|c| c.num_kv_heads = 2), "num_key_value_heads"),
        (Box::new(|c| c.hidden_size = 16), "hidden_size"),
        (Box::new(|c| c.head_dim = 8), "head_dim"),
        // The tokenizer (300 tokens) fits a 400-row table, but the record's table has 300.
        (Box::new(|c| c.vocab_size = 400), "vocab_size"),
    ];
    for (index, (change, field)) in cases.into_iter().enumerate() {
        let dir = edited_preset(&preset, &root.join(format!("case{index}")), |json| {
            replace_config(json, change)
        });
        let error = quickly(field, || load_preset(&dir))
            .err()
            .unwrap_or_else(|| panic!("{field}: loaded"));
        assert!(
            matches!(&error, Gemma3Error::PresetMismatch { field: found, .. } if *found == field),
            "{field}: {error}"
        );
        assert!(
            error.to_string().contains(field) && error.to_string().len() < 600,
            "{error}"
        );
    }
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn a_record_too_small_for_its_config_is_refused_before_the_model_is_built() {
    use burn_store::{BurnpackStore, ModuleSnapshot, PathFilter};
    let root = scratch("preset-small");
    // Wide enough that the feed-forward layers are most of the weights.
    let mut config = Gemma3Config::new(300, 64, 512, 2, 2, 1, 32, 32.0, 4);
    config.sliding_window_pattern = 2;
    config.max_position_embeddings = 64;
    let model = model_of(&config);
    let dir = root.join("preset");
    save_to_preset(
        &model,
        &Tokenizer::from_vocab(tiny_vocab(300)).unwrap(),
        &dir,
        true,
    )
    .unwrap();
    // The same model without its feed-forward weights: every tensor that is there fits.
    let weights = dir.join(WEIGHTS_FILE);
    std::fs::remove_file(&weights).unwrap();
    let filter = PathFilter::new().with_predicate(|path: &str, _: &str| !path.contains("mlp"));
    let mut store = BurnpackStore::from_file(&weights)
        .auto_extension(false)
        .overwrite(true)
        .with_filter(filter);
    model.save_into(&mut store).unwrap();
    let error = quickly("a record without its mlp", || load_preset(&dir))
        .err()
        .unwrap();
    assert!(
        matches!(error, Gemma3Error::CheckpointTooSmall { .. }),
        "{error}"
    );
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn tokenizer_and_embedding_table_must_agree() {
    let root = scratch("vocab");
    // An HF directory whose tokenizer has one token more than the table: refused before the
    // weights are opened.
    let dir = root.join("hf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), tiny_config().to_hf_json()).unwrap();
    tiny_vocab(301).save_json(dir.join(VOCAB_FILE)).unwrap();
    let error = load(&dir).err().unwrap();
    assert!(
        matches!(
            error,
            Gemma3Error::VocabMismatch {
                tokenizer: 301,
                embedding: 300,
                ..
            }
        ),
        "{error}"
    );

    // A preset likewise.
    let preset = tiny_preset(&root);
    let bigger = edited_preset(&preset, &root.join("bigger"), |_| {});
    tiny_vocab(301).save_json(bigger.join(VOCAB_FILE)).unwrap();
    let error = load_preset(&bigger).err().unwrap();
    assert!(
        matches!(
            error,
            Gemma3Error::VocabMismatch {
                tokenizer: 301,
                embedding: 300,
                ..
            }
        ),
        "{error}"
    );

    // A table with more rows than the tokenizer has tokens is padding: it loads, and prompts
    // encode within the table.
    let smaller = edited_preset(&preset, &root.join("smaller"), |_| {});
    tiny_vocab(280).save_json(smaller.join(VOCAB_FILE)).unwrap();
    let (model, tokenizer) = load_preset(&smaller).unwrap();
    assert_eq!(
        (tokenizer.vocab_size(), model.embed_tokens.vocab_size()),
        (280, 300)
    );
    gemma3::generate::encode_prompt(&model, &tokenizer, "ab a", 10).unwrap();
    std::fs::remove_dir_all(root).ok();
}

/// HF checkpoints may list special tokens past the embedding table (added after training and
/// never generated): those alone are accepted as padding; an ordinary token past the table is a
/// mismatch.
#[test]
fn only_special_tokens_may_lie_past_the_embedding_table() {
    let root = scratch("special-padding");
    let mut json: serde_json::Value = serde_json::from_str(include_str!(
        "../../tokenizer/tests/fixtures/tiny_tokenizer.json"
    ))
    .unwrap();
    let base = json["model"]["vocab"].as_object().unwrap().len();
    for (i, content) in ["<extra_0>", "<extra_1>"].into_iter().enumerate() {
        let token = serde_json::json!({ "id": base + i, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true });
        json["added_tokens"].as_array_mut().unwrap().push(token);
    }
    let path = root.join("tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let tokenizer = Tokenizer::from_hf_file(&path).unwrap();
    assert_eq!(tokenizer.vocab_size(), base + 2);
    gemma3::load::check_vocabulary(&tokenizer, base, "tiny").unwrap();
    let error = gemma3::load::check_vocabulary(&tokenizer, base - 1, "tiny").unwrap_err();
    assert!(
        matches!(error, Gemma3Error::VocabMismatch { tokenizer, embedding, .. } if tokenizer == base + 2 && embedding == base - 1),
        "{error}"
    );
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn token_ids_outside_the_table_are_errors_not_zero_embeddings() {
    let config = tiny_config();
    let model = model_of(&config);
    let tokenizer = Tokenizer::from_vocab(tiny_vocab(300)).unwrap();
    assert!(gemma3::generate::check_token_ids(&model, &[2, 299]).is_ok());
    // The model's own checked forward pass: an error, not the zero embedding `forward` would use.
    let device = Default::default();
    let ids = |ids: &[u32]| gemma3::generate::token_tensor::<Flex>(ids, &device);
    assert!(
        model
            .try_forward(ids(&[2, 299]), &mut model.new_cache())
            .is_ok()
    );
    let error = model
        .try_forward(ids(&[2, 300]), &mut model.new_cache())
        .unwrap_err();
    assert!(
        matches!(
            error,
            Gemma3Error::TokenOutOfRange {
                id: 300,
                vocab_size: 300
            }
        ),
        "{error}"
    );
    let negative = burn::tensor::Tensor::<Flex, 2, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(vec![2i64, -1], [1, 2]),
        &device,
    );
    let error = model
        .try_forward(negative, &mut model.new_cache())
        .unwrap_err();
    assert!(
        matches!(error, Gemma3Error::TokenOutOfRange { id: u32::MAX, .. }),
        "{error}"
    );
    let error = model
        .try_forward(ids(&[2; 65]), &mut model.new_cache())
        .unwrap_err();
    assert!(
        matches!(
            error,
            Gemma3Error::PromptTooLong {
                tokens: 65,
                limit: 64,
                ..
            }
        ),
        "{error}"
    );
    let error = gemma3::generate::check_token_ids(&model, &[2, 300]).unwrap_err();
    assert!(
        matches!(
            error,
            Gemma3Error::TokenOutOfRange {
                id: 300,
                vocab_size: 300
            }
        ),
        "{error}"
    );
    let mut tokens = tokenizer
        .encode(&"ab a abba b ba ".repeat(8), true)
        .unwrap();
    tokens[5] = 300;
    let options = gemma3::EvalOptions {
        context: 8,
        max_windows: None,
    };
    let error = gemma3::evaluate(&model, &model, &tokens, &options, |_, _| {}).unwrap_err();
    assert!(
        matches!(error, Gemma3Error::TokenOutOfRange { id: 300, .. }),
        "{error}"
    );

    // A model paired by hand with a tokenizer bigger than its table (the loaders refuse the
    // pair): `b` is token 262, past a 262-row table.
    let mut small = tiny_config();
    small.vocab_size = 262;
    let small_model = model_of(&small);
    let error = gemma3::generate(
        &small_model,
        &tokenizer,
        "ab b",
        10,
        &Sampler::Greedy,
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            Gemma3Error::TokenOutOfRange {
                vocab_size: 262,
                ..
            }
        ),
        "{error}"
    );

    // max_length past the context names the option and the context, not a prompt length.
    let error =
        gemma3::generate(&model, &tokenizer, "ab", 100_000, &Sampler::Greedy, |_| {}).unwrap_err();
    assert!(
        matches!(
            error,
            Gemma3Error::ExceedsContext {
                value: 100_000,
                context: 64,
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("max_length")
            && message.contains("--max-length")
            && !message.contains("prompt"),
        "{message}"
    );
    // A prompt longer than max_length counts the prompt's tokens.
    let error = gemma3::generate(
        &model,
        &tokenizer,
        "ab ab ab ab",
        3,
        &Sampler::Greedy,
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(error, Gemma3Error::PromptTooLong { limit: 3, .. }),
        "{error}"
    );
}

#[test]
fn long_name_lists_are_cut() {
    // A checkpoint with a thousand foreign tensors.
    let config = tiny_config();
    let mut source = SeededSource::new(&config);
    for i in 0..1000 {
        source.shapes.insert(format!("foreign.{i}.weight"), vec![2]);
    }
    let error =
        build_model::<Flex>(&config, &mut source, None, &Default::default(), |_| {}).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, Gemma3Error::UnexpectedTensors(names) if names.len() == 11),
        "{message}"
    );
    assert!(
        message.contains("and 990 more") && message.len() < 1000,
        "{message}"
    );

    // A record missing most of what a model expects: a short message too.
    let root = scratch("cut");
    let preset = tiny_preset(&root);
    let mut bigger = config.clone();
    bigger.num_layers = 40;
    let skeleton = model_of(&bigger);
    let error = burn_int8::store::load_skeleton(skeleton, preset.join(WEIGHTS_FILE)).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("more") && message.len() < 3000,
        "{} bytes: {message}",
        message.len()
    );
    std::fs::remove_dir_all(root).ok();
}

// ---------------------------------------------------------------------------- GGUF

/// A minimal GGUF v3 writer: metadata, and f32 tensors aligned to 32 bytes.
#[derive(Default)]
struct GgufWriter {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, Vec<f32>)>,
}

fn gguf_string(s: &str) -> Vec<u8> {
    let mut bytes = (s.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(s.as_bytes());
    bytes
}

impl GgufWriter {
    fn key(&mut self, key: &str, value_type: u32) {
        self.kv.extend(gguf_string(key));
        self.kv.extend(value_type.to_le_bytes());
        self.n_kv += 1;
    }
    fn u32(&mut self, key: &str, value: u32) {
        self.key(key, 4);
        self.kv.extend(value.to_le_bytes());
    }
    fn f32(&mut self, key: &str, value: f32) {
        self.key(key, 6);
        self.kv.extend(value.to_le_bytes());
    }
    fn bool(&mut self, key: &str, value: bool) {
        self.key(key, 7);
        self.kv.push(u8::from(value));
    }
    fn str(&mut self, key: &str, value: &str) {
        self.key(key, 8);
        self.kv.extend(gguf_string(value));
    }
    fn array_header(&mut self, key: &str, element_type: u32, count: usize) {
        self.key(key, 9);
        self.kv.extend(element_type.to_le_bytes());
        self.kv.extend((count as u64).to_le_bytes());
    }
    fn strings(&mut self, key: &str, values: &[String]) {
        self.array_header(key, 8, values.len());
        for value in values {
            self.kv.extend(gguf_string(value));
        }
    }
    fn f32s(&mut self, key: &str, values: &[f32]) {
        self.array_header(key, 6, values.len());
        for value in values {
            self.kv.extend(value.to_le_bytes());
        }
    }
    fn i32s(&mut self, key: &str, values: &[i32]) {
        self.array_header(key, 5, values.len());
        for value in values {
            self.kv.extend(value.to_le_bytes());
        }
    }
    /// An f32 tensor of row-major `shape` (GGUF stores the dimensions innermost first).
    fn tensor(&mut self, name: &str, shape: &[usize], values: Vec<f32>) {
        let dims = shape.iter().rev().map(|&d| d as u64).collect();
        self.tensors.push((name.to_string(), dims, values));
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        let mut offset = 0u64;
        for (name, dims, values) in &self.tensors {
            out.extend(gguf_string(name));
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(0u32.to_le_bytes()); // GGML_TYPE_F32
            out.extend(offset.to_le_bytes());
            offset += (values.len() as u64 * 4).next_multiple_of(32);
        }
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        for (_, _, values) in &self.tensors {
            for value in values {
                out.extend(value.to_le_bytes());
            }
            while !out.len().is_multiple_of(32) {
                out.push(0);
            }
        }
        out
    }
}

/// What a GGUF's metadata says, against tensors written for the tiny config (with
/// `embedding_rows` rows in `token_embd`) and a 300-token vocabulary.
struct GgufCase {
    block_count: u32,
    head_count: u32,
    rms_norm_eps: f32,
    embedding_rows: usize,
}

impl Default for GgufCase {
    fn default() -> Self {
        Self {
            block_count: 2,
            head_count: 2,
            rms_norm_eps: 1e-6,
            embedding_rows: 300,
        }
    }
}

fn write_gguf(path: &Path, case: &GgufCase) {
    let mut tensors_config = tiny_config();
    tensors_config.vocab_size = case.embedding_rows;
    let vocab = tiny_vocab(300);
    let mut gguf = GgufWriter::default();
    gguf.str("general.architecture", "gemma3");
    gguf.u32("gemma3.embedding_length", 8);
    gguf.u32("gemma3.feed_forward_length", 16);
    gguf.u32("gemma3.block_count", case.block_count);
    gguf.u32("gemma3.attention.head_count", case.head_count);
    gguf.u32("gemma3.attention.head_count_kv", 1);
    gguf.u32("gemma3.attention.key_length", 4);
    gguf.u32("gemma3.attention.value_length", 4);
    gguf.u32("gemma3.attention.sliding_window", 4);
    gguf.u32("gemma3.context_length", 64);
    gguf.f32("gemma3.rope.freq_base", 1_000_000.0);
    gguf.f32("gemma3.attention.layer_norm_rms_epsilon", case.rms_norm_eps);
    gguf.str("tokenizer.ggml.model", "llama");
    gguf.strings("tokenizer.ggml.tokens", &vocab.tokens);
    gguf.f32s("tokenizer.ggml.scores", &vocab.scores);
    gguf.i32s("tokenizer.ggml.token_type", &vocab.token_types);
    gguf.u32("tokenizer.ggml.bos_token_id", 2);
    gguf.u32("tokenizer.ggml.eos_token_id", 1);
    gguf.u32("tokenizer.ggml.unknown_token_id", 3);
    gguf.u32("tokenizer.ggml.padding_token_id", 0);
    gguf.bool("tokenizer.ggml.add_bos_token", true);
    for (name, shape) in expected_tensors(&tensors_config) {
        let gguf_name = gemma3::load::gguf::gguf_name(&name).unwrap();
        let count: usize = shape.iter().product();
        gguf.tensor(&gguf_name, &shape, SeededSource::values(0..count));
    }
    std::fs::write(path, gguf.bytes()).unwrap();
}

#[test]
fn gguf_metadata_is_validated_against_its_tensors_and_tokenizer() {
    let root = scratch("gguf");
    let gguf = |name: &str, case: GgufCase| {
        let path = root.join(format!("{name}.gguf"));
        write_gguf(&path, &case);
        path
    };
    // The writer is right: the untouched file loads and generates.
    let (model, tokenizer) = load(&gguf("good", GgufCase::default())).unwrap();
    gemma3::generate(&model, &tokenizer, "ab a", 10, &Sampler::Greedy, |_| {}).unwrap();

    // 4,294,967,295 blocks: refused from the metadata alone.
    let path = gguf(
        "blocks",
        GgufCase {
            block_count: u32::MAX,
            ..Default::default()
        },
    );
    let result = quickly("block_count 0xffffffff", || load(&path));
    assert_eq!(invalid_field("block_count", result), "gemma3.block_count");
    let path = gguf(
        "heads",
        GgufCase {
            head_count: 1 << 31,
            ..Default::default()
        },
    );
    assert_eq!(
        invalid_field(
            "head_count 2^31",
            quickly("head_count 2^31", || load(&path))
        ),
        "gemma3.attention.head_count"
    );
    // GGUF can hold a NaN epsilon.
    let path = gguf(
        "nan",
        GgufCase {
            rms_norm_eps: f32::NAN,
            ..Default::default()
        },
    );
    assert_eq!(
        invalid_field("NaN eps", load(&path)),
        "gemma3.attention.layer_norm_rms_epsilon"
    );

    // Metadata that disagrees with the tensors present: 4 query heads over q_proj weights of 2.
    let path = gguf(
        "mismatch",
        GgufCase {
            head_count: 4,
            ..Default::default()
        },
    );
    let error = quickly("head_count 4", || load(&path)).err().unwrap();
    assert!(
        matches!(&error, Gemma3Error::ShapeMismatch { name, .. } if name.contains("q_proj")),
        "{error}"
    );

    // A table of 299 rows under a 300-token vocabulary: id 299 would have no embedding.
    let path = gguf(
        "vocab",
        GgufCase {
            embedding_rows: 299,
            ..Default::default()
        },
    );
    let error = load(&path).err().unwrap();
    assert!(
        matches!(
            error,
            Gemma3Error::VocabMismatch {
                tokenizer: 300,
                embedding: 299,
                ..
            }
        ),
        "{error}"
    );
    std::fs::remove_dir_all(root).ok();
}
