//! Training after quantizing, which Keras's guide rules out ("you cannot train a model after
//! quantizing it"): a digit classifier is trained in float on scikit-learn's 8×8 digits,
//! quantized in place, then fine-tuned around its frozen int8 layers.
//!
//! What trains after quantizing: the LayerNorm in front of the int8 `mix` layer (it learns
//! through `mix`'s straight-through gradient, `dy · dequant(W)ᵀ`), a low-rank adapter beside
//! `mix` (LoRA: `mix(x) + up(down(x))`, `up` starting at zero), the float head, and the int8
//! layers' biases. What stays frozen: the int8 weights and their scales.
//!
//! Run: `cargo run --release --example finetune_int8`

#[path = "common/digits.rs"]
mod digits;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::nn::{self, Initializer, LayerNorm, LayerNormConfig, LinearConfig, Relu};
use burn::tensor::{
    Tensor,
    backend::{AutodiffBackend, Backend},
};
use burn_int8::{Linear, Quantize, QuantizeExt};

/// A low-rank adapter `up(down(x))` beside a frozen layer; `up` starts at zero, so adding it
/// does not change the model until it trains.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    down: nn::Linear<B>,
    up: nn::Linear<B>,
}

impl<B: Backend> LoraAdapter<B> {
    pub fn new(d_input: usize, d_output: usize, rank: usize, device: &B::Device) -> Self {
        Self {
            down: LinearConfig::new(d_input, rank)
                .with_bias(false)
                .init(device),
            up: LinearConfig::new(rank, d_output)
                .with_bias(false)
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.up.forward(self.down.forward(x))
    }
}

/// 64 pixels → hidden(128) → norm → mix(64) [+ adapter] → head(10).
#[derive(Module, Debug, Quantize)]
pub struct Classifier<B: Backend> {
    pub hidden: Linear<B>,
    pub norm: LayerNorm<B>,
    pub mix: Linear<B>,
    #[quantize(skip)]
    pub adapter: Option<LoraAdapter<B>>,
    #[quantize(skip)]
    pub head: Linear<B>,
    pub relu: Relu,
}

impl<B: Backend> Classifier<B> {
    pub fn new(device: &B::Device) -> Self {
        Self {
            hidden: Linear::new(&LinearConfig::new(64, 128), device),
            norm: LayerNormConfig::new(128).init(device),
            mix: Linear::new(&LinearConfig::new(128, 64), device),
            adapter: None,
            head: Linear::new(&LinearConfig::new(64, 10), device),
            relu: Relu::new(),
        }
    }

    pub fn forward(&self, images: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = self
            .norm
            .forward(self.relu.forward(self.hidden.forward(images)));
        let mut mixed = self.mix.forward(x.clone());
        if let Some(adapter) = &self.adapter {
            mixed = mixed.add(adapter.forward(x));
        }
        self.head.forward(self.relu.forward(mixed))
    }
}

/// What one run measured.
pub struct Report {
    pub fp32_accuracy: f32,
    pub int8_accuracy: f32,
    /// Training loss of each fine-tuning step after quantizing.
    pub finetune_losses: Vec<f32>,
    pub finetuned_accuracy: f32,
    /// The quantized model with its adapter, before and after fine-tuning.
    pub before_finetuning: Classifier<Autodiff<Flex>>,
    pub finetuned: Classifier<Autodiff<Flex>>,
}

fn test_accuracy<B: AutodiffBackend>(model: &Classifier<B>, data: &digits::Digits<B>) -> f32 {
    let model = model.valid();
    digits::accuracy(
        model.forward(data.test.images.clone().inner()),
        data.test.labels.clone().inner(),
    )
}

/// Pre-trains in float for `pretrain_steps`, quantizes, fine-tunes for `finetune_steps`.
pub fn run(
    pretrain_steps: usize,
    finetune_steps: usize,
) -> Result<Report, Box<dyn std::error::Error>> {
    type Train = Autodiff<Flex>;
    let device = Default::default();
    Train::seed(&device, 7);
    let data = digits::load::<Train>(&device)?;

    let (model, _) = digits::train_steps(
        Classifier::<Train>::new(&device),
        &data.train,
        pretrain_steps,
        1e-2,
        Classifier::forward,
    );
    let fp32_accuracy = test_accuracy(&model, &data);

    let mut quantized = model.clone();
    let report = quantized.quantize_int8()?;
    eprintln!("{report}");
    let int8_accuracy = test_accuracy(&quantized, &data);

    // Fine-tune around the frozen int8 layers, with an adapter beside `mix`.
    quantized.adapter = Some(LoraAdapter::new(128, 64, 8, &device));
    let (finetuned, finetune_losses) = digits::train_steps(
        quantized.clone(),
        &data.train,
        finetune_steps,
        3e-3,
        Classifier::forward,
    );
    let finetuned_accuracy = test_accuracy(&finetuned, &data);
    Ok(Report {
        fp32_accuracy,
        int8_accuracy,
        finetune_losses,
        finetuned_accuracy,
        before_finetuning: quantized,
        finetuned,
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = run(60, 60)?;
    println!("fp32 accuracy: {:.4}", report.fp32_accuracy);
    println!("int8 accuracy: {:.4}", report.int8_accuracy);
    for (step, loss) in report.finetune_losses.iter().enumerate().step_by(10) {
        println!("fine-tune step {step:>3}: loss {loss:.4}");
    }
    let last = report.finetune_losses.last().copied().unwrap_or(f32::NAN);
    println!(
        "fine-tune step {:>3}: loss {last:.4}",
        report.finetune_losses.len().saturating_sub(1)
    );
    println!(
        "int8 accuracy after fine-tuning: {:.4}",
        report.finetuned_accuracy
    );
    Ok(())
}
