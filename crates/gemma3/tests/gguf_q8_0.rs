//! Q8_0 GGUF in and out: a Q8_0 tensor loads as stored into an unrotated `q8_0` layer (its
//! int8 values and f16 block scales, no second rounding), and `export_gguf` writes such layers
//! back byte for byte.
//!
//! - A tiny synthetic model (no checkpoint needed) whose blocks never reach ±127, so loading
//!   them as stored and requantizing their dequantized values give different results: the test
//!   sees which path ran. Also the refusals (-128, non-finite scales) and the formats that must
//!   not take the stored path.
//! - The real checkpoint: llama-quantize's Q8_0 of it (made with `gguf::requantize`, the helper
//!   the GGUF crate's test checks byte for byte against llama-quantize) loads as stored,
//!   exports to identical Q8_0 tensor bytes, and gives logits close to the float model of the
//!   same file.

use crate::common;
use crate::gemma3_common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn_int8::{Int8Format, Int8Weight, QuantizeConfig, Rotation, Scheme};
use burn_int8_gemma3::export_gguf::{export_gguf, write_gguf};
use burn_int8_gemma3::gguf::q8_0::{BLOCK_VALUES, Q8_0Blocks};
use burn_int8_gemma3::gguf::{GgmlType, GgufFile, requantize};
use burn_int8_gemma3::load::gguf::gguf_name;
use burn_int8_gemma3::load::{LayerFormats, WeightSource, build_model, expected_tensors};
use burn_int8_gemma3::{self as gemma3, Gemma3, Gemma3Config, Gemma3Error, PresetOptions};
use common::{f32_of, i8_of};
use gemma3_common::tiny::tiny_vocab;
use half::f16;

type B = Flex;

const AS_STORED: Int8Format = Int8Format {
    scheme: Scheme::Q8_0,
    rotation: Rotation::None,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-int8-q8_0-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn scales_f32(blocks: &Q8_0Blocks) -> Vec<f32> {
    blocks.scales.iter().map(|d| d.to_f32()).collect()
}

/// Every int8 weight of `model` by GGUF name, as held: values in channel rows (GGUF's row
/// order) and scales (the embedding's shards joined).
fn held<Bk: Backend>(model: &Gemma3<Bk>) -> BTreeMap<String, (Vec<i8>, Vec<f32>, Int8Format)> {
    fn blocks<Bk: Backend, const D: usize>(weight: &Int8Weight<Bk, D>) -> (Vec<i8>, Vec<f32>) {
        let rows = weight.values.val().swap_dims(0, weight.channel_axis());
        (i8_of(rows), f32_of(weight.scale()))
    }
    let mut weights = BTreeMap::new();
    for (path, layer) in model.projections() {
        let weight = layer.int8_weight().expect("int8");
        let (values, scales) = blocks(weight);
        let name = gguf_name(&format!("model.{path}.weight")).unwrap();
        weights.insert(name, (values, scales, weight.format()));
    }
    let (mut values, mut scales) = (Vec::new(), Vec::new());
    let mut format = None;
    for shard in &model.embed_tokens.shards {
        let weight = shard.int8_weight().expect("int8 embedding");
        let (v, s) = blocks(weight);
        values.extend(v);
        scales.extend(s);
        format = Some(weight.format());
    }
    weights.insert(
        "token_embd.weight".to_string(),
        (values, scales, format.unwrap()),
    );
    weights
}

// ---------------------------------------------------------------------------------------------
// A tiny synthetic model

/// One layer, hidden 32 and head 32: every projection's inputs are whole Q8_0 blocks.
fn q8_0_config() -> Gemma3Config {
    Gemma3Config::new(300, 32, 64, 1, 1, 1, 32, 32.0, 4)
}

/// Seeded Q8_0 blocks for every matrix (values within ±100, so they never reach ±127 and a
/// requantization would change them), f32 norms; `edit` changes a tensor's blocks.
struct StoredQ8_0 {
    shapes: BTreeMap<String, Vec<usize>>,
    blocks: BTreeMap<String, Q8_0Blocks>,
    /// Calls of `read_q8_0_rows`, to see which path the loader took.
    q8_0_reads: Rc<Cell<usize>>,
}

impl StoredQ8_0 {
    fn new(config: &Gemma3Config) -> Self {
        let shapes: BTreeMap<String, Vec<usize>> = expected_tensors(config).into_iter().collect();
        let mut blocks = BTreeMap::new();
        for (n, (name, shape)) in shapes.iter().enumerate() {
            if shape.len() != 2 {
                continue;
            }
            let count: usize = shape.iter().product();
            let values = (0..count)
                .map(|i| (((i * 7919 + n * 104_729) % 201) as i32 - 100) as i8)
                .collect();
            let scales = (0..count / BLOCK_VALUES)
                .map(|b| f16::from_f32(1e-3 * (1.0 + ((b * 31 + n) % 17) as f32 / 7.0)))
                .collect();
            blocks.insert(name.clone(), Q8_0Blocks { values, scales });
        }
        Self {
            shapes,
            blocks,
            q8_0_reads: Rc::new(Cell::new(0)),
        }
    }

    fn row_len(&self, name: &str) -> usize {
        self.shapes[name].iter().skip(1).product()
    }

    /// Rows of `blocks` (rows are whole blocks).
    fn rows_of(blocks: &Q8_0Blocks, row_len: usize, rows: Range<usize>) -> Q8_0Blocks {
        let per_row = row_len / BLOCK_VALUES;
        Q8_0Blocks {
            values: blocks.values[rows.start * row_len..rows.end * row_len].to_vec(),
            scales: blocks.scales[rows.start * per_row..rows.end * per_row].to_vec(),
        }
    }

    fn dequantized(blocks: &Q8_0Blocks) -> Vec<f32> {
        blocks
            .values
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f32 * blocks.scales[i / BLOCK_VALUES].to_f32())
            .collect()
    }
}

