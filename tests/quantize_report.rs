//! The per-layer error in `QuantizeReport`: each quantized layer's weight SQNR and worst
//! channel, checked against a host reference written from Keras's formula, on layers with a
//! known outlier channel, which must come first.

use burn::backend::{Flex, NdArray};
use burn::module::{Module, Param};
use burn::nn;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use burn_int8::{
    Conv2d, Embedding, LayerError, LayerKind, Linear, Quantize, QuantizeConfig, QuantizeExt,
    SkipReason,
};

const D_IN: usize = 32;
const D_OUT: usize = 8;
/// The output channel (column) of the `outlier` layer that holds one large weight.
const OUTLIER_CHANNEL: usize = 5;
const OUTLIER: f32 = 50.0;

/// Uniform values in [-1, 1) from a 64-bit LCG (Knuth's MMIX constants): the same on every run.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let unit = (self.0 >> 40) as f32 / (1u64 << 24) as f32;
        2.0 * unit - 1.0
    }

    fn uniforms(&mut self, count: usize) -> Vec<f32> {
        (0..count).map(|_| self.uniform()).collect()
    }
}

/// Makes the channel of `indices` an outlier channel: its first weight is [`OUTLIER`], the
/// others about ±0.3, which the outlier's scale (step 50/127 ≈ 0.39) rounds to ±1 step.
fn plant_outlier(weights: &mut [f32], indices: impl Iterator<Item = usize>, rng: &mut Lcg) {
    for (k, index) in indices.enumerate() {
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        weights[index] = if k == 0 {
            OUTLIER
        } else {
            sign * (0.3 + 0.03 * rng.uniform())
        };
    }
}

/// `(SQNR in dB, worst channel relative error, worst channel)` of quantizing `weights`
/// (row-major, `shape`) with one scale per entry of `axis`, straight from Keras's
/// `abs_max_quantize` in f32 (`scale = 127 / (max|w| + 1e-7)`, `q = clip(round_half_even(w ·
/// scale), -127, 127)`, `w ≈ q / scale`), and the error in f64.
fn keras_reference(weights: &[f32], shape: &[usize], axis: usize) -> (f64, f64, usize) {
    let channels = shape[axis];
    let stride: usize = shape[axis + 1..].iter().product();
    let channel_of = |index: usize| (index / stride) % channels;
    let mut amax = vec![0.0f32; channels];
    for (index, w) in weights.iter().enumerate() {
        let c = channel_of(index);
        amax[c] = amax[c].max(w.abs());
    }
    let scale: Vec<f32> = amax.iter().map(|&a| 127.0f32 / (a + 1e-7f32)).collect();
    let (mut signal, mut noise) = (vec![0.0f64; channels], vec![0.0f64; channels]);
    for (index, &w) in weights.iter().enumerate() {
        let c = channel_of(index);
        let q = (w * scale[c]).round_ties_even().clamp(-127.0, 127.0);
        let dequantized = q / scale[c];
        signal[c] += f64::from(w) * f64::from(w);
        noise[c] += (f64::from(w) - f64::from(dequantized)).powi(2);
    }
    let sqnr_db = 10.0 * (signal.iter().sum::<f64>() / noise.iter().sum::<f64>()).log10();
    let relative: Vec<f64> = (0..channels)
        .map(|c| {
            if noise[c] == 0.0 {
                0.0
            } else {
                (noise[c] / signal[c]).sqrt()
            }
        })
        .collect();
    let worst = (0..channels)
        .max_by(|&a, &b| relative[a].total_cmp(&relative[b]))
        .expect("channels");
    (sqnr_db, relative[worst], worst)
}

fn assert_matches_reference(error: &LayerError, reference: (f64, f64, usize)) {
    let (sqnr_db, relative, channel) = reference;
    let what = &error.path;
    assert!(
        (error.sqnr_db - sqnr_db).abs() <= 1e-3,
        "{what}: SQNR {} dB, reference {sqnr_db} dB",
        error.sqnr_db
    );
    assert!(
        (error.worst_channel_relative_error - relative).abs() <= 1e-6 * relative,
        "{what}: worst channel error {}, reference {relative}",
        error.worst_channel_relative_error
    );
    assert_eq!(error.worst_channel, channel, "{what}: worst channel");
}

#[derive(Module, Debug, Quantize)]
struct TwoLayers<B: Backend> {
    clean: Linear<B>,
    outlier: Linear<B>,
}

fn linear<B: Backend>(weights: &[f32], device: &B::Device) -> Linear<B> {
    let weight = Tensor::from_data(TensorData::new(weights.to_vec(), [D_IN, D_OUT]), device);
    Linear::from(nn::Linear {
        weight: Param::from_tensor(weight),
        bias: None,
    })
}

