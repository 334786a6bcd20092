//! Behaviour of the quantized layers and of `Quantize` beyond the Keras fixture: the int8
//! product's exactness, convolutions, the derive, reports, training, memory and bad input.

use crate::common;

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv1dConfig, Conv2dConfig};
use burn::nn::{self, LayerNorm, LayerNormConfig, LinearConfig, PaddingConfig1d, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, Int, IntDType, Tensor, TensorData, backend::Backend};
use burn_int8::kernels::generic::int8_matmul as generic_int8_matmul;
use burn_int8::kernels::int8_matmul;
use burn_int8::quantizers::abs_max_quantize;
use burn_int8::{
    Conv1d, Conv2d, Embedding, Int8Error, LayerKind, Linear, Quantize, QuantizeConfig, QuantizeExt,
    QuantizedLinear, SkipReason, mse, param_bytes,
};
use common::{f32_of, i8_of};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn random_i8<B: Backend>(
    rng: &mut StdRng,
    shape: [usize; 2],
    device: &B::Device,
) -> (Vec<i8>, Tensor<B, 2, Int>) {
    let values: Vec<i8> = (0..shape[0] * shape[1])
        .map(|_| rng.random_range(-127..=127))
        .collect();
    let tensor = Tensor::<B, 2, Int>::from_data(TensorData::new(values.clone(), shape), device)
        .cast(IntDType::I8);
    (values, tensor)
}

fn int8_product_is_exact<B: Backend>(device: &B::Device) {
    let mut rng = StdRng::seed_from_u64(7);
    // Odd sizes, and K above the 1024 exact-f32 chunk so chunks are summed in i32.
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 7, 5),
        (5, 33, 17),
        (2, 1023, 3),
        (3, 1025, 9),
        (2, 2500, 7),
        (1, 640, 1001),
        (16, 77, 300),
        (17, 64, 33),
    ] {
        let (a, lhs) = random_i8::<B>(&mut rng, [m, k], device);
        let (b, rhs) = random_i8::<B>(&mut rng, [k, n], device);
        let expected: Vec<i32> = (0..m * n)
            .map(|ij| {
                (0..k)
                    .map(|p| a[(ij / n) * k + p] as i32 * b[p * n + ij % n] as i32)
                    .sum()
            })
            .collect();
        let first = int8_matmul(lhs.clone(), rhs.clone()).into_data();
        assert_eq!(
            first.to_vec::<i32>().unwrap(),
            expected,
            "[{m}x{k}]@[{k}x{n}]"
        );
        // The same product through a transposed view (the tied-embedding layout), and through
        // the generic path: the fast kernels' accumulators equal it bit for bit.
        let transposed = rhs.clone().transpose().into_data();
        let rhs_view = Tensor::<B, 2, Int>::from_data(transposed, device)
            .cast(IntDType::I8)
            .transpose();
        assert_eq!(
            int8_matmul(lhs.clone(), rhs_view)
                .into_data()
                .to_vec::<i32>()
                .unwrap(),
            expected,
            "transposed view"
        );
        assert_eq!(
            generic_int8_matmul(lhs.clone(), rhs.clone()).into_data(),
            first
        );
        // Deterministic: the same inputs give the same bits.
        assert_eq!(int8_matmul(lhs, rhs).into_data(), first);
    }
    // Worst case: every product is 127·127 and K is large; still exact.
    let k: usize = 3000;
    let lhs = Tensor::<B, 2, Int>::full([1, k], 127, device).cast(IntDType::I8);
    let rhs = Tensor::<B, 2, Int>::full([k, 2], -127, device).cast(IntDType::I8);
    assert_eq!(
        int8_matmul(lhs, rhs).into_data().to_vec::<i32>().unwrap(),
        vec![-127 * 127 * k as i32; 2]
    );
}

#[test]
fn int8_product_is_exact_and_deterministic() {
    for_each_backend!(int8_product_is_exact);
}

fn zeros_give_zeros<B: Backend>(device: &B::Device) {
    // A zero column in the weight and a zero row in the input: zeros, never NaN.
    let mut weight = vec![0.5f32; 4 * 3];
    for row in 0..4 {
        weight[row * 3 + 1] = 0.0;
    }
    let layer = QuantizedLinear::<B>::from_weights(
        Tensor::from_data(TensorData::new(weight, [4, 3]), device),
        None,
    )
    .unwrap();
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(vec![0.0f32, 0.0, 0.0, 0.0, 1.0, -2.0, 3.0, 0.5], [2, 4]),
        device,
    );
    let y = f32_of(layer.forward(x));
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    assert_eq!(&y[0..3], &[0.0, 0.0, 0.0]);
    assert_eq!(y[4], 0.0);
}

