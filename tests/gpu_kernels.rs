//! The cubecl int8 kernels (`burn_int8::gpu`) against the generic path, bit for bit, on every
//! compiled GPU backend: wgpu on Mesa lavapipe everywhere, CUDA where a GPU is present.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::tensor::{DType, FloatDType, Int, IntDType, Tensor, TensorData, backend::Backend};
use burn_int8::gpu::{
    MAX_STRIDED_ROWS, WeightLayout, int8_matmul_with_layout, try_int8_matmul, weight_layout_of,
};
use burn_int8::ops::generic_int8_matmul;

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
    transposed: bool,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let seed = (m * 1_000_003 + k * 1009 + n) as u64;
    let lhs = int8_tensor(random_i8(m * k, seed), [m, k], device);
    let rhs = if transposed {
        int8_tensor(random_i8(n * k, seed + 1), [n, k], device).transpose()
    } else {
        int8_tensor(random_i8(k * n, seed + 1), [k, n], device)
    };
    (lhs, rhs)
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
/// strided layout past [`MAX_STRIDED_ROWS`], whose kernel is then checked directly.
fn check<B: Backend>(m: usize, k: usize, n: usize, transposed: bool, device: &B::Device) {
    let what = format!("{m}x{k} @ {k}x{n} (transposed: {transposed})");
    let (lhs, rhs) = operands::<B>(m, k, n, transposed, device);
    let expected = generic_int8_matmul(lhs.clone(), rhs.clone());
    let layout = weight_layout_of(&lhs, &rhs).expect("a cubecl backend");
    match try_int8_matmul(&lhs, &rhs) {
        Some(actual) => assert_same(actual, expected, &what),
        None => {
            assert!(
                layout == WeightLayout::Strided && m > MAX_STRIDED_ROWS,
                "declined {what}"
            );
            let actual = int8_matmul_with_layout(&lhs, &rhs, layout).expect("strided kernel");
            assert_same(actual, expected, &what);
        }
    }
}

