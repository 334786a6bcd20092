//! int8 vs f32 convolution on flex, both sides of each pair in the same run:
//!
//! - every distinct convolution of ResNet-18 at 224×224 (`resnet18/…`),
//! - MobileNetV2's depthwise 3×3 layers and a set of its pointwise 1×1 layers
//!   (`mobilenetv2/…`),
//! - the whole ResNet-18 (BatchNorm folded, random weights) and the digits CNN of
//!   `examples/quantize_cnn.rs`,
//!
//! at batch 1 and 8 (the digits CNN at 1 and its 359-image test split). The f32 side is Burn's
//! own convolution (`burn::nn::conv::Conv2d` through `burn_int8::nn`'s float variant);
//! `int8` is Keras's scheme, `int8_sample` `Scheme::Sample` (not for depthwise layers, which
//! keep Keras's).
//!
//! Run: `cargo bench --bench conv` (or a filter: `cargo bench --bench conv -- resnet18/`).
//! `BENCH_BATCHES=1` limits the batches. Compare the ratio of each pair, not times across runs.

#[path = "../examples/common/digits.rs"]
#[allow(dead_code)]
mod digits;
// The example brings its own copy of `digits.rs`: a second module from the same file, on purpose.
#[path = "../examples/quantize_cnn.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod quantize_cnn;
#[path = "../examples/common/resnet18.rs"]
#[allow(dead_code)]
mod resnet18;

use std::time::Duration;

use burn::backend::Flex;
use burn::nn::PaddingConfig2d;
use burn::tensor::{Distribution, Tensor};
use burn_int8::nn::conv::Conv2dConfig;
use burn_int8::{QuantizeConfig, QuantizeExt, Scheme};
use criterion::{Criterion, criterion_group, criterion_main};

/// MobileNetV2 at 224×224: its depthwise 3×3 layers `(channels, stride, input size)`.
const MOBILENET_DEPTHWISE: [(usize, usize, usize); 10] = [
    (32, 1, 112),
    (96, 2, 112),
    (144, 1, 56),
    (144, 2, 56),
    (192, 1, 28),
    (192, 2, 28),
    (384, 1, 14),
    (576, 1, 14),
    (576, 2, 14),
    (960, 1, 7),
];

/// MobileNetV2's pointwise 1×1 layers, one expansion and one projection per resolution:
/// `(c_in, c_out, size)`.
const MOBILENET_POINTWISE: [(usize, usize, usize); 10] = [
    (16, 96, 112),
    (32, 16, 112),
    (24, 144, 56),
    (144, 24, 56),
    (32, 192, 28),
    (192, 32, 28),
    (64, 384, 14),
    (384, 64, 14),
    (160, 960, 7),
    (960, 160, 7),
];

fn group<'a>(
    c: &'a mut Criterion,
    name: String,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500));
    group
}

