//! A tiny synthetic Gemma3 (2 layers, a 300-token vocabulary) that tests write and load in
//! milliseconds: its config, its tokenizer, an HF directory of it, and seeded float models.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use burn::backend::Flex;
use burn_int8_gemma3::load::{WeightSource, build_model, expected_tensors};
use burn_int8_gemma3::tokenizer::{Tokenizer, Vocab};
use burn_int8_gemma3::{Gemma3, Gemma3Config, Gemma3Error};

/// A 2-layer Gemma3 (layer 1 global) small enough to write in a test.
pub fn tiny_config() -> Gemma3Config {
    let mut config = Gemma3Config::new(300, 8, 16, 2, 2, 1, 4, 4.0, 4);
    config.sliding_window_pattern = 2;
    config.max_position_embeddings = 64;
    config
}

/// 256 byte pieces, specials, and a few merges: enough to encode any text.
pub fn tiny_vocab(size: usize) -> Vocab {
    let mut tokens = vec![
        "<pad>".to_string(),
        "<eos>".into(),
        "<bos>".into(),
        "<unk>".into(),
    ];
    let mut types = vec![3, 3, 3, 3];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    types.extend(std::iter::repeat_n(6, 256));
    for piece in ["▁", "a", "b", "▁a", "ab"] {
        tokens.push(piece.into());
        types.push(1);
    }
    while tokens.len() < size {
        tokens.push(format!("<unused{}>", tokens.len()));
        types.push(3);
    }
    let scores = (0..tokens.len()).map(|i| -(i as f32)).collect();
    Vocab {
        tokens,
        scores,
        token_types: types,
        bos_id: 2,
        eos_id: 1,
        unknown_id: Some(3),
        padding_id: Some(0),
        add_bos: true,
        add_space_prefix: false,
    }
}

/// Writes an HF directory for `config`, letting `edit` change the tensor list first.
pub fn write_hf_dir(
    name: &str,
    config: &Gemma3Config,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>),
) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-int8-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = expected_tensors(config)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = (0..n)
                .map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.2)
                .collect();
            (name, shape, values)
        })
        .collect();
    edit(&mut tensors);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config.to_hf_json()).unwrap();
    tiny_vocab(config.vocab_size)
        .save_json(dir.join("tokenizer.vocab.json"))
        .unwrap();
    dir
}

/// Deterministic small weights that differ with `seed`.
struct SeededSource {
    shapes: BTreeMap<String, Vec<usize>>,
    seed: usize,
}

impl SeededSource {
    fn values(&self, range: Range<usize>) -> Vec<f32> {
        range
            .map(|i| (((i * 7919 + self.seed * 104_729) % 101) as f32 / 101.0 - 0.5) * 0.2)
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
        Ok(self.values(0..count))
    }
    fn read_rows(&mut self, name: &str, rows: Range<usize>) -> Result<Vec<f32>, Gemma3Error> {
        let row: usize = self.shape(name)?.iter().skip(1).product();
        Ok(self.values(rows.start * row..rows.end * row))
    }
    fn names(&self) -> Vec<String> {
        self.shapes.keys().cloned().collect()
    }
}

/// A tiny float model whose weights depend on `seed`, and its tokenizer.
pub fn tiny(seed: usize) -> (Gemma3<Flex>, Tokenizer) {
    let config = tiny_config();
    let mut source = SeededSource {
        shapes: expected_tensors(&config).into_iter().collect(),
        seed,
    };
    let model =
        build_model::<Flex>(&config, &mut source, None, &Default::default(), |_| {}).unwrap();
    (
        model,
        Tokenizer::from_vocab(tiny_vocab(config.vocab_size)).unwrap(),
    )
}

/// The final norm's weights: tells the models of different seeds apart.
pub fn norm_of(model: &Gemma3<Flex>) -> Vec<f32> {
    model
        .norm
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap()
}