fn odd_shapes<B: Backend>(device: &B::Device) {
    for m in [1, 3, 17, 128] {
        for k in [1, 5, 640, 1031] {
            for n in [1, 7, 33, 2049] {
                check::<B>(m, k, n, false, device);
                check::<B>(m, k, n, true, device);
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
    let (lhs, rhs) = operands::<B>(3, 64, 40, false, device);
    let expected = generic_int8_matmul(lhs.clone(), rhs.clone());
    let lhs = Tensor::<A<B>, 2, Int>::from_primitive(lhs.into_primitive());
    let rhs = Tensor::<A<B>, 2, Int>::from_primitive(rhs.into_primitive());
    let actual = try_int8_matmul(&lhs, &rhs).expect("kernel under autodiff");
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

/// Shapes that take the packed kernels (K, and N for row-major weights, multiples of 4), with
/// row and column tails.
fn packed_shapes<B: Backend>(device: &B::Device) {
    for m in [1, 2, 3, 4, 5, 9, 17] {
        for (k, n) in [(4, 4), (8, 12), (640, 36), (644, 2052), (1032, 5)] {
            let lhs = int8_tensor::<B>(vec![0; m * k], [m, k], device);
            let kn = int8_tensor::<B>(vec![0; k * n], [k, n], device);
            let nk = int8_tensor::<B>(vec![0; n * k], [n, k], device).transpose();
            assert_eq!(
                weight_layout_of(&lhs, &nk),
                Some(WeightLayout::PackedNk),
                "{k}x{n}"
            );
            let kn_layout = weight_layout_of(&lhs, &kn).expect("a cubecl backend");
            assert_eq!(
                kn_layout == WeightLayout::PackedKn,
                n.is_multiple_of(4),
                "{k}x{n}"
            );
            check::<B>(m, k, n, false, device);
            check::<B>(m, k, n, true, device);
        }
    }
}

#[test]
fn packed_kernels_match_generic() {
    for_each_gpu_backend!(packed_shapes);
}

/// All-extreme values: the largest magnitudes a row can sum to, against the closed form.
fn extremes<B: Backend>(device: &B::Device) {
    // K = 1024 takes the packed kernels, K = 1023 the strided one.
    for (a, b, k) in [
        (-128i8, -128i8, 1024),
        (-128, 127, 1024),
        (127, 127, 1024),
        (-128, -128, 1023),
    ] {
        let (m, n) = (2, 8);
        let lhs = int8_tensor::<B>(vec![a; m * k], [m, k], device);
        for rhs in [
            int8_tensor::<B>(vec![b; k * n], [k, n], device),
            int8_tensor::<B>(vec![b; n * k], [n, k], device).transpose(),
        ] {
            let actual = try_int8_matmul(&lhs, &rhs).expect("kernel").into_data();
            let expected = vec![a as i32 * b as i32 * k as i32; m * n];
            assert_eq!(actual.as_slice::<i32>().unwrap(), expected.as_slice());
        }
    }
}

#[test]
fn extremes_are_exact() {
    for_each_gpu_backend!(extremes);
}

/// A weight view that is neither layout (the left columns of a wider matrix: rows `2N` apart)
/// still gives the exact product, through the strided kernel.
fn strided_view<B: Backend>(device: &B::Device) {
    // N = 256 keeps the slice's end offset aligned, so Burn makes a view, not a copy.
    let (m, k, n) = (3, 40, 256);
    let lhs = int8_tensor::<B>(random_i8(m * k, 7), [m, k], device);
    let full = int8_tensor::<B>(random_i8(k * 2 * n, 8), [k, 2 * n], device);
    let rhs = full.slice([0..k, 0..n]);
    assert_eq!(weight_layout_of(&lhs, &rhs), Some(WeightLayout::Strided));
    let expected = generic_int8_matmul(lhs.clone(), rhs.clone());
    assert_same(
        try_int8_matmul(&lhs, &rhs).expect("kernel"),
        expected,
        "column slice",
    );
    // A layout the weight does not have is refused, not run on the wrong bytes.
    assert!(int8_matmul_with_layout(&lhs, &rhs, WeightLayout::PackedKn).is_none());
}

#[test]
fn other_strided_views() {
    for_each_gpu_backend!(strided_view);
}

fn declines_other_dtypes<B: Backend>(device: &B::Device) {
    let lhs = int8_tensor::<B>(random_i8(6, 1), [2, 3], device);
    let rhs = int8_tensor::<B>(random_i8(12, 2), [3, 4], device);
    assert!(try_int8_matmul(&lhs.clone().cast(IntDType::I32), &rhs).is_none());
    assert!(try_int8_matmul(&lhs, &rhs.clone().cast(IntDType::I32)).is_none());
    assert!(
        try_int8_matmul(&lhs, &rhs.clone().transpose()).is_none(),
        "inner sizes differ"
    );
    assert!(try_int8_matmul(&lhs, &rhs).is_some());
}

#[test]
fn declines_other_dtypes_and_backends() {
    for_each_gpu_backend!(declines_other_dtypes);
    #[cfg(feature = "ndarray")]
    {
        type Cpu = burn::backend::NdArray;
        let cpu = Default::default();
        let lhs = int8_tensor::<Cpu>(vec![1; 6], [2, 3], &cpu);
        let rhs = int8_tensor::<Cpu>(vec![1; 12], [3, 4], &cpu);
        assert!(try_int8_matmul(&lhs, &rhs).is_none());
        assert!(weight_layout_of(&lhs, &rhs).is_none());
    }
}

/// Milliseconds per call of `f`, the device synced by reading the result back.
fn time_ms<B: Backend, K>(iters: usize, f: &mut dyn FnMut() -> Tensor<B, 2, K>) -> f64
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
    let cases: [(&str, usize, usize, usize, bool); 7] = [
        ("[1x640]x[640x2048]", 1, 640, 2048, false),
        ("[1x2048]x[2048x640]", 1, 2048, 640, false),
        ("[1x640]x[640x49152]^T", 1, 640, 49_152, true),
        ("[128x640]x[640x2048]", 128, 640, 2048, false),
        ("[1x640]x[640x2049] (strided)", 1, 640, 2049, false),
        ("[1x642]x[642x2048] (strided)", 1, 642, 2048, false),
        ("[4x642]x[642x2048] (strided)", 4, 642, 2048, false),
    ];
    for (name, m, k, n, transposed) in cases {
        let lhs = int8_tensor::<B>(random_i8(m * k, 1), [m, k], device);
        let rhs = if transposed {
            int8_tensor::<B>(random_i8(n * k, 2), [n, k], device).transpose()
        } else {
            int8_tensor::<B>(random_i8(k * n, 2), [k, n], device)
        };
        let rhs_f32 = rhs.clone().cast(FloatDType::F32);
        let mut kernel = || try_int8_matmul(&lhs, &rhs).expect("kernel");
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

/// Timings (each includes a read-back to the host): `cargo test --release --features wgpu
/// --test integration gpu_kernels::bench -- --ignored --nocapture` (add `cuda` where a GPU is present).
#[test]
#[ignore]
fn bench() {
    for_each_gpu_backend!(bench_kernels);
}
