//! scikit-learn's 8×8 handwritten digits (`tests/fixtures/digits/`), read for the examples and
//! their tests: 1,797 images, every fifth held out for testing.

use std::io::Read;
use std::path::PathBuf;

use burn::tensor::{ElementConversion, Int, Tensor, TensorData, backend::Backend};

/// Images `[n, 64]` scaled to 0..1 and labels `[n]`.
pub struct Split<B: Backend> {
    pub images: Tensor<B, 2>,
    pub labels: Tensor<B, 1, Int>,
}

impl<B: Backend> Split<B> {
    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    /// Rows `start..end`, for mini-batches.
    // Burn's `slice` takes one range per dimension: `[start..end]` is the 1-D form, not a Vec.
    #[allow(clippy::single_range_in_vec_init)]
    pub fn rows(&self, start: usize, end: usize) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
        (
            self.images.clone().slice([start..end, 0..64]),
            self.labels.clone().slice([start..end]),
        )
    }
}

pub struct Digits<B: Backend> {
    pub train: Split<B>,
    pub test: Split<B>,
}

/// `tests/fixtures/digits/digits.csv.gz`, found from the manifest dir at run time.
pub fn fixture_path() -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    root.join("tests/fixtures/digits/digits.csv.gz")
}

pub fn load<B: Backend>(device: &B::Device) -> Result<Digits<B>, Box<dyn std::error::Error>> {
    let path = fixture_path();
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )
    .read_to_string(&mut text)?;
    let (mut train, mut test) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for (index, line) in text.lines().enumerate() {
        let values: Vec<f32> = line.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let [pixels @ .., label] = values.as_slice() else {
            return Err(format!("{}: empty line {index}", path.display()).into());
        };
        if pixels.len() != 64 {
            return Err(format!(
                "{}: line {index} has {} pixels, expected 64",
                path.display(),
                pixels.len()
            )
            .into());
        }
        let (images, labels) = if index % 5 == 4 {
            &mut test
        } else {
            &mut train
        };
        images.extend(pixels.iter().map(|p| p / 16.0));
        labels.push(*label as i64);
    }
    let split = |(images, labels): (Vec<f32>, Vec<i64>)| Split {
        images: Tensor::from_data(TensorData::new(images, [labels.len(), 64]), device),
        labels: Tensor::from_data(TensorData::new(labels.clone(), [labels.len()]), device),
    };
    Ok(Digits {
        train: split(train),
        test: split(test),
    })
}

/// Fraction of `split` whose arg-max logit is the label.
pub fn accuracy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> f32 {
    let n = labels.dims()[0];
    let predicted = logits.argmax(1).reshape([n]);
    let correct: i64 = predicted.equal(labels).int().sum().into_scalar().elem();
    correct as f32 / n as f32
}

/// `steps` mini-batch steps of Adam on cross-entropy over `split`, cycling through it in
/// order; returns the model and each step's loss.
pub fn train_steps<B, M>(
    mut model: M,
    split: &Split<B>,
    steps: usize,
    learning_rate: f64,
    forward: impl Fn(&M, Tensor<B, 2>) -> Tensor<B, 2>,
) -> (M, Vec<f32>)
where
    B: burn::tensor::backend::AutodiffBackend,
    M: burn::module::AutodiffModule<B>,
{
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    const BATCH: usize = 64;
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(&split.images.device());
    let batches = (split.len() / BATCH).max(1);
    let mut losses = Vec::with_capacity(steps);
    for step in 0..steps {
        let start = (step % batches) * BATCH;
        let (images, labels) = split.rows(start, (start + BATCH).min(split.len()));
        let loss = loss_fn.forward(forward(&model, images), labels);
        losses.push(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(learning_rate, model, grads);
    }
    (model, losses)
}
