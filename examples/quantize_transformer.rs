//! A transformer built from `burn_int8::nn::TransformerEncoder`, trained on a real sequence
//! task available offline, quantized with one call, evaluated in fp32 and int8.
//!
//! The task: scikit-learn's 8×8 handwritten digits read as sequences, each image a sequence of
//! 8 row tokens of 8 pixels (every fifth image held out). Each row is embedded by a linear
//! layer plus a learned position embedding, two encoder layers mix the rows, and the mean over
//! positions goes to a linear head. Every linear layer, attention's included, is int8 after
//! `quantize_int8()`.
//!
//! Run: `cargo run --release --example quantize_transformer`

#[path = "common/digits.rs"]
mod digits;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burn_int8::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn_int8::nn::{Linear, LinearConfig};
use burn_int8::{Quantize, QuantizeConfig, QuantizeExt, QuantizeReport, Rotation, Scheme};

const ROWS: usize = 8;
const D_MODEL: usize = 32;

#[derive(Module, Debug, Quantize)]
pub struct RowTransformer<B: Backend> {
    pub embed: Linear<B>,
    /// `[ROWS, D_MODEL]`, float (a parameter, not a layer).
    pub position: Param<Tensor<B, 2>>,
    pub encoder: TransformerEncoder<B>,
    pub head: Linear<B>,
}

impl<B: Backend> RowTransformer<B> {
    pub fn new(device: &B::Device) -> Self {
        Self {
            embed: LinearConfig::new(8, D_MODEL).init(device),
            position: Param::from_tensor(Tensor::random(
                [ROWS, D_MODEL],
                Distribution::Normal(0.0, 0.1),
                device,
            )),
            encoder: TransformerEncoderConfig::new(D_MODEL, 64, 4, 2)
                .with_dropout(0.0)
                .with_norm_first(true)
                .init(device),
            head: LinearConfig::new(D_MODEL, 10).init(device),
        }
    }

    /// `images [batch, 64]` as `[batch, 8 rows, 8 pixels]` to logits `[batch, 10]`.
    pub fn forward(&self, images: Tensor<B, 2>) -> Tensor<B, 2> {
        let [batch, _] = images.dims();
        let tokens = self.embed.forward(images.reshape([batch, ROWS, 8]))
            + self.position.val().unsqueeze_dim(0);
        let encoded = self.encoder.forward(TransformerEncoderInput::new(tokens));
        self.head
            .forward(encoded.mean_dim(1).reshape([batch, D_MODEL]))
    }
}

pub struct Report {
    pub fp32_accuracy: f32,
    pub int8_accuracy: f32,
    pub quantize: QuantizeReport,
}

/// Trains for `steps` mini-batches of 64, then quantizes a copy and evaluates both.
pub fn run(steps: usize) -> Result<Report, Box<dyn std::error::Error>> {
    run_with(steps, &QuantizeConfig::default())
}

/// [`run`] with the int8 copy quantized by `config` (its format: `burn_int8::scheme`).
pub fn run_with(
    steps: usize,
    config: &QuantizeConfig,
) -> Result<Report, Box<dyn std::error::Error>> {
    type Train = Autodiff<Flex>;
    let device = Default::default();
    Train::seed(&device, 5);
    let data = digits::load::<Train>(&device)?;
    let (trained, _) = digits::train_steps(
        RowTransformer::<Train>::new(&device),
        &data.train,
        steps,
        3e-3,
        RowTransformer::forward,
    );
    let model = trained.valid();
    let (images, labels) = (
        data.test.images.clone().inner(),
        data.test.labels.clone().inner(),
    );
    let fp32_accuracy = digits::accuracy(model.forward(images.clone()), labels.clone());

    let mut int8 = model;
    let quantize = int8.quantize_with(config)?;
    let int8_accuracy = digits::accuracy(int8.forward(images), labels);
    Ok(Report {
        fp32_accuracy,
        int8_accuracy,
        quantize,
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = run(400)?;
    eprintln!("{}", report.quantize);
    println!("fp32 accuracy: {:.4}", report.fp32_accuracy);
    println!("int8 accuracy: {:.4}", report.int8_accuracy);
    // The other int8 formats, on the same trained model (same seed): the 8-pixel row embedding
    // has no whole Q8_0 block, so it keeps Keras's scheme there (the report says so).
    for (scheme, rotation) in [
        (Scheme::Keras, Rotation::Hadamard),
        (Scheme::Q8_0, Rotation::None),
        (Scheme::Q8_0, Rotation::Hadamard),
    ] {
        let config = QuantizeConfig::default().scheme(scheme).rotate(rotation);
        let report = run_with(400, &config)?;
        let formats: Vec<String> = report
            .quantize
            .formats()
            .iter()
            .map(|(format, layers, _)| format!("{format} x{layers}"))
            .collect();
        println!(
            "int8 accuracy ({}): {:.4}",
            formats.join(", "),
            report.int8_accuracy
        );
    }
    Ok(())
}