/// `(clean, outlier)` weights `[D_IN, D_OUT]`: uniform in [-1, 1), and the same kind of
/// weights with an outlier in column [`OUTLIER_CHANNEL`].
fn two_layer_weights() -> (Vec<f32>, Vec<f32>) {
    let mut rng = Lcg(42);
    let clean = rng.uniforms(D_IN * D_OUT);
    let mut outlier = rng.uniforms(D_IN * D_OUT);
    plant_outlier(
        &mut outlier,
        (0..D_IN).map(|row| row * D_OUT + OUTLIER_CHANNEL),
        &mut rng,
    );
    (clean, outlier)
}

fn two_layers<B: Backend>(device: &B::Device) -> TwoLayers<B> {
    let (clean, outlier) = two_layer_weights();
    TwoLayers {
        clean: linear(&clean, device),
        outlier: linear(&outlier, device),
    }
}

fn outlier_layer_comes_first<B: Backend>(device: &B::Device) {
    let (clean, outlier) = two_layer_weights();
    let mut model = two_layers::<B>(device);
    let report = model.quantize_int8().unwrap();
    let text = report.to_string();
    eprintln!("{text}");

    // Worst first: the outlier layer, at its outlier channel, though it was visited second.
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    let paths: Vec<&str> = report.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["outlier", "clean"]);
    assert!(report.errors.iter().all(|e| e.kind == LayerKind::Linear));
    assert_eq!(report.errors[0].worst_channel, OUTLIER_CHANNEL);
    assert!(report.errors[0].sqnr_db < report.errors[1].sqnr_db);
    assert_eq!(report.worst(1), &report.errors[..1]);
    assert_eq!(report.worst(10), &report.errors[..]);

    // Linear weights are `[d_input, d_output]`: one scale per column.
    assert_matches_reference(
        &report.errors[0],
        keras_reference(&outlier, &[D_IN, D_OUT], 1),
    );
    assert_matches_reference(
        &report.errors[1],
        keras_reference(&clean, &[D_IN, D_OUT], 1),
    );

    // The printed report lists the outlier layer before the clean one.
    let (outlier_line, clean_line) = (
        text.find("worst: outlier (Linear)"),
        text.find("worst: clean (Linear)"),
    );
    assert!(outlier_line.is_some() && clean_line.is_some(), "{text}");
    assert!(outlier_line < clean_line, "{text}");
    assert!(
        text.contains(&format!("worst channel {OUTLIER_CHANNEL} relative error")),
        "{text}"
    );

    // Dequantizing measures nothing.
    assert!(model.dequantize().unwrap().errors.is_empty());

    // Keeping the outlier layer float (what the report suggests) leaves only the clean one.
    let mut model = two_layers::<B>(device);
    let report = model
        .quantize_with(&QuantizeConfig::default().skip("outlier"))
        .unwrap();
    assert!(
        report
            .skipped
            .contains(&("outlier".into(), SkipReason::Config))
    );
    let paths: Vec<&str> = report.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["clean"]);
    assert_matches_reference(
        &report.errors[0],
        keras_reference(&clean, &[D_IN, D_OUT], 1),
    );

    // Quantizing again measures only what was still float: the int8 layer is not re-measured.
    let report = model.quantize_int8().unwrap();
    let paths: Vec<&str> = report.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["outlier"]);
    // And once all is int8, nothing is measured.
    assert!(model.quantize_int8().unwrap().errors.is_empty());
}

/// CPU backends: their division is IEEE-exact, so the dequantized weights equal the host
/// reference's and the numbers agree to 1e-6.
#[test]
fn the_layer_with_an_outlier_channel_is_reported_first() {
    outlier_layer_comes_first::<NdArray>(&Default::default());
    outlier_layer_comes_first::<Flex>(&Default::default());
}

fn embedding_rows_are_channels<B: Backend>(device: &B::Device) {
    const ROWS: usize = 10;
    const D_MODEL: usize = 32;
    const OUTLIER_ROW: usize = 3;
    let mut rng = Lcg(7);
    let mut table = rng.uniforms(ROWS * D_MODEL);
    plant_outlier(
        &mut table,
        (0..D_MODEL).map(|col| OUTLIER_ROW * D_MODEL + col),
        &mut rng,
    );
    let weight = Tensor::from_data(TensorData::new(table.clone(), [ROWS, D_MODEL]), device);
    let mut embedding = Embedding::<B>::from(nn::Embedding {
        weight: Param::from_tensor(weight),
    });
    let report = embedding.quantize_int8().unwrap();
    eprintln!("{report}");

    assert_eq!(report.errors.len(), 1);
    let error = &report.errors[0];
    assert_eq!(
        (error.path.as_str(), error.kind),
        ("", LayerKind::Embedding)
    );
    assert_eq!(error.worst_channel, OUTLIER_ROW);
    // An embedding table has one scale per row.
    assert_matches_reference(error, keras_reference(&table, &[ROWS, D_MODEL], 0));
}