#[test]
fn zero_rows_and_columns_give_zeros() {
    for_each_backend!(zeros_give_zeros);
}

/// Relative error of int8 against float: `mse / mean(float²)`.
fn relative_mse<B: Backend, const D: usize>(int8: Tensor<B, D>, float: Tensor<B, D>) -> f32 {
    let power = float.clone().powi_scalar(2).mean().into_scalar();
    mse(int8, float) / burn::tensor::ElementConversion::elem::<f32>(power)
}

/// The documented bound for int8 convolutions on N(0, 1) data: relative MSE ≤ 2e-4 (measured: ≤ 5e-5).
const CONV_RELATIVE_MSE_BOUND: f32 = 2e-4;

fn convolutions_track_float<B: Backend>(device: &B::Device) {
    B::seed(device, 3);
    let cases_2d = [
        // (c_in, c_out, kernel, stride, dilation, groups, padding)
        (3, 8, [3, 3], [1, 1], [1, 1], 1, PaddingConfig2d::Valid),
        (
            4,
            6,
            [3, 2],
            [2, 1],
            [1, 1],
            2,
            PaddingConfig2d::Explicit(1, 0, 2, 1),
        ),
        (6, 6, [3, 3], [1, 2], [2, 1], 3, PaddingConfig2d::Same),
        (8, 4, [1, 1], [1, 1], [1, 1], 4, PaddingConfig2d::Valid),
        (
            5,
            7,
            [5, 3],
            [3, 2],
            [1, 2],
            1,
            PaddingConfig2d::Explicit(2, 1, 2, 1),
        ),
    ];
    for (c_in, c_out, kernel, stride, dilation, groups, padding) in cases_2d {
        let mut conv = Conv2d::<B>::new(
            &Conv2dConfig::new([c_in, c_out], kernel)
                .with_stride(stride)
                .with_dilation(dilation)
                .with_groups(groups)
                .with_padding(padding.clone()),
            device,
        );
        let x = Tensor::<B, 4>::random([2, c_in, 11, 9], Distribution::Normal(0.0, 1.0), device);
        let float = conv.forward(x.clone());
        conv.quantize_int8().unwrap();
        assert!(conv.is_quantized());
        let int8 = conv.forward(x);
        assert_eq!(int8.dims(), float.dims(), "{padding:?}");
        let error = relative_mse(int8, float);
        eprintln!(
            "   conv2d k{kernel:?} s{stride:?} d{dilation:?} g{groups} {padding:?}: relative MSE {error:.2e}"
        );
        assert!(
            error <= CONV_RELATIVE_MSE_BOUND,
            "conv2d relative MSE {error}"
        );
    }

    let cases_1d = [
        (3, 5, 3, 1, 1, 1, PaddingConfig1d::Valid),
        (4, 8, 5, 2, 1, 2, PaddingConfig1d::Same),
        (6, 3, 3, 1, 3, 3, PaddingConfig1d::Explicit(2, 1)),
        (2, 4, 4, 3, 2, 1, PaddingConfig1d::Explicit(0, 3)),
    ];
    for (c_in, c_out, kernel, stride, dilation, groups, padding) in cases_1d {
        let mut conv = Conv1d::<B>::new(
            &Conv1dConfig::new(c_in, c_out, kernel)
                .with_stride(stride)
                .with_dilation(dilation)
                .with_groups(groups)
                .with_padding(padding.clone()),
            device,
        );
        let x = Tensor::<B, 3>::random([3, c_in, 23], Distribution::Normal(0.0, 1.0), device);
        let float = conv.forward(x.clone());
        conv.quantize_int8().unwrap();
        let int8 = conv.forward(x);
        assert_eq!(int8.dims(), float.dims(), "{padding:?}");
        let error = relative_mse(int8, float);
        eprintln!(
            "   conv1d k{kernel} s{stride} d{dilation} g{groups} {padding:?}: relative MSE {error:.2e}"
        );
        assert!(
            error <= CONV_RELATIVE_MSE_BOUND,
            "conv1d relative MSE {error}"
        );
    }
}

#[test]
fn int8_convolutions_stay_close_to_float() {
    for_each_backend!(convolutions_track_float);
}

// ---- The derive, the report, the skip list ----------------------------------------------

#[derive(Module, Debug, Quantize)]
struct Block<B: Backend> {
    norm: LayerNorm<B>,
    up: Linear<B>,
    down: Linear<B>,
}

#[derive(Module, Debug, Quantize)]
struct Net<B: Backend> {
    embed: Embedding<B>,
    blocks: Vec<Block<B>>,
    head: Option<Linear<B>>,
    plain: nn::Linear<B>,
    #[quantize(skip)]
    frozen: Linear<B>,
    dropout: nn::Dropout,
}

