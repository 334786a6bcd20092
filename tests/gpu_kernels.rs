//! The cubecl int8 kernels (`burn_int8::kernels::gpu`) against the generic path, bit for bit,
//! on every compiled GPU backend: wgpu on Mesa lavapipe everywhere, CUDA where a GPU is present.
//! The kernels read channel rows `[N, K]` (the one weight layout); the free `int8_matmul` lays a
//! `[K, N]` operand out that way first.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::tensor::{DType, FloatDType, Int, IntDType, Tensor, TensorData, backend::Backend};
use burn_int8::kernels::generic::int8_matmul as generic_int8_matmul;
use burn_int8::kernels::gpu::{
    GpuKernel, MAX_STRIDED_ROWS, int8_matmul_with_kernel, kernel_for, try_int8_matmul,
};
use burn_int8::kernels::int8_matmul;

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

/// Timings (each includes a read-back to the host): `cargo test --release --features wgpu
/// --test integration gpu_kernels::bench -- --ignored --nocapture` (add `cuda` where a GPU is present).
#[test]
#[ignore]
fn bench() {
    for_each_gpu_backend!(bench_kernels);
}
