//! The cubecl int8 kernels (`burn_int8::kernels::gpu`) against the generic path, bit for bit,
//! on every compiled GPU backend: wgpu on Mesa lavapipe everywhere, CUDA where a GPU is present.
//! The kernels read channel rows `[N, K]` (the one weight layout); the free `int8_matmul` lays a
//! `[K, N]` operand out that way first.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::tensor::{
    DType, Distribution, FloatDType, Int, IntDType, Tensor, TensorData, backend::Backend,
};
use burn_int8::kernels::generic::int8_matmul as generic_int8_matmul;
use burn_int8::kernels::gpu::{
    GpuKernel, MAX_STRIDED_ROWS, int8_matmul_with_kernel, kernel_for, try_int8_matmul,
};
use burn_int8::kernels::int8_matmul;
use burn_int8::kernels::{generic_quantized_conv2d, gpu::try_quantized_conv2d};
use burn_int8::{Int8Weight, QuantizeExt, Scheme};
use rand::{SeedableRng, rngs::StdRng};

use crate::common::f32_of;
use crate::conv_kernels::{CASES, case_operands_as, differing, geometry};

/// Deterministic int8 values covering the full range, extremes included.
fn random_i8(len: usize, seed: u64) -> Vec<i8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            match i % 17 {
                0 => -128,
                1 => 127,
                _ => (state >> 56) as u8 as i8,
            }
        })
        .collect()
}

fn int8_tensor<B: Backend>(
    values: Vec<i8>,
    shape: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(values, shape), (device, DType::I8))
}

fn operands<B: Backend>(
    m: usize,
    k: usize,
    n: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let seed = (m * 1_000_003 + k * 1009 + n) as u64;
    let lhs = int8_tensor(random_i8(m * k, seed), [m, k], device);
    let rows = int8_tensor(random_i8(n * k, seed + 1), [n, k], device);
    (lhs, rows)
}

fn assert_same<B: Backend>(actual: Tensor<B, 2, Int>, expected: Tensor<B, 2, Int>, what: &str) {
    assert_eq!(actual.dtype(), DType::I32, "{what}");
    assert_eq!(actual.dims(), expected.dims(), "{what}");
    let (actual, expected) = (actual.into_data(), expected.into_data());
    assert_eq!(
        actual.as_slice::<i32>().unwrap(),
        expected.as_slice::<i32>().unwrap(),
        "{what}"
    );
}

/// The kernel's product equals the generic path's, bit for bit; the dispatch declines only the
/// strided kernel past [`MAX_STRIDED_ROWS`], which is then checked directly. The free
/// `int8_matmul` of the same weight as a dense `[K, N]` tensor agrees too.
fn check<B: Backend>(m: usize, k: usize, n: usize, device: &B::Device) {
    let what = format!("{m}x{k} @ ({n}x{k})^T");
    let (lhs, rows) = operands::<B>(m, k, n, device);
    let expected = generic_int8_matmul(lhs.clone(), rows.clone().transpose());
    let kernel = kernel_for(&lhs, &rows).expect("a cubecl backend");
    match try_int8_matmul(&lhs, &rows) {
        Some(actual) => assert_same(actual, expected.clone(), &what),
        None => {
            assert!(
                kernel == GpuKernel::Strided && m > MAX_STRIDED_ROWS,
                "declined {what}"
            );
            let actual = int8_matmul_with_kernel(&lhs, &rows, kernel).expect("strided kernel");
            assert_same(actual, expected.clone(), &what);
        }
    }
    let kn = int8_tensor::<B>(
        rows.transpose().into_data().to_vec::<i8>().unwrap(),
        [k, n],
        device,
    );
    assert_same(
        int8_matmul(lhs, kn),
        expected,
        &format!("int8_matmul {what}"),
    );
}

fn odd_shapes<B: Backend>(device: &B::Device) {
    for m in [1, 3, 17, 128] {
        for k in [1, 5, 640, 1031] {
            for n in [1, 7, 33, 2049] {
                check::<B>(m, k, n, device);
            }
        }
    }
}