fn net<B: Backend>(device: &B::Device) -> Net<B> {
    let block = || Block {
        norm: LayerNormConfig::new(16).init(device),
        up: Linear::new(&LinearConfig::new(16, 32), device),
        down: Linear::new(&LinearConfig::new(32, 16), device),
    };
    Net {
        embed: Embedding::new(&nn::EmbeddingConfig::new(50, 16), device),
        blocks: vec![block(), block()],
        head: Some(Linear::new(&LinearConfig::new(16, 4), device)),
        plain: LinearConfig::new(16, 16).init(device),
        frozen: Linear::new(&LinearConfig::new(16, 16), device),
        dropout: nn::DropoutConfig::new(0.1).init(),
    }
}

#[test]
fn derive_quantizes_nested_models_and_reports() {
    let device = Default::default();
    let mut model = net::<NdArray>(&device);
    let report = model
        .quantize_with(&QuantizeConfig::default().skip("blocks.1.down"))
        .unwrap();

    let changed: Vec<&str> = report
        .changed
        .iter()
        .map(|(path, _)| path.as_str())
        .collect();
    assert_eq!(
        changed,
        [
            "embed",
            "blocks.0.up",
            "blocks.0.down",
            "blocks.1.up",
            "head"
        ]
    );
    assert!(
        report
            .skipped
            .contains(&("blocks.1.down".into(), SkipReason::Config))
    );
    assert!(
        report
            .skipped
            .contains(&("plain".into(), SkipReason::NotSwappable(LayerKind::Linear)))
    );
    assert!(model.blocks[0].up.is_quantized() && !model.blocks[1].down.is_quantized());
    assert!(
        !model.frozen.is_quantized(),
        "#[quantize(skip)] field was quantized"
    );
    // The byte counts, from the shapes alone (not from `param_bytes`, which made the report):
    // f32 is 4 bytes, i8 is 1. Float `Linear` d_in x d_out with bias: weight and bias in f32.
    // Int8 `Linear`: i8 weight, one f32 scale per output, the f32 bias. Int8 `Embedding`: i8
    // table, one f32 scale per row. `LayerNorm(16)`: f32 gamma and beta.
    let float_linear = |d_in: usize, d_out: usize| 4 * (d_in * d_out + d_out);
    let int8_linear = |d_in: usize, d_out: usize| d_in * d_out + 4 * d_out + 4 * d_out;
    let norm = 4 * (16 + 16);
    let bytes_before = 4 * 50 * 16 // embed
        + 2 * (norm + float_linear(16, 32) + float_linear(32, 16)) // blocks
        + float_linear(16, 4) // head
        + 2 * float_linear(16, 16); // plain, frozen
    let bytes_after = (50 * 16 + 4 * 50) // embed
        + (norm + int8_linear(16, 32) + int8_linear(32, 16)) // blocks.0
        + (norm + int8_linear(16, 32) + float_linear(32, 16)) // blocks.1 (down skipped)
        + int8_linear(16, 4) // head
        + 2 * float_linear(16, 16); // plain (not swappable), frozen (#[quantize(skip)])
    assert_eq!(
        (bytes_before, bytes_after),
        (14_480, 7_816),
        "the arithmetic above"
    );
    assert_eq!(report.bytes_before, bytes_before, "{report}");
    assert_eq!(report.bytes_after, bytes_after, "{report}");

    // A second call is a reported no-op: no double quantization.
    let before = i8_of(model.blocks[0].up.int8_weight().unwrap().values.val());
    let again = model.quantize_int8().unwrap();
    assert!(
        again
            .changed
            .iter()
            .all(|(path, _)| path == "blocks.1.down")
    );
    assert_eq!(
        again
            .skipped
            .iter()
            .filter(|(_, r)| *r == SkipReason::AlreadyQuantized)
            .count(),
        5
    );
    let after = i8_of(model.blocks[0].up.int8_weight().unwrap().values.val());
    assert_eq!(before, after);

    // Dequantize brings float layers back, close to the originals.
    let report = model.dequantize().unwrap();
    assert_eq!(report.changed.len(), 6);
    assert!(!model.blocks[0].up.is_quantized() && !model.embed.is_quantized());
}

#[test]
fn dequantize_is_close_to_the_original() {
    let device = Default::default();
    let weight = Tensor::<NdArray, 2>::random([64, 32], Distribution::Normal(0.0, 0.3), &device);
    let original = Linear::from(nn::Linear {
        weight: Param::from_tensor(weight),
        bias: None,
    });
    let mut layer = original.clone();
    layer.quantize_int8().unwrap();
    layer.dequantize().unwrap();
    let (Some(a), Some(b)) = (original.float_layer(), layer.float_layer()) else {
        panic!("not float")
    };
    // One int8 step is amax/127; the error of a rounding is at most half of it.
    let error = f32_of(a.weight.val().sub(b.weight.val()).abs().max());
    let amax = f32_of(a.weight.val().abs().max());
    assert!(
        error[0] <= amax[0] / 127.0 * 0.5 + 1e-7,
        "{error:?} vs {amax:?}"
    );
}

