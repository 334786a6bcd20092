//! The CPU int8 kernels against the portable path: the same i32 bits on every instruction set
//! this CPU runs, on channel rows (the one layout) and through the free product's relayout of
//! a `[K, N]` operand, odd sizes and extreme values; and the fused
//! quantize-multiply-rescale-bias kernel against the tensor-op version, bit for bit.

use burn::module::{Param, ParamId};
use burn::nn::LinearConfig;
use burn::tensor::{Distribution, Int, IntDType, Tensor, TensorData, backend::Backend};
use burn_int8::kernels::cpu::{Isa, try_int8_matmul};
use burn_int8::kernels::generic::int8_matmul as generic_int8_matmul;
use burn_int8::kernels::{generic_quantized_matmul, int8_matmul, quantized_matmul};
use burn_int8::{Int8Weight, Linear, QuantizedLinear};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::common::f32_of;

/// `(m, k, n)`: not multiples of 4, 16, 32 or 64, around them, and the model's shapes.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 3, 5),
    (2, 5, 7),
    (3, 63, 65),
    (4, 64, 64),
    (5, 65, 63),
    (1, 640, 1001),
    (7, 1031, 33),
    (17, 130, 257),
    (1, 2048, 640),
    (128, 640, 300),
];

fn i8_tensor<B: Backend>(
    values: Vec<i8>,
    shape: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::<B, 2, Int>::from_data(TensorData::new(values, shape), device).cast(IntDType::I8)
}

/// Random int8 values, with a share of the extremes -128, -127 and 127.
fn values(rng: &mut StdRng, len: usize, min: i8) -> Vec<i8> {
    (0..len)
        .map(|_| match rng.random_range(0..10) {
            0 => min,
            1 => 127,
            _ => rng.random_range(min..=127),
        })
        .collect()
}

fn every_isa_matches_the_portable_path<B: Backend>(device: &B::Device) {
    let levels = Isa::available();
    assert_eq!(levels.last(), Some(&Isa::Portable));
    let mut rng = StdRng::seed_from_u64(11);
    for &(m, k, n) in SHAPES {
        // Weights may be -128 in a foreign record; activations too through the public
        // `int8_matmul` (AVX2 then takes the portable path).
        for min in [-127, -128] {
            let a = values(&mut rng, m * k, min);
            let b = values(&mut rng, k * n, min);
            let expected: Vec<i32> = (0..m * n)
                .map(|ij| {
                    (0..k)
                        .map(|p| a[(ij / n) * k + p] as i32 * b[p * n + ij % n] as i32)
                        .sum()
                })
                .collect();
            let lhs = i8_tensor::<B>(a, [m, k], device);
            let kn = i8_tensor::<B>(b, [k, n], device);
            let rows = i8_tensor::<B>(
                kn.clone()
                    .transpose()
                    .into_data()
                    .convert::<i8>()
                    .to_vec()
                    .unwrap(),
                [n, k],
                device,
            );
            assert_eq!(
                generic_int8_matmul(lhs.clone(), kn.clone())
                    .into_data()
                    .to_vec::<i32>()
                    .unwrap(),
                expected
            );
            for &isa in &levels {
                let product = try_int8_matmul(isa, &lhs, &rows)
                    .unwrap_or_else(|| panic!("{isa:?} [{m}x{k}]@[{k}x{n}] declined"));
                assert_eq!(
                    product.into_data().to_vec::<i32>().unwrap(),
                    expected,
                    "{isa:?} [{m}x{k}]@[{k}x{n}] min {min}"
                );
            }
            // The free product lays a `[K, N]` operand out as channel rows once, then runs
            // the detected level.
            assert_eq!(
                int8_matmul(lhs.clone(), kn.clone())
                    .into_data()
                    .to_vec::<i32>()
                    .unwrap(),
                expected,
                "int8_matmul [{m}x{k}]@[{k}x{n}] min {min}"
            );
        }
    }
}

#[test]
fn every_isa_matches_the_portable_path_on_flex() {
    every_isa_matches_the_portable_path::<burn::backend::Flex>(&Default::default());
}

#[test]
fn every_isa_matches_the_portable_path_on_ndarray() {
    every_isa_matches_the_portable_path::<burn::backend::NdArray>(&Default::default());
}

