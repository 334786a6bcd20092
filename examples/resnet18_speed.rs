//! ResNet-18 at 224×224 (BatchNorm folded, random weights), Burn float vs our int8 on flex:
//! median milliseconds per forward pass, one JSON line per (precision, batch), for
//! `benches/resnet18_vs_ort.sh`, which alternates this with ONNX Runtime's run of the same graph.
//!
//! Run: `cargo run --release --example resnet18_speed -- [BATCHES] [RUNS] [PRECISIONS]`
//! (default `1,8 10 f32,f32-int8-pool,int8,int8-sample`; one precision alone is handy under a
//! profiler). `f32` is the model as a Burn user writes it (Burn's max pool); `f32-int8-pool`
//! the float model with `burn_int8::nn`'s max pool; `int8` the quantized model (Keras's
//! scheme, with that pool); `int8-sample` the model quantized with `Scheme::Sample` (one
//! activation scale per image, as ONNX Runtime's per-tensor activations).
//! Threads: flex uses rayon's pool (`RAYON_NUM_THREADS`).

#[path = "common/resnet18.rs"]
#[allow(dead_code)]
mod resnet18;

use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use burn_int8::{QuantizeConfig, QuantizeExt, Scheme};

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up: first-call allocations, thread start.
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let batches: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "1,8".into())
        .split(',')
        .map(|b| b.parse().expect("batch sizes, comma-separated"))
        .collect();
    let runs: usize = args.next().map_or(10, |r| r.parse().expect("runs"));
    let precisions = args
        .next()
        .unwrap_or_else(|| "f32,f32-int8-pool,int8,int8-sample".into());
    let wanted = |precision: &str| precisions.split(',').any(|p| p == precision);
    let device = Default::default();
    let float = resnet18::ResNet18::<Flex>::new(&device);
    let _ = burn_int8::param_bytes(&float);
    // Only the models asked for: the process's memory (and how the allocator reuses it)
    // should not depend on models that do not run.
    let quantized = |config: Option<QuantizeConfig>| {
        let mut model = float.clone();
        match config {
            None => model.quantize_int8().map(|_| ()),
            Some(config) => model.quantize_with(&config).map(|_| ()),
        }
        .expect("quantize");
        model
    };
    let int8 = wanted("int8").then(|| quantized(None));
    let int8_sample = wanted("int8-sample")
        .then(|| quantized(Some(QuantizeConfig::default().scheme(Scheme::Sample))));
    let threads = rayon::current_num_threads();
    for batch in batches {
        let images = Tensor::<Flex, 4>::random(
            [batch, 3, 224, 224],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        for (precision, model, burn_pool) in [
            ("f32", Some(&float), true),
            ("f32-int8-pool", Some(&float), false),
            ("int8", int8.as_ref(), false),
            ("int8-sample", int8_sample.as_ref(), false),
        ] {
            let Some(model) = model.filter(|_| wanted(precision)) else {
                continue;
            };
            let ms = median_ms(runs, || {
                let logits = if burn_pool {
                    model.forward_burn_pool(images.clone())
                } else {
                    model.forward(images.clone())
                };
                logits.into_data();
            });
            println!(
                "{{\"engine\": \"burn-flex\", \"precision\": \"{precision}\", \"batch\": {batch}, \"threads\": {threads}, \"median_ms\": {ms:.3}}}"
            );
        }
    }
}
