//! The int8 formats beside Keras's (`burn_int8::scheme`): llama.cpp's Q8_0 blocks and the
//! Hadamard rotation, through every path (the CPU kernel on each instruction set, the seam's
//! dispatch, the generic oracle), per layer from the config, in the report, and through
//! records.

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{EmbeddingConfig, LinearConfig};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::{Distribution, Int, Tensor, TensorData, backend::Backend};
use burn_int8::kernels::cpu::{Isa, try_q8_0_matmul};
use burn_int8::kernels::{
    generic_quantized_matmul, generic_rotate_rows, quantized_matmul, rotate_rows,
};
use burn_int8::{
    Conv2d, Embedding, Int8Error, Int8Format, Int8Weight, Linear, QuantizeConfig, QuantizeExt,
    Rotation, Scheme, store,
};

use crate::common::{assert_close, f32_of};

const Q8_0: Int8Format = Int8Format {
    scheme: Scheme::Q8_0,
    rotation: Rotation::None,
};

/// Every format, the default first.
fn formats() -> [Int8Format; 4] {
    [
        Int8Format::KERAS,
        Q8_0,
        Int8Format::new(Scheme::Keras, Rotation::Hadamard),
        Int8Format::new(Scheme::Q8_0, Rotation::Hadamard),
    ]
}

/// Activations with a few outlier features, as in a transformer's residual stream.
fn activations<B: Backend>(m: usize, k: usize, device: &B::Device) -> Tensor<B, 2> {
    let x = Tensor::<B, 2>::random([m, k], Distribution::Normal(0.0, 1.0), device);
    let mut outliers = vec![1.0f32; k];
    for feature in (3..k).step_by(97) {
        outliers[feature] = 40.0;
    }
    x.mul(Tensor::<B, 1>::from_data(TensorData::new(outliers, [k]), device).unsqueeze_dim(0))
}

/// `x · W = (x·H) · (H·W)`: a float product whose inputs and weight input axis are both rotated
/// is unchanged to rounding (the identity the rotation relies on), and rotating twice gives the
/// rows back.
fn rotation_keeps_a_float_product<B: Backend>(device: &B::Device) {
    for (m, k, n) in [(3, 640, 17), (2, 2048, 9), (1, 96, 5), (4, 24, 3)] {
        let x = activations::<B>(m, k, device);
        let w = Tensor::<B, 2>::random([k, n], Distribution::Normal(0.0, 0.05), device);
        let expected = f32_of(x.clone().matmul(w.clone()));
        let rotated_w = rotate_rows(w.transpose()).transpose();
        let got = f32_of(rotate_rows(x.clone()).matmul(rotated_w));
        assert_close("rotated float product", &got, &expected, 1e-4, 1e-3);
        let twice = f32_of(rotate_rows(rotate_rows(x.clone())));
        assert_close("rotated twice", &twice, &f32_of(x), 1e-5, 1e-5);
    }
}

#[test]
fn rotation_keeps_a_float_product_on_every_backend() {
    for_each_backend!(rotation_keeps_a_float_product);
}

/// The host rotation (CPU backends) gives the tensor-op butterflies' bits.
fn host_rotation_is_the_tensor_ops_rotation<B: Backend>(device: &B::Device) {
    for (m, k) in [(1, 640), (5, 2048), (3, 24), (2, 48), (2, 8), (2, 1)] {
        let x = activations::<B>(m, k, device);
        let host = f32_of(rotate_rows(x.clone()));
        let ops = f32_of(generic_rotate_rows(x));
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&host), bits(&ops), "rotation of [{m}, {k}]");
    }
}

#[test]
fn host_rotation_is_the_tensor_ops_rotation_on_every_backend() {
    for_each_backend!(host_rotation_is_the_tensor_ops_rotation);
}

/// A random weight `[k, n]` quantized as a linear layer's in `format`.
fn linear_weight<B: Backend>(
    k: usize,
    n: usize,
    format: Int8Format,
    device: &B::Device,
) -> (Tensor<B, 2>, Int8Weight<B, 2>) {
    let w = Tensor::<B, 2>::random([k, n], Distribution::Normal(0.0, 0.05), device);
    let int8 = Int8Weight::quantize_as(w.clone(), 1, "test weight", format).unwrap();
    (w, int8)
}