fn fused_kernel_is_bit_exact<B: Backend>(device: &B::Device) {
    for &(m, k, n) in SHAPES {
        let x = Tensor::<B, 2>::random([m, k], Distribution::Normal(0.0, 2.0), device);
        let w = Tensor::<B, 2>::random([k, n], Distribution::Uniform(-127.0, 127.0), device)
            .round()
            .int()
            .cast(IntDType::I8);
        let scale = Tensor::<B, 1>::random([n], Distribution::Uniform(0.5, 40.0), device);
        let bias = Tensor::<B, 1>::random([n], Distribution::Normal(0.0, 1.0), device);
        // As quantizing lays it out: channel-major (NK), the layout of every `Int8Weight`.
        let channel_major = Int8Weight::from_parts(w.clone(), scale.clone(), 1).unwrap();
        // The same values row-major (KN), put in by hand: the kernels take that layout too.
        let mut row_major = channel_major.clone();
        row_major.values = Param::initialized(ParamId::new(), w.clone());
        // The tied embedding: `[n, k]` row-major, used transposed.
        let table = i8_tensor::<B>(
            w.clone()
                .transpose()
                .into_data()
                .convert::<i8>()
                .to_vec()
                .unwrap(),
            [n, k],
            device,
        );
        let tied = Int8Weight::from_parts(table, scale.clone(), 0).unwrap();
        for (layout, weight) in [
            ("NK", &channel_major),
            ("KN", &row_major),
            ("tied NK", &tied),
        ] {
            for bias in [None, Some(bias.clone())] {
                let fused = quantized_matmul(x.clone(), weight, bias.clone()).into_data();
                let generic = generic_quantized_matmul(x.clone(), weight, bias.clone()).into_data();
                assert_eq!(
                    fused,
                    generic,
                    "{layout} [{m}x{k}]@[{k}x{n}] bias {}",
                    bias.is_some()
                );
            }
        }
    }
}

#[test]
fn fused_kernel_is_bit_exact_on_flex() {
    fused_kernel_is_bit_exact::<burn::backend::Flex>(&Default::default());
}

#[test]
fn fused_kernel_is_bit_exact_on_ndarray() {
    fused_kernel_is_bit_exact::<burn::backend::NdArray>(&Default::default());
}

/// Layers reading one input (`Linear::forward_shared`: one quantization, one parallel job on the
/// CPU kernels) give the bits of one forward each and of the generic Burn-op product, for
/// decode-shaped and prefill rows; with a float layer among them every layer runs alone.
fn shared_products_match<B: Backend>(device: &B::Device) {
    let k = 96;
    let widths = [40, 200, 7];
    let layers: Vec<Linear<B>> = widths
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let weight = Tensor::<B, 2>::random([k, n], Distribution::Normal(0.0, 0.5), device);
            let bias = (i != 1)
                .then(|| Tensor::<B, 1>::random([n], Distribution::Normal(0.0, 1.0), device));
            Linear::from(QuantizedLinear::from_weights(weight, bias).unwrap())
        })
        .collect();
    for rows in [1, 3, 9] {
        let x = Tensor::<B, 3>::random([1, rows, k], Distribution::Normal(0.0, 2.0), device);
        let shared = Linear::forward_shared([&layers[0], &layers[1], &layers[2]], x.clone());
        for ((output, layer), &n) in shared.into_iter().zip(&layers).zip(&widths) {
            let quantized = layer.int8_layer().expect("built int8");
            let bias = quantized.bias.as_ref().map(|bias| bias.val());
            let generic =
                generic_quantized_matmul(x.clone().reshape([rows, k]), &quantized.weight, bias);
            assert_eq!(output.dims(), [1, rows, n]);
            assert_eq!(
                output.clone().into_data(),
                layer.forward(x.clone()).into_data(),
                "{rows} rows, width {n}"
            );
            assert_eq!(
                output.reshape([rows, n]).into_data(),
                generic.into_data(),
                "{rows} rows, width {n}"
            );
        }
    }
    let float = Linear::new(&LinearConfig::new(k, 5), device);
    let x = Tensor::<B, 3>::random([1, 1, k], Distribution::Normal(0.0, 2.0), device);
    let [int8, float_output] = Linear::forward_shared([&layers[0], &float], x.clone());
    assert_eq!(int8.into_data(), layers[0].forward(x.clone()).into_data());
    assert_eq!(float_output.into_data(), float.forward(x).into_data());
}

#[test]
fn shared_products_match_on_flex() {
    shared_products_match::<burn::backend::Flex>(&Default::default());
}

