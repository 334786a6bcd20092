//! The Keras INT8 guide, sections 1 and 2, on Burn:
//! train a tiny model, quantize it in place, compare with float, save, reload, compare again.
//!
//! Run: `cargo run --release --example functional_int8`
//! Output files (overwritten on every run): `examples/out/functional_{fp32,int8}.bpk`.

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::{MseLoss, Reduction};
use burn::nn::{LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, Tensor, backend::Backend};
use burn_int8::{Linear, Quantize, QuantizeExt, mse, store};

/// Input(10) → Dense(32, relu) → Dense(1), as in the guide.
#[derive(Module, Debug, Quantize)]
struct Functional<B: Backend> {
    dense1: Linear<B>,
    dense2: Linear<B>,
    relu: Relu,
}

impl<B: Backend> Functional<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            dense1: Linear::new(&LinearConfig::new(10, 32), device),
            dense2: Linear::new(&LinearConfig::new(32, 1), device),
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.dense2
            .forward(self.relu.forward(self.dense1.forward(x)))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    type Train = Autodiff<NdArray>;
    let device = Default::default();
    Train::seed(&device, 0);

    // One epoch of Adam on 256 random rows, batch 32, MSE loss.
    let x_train = Tensor::<Train, 2>::random([256, 10], Distribution::Normal(0.0, 1.0), &device);
    let y_train = Tensor::<Train, 2>::random([256, 1], Distribution::Normal(0.0, 1.0), &device);
    let mut model = Functional::<Train>::new(&device);
    let mut optimizer = AdamConfig::new().init();
    for batch in 0..256 / 32 {
        let rows = batch * 32..(batch + 1) * 32;
        let prediction = model.forward(x_train.clone().slice([rows.clone(), 0..10]));
        let loss = MseLoss::new().forward(
            prediction,
            y_train.clone().slice([rows, 0..1]),
            Reduction::Mean,
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
    }

    // Evaluate on 32 rows, quantize in place, evaluate again.
    let mut model = model.valid();
    let x_eval = Tensor::<NdArray, 2>::random([32, 10], Distribution::Normal(0.0, 1.0), &device);
    let y_fp32 = model.forward(x_eval.clone());

    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/out");
    std::fs::create_dir_all(&out)?;
    let fp32_path = out.join("functional_fp32.bpk");
    let int8_path = out.join("functional_int8.bpk");
    let fp32_bytes = store::save(&model, &fp32_path)?;

    let report = model.quantize_int8()?;
    eprintln!("quantize: {report}");
    let y_int8 = model.forward(x_eval.clone());
    println!(
        "Full-Precision vs INT8 MSE: {}",
        mse(y_fp32, y_int8.clone())
    );

    // Save, rebuild, quantize the fresh model (as Keras does), load, compare.
    let int8_bytes = store::save(&model, &int8_path)?;
    let mut reloaded = Functional::<NdArray>::new(&device);
    reloaded.quantize_int8()?;
    store::load(&mut reloaded, &int8_path)?;
    println!(
        "MSE (INT8 vs reloaded-INT8): {}",
        mse(y_int8, reloaded.forward(x_eval))
    );

    println!("{}: {fp32_bytes} bytes", fp32_path.display());
    println!("{}: {int8_bytes} bytes", int8_path.display());
    Ok(())
}