/// Q8_0's CPU kernel: the same bits on every instruction set this CPU runs (the arithmetic is
/// integer within a block, and every level sums the same lanes in the same order), and the
/// generic oracle's result to f32 rounding (it adds the blocks in another order).
fn q8_0_kernel_matches_on_every_isa<B: Backend>(device: &B::Device) {
    for (m, k, n) in [(1, 640, 1001), (3, 2048, 65), (4, 32, 7), (17, 96, 300)] {
        let x = activations::<B>(m, k, device);
        let bias = Tensor::<B, 1>::random([n], Distribution::Normal(0.0, 1.0), device);
        let (_, weight) = linear_weight::<B>(k, n, Q8_0, device);
        let oracle = f32_of(generic_quantized_matmul(
            x.clone(),
            &weight,
            Some(bias.clone()),
        ));
        let mut first: Option<(Isa, Vec<u32>)> = None;
        for isa in Isa::available() {
            let got = try_q8_0_matmul(isa, &x, &weight.channel_rows(), Some(&bias))
                .unwrap_or_else(|| panic!("{isa:?} declined [{m}, {k}] x [{n}]"));
            let got = f32_of(got);
            assert_close(
                &format!("q8_0 {isa:?} [{m}, {k}] x [{n}] vs generic"),
                &got,
                &oracle,
                1e-4,
                1e-4,
            );
            let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            match &first {
                None => first = Some((isa, bits)),
                Some((level, expected)) => {
                    assert!(bits == *expected, "{isa:?} differs from {level:?} in bits")
                }
            }
        }
        // The seam's dispatch takes the best level.
        let dispatched = f32_of(quantized_matmul(x, &weight, Some(bias)));
        let best = &first.expect("at least the portable level").1;
        assert_eq!(
            dispatched.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            *best
        );
    }
}

#[test]
fn q8_0_kernel_matches_on_every_isa_on_flex() {
    q8_0_kernel_matches_on_every_isa::<burn::backend::Flex>(&Default::default());
}

#[test]
fn q8_0_kernel_matches_on_every_isa_on_ndarray() {
    q8_0_kernel_matches_on_every_isa::<burn::backend::NdArray>(&Default::default());
}

/// Every format through the seam equals its generic oracle: bit for bit for the Keras scheme
/// (rotated or not: the rotation is bit-exact and so is the Keras kernel), to f32 rounding for
/// Q8_0; and each is close to the float product.
fn every_format_matches_its_oracle<B: Backend>(device: &B::Device) {
    let (m, k, n) = (5, 640, 300);
    let x = activations::<B>(m, k, device);
    let w = Tensor::<B, 2>::random([k, n], Distribution::Normal(0.0, 0.05), device);
    let float = f32_of(x.clone().matmul(w.clone()));
    let scale = float.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    for format in formats() {
        let weight = Int8Weight::quantize_as(w.clone(), 1, "w", format).unwrap();
        let got = f32_of(quantized_matmul(x.clone(), &weight, None));
        let oracle = f32_of(generic_quantized_matmul(x.clone(), &weight, None));
        match format.scheme {
            Scheme::Keras | Scheme::Sample => assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                oracle.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{format}: seam vs generic"
            ),
            Scheme::Q8_0 => assert_close(&format!("{format}"), &got, &oracle, 1e-4, 1e-4),
        }
        assert_close(
            &format!("{format} vs float"),
            &got,
            &float,
            0.0,
            0.08 * scale,
        );
    }
}

#[test]
fn every_format_matches_its_oracle_on_every_backend() {
    for_each_backend!(every_format_matches_its_oracle);
}

/// What the formats are for: on activations with outlier features, the rotation and the
/// blocks each bring the int8 product closer to the float one than Keras's per-row scale.
#[test]
fn rotation_and_blocks_reduce_the_error_on_outliers() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let (m, k, n) = (8, 2048, 256);
    let x = activations::<B>(m, k, &device);
    let w = Tensor::<B, 2>::random([k, n], Distribution::Normal(0.0, 0.05), &device);
    let float = f32_of(x.clone().matmul(w.clone()));
    let error = |format: Int8Format| {
        let weight = Int8Weight::quantize_as(w.clone(), 1, "w", format).unwrap();
        let got = f32_of(quantized_matmul(x.clone(), &weight, None));
        got.iter()
            .zip(&float)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
    };
    let [keras, q8_0, keras_hadamard, q8_0_hadamard] = formats().map(error);
    assert!(keras_hadamard < keras / 2.0, "{keras_hadamard} vs {keras}");
    assert!(q8_0 < keras / 2.0, "{q8_0} vs {keras}");
    assert!(q8_0_hadamard < keras / 2.0, "{q8_0_hadamard} vs {keras}");
}

/// Dequantizing undoes the scheme and the rotation: the float weight comes back to int8
/// rounding, in its own shape.
#[test]
fn dequantize_undoes_every_format() {
    type B = burn::backend::NdArray;
    let device = Default::default();
    for format in formats() {
        let (w, weight) = linear_weight::<B>(96, 40, format, &device);
        let back = weight.dequantize();
        assert_eq!(back.dims(), [96, 40]);
        let amax = f32_of(w.clone().abs().max());
        assert_close(
            &format!("{format} dequantized"),
            &f32_of(back),
            &f32_of(w),
            0.0,
            amax[0] / 100.0,
        );
    }
}

#[derive(Module, Debug, burn_int8::Quantize)]
struct Tiny<B: Backend> {
    embed: Embedding<B>,
    first: Linear<B>,
    second: Linear<B>,
    conv: Conv2d<B>,
}