#[test]
fn shared_products_match_on_ndarray() {
    shared_products_match::<burn::backend::NdArray>(&Default::default());
}

/// `Autodiff<Flex>` keeps Flex's int tensors, so its int8 products run the direct kernel.
#[test]
fn autodiff_wrapper_reaches_the_kernel() {
    type Autodiff = burn::backend::Autodiff<burn::backend::Flex>;
    let device = Default::default();
    let lhs = i8_tensor::<Autodiff>(vec![1, 2], [1, 2], &device);
    let product = try_int8_matmul(Isa::Portable, &lhs, &lhs.clone()).expect("autodiff wrapper");
    assert_eq!(product.into_data().to_vec::<i32>().unwrap(), [5]);
}

#[test]
fn other_dtypes_decline() {
    let device = Default::default();
    let wide = Tensor::<burn::backend::Flex, 2, Int>::from_data(
        TensorData::new(vec![1i32, 2], [1, 2]),
        &device,
    );
    assert!(
        try_int8_matmul(Isa::Portable, &wide, &wide.clone()).is_none(),
        "I32 inputs"
    );
}

/// The CPU row kernels (`burn_int8::transformer_ops`) take their host path on flex and ndarray and agree
/// with a plain f64 computation and with the Burn-op path: RoPE bit for bit, RMSNorm (alone or
/// added to a residual) and the GELU gate to a few ulps (another summation order, another `exp`).
fn row_kernels_match<B: Backend>(device: &B::Device) {
    use burn_int8::kernels::cpu::{
        try_add_rms_norm, try_gelu_tanh_mul, try_rms_norm, try_rope_rotate_half,
    };
    use burn_int8::transformer_ops::{
        add_rms_norm, gelu_tanh_mul, generic_add_rms_norm, generic_gelu_tanh_mul, generic_rms_norm,
        generic_rope_rotate_half, rms_norm, rope_rotate_half,
    };
    B::seed(device, 5);

    for (m, d) in [(1, 640), (3, 7), (130, 33)] {
        let x = Tensor::<B, 2>::random([m, d], Distribution::Normal(0.0, 3.0), device);
        let weight = Tensor::<B, 1>::random([d], Distribution::Normal(0.0, 0.5), device);
        let fast = try_rms_norm(&x, &weight, 1.0, 1e-6).expect("host path on a CPU backend");
        let generic = generic_rms_norm(x.clone(), weight.clone(), 1.0, 1e-6);
        let (xs, ws) = (
            x.to_data().to_vec::<f32>().unwrap(),
            weight.to_data().to_vec::<f32>().unwrap(),
        );
        let fast = fast.into_data().to_vec::<f32>().unwrap();
        let generic = generic.into_data().to_vec::<f32>().unwrap();
        for (r, row) in xs.chunks_exact(d).enumerate() {
            let mean_square = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
            for (j, &v) in row.iter().enumerate() {
                let expected = v as f64 / (mean_square + 1e-6).sqrt() * (1.0 + ws[j] as f64);
                // The host path's bound is tight; the Burn-op path's is loose because burn-ndarray's
                // elementwise ops are off by up to ~1.3e-4 relative here (its SIMD reciprocal).
                let scale = expected.abs().max(1.0);
                assert!(
                    (fast[r * d + j] as f64 - expected).abs() <= 1e-5 * scale,
                    "rms_norm [{m}x{d}] ({r},{j}): {} vs {expected}",
                    fast[r * d + j]
                );
                assert!(
                    (generic[r * d + j] as f64 - expected).abs() <= 1e-3 * scale,
                    "generic rms_norm [{m}x{d}] ({r},{j}): {} vs {expected} (fast {})",
                    generic[r * d + j],
                    fast[r * d + j]
                );
            }
        }
        // The public entry point takes the host path and keeps any rank.
        let through_api = rms_norm(x.clone().reshape([1, m, d]), weight.clone(), 1.0, 1e-6);
        assert_eq!(through_api.dims(), [1, m, d]);
        assert_eq!(through_api.into_data().to_vec::<f32>().unwrap(), fast);

        // Added to a residual stream: exactly the residual plus the norm above (one f32 add),
        // and within the norm's bounds of the Burn-op path.
        let residual = Tensor::<B, 2>::random([m, d], Distribution::Normal(0.0, 10.0), device);
        let added = try_add_rms_norm(&residual, &x, &weight, 1.0, 1e-6)
            .expect("host path on a CPU backend");
        let residuals = residual.to_data().to_vec::<f32>().unwrap();
        let added = added.into_data().to_vec::<f32>().unwrap();
        let expected: Vec<f32> = residuals.iter().zip(&fast).map(|(r, n)| r + n).collect();
        assert_eq!(added, expected, "add_rms_norm [{m}x{d}]");
        let generic = generic_add_rms_norm(residual.clone(), x.clone(), weight.clone(), 1.0, 1e-6)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        for (j, (g, a)) in generic.iter().zip(&added).enumerate() {
            assert!(
                (g - a).abs() <= 1e-3 * a.abs().max(1.0),
                "generic add_rms_norm [{m}x{d}] {j}: {g} vs {a}"
            );
        }
        let through_api = add_rms_norm(
            residual.reshape([m, 1, d]),
            x.reshape([m, 1, d]),
            weight,
            1.0,
            1e-6,
        );
        assert_eq!(through_api.dims(), [m, 1, d]);
        assert_eq!(through_api.into_data().to_vec::<f32>().unwrap(), added);
    }

    // The GELU-tanh gate against f64 `0.5 g (1 + tanh(sqrt(2/π)(g + 0.044715 g³))) · u`, wide
    // enough to reach both tails (where it is 0 and g).
    for (m, d) in [(1, 2048), (2, 5), (40, 2048)] {
        let gate = Tensor::<B, 2>::random([m, d], Distribution::Normal(0.0, 4.0), device);
        let up = Tensor::<B, 2>::random([m, d], Distribution::Normal(0.0, 2.0), device);
        let fast = try_gelu_tanh_mul(&gate, &up)
            .expect("host path on a CPU backend")
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let generic = generic_gelu_tanh_mul(gate.clone(), up.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let (gs, us) = (
            gate.to_data().to_vec::<f32>().unwrap(),
            up.to_data().to_vec::<f32>().unwrap(),
        );
        for (i, (&g, &u)) in gs.iter().zip(&us).enumerate() {
            let (g64, u64) = (g as f64, u as f64);
            let expected = 0.5
                * g64
                * (1.0
                    + ((2.0 / std::f64::consts::PI).sqrt() * (g64 + 0.044715 * g64.powi(3)))
                        .tanh())
                * u64;
            let scale = expected.abs().max(1e-3);
            assert!(
                (fast[i] as f64 - expected).abs() <= 1e-5 * scale.max(u64.abs()),
                "gelu_tanh_mul [{m}x{d}] {i}: {} vs {expected}",
                fast[i]
            );
            assert!(
                (generic[i] as f64 - expected).abs() <= 1e-3 * scale.max(u64.abs()),
                "generic gelu_tanh_mul [{m}x{d}] {i}: {} vs {expected}",
                generic[i]
            );
        }
        let through_api = gelu_tanh_mul(gate.reshape([1, m, d]), up.reshape([1, m, d]));
        assert_eq!(through_api.dims(), [1, m, d]);
        assert_eq!(through_api.into_data().to_vec::<f32>().unwrap(), fast);
    }

    for (batch, table_batch) in [(1, 1), (3, 1), (3, 3)] {
        let shape = [batch, 5, 4, 6];
        let x = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), device);
        let cos = Tensor::<B, 4>::random(
            [table_batch, 5, 4, 6],
            Distribution::Uniform(-1.0, 1.0),
            device,
        );
        let sin = Tensor::<B, 4>::random(
            [table_batch, 5, 4, 6],
            Distribution::Uniform(-1.0, 1.0),
            device,
        );
        let fast = try_rope_rotate_half(&x, &cos, &sin).expect("host path on a CPU backend");
        let generic = generic_rope_rotate_half(x.clone(), cos.clone(), sin.clone());
        let fast = fast.into_data().to_vec::<f32>().unwrap();
        assert_eq!(
            fast,
            generic.into_data().to_vec::<f32>().unwrap(),
            "rope batch {batch}, tables {table_batch}"
        );
        // By hand for one element: head (b 0, s 1, h 2), i = 1 of the first half (its partner is
        // i + 3, entering with the sign the table carries).
        let (xs, cs, ss) = [x.clone(), cos.clone(), sin.clone()]
            .map(|t| t.into_data().to_vec::<f32>().unwrap())
            .into();
        let at = |s: usize, h: usize, i: usize| (s * 4 + h) * 6 + i;
        let expected = xs[at(1, 2, 1)] * cs[at(1, 2, 1)] + xs[at(1, 2, 4)] * ss[at(1, 2, 1)];
        assert_eq!(fast[at(1, 2, 1)], expected);
        assert_eq!(
            rope_rotate_half(x, cos, sin)
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
            fast
        );
    }
}

