//! int8 vs f32 Linear, per enabled backend, at Gemma3 270M's shapes:
//! `[1×640→2048]`, `[1×2048→640]` (decode), `[1×640→262144]` (the logits), `[128×640→2048]` (prefill).
//!
//! Run: `cargo bench --bench linear` (add `-- flex` to filter). Both sides of each pair run in
//! the same process, on the same backend, with the same input; compare the ratio, not the
//! times across runs.

use burn::module::Param;
use burn::nn;
use burn::tensor::{Distribution, Tensor, backend::Backend};
use burn_int8::QuantizedLinear;
use criterion::{Criterion, criterion_group, criterion_main};

const SHAPES: [(usize, usize, usize); 4] = [
    (1, 640, 2048),
    (1, 2048, 640),
    (1, 640, 262_144),
    (128, 640, 2048),
];

fn bench_backend<B: Backend>(
    c: &mut Criterion,
    name: &str,
    device: &B::Device,
    max_weight_bytes: usize,
) {
    for (rows, d_in, d_out) in SHAPES {
        if d_in * d_out * 4 > max_weight_bytes {
            eprintln!(
                "{name}: [{rows}x{d_in}->{d_out}] skipped: an f32 weight over {max_weight_bytes} bytes does not fit one storage buffer"
            );
            continue;
        }
        let weight = Tensor::<B, 2>::random([d_in, d_out], Distribution::Normal(0.0, 0.05), device);
        let float = nn::Linear {
            weight: Param::from_tensor(weight.clone()),
            bias: None,
        };
        let int8 = QuantizedLinear::from_weights(weight, None).expect("quantize");
        let x = Tensor::<B, 2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), device);
        let mut group = c.benchmark_group(format!("{name}/linear_{rows}x{d_in}x{d_out}"));
        group
            .sample_size(10)
            .warm_up_time(std::time::Duration::from_millis(500))
            .measurement_time(std::time::Duration::from_secs(2));
        group.bench_function("f32", |b| b.iter(|| float.forward(x.clone()).into_data()));
        group.bench_function("int8", |b| b.iter(|| int8.forward(x.clone()).into_data()));
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    #[cfg(feature = "ndarray")]
    bench_backend::<burn::backend::NdArray>(c, "ndarray", &Default::default(), usize::MAX);
    #[cfg(feature = "flex")]
    bench_backend::<burn::backend::Flex>(c, "flex", &Default::default(), usize::MAX);
    // lavapipe's maxStorageBufferRange is 128 MiB.
    #[cfg(feature = "wgpu")]
    bench_backend::<burn::backend::Vulkan>(
        c,
        "wgpu",
        &burn::backend::wgpu::WgpuDevice::Cpu,
        128 << 20,
    );
    #[cfg(feature = "cuda")]
    bench_backend::<burn::backend::Cuda>(c, "cuda", &Default::default(), usize::MAX);
}

criterion_group!(linear, benches);
criterion_main!(linear);