#[test]
fn embedding_errors_are_per_row() {
    embedding_rows_are_channels::<NdArray>(&Default::default());
    embedding_rows_are_channels::<Flex>(&Default::default());
}

fn conv_output_channels_are_channels<B: Backend>(device: &B::Device) {
    const SHAPE: [usize; 4] = [6, 3, 3, 3];
    const OUTLIER_OUT: usize = 4;
    let per_channel: usize = SHAPE[1..].iter().product();
    let mut rng = Lcg(11);
    let mut weights = rng.uniforms(SHAPE.iter().product());
    plant_outlier(
        &mut weights,
        (0..per_channel).map(|k| OUTLIER_OUT * per_channel + k),
        &mut rng,
    );
    let mut float = Conv2dConfig::new([SHAPE[1], SHAPE[0]], [SHAPE[2], SHAPE[3]]).init::<B>(device);
    float.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(weights.clone(), SHAPE),
        device,
    ));
    let mut conv = Conv2d::from(float);
    let report = conv.quantize_int8().unwrap();
    eprintln!("{report}");

    assert_eq!(report.errors.len(), 1);
    let error = &report.errors[0];
    assert_eq!(error.kind, LayerKind::Conv2d);
    assert!(error.worst_channel < SHAPE[0]);
    assert_eq!(error.worst_channel, OUTLIER_OUT);
    // Convolution weights `[out, in / groups, k...]` have one scale per output channel.
    assert_matches_reference(error, keras_reference(&weights, &SHAPE, 0));
    assert!(
        report.to_string().contains("worst: (root) (Conv2d)"),
        "{report}"
    );
}

#[test]
fn conv_errors_are_per_output_channel() {
    conv_output_channels_are_channels::<NdArray>(&Default::default());
    conv_output_channels_are_channels::<Flex>(&Default::default());
}

#[derive(Module, Debug, Quantize)]
struct Stack<B: Backend> {
    layers: Vec<Linear<B>>,
}

/// Seven layers: five lines, then a count with the best SQNR; the list is sorted.
#[test]
fn the_report_prints_the_worst_five() {
    let device = Default::default();
    let mut rng = Lcg(3);
    let layers = (0..7)
        .map(|i| {
            let mut weights = rng.uniforms(D_IN * D_OUT);
            if i % 3 == 1 {
                plant_outlier(
                    &mut weights,
                    (0..D_IN).map(|row| row * D_OUT + i % D_OUT),
                    &mut rng,
                );
            }
            linear::<NdArray>(&weights, &device)
        })
        .collect();
    let mut model = Stack { layers };
    let report = model.quantize_int8().unwrap();
    let text = report.to_string();
    eprintln!("{text}");

    assert_eq!(report.errors.len(), 7);
    assert!(
        report
            .errors
            .windows(2)
            .all(|pair| pair[0].sqnr_db <= pair[1].sqnr_db),
        "{text}"
    );
    assert_eq!(text.matches("\n  worst: ").count(), 5, "{text}");
    let best = report.errors[6].sqnr_db;
    assert!(
        text.contains(&format!("\n  ... 2 more layer(s), best SQNR {best:.1} dB")),
        "{text}"
    );
    // The outlier layers (1 and 4) come first.
    let first: Vec<&str> = report.worst(2).iter().map(|e| e.path.as_str()).collect();
    assert!(
        first.contains(&"layers.1") && first.contains(&"layers.4"),
        "{text}"
    );
}

/// A skip path that names no layer (a typo, an empty string, a glob) is an error listing the
/// closest paths, and the model is left as it was (all float); a module path still matches
/// the layers under it.
#[test]
fn a_skip_naming_no_layer_is_an_error_listing_the_closest() {
    type B = Flex;
    let device = Default::default();
    for (skip, closest) in [("outlyer", "outlier"), ("", "clean"), ("out*", "outlier")] {
        let mut model = two_layers::<B>(&device);
        let error = model
            .quantize_with(&QuantizeConfig::default().skip(skip))
            .expect_err(skip);
        let message = error.to_string();
        assert!(
            matches!(&error, burn_int8::Int8Error::UnknownSkip { path, closest: c }
                if path == skip && c.iter().any(|p| p == closest)),
            "{skip}: {message}"
        );
        assert!(message.contains(closest), "{message}");
        assert!(!model.clean.is_quantized() && !model.outlier.is_quantized());
    }
    // A real path, even alongside a layer that is already int8, is fine.
    let mut model = two_layers::<B>(&device);
    model
        .quantize_with(&QuantizeConfig::default().skip("clean"))
        .unwrap();
    model
        .quantize_with(&QuantizeConfig::default().skip("outlier"))
        .unwrap();
}