#[test]
fn row_kernels_match_on_flex() {
    row_kernels_match::<burn::backend::Flex>(&Default::default());
}

#[test]
fn row_kernels_match_on_ndarray() {
    row_kernels_match::<burn::backend::NdArray>(&Default::default());
}

fn f32_tensor<B: Backend, const D: usize>(
    rng: &mut StdRng,
    shape: [usize; D],
    device: &B::Device,
) -> (Vec<f32>, Tensor<B, D>) {
    let values: Vec<f32> = (0..shape.iter().product())
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    (
        values.clone(),
        Tensor::from_data(TensorData::new(values, shape), device),
    )
}

/// One query position over a KV cache (`transformer_ops::attend_unmasked`'s host path): keys and values
/// as views into a larger cache buffer, grouped-query heads, lengths below and above the
/// scoring block and the threading threshold. Against softmax attention in f64, and against
/// the Burn-op path.
fn attention_matches<B: Backend>(device: &B::Device) {
    use burn_int8::kernels::cpu::try_attend_one_query;
    use burn_int8::transformer_ops::{attend_unmasked, generic_attend_unmasked};
    let mut rng = StdRng::seed_from_u64(31);
    // (batch, heads, kv_heads, live keys, head_dim)
    for (batch, heads, kv_heads, len, head_dim) in [
        (1, 4, 1, 300, 256),
        (2, 4, 2, 5, 6),
        (1, 8, 8, 70, 16),
        (3, 2, 1, 1, 1),
        (1, 4, 1, 129, 64),
    ] {
        let capacity = len + 7;
        let (queries, query) = f32_tensor::<B, 4>(&mut rng, [batch, 1, heads, head_dim], device);
        let (key_buffer, keys) =
            f32_tensor::<B, 4>(&mut rng, [batch, kv_heads, capacity, head_dim], device);
        let (value_buffer, values) =
            f32_tensor::<B, 4>(&mut rng, [batch, kv_heads, capacity, head_dim], device);
        // Live positions 3..3 + len of the buffer, as a cache whose window has moved.
        let live = [0..batch, 0..kv_heads, 3..3 + len, 0..head_dim];
        let (keys, values) = (keys.slice(live.clone()), values.slice(live));

        let fast =
            try_attend_one_query(&query, &keys, &values).expect("host path on a CPU backend");
        assert_eq!(fast.dims(), [batch, 1, heads * head_dim]);
        let fast = f32_of(fast);
        let group = heads / kv_heads;
        let at = |b: usize, kv: usize, t: usize, i: usize| {
            ((b * kv_heads + kv) * capacity + 3 + t) * head_dim + i
        };
        for b in 0..batch {
            for h in 0..heads {
                let kv = h / group;
                let q = &queries[(b * heads + h) * head_dim..][..head_dim];
                let scores: Vec<f64> = (0..len)
                    .map(|t| {
                        (0..head_dim)
                            .map(|i| q[i] as f64 * key_buffer[at(b, kv, t, i)] as f64)
                            .sum()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for i in 0..head_dim {
                    let expected: f64 = (0..len)
                        .map(|t| weights[t] / sum * value_buffer[at(b, kv, t, i)] as f64)
                        .sum();
                    let got = fast[(b * heads + h) * head_dim + i] as f64;
                    assert!(
                        (got - expected).abs() <= 1e-5 * expected.abs().max(1.0),
                        "attention {batch}x{heads}/{kv_heads}x{len}x{head_dim} ({b},{h},{i}): {got} vs {expected}"
                    );
                }
            }
        }
        let generic = f32_of(generic_attend_unmasked(
            query.clone(),
            keys.clone(),
            values.clone(),
        ));
        for (i, (g, f)) in generic.iter().zip(&fast).enumerate() {
            assert!(
                (g - f).abs() <= 1e-4 * f.abs().max(1.0),
                "generic attention {batch}x{heads}/{kv_heads}x{len}x{head_dim} {i}: {g} vs {f}"
            );
        }
        // The public entry point takes the host path.
        assert_eq!(f32_of(attend_unmasked(query, keys, values)), fast);
    }
}

#[test]
fn attention_matches_on_flex() {
    attention_matches::<burn::backend::Flex>(&Default::default());
}

#[test]
fn attention_matches_on_ndarray() {
    attention_matches::<burn::backend::NdArray>(&Default::default());
}

/// `transformer_ops::slice_assign` (a KV-cache append): writes a strided block where Burn's
/// `slice_assign` would, in place on a flex buffer no other handle shares, and leaves a buffer
/// that is shared as its other handle sees it.
fn slice_assign_matches<B: Backend>(device: &B::Device, in_place: bool) {
    use burn_int8::kernels::cpu::try_write_in_place;
    use burn_int8::transformer_ops::slice_assign;
    let mut rng = StdRng::seed_from_u64(32);
    let dims = [2, 3, 10, 4];
    let (_, block) = f32_tensor::<B, 4>(&mut rng, [2, 2, 3, 4], device);
    // `[batch, new, heads, dim]` swapped to `[batch, heads, new, dim]`, as the cache receives it.
    let block = block.swap_dims(1, 2);
    let block_values = block.to_data().to_vec::<f32>().unwrap();
    let ranges = [0..2, 0..3, 5..7, 0..4];
    let mut expected = vec![0f32; dims.iter().product()];
    for b in 0..2 {
        for h in 0..3 {
            for t in 0..2 {
                for i in 0..4 {
                    expected[((b * 3 + h) * 10 + 5 + t) * 4 + i] =
                        block_values[((b * 3 + h) * 2 + t) * 4 + i];
                }
            }
        }
    }

    let written = try_write_in_place(Tensor::<B, 4>::zeros(dims, device), &ranges, &block);
    assert_eq!(written.is_ok(), in_place, "in place on flex only");
    let written = slice_assign(
        Tensor::<B, 4>::zeros(dims, device),
        ranges.clone(),
        block.clone(),
    );
    assert_eq!(f32_of(written), expected);

    let buffer = Tensor::<B, 4>::zeros(dims, device);
    let other_handle = buffer.clone();
    assert!(
        try_write_in_place(buffer.clone(), &ranges, &block).is_err(),
        "a shared buffer is not written in place"
    );
    let written = slice_assign(buffer, ranges.clone(), block.clone());
    assert_eq!(f32_of(written), expected);
    assert!(
        f32_of(other_handle).iter().all(|&v| v == 0.0),
        "the other handle kept its values"
    );

    // Ranges that do not fit are refused, not clamped.
    assert!(
        try_write_in_place(
            Tensor::<B, 4>::zeros(dims, device),
            &[0..2, 0..3, 9..11, 0..4],
            &block
        )
        .is_err()
    );
}

#[test]
fn slice_assign_in_place_on_flex() {
    slice_assign_matches::<burn::backend::Flex>(&Default::default(), true);
}

#[test]
fn slice_assign_falls_back_on_ndarray() {
    slice_assign_matches::<burn::backend::NdArray>(&Default::default(), false);
}

/// `BURN_INT8_MAX_ISA` caps the level as oneDNN's `ONEDNN_MAX_CPU_ISA` does: the best level at or
/// below the named one among those the CPU runs; a name that is not a level, or no name, leaves
/// the best; case and spaces do not matter.
#[test]
fn the_isa_cap_picks_the_best_level_at_or_below_it() {
    let all = [Isa::Avx512Vnni, Isa::AvxVnni, Isa::Avx2, Isa::Portable];
    let zen3 = [Isa::Avx2, Isa::Portable];
    let cascade_lake = [Isa::Avx512Vnni, Isa::Avx2, Isa::Portable];
    assert_eq!(Isa::best_within(&all, None), Isa::Avx512Vnni);
    assert_eq!(Isa::best_within(&all, Some("avxvnni")), Isa::AvxVnni);
    assert_eq!(Isa::best_within(&all, Some(" AVX2 ")), Isa::Avx2);
    assert_eq!(Isa::best_within(&all, Some("portable")), Isa::Portable);
    assert_eq!(Isa::best_within(&cascade_lake, Some("avxvnni")), Isa::Avx2);
    assert_eq!(Isa::best_within(&zen3, Some("avx512vnni")), Isa::Avx2);
    assert_eq!(Isa::best_within(&zen3, Some("sse9")), Isa::Avx2);
    for (isa, name) in all.iter().zip(Isa::NAMES) {
        assert_eq!(isa.name(), name);
        assert_eq!(Isa::best_within(&all, Some(name)), *isa);
    }
}