#[test]
fn matches_generic_on_odd_shapes() {
    for_each_gpu_backend!(odd_shapes);
}

/// Int tensors are not tracked by `Autodiff`: its int primitive is the inner backend's.
fn under_autodiff<B: Backend>(device: &B::Device) {
    type A<B> = burn::backend::Autodiff<B>;
    let (lhs, rows) = operands::<B>(3, 64, 40, device);
    let expected = generic_int8_matmul(lhs.clone(), rows.clone().transpose());
    let lhs = Tensor::<A<B>, 2, Int>::from_primitive(lhs.into_primitive());
    let rows = Tensor::<A<B>, 2, Int>::from_primitive(rows.into_primitive());
    let actual = try_int8_matmul(&lhs, &rows).expect("kernel under autodiff");
    assert_same(
        Tensor::<B, 2, Int>::from_primitive(actual.into_primitive()),
        expected,
        "autodiff",
    );
}

#[test]
fn works_under_autodiff() {
    for_each_gpu_backend!(under_autodiff);
}

/// Shapes that take the packed kernel (K a multiple of 4), with row and column tails.
fn packed_shapes<B: Backend>(device: &B::Device) {
    for m in [1, 2, 3, 4, 5, 9, 17] {
        for (k, n) in [(4, 4), (8, 12), (640, 36), (644, 2052), (1032, 5)] {
            let lhs = int8_tensor::<B>(vec![0; m * k], [m, k], device);
            let rows = int8_tensor::<B>(vec![0; n * k], [n, k], device);
            assert_eq!(kernel_for(&lhs, &rows), Some(GpuKernel::Packed), "{k}x{n}");
            check::<B>(m, k, n, device);
        }
    }
}

#[test]
fn packed_kernels_match_generic() {
    for_each_gpu_backend!(packed_shapes);
}

/// All-extreme values: the largest magnitudes a row can sum to, against the closed form.
fn extremes<B: Backend>(device: &B::Device) {
    // K = 1024 takes the packed kernel, K = 1023 the strided one.
    for (a, b, k) in [
        (-128i8, -128i8, 1024),
        (-128, 127, 1024),
        (127, 127, 1024),
        (-128, -128, 1023),
    ] {
        let (m, n) = (2, 8);
        let lhs = int8_tensor::<B>(vec![a; m * k], [m, k], device);
        let rows = int8_tensor::<B>(vec![b; n * k], [n, k], device);
        let actual = try_int8_matmul(&lhs, &rows).expect("kernel").into_data();
        let expected = vec![a as i32 * b as i32 * k as i32; m * n];
        assert_eq!(actual.as_slice::<i32>().unwrap(), expected.as_slice());
    }
}

#[test]
fn extremes_are_exact() {
    for_each_gpu_backend!(extremes);
}

/// Channel rows that are not dense (the left columns of a wider matrix: rows `2K` apart) still
/// give the exact product, through the strided kernel.
fn strided_view<B: Backend>(device: &B::Device) {
    // 2K = 256 keeps the slice's end offset aligned, so Burn makes a view, not a copy.
    let (m, k, n) = (3, 128, 40);
    let lhs = int8_tensor::<B>(random_i8(m * k, 7), [m, k], device);
    let full = int8_tensor::<B>(random_i8(n * 2 * k, 8), [n, 2 * k], device);
    let rows = full.slice([0..n, 0..k]);
    assert_eq!(kernel_for(&lhs, &rows), Some(GpuKernel::Strided));
    let expected = generic_int8_matmul(lhs.clone(), rows.clone().transpose());
    assert_same(
        try_int8_matmul(&lhs, &rows).expect("kernel"),
        expected,
        "column slice",
    );
    // A kernel the weight cannot take is refused, not run on the wrong bytes.
    assert!(int8_matmul_with_kernel(&lhs, &rows, GpuKernel::Packed).is_none());
}

#[test]
fn other_strided_views() {
    for_each_gpu_backend!(strided_view);
}