fn tiny<B: Backend>(device: &B::Device) -> Tiny<B> {
    Tiny {
        embed: Embedding::new(&EmbeddingConfig::new(50, 64), device),
        first: Linear::new(&LinearConfig::new(64, 96), device),
        second: Linear::new(&LinearConfig::new(96, 64), device),
        conv: Conv2d::from(Conv2dConfig::new([2, 4], [3, 3]).init(device)),
    }
}

impl<B: Backend> Tiny<B> {
    fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let hidden = self
            .second
            .forward(self.first.forward(self.embed.forward(ids)));
        self.embed.reverse(hidden)
    }
}

fn ids<B: Backend>(device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(vec![1i64, 7, 49, 0, 3, 3], [2, 3]), device)
}

/// The config picks each layer's format (longest matching path wins), convolutions stay
/// Keras, and the report says what each layer got and its bytes.
#[test]
fn the_config_picks_each_layers_format_and_the_report_says_so() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let mut model = tiny::<B>(&device);
    let config = QuantizeConfig::default()
        .scheme(Scheme::Q8_0)
        .rotate(Rotation::Hadamard)
        .scheme_for("second", Scheme::Keras);
    let report = model.quantize_with(&config).unwrap();
    let format_of = |path: &str| {
        report
            .errors
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{path} in the report"))
    };
    let hadamard = |scheme| Int8Format::new(scheme, Rotation::Hadamard);
    assert_eq!(format_of("embed").format, hadamard(Scheme::Q8_0));
    assert_eq!(format_of("first").format, hadamard(Scheme::Q8_0));
    assert_eq!(format_of("second").format, hadamard(Scheme::Keras));
    assert_eq!(format_of("conv").format, Int8Format::KERAS);
    // Q8_0: 1 byte a value and one f32 scale per 32 inputs; Keras: one per channel.
    assert_eq!(format_of("first").bytes, 64 * 96 + 4 * 96 * 2);
    assert_eq!(format_of("second").bytes, 96 * 64 + 4 * 64);
    assert_eq!(
        model.first.int8_weight().unwrap().format(),
        hadamard(Scheme::Q8_0)
    );
    let text = report.to_string();
    assert!(text.contains("q8_0+hadamard: 2 layer(s)"), "{text}");
    assert!(text.contains("keras: 1 layer(s)"), "{text}");

    // A path naming no layer is an error listing the closest.
    let mut model = tiny::<B>(&device);
    let error = model
        .quantize_with(&QuantizeConfig::default().scheme_for("secnd", Scheme::Keras))
        .unwrap_err();
    match error {
        Int8Error::UnknownSchemePath { path, closest } => {
            assert_eq!(path, "secnd");
            assert_eq!(closest[0], "second");
        }
        other => panic!("expected UnknownSchemePath, got {other}"),
    }
    assert!(!model.first.is_quantized(), "all or nothing");
}

/// Q8_0 needs whole blocks: a weight whose inputs are not a multiple of 32 is a typed error.
#[test]
fn q8_0_refuses_partial_blocks() {
    type B = burn::backend::NdArray;
    let device = Default::default();
    let w = Tensor::<B, 2>::ones([20, 8], &device);
    match Int8Weight::quantize_as(w, 1, "narrow", Q8_0) {
        Err(Int8Error::UnsupportedFormat { what, reason, .. }) => {
            assert_eq!(what, "narrow");
            assert!(reason.contains("20 inputs"), "{reason}");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

/// A model in each format saves and reloads (burn-store and Burn's own recorder) into a model
/// quantized with the same config, with the same outputs bit for bit; a Q8_0 record into a
/// Keras model is a typed error, not a silent misreading.
#[test]
fn every_format_survives_records() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("burn-int8-test-formats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for format in formats() {
        let config = QuantizeConfig::default()
            .scheme(format.scheme)
            .rotate(format.rotation);
        let mut model = tiny::<B>(&device);
        model.quantize_with(&config).unwrap();
        let expected = f32_of(model.forward(ids(&device)));

        let path = dir.join(format!("{format}.bpk"));
        store::save(&model, &path).unwrap();
        let mut skeleton = tiny::<B>(&device);
        skeleton.quantize_with(&config).unwrap();
        store::load(&mut skeleton, &path).unwrap();
        assert_eq!(
            f32_of(skeleton.forward(ids(&device))),
            expected,
            "{format} via store"
        );

        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let mpk = dir.join(format!("{format}-mpk"));
        model.clone().save_file(&mpk, &recorder).unwrap();
        let mut skeleton = tiny::<B>(&device);
        skeleton.quantize_with(&config).unwrap();
        let reloaded = skeleton.load_file(&mpk, &recorder, &device).unwrap();
        assert_eq!(
            f32_of(reloaded.forward(ids(&device))),
            expected,
            "{format} via Burn's recorder"
        );

        if format.scheme == Scheme::Q8_0 {
            let mut keras = tiny::<B>(&device);
            keras.quantize_int8().unwrap();
            let error = store::load(&mut keras, &path).unwrap_err();
            assert!(error.to_string().contains("scale"), "{error}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