fn batches() -> Vec<usize> {
    std::env::var("BENCH_BATCHES")
        .ok()
        .map(|value| {
            value
                .split(',')
                .filter_map(|b| b.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1, 8])
}

/// The config of `Scheme::Sample`.
fn per_sample() -> QuantizeConfig {
    QuantizeConfig::default().scheme(Scheme::Sample)
}

/// One convolution, f32 and int8 on the same input.
#[allow(clippy::too_many_arguments)]
fn conv_pair(
    c: &mut Criterion,
    name: String,
    batch: usize,
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    size: usize,
) {
    let device = Default::default();
    let padding = kernel / 2;
    let float = Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .init::<Flex>(&device);
    let mut int8 = float.clone();
    int8.quantize_int8().expect("quantize");
    let x = Tensor::<Flex, 4>::random(
        [batch, channels[0], size, size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut group = group(c, name);
    group.bench_function("f32", |b| b.iter(|| float.forward(x.clone()).into_data()));
    group.bench_function("int8", |b| b.iter(|| int8.forward(x.clone()).into_data()));
    // `Scheme::Sample` (one activation scale per image); depthwise layers keep Keras's scheme.
    if groups == 1 {
        let mut sample = float.clone();
        sample.quantize_with(&per_sample()).expect("quantize");
        group.bench_function("int8_sample", |b| {
            b.iter(|| sample.forward(x.clone()).into_data())
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let device = Default::default();
    for batch in batches() {
        for (name, c_in, c_out, kernel, stride, size) in resnet18::RESNET18_CONVS {
            conv_pair(
                c,
                format!("resnet18/{name}_{c_in}to{c_out}@{size}/b{batch}"),
                batch,
                [c_in, c_out],
                kernel,
                stride,
                1,
                size,
            );
        }
        for (channels, stride, size) in MOBILENET_DEPTHWISE {
            let s = if stride == 1 { "" } else { "s2" };
            conv_pair(
                c,
                format!("mobilenetv2/dw3x3{s}_{channels}@{size}/b{batch}"),
                batch,
                [channels, channels],
                3,
                stride,
                channels,
                size,
            );
        }
        for (c_in, c_out, size) in MOBILENET_POINTWISE {
            conv_pair(
                c,
                format!("mobilenetv2/pw_{c_in}to{c_out}@{size}/b{batch}"),
                batch,
                [c_in, c_out],
                1,
                1,
                1,
                size,
            );
        }
    }

    // The whole ResNet-18 (random weights; BatchNorm folded into the convolutions).
    let float = resnet18::ResNet18::<Flex>::new(&device);
    // Parameters are lazy: read them before cloning, so both precisions share the weights.
    let _ = burn_int8::param_bytes(&float);
    let mut int8 = float.clone();
    int8.quantize_int8().expect("quantize");
    let mut sample = float.clone();
    sample.quantize_with(&per_sample()).expect("quantize");
    for batch in batches() {
        let images = Tensor::<Flex, 4>::random(
            [batch, 3, 224, 224],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let mut group = group(c, format!("resnet18_model/b{batch}"));
        // The float model as a Burn user writes it (Burn's max pool), and with ours.
        group.bench_function("f32", |b| {
            b.iter(|| float.forward_burn_pool(images.clone()).into_data())
        });
        group.bench_function("f32_int8_pool", |b| {
            b.iter(|| float.forward(images.clone()).into_data())
        });
        group.bench_function("int8", |b| {
            b.iter(|| int8.forward(images.clone()).into_data())
        });
        group.bench_function("int8_sample", |b| {
            b.iter(|| sample.forward(images.clone()).into_data())
        });
        group.finish();
    }

    // ResNet-18's max pool (3×3, stride 2, padding 1 on 64×112×112): Burn's and ours.
    for batch in batches() {
        let x = Tensor::<Flex, 4>::random(
            [batch, 64, 112, 112],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let config = burn_int8::nn::pool::MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        let ours = config.init();
        let burn = burn::nn::pool::MaxPool2dConfig::from(config).init();
        let mut group = group(c, format!("max_pool_3x3s2_64@112/b{batch}"));
        group.bench_function("burn", |b| b.iter(|| burn.forward(x.clone()).into_data()));
        group.bench_function("ours", |b| b.iter(|| ours.forward(x.clone()).into_data()));
        group.finish();
    }

    // A 1-D max pool (3, stride 2, padding 1) on 64 channels of 4096 steps: Burn's and ours.
    for batch in batches() {
        let x =
            Tensor::<Flex, 3>::random([batch, 64, 4096], Distribution::Normal(0.0, 1.0), &device);
        let config = burn_int8::nn::pool::MaxPool1dConfig::new(3)
            .with_stride(2)
            .with_padding(burn::nn::PaddingConfig1d::Explicit(1, 1));
        let ours = config.init();
        let burn = burn::nn::pool::MaxPool1dConfig::from(config).init();
        let mut group = group(c, format!("max_pool1d_3s2_64@4096/b{batch}"));
        group.bench_function("burn", |b| b.iter(|| burn.forward(x.clone()).into_data()));
        group.bench_function("ours", |b| b.iter(|| ours.forward(x.clone()).into_data()));
        group.finish();
    }

    // The digits CNN, trained briefly (its weights' values do not change the cost).
    let report = quantize_cnn::run(20).expect("train the CNN");
    let int8 = report.model;
    let mut float = int8.clone();
    float.dequantize().expect("dequantize");
    for batch in [1, 359] {
        let images =
            Tensor::<Flex, 2>::random([batch, 64], Distribution::Uniform(0.0, 1.0), &device);
        let mut group = group(c, format!("digits_cnn/b{batch}"));
        group.bench_function("f32", |b| {
            b.iter(|| float.forward(images.clone()).into_data())
        });
        group.bench_function("int8", |b| {
            b.iter(|| int8.forward(images.clone()).into_data())
        });
        group.finish();
    }
}

criterion_group!(conv, benches);
criterion_main!(conv);