fn declines_other_dtypes<B: Backend>(device: &B::Device) {
    let lhs = int8_tensor::<B>(random_i8(6, 1), [2, 3], device);
    let rows = int8_tensor::<B>(random_i8(12, 2), [4, 3], device);
    assert!(try_int8_matmul(&lhs.clone().cast(IntDType::I32), &rows).is_none());
    assert!(try_int8_matmul(&lhs, &rows.clone().cast(IntDType::I32)).is_none());
    assert!(
        try_int8_matmul(&lhs, &rows.clone().transpose()).is_none(),
        "inner sizes differ"
    );
    assert!(try_int8_matmul(&lhs, &rows).is_some());
}

#[test]
fn declines_other_dtypes_and_backends() {
    for_each_gpu_backend!(declines_other_dtypes);
    #[cfg(feature = "ndarray")]
    {
        type Cpu = burn::backend::NdArray;
        let cpu = Default::default();
        let lhs = int8_tensor::<Cpu>(vec![1; 6], [2, 3], &cpu);
        let rows = int8_tensor::<Cpu>(vec![1; 12], [4, 3], &cpu);
        assert!(try_int8_matmul(&lhs, &rows).is_none());
        assert!(kernel_for(&lhs, &rows).is_none());
    }
}

/// The direct convolution kernels (no im2col tensor) against the generic path (im2col through
/// Burn ops), bit for bit, in both schemes (Keras's window scales, `Scheme::Sample`'s image
/// scales), on the CPU kernel tests' cases (1×1 to 7×7, stride, dilation,
/// asymmetric padding, grouped, depthwise with a multiplier, Conv1d shapes, batched, ties).
fn conv_matches_generic<B: Backend>(device: &B::Device) {
    let mut rng = StdRng::seed_from_u64(28);
    for (case, scheme) in CASES
        .iter()
        .flat_map(|case| [(case, Scheme::Keras), (case, Scheme::Sample)])
    {
        let (weight, bias, inputs) = case_operands_as::<B>(case, scheme, &mut rng, device);
        for (kind, input) in ["normal", "ties"].iter().zip(inputs) {
            for bias in [None, Some(bias.clone())] {
                let expected =
                    generic_quantized_conv2d(input.clone(), &weight, bias.clone(), geometry(case));
                let direct = try_quantized_conv2d(&input, &weight, bias.as_ref(), geometry(case))
                    .unwrap_or_else(|| panic!("{scheme} declined {case:?}"));
                assert_eq!(direct.dims(), expected.dims(), "{case:?}");
                let expected = f32_of(expected);
                let differ = differing(&f32_of(direct), &expected);
                assert_eq!(
                    differ,
                    0,
                    "{scheme} {kind} bias {} {case:?}: {differ} of {} outputs differ",
                    bias.is_some(),
                    expected.len()
                );
            }
        }
    }
}

#[test]
fn direct_conv_matches_generic() {
    for_each_gpu_backend!(conv_matches_generic);
}

/// A non-finite input value gives NaN to exactly the outputs whose window reads it (their
/// scale is NaN); every other output has the bits of the generic path on the same input with
/// that value replaced by zero (windows that do not read it cannot tell).
fn conv_non_finite<B: Backend>(device: &B::Device) {
    // 3×3, padding 1, stride 1: the value at (y, x) is read by outputs (y ± 1, x ± 1).
    let case = CASES
        .iter()
        .find(|case| case.input == [1, 8, 17, 19] && case.kernel == [3, 3])
        .expect("the 3x3 case");
    let [_, c_in, height, width] = case.input;
    let weight = Tensor::<B, 4>::random(
        [case.c_out, c_in, 3, 3],
        Distribution::Normal(0.0, 0.5),
        device,
    );
    let weight = Int8Weight::quantize(weight, 0, "conv weight").unwrap();
    let clean = f32_of(Tensor::<B, 4>::random(
        case.input,
        Distribution::Normal(0.0, 1.0),
        device,
    ));
    let (channel, y, x) = (3, 5, 0);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut values = clean.clone();
        values[(channel * height + y) * width + x] = bad;
        let zeroed = {
            let mut values = clean.clone();
            values[(channel * height + y) * width + x] = 0.0;
            values
        };
        let tensor = |values: Vec<f32>| {
            Tensor::<B, 4>::from_data(TensorData::new(values, case.input), device)
        };
        let direct = f32_of(
            try_quantized_conv2d(&tensor(values), &weight, None, geometry(case)).expect("kernel"),
        );
        let expected = f32_of(generic_quantized_conv2d(
            tensor(zeroed),
            &weight,
            None,
            geometry(case),
        ));
        for (index, (&d, &e)) in direct.iter().zip(&expected).enumerate() {
            let (oy, ox) = ((index / width) % height, index % width);
            let reads = oy.abs_diff(y) <= 1 && ox.abs_diff(x) <= 1;
            if reads {
                assert!(d.is_nan(), "{bad}: output {index} reads it: {d}");
            } else {
                assert_eq!(d.to_bits(), e.to_bits(), "{bad}: output {index}");
            }
        }
    }
}

