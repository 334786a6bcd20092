//! A small CNN trained in Burn on real data (scikit-learn's 8×8 handwritten digits, 1,797
//! images, every fifth held out), quantized with one call, evaluated in fp32 and int8.
//!
//! The model is written as a Burn user would, with `burn_int8::nn` in place of `burn::nn`:
//! two int8-capable convolutions and a linear head, all int8 after `quantize_int8()`.
//!
//! Run: `cargo run --release --example quantize_cnn`

#[path = "common/digits.rs"]
mod digits;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::nn::{PaddingConfig2d, Relu};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_int8::nn::conv::{Conv2d, Conv2dConfig};
use burn_int8::nn::{Linear, LinearConfig};
use burn_int8::{Quantize, QuantizeConfig, QuantizeExt, QuantizeReport, Scheme};

/// `[batch, 1, 8, 8]` → conv 3×3 (8 channels) → conv 3×3 stride 2 (16) → linear(256 → 10).
#[derive(Module, Debug, Quantize)]
pub struct Cnn<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
    pub head: Linear<B>,
    pub relu: Relu,
}

impl<B: Backend> Cnn<B> {
    pub fn new(device: &B::Device) -> Self {
        Self {
            conv1: Conv2dConfig::new([1, 8], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            conv2: Conv2dConfig::new([8, 16], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            head: LinearConfig::new(16 * 4 * 4, 10).init(device),
            relu: Relu::new(),
        }
    }

    /// `images [batch, 64]` (the digits' pixel rows) to logits `[batch, 10]`.
    pub fn forward(&self, images: Tensor<B, 2>) -> Tensor<B, 2> {
        let [batch, _] = images.dims();
        let x = images.reshape([batch, 1, 8, 8]);
        let x = self.relu.forward(self.conv1.forward(x));
        let x = self.relu.forward(self.conv2.forward(x));
        self.head.forward(x.reshape([batch, 16 * 4 * 4]))
    }
}

pub struct Report {
    pub fp32_accuracy: f32,
    pub int8_accuracy: f32,
    /// The same model quantized with `Scheme::Sample` (one activation scale per image).
    pub sample_accuracy: f32,
    pub quantize: QuantizeReport,
    pub model: Cnn<Flex>,
}

/// Trains for `steps` mini-batches of 64, then quantizes a copy and evaluates both.
pub fn run(steps: usize) -> Result<Report, Box<dyn std::error::Error>> {
    type Train = Autodiff<Flex>;
    let device = Default::default();
    Train::seed(&device, 11);
    let data = digits::load::<Train>(&device)?;
    let (trained, _) = digits::train_steps(
        Cnn::<Train>::new(&device),
        &data.train,
        steps,
        1e-2,
        Cnn::forward,
    );
    let model = trained.valid();
    let (images, labels) = (
        data.test.images.clone().inner(),
        data.test.labels.clone().inner(),
    );
    let fp32_accuracy = digits::accuracy(model.forward(images.clone()), labels.clone());

    // Per image rather than per window (as ONNX Runtime's per-tensor activations): the
    // convolutions quantize each input value once.
    let mut per_sample = model.clone();
    per_sample.quantize_with(&QuantizeConfig::default().scheme(Scheme::Sample))?;
    let sample_accuracy = digits::accuracy(per_sample.forward(images.clone()), labels.clone());

    let mut int8 = model.clone();
    let quantize = int8.quantize_int8()?;
    let int8_accuracy = digits::accuracy(int8.forward(images), labels);
    Ok(Report {
        fp32_accuracy,
        int8_accuracy,
        sample_accuracy,
        quantize,
        model: int8,
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = run(300)?;
    eprintln!("{}", report.quantize);
    println!("fp32 accuracy: {:.4}", report.fp32_accuracy);
    println!("int8 accuracy: {:.4}", report.int8_accuracy);
    println!(
        "int8 accuracy, per-sample scheme: {:.4}",
        report.sample_accuracy
    );
    Ok(())
}
