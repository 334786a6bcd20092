//! int8 vs f32 convolution on flex, in one run: a Conv2d at a few shapes (an image-model
//! stem and a middle layer, batch 1 and 16), and the digits CNN of `examples/quantize_cnn.rs`
//! (batch 1 and its whole 359-image test split). Int8 convolution has no peer in Keras; this
//! shows whether it pays. Keras's rule is kept: im2col, one activation scale per output
//! position, the int8 product, the rescale.
//!
//! Run: `cargo bench --bench conv`. Compare the ratio of each pair, not times across runs.

#[path = "../examples/common/digits.rs"]
#[allow(dead_code)]
mod digits;
// The example brings its own copy of `digits.rs`: a second module from the same file, on purpose.
#[path = "../examples/quantize_cnn.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod quantize_cnn;

use burn::backend::Flex;
use burn::nn::PaddingConfig2d;
use burn::tensor::{Distribution, Tensor};
use burn_int8::QuantizeExt;
use burn_int8::nn::conv::Conv2dConfig;
use criterion::{Criterion, criterion_group, criterion_main};

/// `(batch, channels_in, channels_out, size)`, 3×3 kernels, "same" padding.
const SHAPES: [(usize, usize, usize, usize); 4] = [
    (1, 3, 32, 112),
    (1, 64, 64, 56),
    (16, 64, 64, 28),
    (1, 256, 256, 14),
];

fn group<'a>(
    c: &'a mut Criterion,
    name: String,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    group
}

fn benches(c: &mut Criterion) {
    let device = Default::default();
    for (batch, c_in, c_out, size) in SHAPES {
        let float = Conv2dConfig::new([c_in, c_out], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init::<Flex>(&device);
        let mut int8 = float.clone();
        int8.quantize_int8().expect("quantize");
        let x = Tensor::<Flex, 4>::random(
            [batch, c_in, size, size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let mut group = group(
            c,
            format!("flex/conv2d_{batch}x{c_in}x{size}x{size}_to_{c_out}"),
        );
        group.bench_function("f32", |b| b.iter(|| float.forward(x.clone()).into_data()));
        group.bench_function("int8", |b| b.iter(|| int8.forward(x.clone()).into_data()));
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
        let mut group = group(c, format!("flex/digits_cnn_batch{batch}"));
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