#[test]
fn direct_conv_non_finite_windows_are_nan() {
    for_each_gpu_backend!(conv_non_finite);
}

/// The layer's forward (the seam's dispatch, `kernels::conv2d`) gives the generic path's bits.
fn conv_layer<B: Backend>(device: &B::Device) {
    use burn::nn::PaddingConfig2d;
    use burn_int8::nn::conv::Conv2dConfig;
    let mut layer = Conv2dConfig::new([6, 12], [3, 3])
        .with_stride([2, 1])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init::<B>(device);
    layer.quantize_int8().expect("quantize");
    let input = Tensor::<B, 4>::random([2, 6, 11, 9], Distribution::Normal(0.0, 1.0), device);
    let actual = f32_of(layer.forward(input.clone()));
    let quantized = layer.int8_layer().expect("quantized");
    let expected = f32_of(generic_quantized_conv2d(
        input,
        &quantized.weight,
        quantized.bias.as_ref().map(|bias| bias.val()),
        burn_int8::kernels::ConvGeometry {
            stride: [2, 1],
            dilation: [1, 1],
            groups: 1,
            padding: ((1, 1), (1, 1)),
        },
    ));
    assert_eq!(differing(&actual, &expected), 0);
}

#[test]
fn conv_layer_gives_the_generic_bits() {
    for_each_gpu_backend!(conv_layer);
}

/// Milliseconds per call of `f`, the device synced by reading the result back.
fn time_ms<B: Backend, const D: usize, K>(
    iters: usize,
    f: &mut dyn FnMut() -> Tensor<B, D, K>,
) -> f64
where
    K: burn::tensor::TensorKind<B> + burn::tensor::BasicOps<B>,
{
    let start = std::time::Instant::now();
    for _ in 0..iters {
        let _ = f().into_data();
    }
    start.elapsed().as_secs_f64() * 1e3 / iters as f64
}

/// Int8 kernel against f32 matmul on the same device. The methods are interleaved over rounds
/// and the best round is kept, so a busy machine skews them alike.
fn bench_kernels<B: Backend>(device: &B::Device) {
    // The [262144, 640] embedding (160 MiB of int8, 640 MiB as f32) is over lavapipe's 128 MiB
    // buffer limit: 49152 rows is the most whose f32 copy fits there.
    let cases: [(&str, usize, usize, usize); 6] = [
        ("[1x640]x[2048x640]^T", 1, 640, 2048),
        ("[1x2048]x[640x2048]^T", 1, 2048, 640),
        ("[1x640]x[49152x640]^T", 1, 640, 49_152),
        ("[128x640]x[2048x640]^T", 128, 640, 2048),
        ("[1x642]x[2048x642]^T (strided)", 1, 642, 2048),
        ("[4x642]x[2048x642]^T (strided)", 4, 642, 2048),
    ];
    for (name, m, k, n) in cases {
        let lhs = int8_tensor::<B>(random_i8(m * k, 1), [m, k], device);
        let rows = int8_tensor::<B>(random_i8(n * k, 2), [n, k], device);
        let rhs = rows.clone().transpose();
        let rhs_f32 = rhs.clone().cast(FloatDType::F32);
        let mut kernel = || try_int8_matmul(&lhs, &rows).expect("kernel");
        let mut f32_only = || lhs.clone().cast(FloatDType::F32).matmul(rhs_f32.clone());
        let mut generic = || generic_int8_matmul(lhs.clone(), rhs.clone());
        let mut best = [f64::INFINITY; 3];
        for round in 0..4 {
            let iters = if round == 0 { 1 } else { 10 }; // round 0 compiles and warms up
            let times = [
                time_ms(iters, &mut kernel),
                time_ms(iters, &mut f32_only),
                time_ms(iters, &mut generic),
            ];
            if round > 0 {
                for (b, t) in best.iter_mut().zip(times) {
                    *b = b.min(t);
                }
            }
        }
        let [kernel, f32_only, generic] = best;
        println!(
            "{name:>32}: int8 kernel {kernel:7.3} ms | f32 matmul, f32 weights {f32_only:7.3} ms | generic int8 {generic:7.3} ms"
        );
    }
}