impl WeightSource for StoredQ8_0 {
    fn shape(&self, name: &str) -> Result<Vec<usize>, Gemma3Error> {
        self.shapes
            .get(name)
            .cloned()
            .ok_or_else(|| Gemma3Error::MissingTensor(name.into()))
    }
    fn read(&mut self, name: &str) -> Result<Vec<f32>, Gemma3Error> {
        let count: usize = self.shape(name)?.iter().product();
        Ok(match self.blocks.get(name) {
            Some(blocks) => Self::dequantized(blocks),
            None => (0..count).map(|i| 0.1 * (i % 7) as f32).collect(),
        })
    }
    fn read_rows(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, Gemma3Error> {
        let row_len = self.row_len(name);
        Ok(Self::dequantized(&Self::rows_of(
            &self.blocks[name],
            row_len,
            rows,
        )))
    }
    fn names(&self) -> Vec<String> {
        self.shapes.keys().cloned().collect()
    }
    fn read_q8_0_rows(
        &mut self,
        name: &str,
        rows: Range<usize>,
    ) -> Result<Option<Q8_0Blocks>, Gemma3Error> {
        self.q8_0_reads.set(self.q8_0_reads.get() + 1);
        let row_len = self.row_len(name);
        Ok(self
            .blocks
            .get(name)
            .map(|blocks| Self::rows_of(blocks, row_len, rows)))
    }
}

fn build(source: &mut StoredQ8_0, format: Int8Format) -> Result<Gemma3<B>, Gemma3Error> {
    let formats = move |_: &str| format;
    let formats: LayerFormats<'_> = &formats;
    build_model::<B>(
        &q8_0_config(),
        source,
        Some(formats),
        &Default::default(),
        |_| {},
    )
}

#[test]
fn stored_q8_0_loads_as_stored_and_exports_byte_identical() {
    let config = q8_0_config();
    let mut source = StoredQ8_0::new(&config);
    let model = build(&mut source, AS_STORED).unwrap();
    let held = held(&model);
    assert_eq!(held.len(), 8, "7 projections and the embedding");
    for (name, (values, scales, format)) in &held {
        let hf = expected_tensors(&config)
            .into_iter()
            .map(|(hf, _)| hf)
            .find(|hf| gguf_name(hf).as_deref() == Some(name.as_str()))
            .unwrap();
        let stored = &source.blocks[&hf];
        assert_eq!(*format, AS_STORED, "{name}");
        assert!(*values == stored.values, "{name}: values not as stored");
        assert_eq!(*scales, scales_f32(stored), "{name}: scales not as stored");
        // The test tells the paths apart: quantizing the dequantized values again reaches
        // ±127 in every block, the stored values never do.
        assert!(values.iter().all(|q| q.abs() <= 100), "{name}");
    }

    // Exported: every Q8_0 tensor is the stored blocks, and the file loads back as stored.
    let dir = temp_dir("tiny");
    let path = dir.join("tiny.gguf");
    let tokenizer = gemma3::Tokenizer::from_vocab(tiny_vocab(config.vocab_size)).unwrap();
    let report = export_gguf(&model, &tokenizer, &path).unwrap();
    assert_eq!((report.q8_0_tensors, report.f32_tensors), (8, 7));
    assert!(report.dequantized.is_empty());
    let file = GgufFile::open(&path).unwrap();
    for (hf, stored) in &source.blocks {
        let name = gguf_name(hf).unwrap();
        assert_eq!(file.tensor_info(&name).unwrap().ggml_type, GgmlType::Q8_0);
        assert!(file.read_q8_0(&name).unwrap() == *stored, "{name} exported");
    }
    let norm = file.read_f32("output_norm.weight").unwrap();
    let expected: Vec<f32> = (0..32).map(|i| 0.1 * (i % 7) as f32 + 1.0).collect();
    assert_eq!(norm, expected, "norms stored as w + 1");
    let q8_0 = QuantizeConfig::default().scheme(Scheme::Q8_0);
    let (reloaded, _) = gemma3::load_model_as::<B>(
        &path,
        Some(&q8_0),
        PresetOptions::default(),
        &Default::default(),
        |_| {},
    )
    .unwrap();
    assert!(held == self::held(&reloaded), "reloaded as exported");
    // Streaming to any writer gives the same bytes as the atomic file.
    let mut bytes = Vec::new();
    write_gguf(&model, &tokenizer, &mut bytes).unwrap();
    assert!(bytes == std::fs::read(&path).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn other_formats_do_not_take_the_stored_path() {
    for format in [
        Int8Format::KERAS,
        Int8Format::new(Scheme::Q8_0, Rotation::Hadamard),
    ] {
        let mut source = StoredQ8_0::new(&q8_0_config());
        let reads = source.q8_0_reads.clone();
        let model = build(&mut source, format).unwrap();
        assert_eq!(reads.get(), 0, "{format}: read Q8_0 as stored");
        assert!(held(&model).values().all(|(_, _, f)| *f == format));
    }
    // q8_0 from a source that serves no Q8_0 (the trait's default) quantizes the f32 values,
    // as before: ggml's quantizer reaches ±127 in every block that is not all zeros.
    let mut source = NoQ8_0(StoredQ8_0::new(&q8_0_config()));
    let formats = |_: &str| AS_STORED;
    let formats: LayerFormats<'_> = &formats;
    let model = build_model::<B>(
        &q8_0_config(),
        &mut source,
        Some(formats),
        &Default::default(),
        |_| {},
    )
    .unwrap();
    for (name, (values, _, format)) in held(&model) {
        assert_eq!(format, AS_STORED);
        for block in values.chunks(BLOCK_VALUES) {
            assert_eq!(block.iter().map(|q| q.abs()).max(), Some(127), "{name}");
        }
    }
}

/// A source with the trait's default `read_q8_0_rows`: nothing stored as Q8_0.
struct NoQ8_0(StoredQ8_0);

impl WeightSource for NoQ8_0 {
    fn shape(&self, name: &str) -> Result<Vec<usize>, Gemma3Error> {
        self.0.shape(name)
    }
    fn read(&mut self, name: &str) -> Result<Vec<f32>, Gemma3Error> {
        self.0.read(name)
    }
    fn read_rows(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, Gemma3Error> {
        self.0.read_rows(name, rows)
    }
    fn names(&self) -> Vec<String> {
        self.0.names()
    }
}

#[test]
fn minus_128_and_non_finite_scales_are_refused_naming_the_tensor() {
    let config = q8_0_config();
    let name = "model.layers.0.mlp.down_proj.weight";
    let mut source = StoredQ8_0::new(&config);
    source.blocks.get_mut(name).unwrap().values[37] = i8::MIN;
    match build(&mut source, AS_STORED) {
        Err(Gemma3Error::Q8_0MinusOneTwentyEight { name: n, count: 1 }) => assert_eq!(n, name),
        other => panic!("expected the -128 refusal, got {:?}", other.err()),
    }
    // The embedding is read in slices: refused there too.
    let embedding = "model.embed_tokens.weight";
    let mut source = StoredQ8_0::new(&config);
    source.blocks.get_mut(embedding).unwrap().values[300 * 32 - 1] = i8::MIN;
    assert!(matches!(
        build(&mut source, AS_STORED),
        Err(Gemma3Error::Q8_0MinusOneTwentyEight { name, .. }) if name == embedding
    ));
    for bad in [f16::NAN, f16::INFINITY] {
        let mut source = StoredQ8_0::new(&config);
        source.blocks.get_mut(name).unwrap().scales[3] = bad;
        assert!(matches!(
            build(&mut source, AS_STORED),
            Err(Gemma3Error::NonFinite { name: n, count: 1 }) if n == name
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// The real checkpoint

/// llama-quantize's Q8_0 of the real checkpoint, written in `dir` by the GGUF crate's helper.
fn q8_0_checkpoint(dir: &Path) -> Option<PathBuf> {
    let checkpoint = gemma3_common::gemma3_checkpoint()?;
    let src = GgufFile::open(&checkpoint).unwrap();
    let path = dir.join("gemma-3-270m-Q8_0.gguf");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    requantize::requantize_q8_0(&src, &mut out).unwrap();
    out.flush().unwrap();
    Some(path)
}

fn load(path: &Path, quantize: Option<&QuantizeConfig>) -> (Gemma3<B>, gemma3::Tokenizer) {
    gemma3::load_model_as::<B>(
        path,
        quantize,
        PresetOptions::default(),
        &Default::default(),
        |_| {},
    )
    .unwrap()
}

#[test]
fn real_q8_0_gguf_loads_as_stored_and_exports_identical_tensor_bytes() {
    let dir = temp_dir("real-round-trip");
    let Some(path) = q8_0_checkpoint(&dir) else {
        return;
    };
    let source = GgufFile::open(&path).unwrap();
    let (model, tokenizer) = load(&path, Some(&QuantizeConfig::default().scheme(Scheme::Q8_0)));
    let held = held(&model);
    let q8_0_names: Vec<String> = source
        .tensors()
        .filter(|t| t.ggml_type == GgmlType::Q8_0)
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(
        q8_0_names.len(),
        127,
        "18 × 7 projections and the embedding"
    );
    for name in &q8_0_names {
        let stored = source.read_q8_0(name).unwrap();
        let (values, scales, format) = &held[name];
        assert_eq!(*format, AS_STORED, "{name}");
        assert!(*values == stored.values, "{name}: values not as stored");
        assert!(
            *scales == scales_f32(&stored),
            "{name}: scales not as stored"
        );
    }
    drop(held);

    let exported_path = dir.join("exported.gguf");
    let report = export_gguf(&model, &tokenizer, &exported_path).unwrap();
    assert_eq!(report.q8_0_tensors, 127);
    assert!(report.dequantized.is_empty());
    let exported = GgufFile::open(&exported_path).unwrap();
    assert_eq!(exported.tensor_count(), source.tensor_count());
    for info in source.tensors() {
        let out = exported
            .tensor_info(&info.name)
            .unwrap_or_else(|| panic!("{} not exported", info.name));
        assert_eq!(
            (&out.dims, out.ggml_type),
            (&info.dims, info.ggml_type),
            "{}",
            info.name
        );
        if info.ggml_type == GgmlType::Q8_0 {
            assert!(
                exported.read_raw(&info.name).unwrap() == source.read_raw(&info.name).unwrap(),
                "{}: exported Q8_0 bytes differ",
                info.name
            );
        } else {
            // Norms: read as `w - 1`, written as `+ 1` in f32.
            common::assert_within_one_ulp(
                &info.name,
                &exported.read_f32(&info.name).unwrap(),
                &source.read_f32(&info.name).unwrap(),
            );
        }
    }
    // The metadata llama.cpp reads is the source's (only the descriptive `general.*` keys,
    // name, license, tags, are not the model's to know).
    for (key, value) in source.metadata() {
        if key.starts_with("gemma3.") || key.starts_with("tokenizer.") || key == "general.file_type"
        {
            assert_eq!(exported.get(key), Some(value), "{key}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The as-stored Q8_0 model against the float model of the same file (its dequantized
/// weights): the only difference is Q8_0's run-time activation quantization, which moves the
/// next-token distribution little (KL per position, a few tokens).
#[test]
fn real_q8_0_as_stored_logits_are_close_to_its_float_model() {
    let dir = temp_dir("real-logits");
    let Some(path) = q8_0_checkpoint(&dir) else {
        return;
    };
    let (float, tokenizer) = load(&path, None);
    let (q8_0, _) = load(&path, Some(&QuantizeConfig::default().scheme(Scheme::Q8_0)));
    std::fs::remove_dir_all(&dir).ok();
    let ids = tokenizer
        .encode(
            "The GNU General Public License is a free, copyleft license for",
            true,
        )
        .unwrap();
    let vocab = float.config.vocab_size;
    let reference = gemma3_common::gemma3_logits_all(&float, &ids);
    let ours = gemma3_common::gemma3_logits_all(&q8_0, &ids);
    let mut kls = Vec::new();
    let mut same_top1 = 0;
    for (p, q) in reference.chunks(vocab).zip(ours.chunks(vocab)) {
        kls.push(kl(p, q));
        same_top1 += usize::from(common::argmax(p) == common::argmax(q));
    }
    let mean = kls.iter().sum::<f64>() / kls.len() as f64;
    let max = kls.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "as-stored q8_0 vs float of the same GGUF, {} positions: KL mean {mean:.5}, max {max:.5}, top-1 {same_top1}/{}",
        ids.len(),
        ids.len()
    );
    assert!(mean < 0.01, "KL mean {mean}");
    assert!(max < 0.05, "KL max {max}");
    assert!(
        same_top1 + 1 >= ids.len(),
        "top-1 {same_top1}/{}",
        ids.len()
    );
}

/// KL(softmax(p) || softmax(q)) in nats.
fn kl(p: &[f32], q: &[f32]) -> f64 {
    let log_softmax = |x: &[f32]| {
        let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
        let log_sum = sum.ln() + max;
        x.iter().map(|&v| v as f64 - log_sum).collect::<Vec<f64>>()
    };
    let (lp, lq) = (log_softmax(p), log_softmax(q));
    lp.iter()
        .zip(&lq)
        .map(|(a, b)| a.exp() * (a - b))
        .sum::<f64>()
        .max(0.0)
}