#[test]
fn nan_or_inf_weights_are_typed_errors_and_change_nothing() {
    let device = Default::default();
    let mut model = net::<NdArray>(&device);
    let mut bad = vec![0.1f32; 32 * 16];
    bad[17] = f32::NAN;
    bad[40] = f32::INFINITY;
    model.blocks[1].down = Linear::from(nn::Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(bad, [32, 16]), &device)),
        bias: None,
    });
    let bytes = param_bytes::<NdArray, _>(&model);
    let error = model.quantize_int8().unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, Int8Error::Layer { path, source } if path == "blocks.1.down" && matches!(**source, Int8Error::NonFinite { count: 2, .. })),
        "{message}"
    );
    assert!(
        message.contains("blocks.1.down") && message.contains("non-finite"),
        "{message}"
    );
    // All or nothing: the layers before the bad one were not quantized either.
    assert!(!model.embed.is_quantized() && !model.blocks[0].up.is_quantized());
    assert_eq!(param_bytes::<NdArray, _>(&model), bytes);
}

#[test]
fn bad_shapes_are_typed_errors() {
    let device = Default::default();
    let empty = Tensor::<NdArray, 2>::zeros([0, 4], &device);
    assert!(matches!(
        QuantizedLinear::from_weights(empty.clone(), None),
        Err(Int8Error::EmptyTensor { .. })
    ));
    assert!(matches!(
        abs_max_quantize(empty, 0),
        Err(Int8Error::EmptyTensor { .. })
    ));
    let x = Tensor::<NdArray, 2>::ones([2, 3], &device);
    assert!(matches!(
        abs_max_quantize(x.clone(), 2),
        Err(Int8Error::AxisOutOfRange { axis: 2, rank: 2 })
    ));
    let bias = Tensor::<NdArray, 1>::ones([5], &device);
    assert!(matches!(
        QuantizedLinear::from_weights(x.clone(), Some(bias)),
        Err(Int8Error::ShapeMismatch { .. })
    ));
    let layer = QuantizedLinear::from_weights(x, None).unwrap();
    let error = layer
        .try_forward(Tensor::<NdArray, 2>::ones([4, 7], &device))
        .unwrap_err();
    assert!(error.to_string().contains("[..., 2]"), "{error}");
}

// ---- Training and memory ------------------------------------------------------------------

#[test]
fn optimizer_steps_leave_int8_weights_untouched() {
    type B = Autodiff<NdArray>;
    let device = Default::default();
    let mut model = net::<B>(&device);
    model.quantize_int8().unwrap();
    let Some(before) = model.blocks[0].up.int8_layer() else {
        panic!("not int8")
    };

    let mut optimizer = AdamConfig::new().init();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 5, 7, 9], [2, 2]), &device);
    for _ in 0..2 {
        let hidden = model.embed.forward(ids.clone());
        let block = &model.blocks[0];
        let hidden = block
            .down
            .forward(block.up.forward(block.norm.forward(hidden)));
        let loss = model
            .head
            .as_ref()
            .unwrap()
            .forward(hidden)
            .powi_scalar(2)
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
    }

    let Some(after) = model.blocks[0].up.int8_layer() else {
        panic!("not int8")
    };
    assert_eq!(
        i8_of(after.weight.values.val()),
        i8_of(before.weight.values.val())
    );
    assert_eq!(f32_of(after.weight.scale()), f32_of(before.weight.scale()));
    let (bias_before, bias_after) = (
        f32_of(before.bias.unwrap().val()),
        f32_of(after.bias.as_ref().unwrap().val()),
    );
    assert_ne!(bias_before, bias_after, "the float bias should still train");
}

#[test]
fn int8_linear_4096_holds_at_most_17_mib() {
    let device = Default::default();
    let mut layer = Linear::<NdArray>::new(&LinearConfig::new(4096, 4096), &device);
    layer.quantize_int8().unwrap();
    let Some(int8) = layer.int8_layer() else {
        panic!("not int8")
    };
    assert_eq!(int8.weight.values.val().dtype(), burn::tensor::DType::I8);
    let bytes = param_bytes::<NdArray, _>(&layer);
    assert!(bytes <= 17 * 1024 * 1024, "{bytes} bytes");
    assert_eq!(bytes, 4096 * 4096 + 4096 * 4 + 4096 * 4);
}