/// Int8 convolution, direct kernels against the generic path (im2col through `unfold4d`) and
/// Burn's f32 convolution on the same device, interleaved as in [`bench_kernels`].
fn bench_convolutions<B: Backend>(device: &B::Device) {
    use burn::nn::PaddingConfig2d;
    use burn_int8::nn::conv::Conv2dConfig;
    // (name, c_in, c_out, kernel, stride, groups, size), batch 1.
    let cases: [(&str, usize, usize, usize, usize, usize, usize); 4] = [
        ("resnet18 l1_3x3_64to64@56", 64, 64, 3, 1, 1, 56),
        ("resnet18 l3_3x3_256to256@14", 256, 256, 3, 1, 1, 14),
        ("mobilenetv2 dw3x3_144@56", 144, 144, 3, 1, 144, 56),
        ("mobilenetv2 pw_24to144@56", 24, 144, 1, 1, 1, 56),
    ];
    for (name, c_in, c_out, kernel, stride, groups, size) in cases {
        let pad = kernel / 2;
        let float = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .init::<B>(device);
        let mut int8 = float.clone();
        int8.quantize_int8().expect("quantize");
        let quantized = int8.int8_layer().expect("quantized");
        let geometry = burn_int8::kernels::ConvGeometry {
            stride: [stride, stride],
            dilation: [1, 1],
            groups,
            padding: ((pad, pad), (pad, pad)),
        };
        let bias = quantized.bias.as_ref().map(|bias| bias.val());
        let x = Tensor::<B, 4>::random(
            [1, c_in, size, size],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        // `Scheme::Sample` (depthwise layers keep Keras's scheme: the same kernel as `direct`).
        let mut sample = float.clone();
        sample
            .quantize_with(&burn_int8::QuantizeConfig::default().scheme(Scheme::Sample))
            .expect("quantize per sample");
        let mut direct = || int8.forward(x.clone());
        let mut per_sample = || sample.forward(x.clone());
        let mut generic =
            || generic_quantized_conv2d(x.clone(), &quantized.weight, bias.clone(), geometry);
        let mut f32_conv = || float.forward(x.clone());
        let mut best = [f64::INFINITY; 4];
        for round in 0..4 {
            let iters = if round == 0 { 1 } else { 5 };
            let times = [
                time_ms(iters, &mut direct),
                time_ms(iters, &mut per_sample),
                time_ms(iters, &mut generic),
                time_ms(iters, &mut f32_conv),
            ];
            if round > 0 {
                for (b, t) in best.iter_mut().zip(times) {
                    *b = b.min(t);
                }
            }
        }
        let [direct, per_sample, generic, f32_conv] = best;
        println!(
            "{name:>30}: int8 direct {direct:8.3} ms | per sample {per_sample:8.3} ms | int8 im2col {generic:8.3} ms | f32 conv {f32_conv:8.3} ms"
        );
    }
}

/// Timings (each includes a read-back to the host): `cargo test --release --features wgpu
/// --test integration gpu_kernels::bench -- --ignored --nocapture` (add `cuda` where a GPU is present).
#[test]
#[ignore]
fn bench() {
    for_each_gpu_backend!(bench_kernels);
    for_each_gpu_backend!(bench_convolutions);
}
