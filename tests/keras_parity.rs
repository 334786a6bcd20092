//! Bit-level parity with Keras 3's int8 quantization, on the fixture Keras itself produced.
//! Runs on ndarray, flex and wgpu (lavapipe).

use crate::common;

use burn::module::Param;
use burn::nn;
use burn::tensor::{Tensor, activation::relu, backend::Backend};
use burn_int8::quantizers::abs_max_quantize;
use burn_int8::{QuantizedEmbedding, QuantizedLinear, mse};
use common::{Fixture, assert_close, assert_within_one_ulp, f32_of, i8_of};

/// Keras's tolerance for int8 outputs: `1e-5·|ref| + 1e-6`.
const REL: f32 = 1e-5;
const ABS: f32 = 1e-6;

fn dense_cases<B: Backend>(device: &B::Device) {
    let fixture = Fixture::load();
    let cases = fixture.cases_with("kernel_int8");
    assert!(!cases.is_empty(), "fixture has no dense cases");
    for case in cases {
        let kernel = fixture.float::<B, 2>(&format!("{case}.kernel"), device);
        let bias_name = format!("{case}.bias");
        let bias = fixture
            .has(&bias_name)
            .then(|| fixture.float::<B, 1>(&bias_name, device));
        let layer = QuantizedLinear::from_weights(kernel, bias).expect("quantize");

        assert_eq!(
            i8_of(layer.weight.values.val()),
            fixture.i8_values(&format!("{case}.kernel_int8")),
            "{case}: kernel_int8"
        );
        assert_within_one_ulp(
            &format!("{case}.kernel_scale"),
            &f32_of(layer.weight.scale()),
            &fixture.f32_values(&format!("{case}.kernel_scale")),
        );

        let x_shape = fixture.shape(&format!("{case}.x"));
        let y = match x_shape.len() {
            2 => f32_of(layer.forward(fixture.float::<B, 2>(&format!("{case}.x"), device))),
            3 => f32_of(layer.forward(fixture.float::<B, 3>(&format!("{case}.x"), device))),
            rank => panic!("{case}: unexpected input rank {rank}"),
        };
        // The generator's only activated case is named after its activation.
        let y = if case.contains("relu") {
            y.into_iter().map(|v| v.max(0.0)).collect()
        } else {
            y
        };
        let expected = fixture.f32_values(&format!("{case}.y_int8"));
        assert_close(&format!("{case}.y_int8"), &y, &expected, REL, ABS);
        assert!(y.iter().all(|v| v.is_finite()), "{case}: non-finite output");
        eprintln!("   {case}: kernel_int8 exact, scales ≤ 1 ulp, y_int8 within tolerance");
    }
}

fn embedding_cases<B: Backend>(device: &B::Device) {
    let fixture = Fixture::load();
    for case in fixture.cases_with("embeddings_int8") {
        let table = fixture.float::<B, 2>(&format!("{case}.embeddings"), device);
        let layer = QuantizedEmbedding::from_weights(table).expect("quantize");
        assert_eq!(
            i8_of(layer.weight.values.val()),
            fixture.i8_values(&format!("{case}.embeddings_int8")),
            "{case}: embeddings_int8"
        );
        assert_within_one_ulp(
            &format!("{case}.embeddings_scale"),
            &f32_of(layer.weight.scale()),
            &fixture.f32_values(&format!("{case}.embeddings_scale")),
        );
        if fixture.has(&format!("{case}.ids")) {
            let ids = fixture.ids::<B, 2>(&format!("{case}.ids"), device);
            let y = f32_of(layer.forward(ids));
            assert_close(
                &format!("{case}.y_int8"),
                &y,
                &fixture.f32_values(&format!("{case}.y_int8")),
                REL,
                ABS,
            );
        }
        if fixture.has(&format!("{case}.hidden")) {
            let hidden = fixture.float::<B, 2>(&format!("{case}.hidden"), device);
            let logits = f32_of(layer.reverse(hidden));
            let expected = fixture.f32_values(&format!("{case}.logits_int8"));
            assert_close(&format!("{case}.logits_int8"), &logits, &expected, REL, ABS);
        }
        eprintln!("   {case}: embeddings_int8 exact, scales ≤ 1 ulp, outputs within tolerance");
    }
}

fn round_half_even<B: Backend>(device: &B::Device) {
    let fixture = Fixture::load();
    for case in fixture.cases_with("q") {
        let x = fixture.float::<B, 2>(&format!("{case}.x"), device);
        let (q, scale) = abs_max_quantize(x, 1).expect("quantize");
        assert_eq!(
            i8_of(q),
            fixture.i8_values(&format!("{case}.q")),
            "{case}: q"
        );
        assert_within_one_ulp(
            &format!("{case}.scale"),
            &f32_of(scale),
            &fixture.f32_values(&format!("{case}.scale")),
        );
    }
}

fn functional_mse<B: Backend>(device: &B::Device) {
    let fixture = Fixture::load();
    let linear = |name: &str| nn::Linear::<B> {
        weight: Param::from_tensor(fixture.float(&format!("functional.{name}_kernel"), device)),
        bias: Some(Param::from_tensor(
            fixture.float(&format!("functional.{name}_bias"), device),
        )),
    };
    let (dense1, dense2) = (linear("dense1"), linear("dense2"));
    let x: Tensor<B, 2> = fixture.float("functional.x_eval", device);

    let y_fp32 = dense2.forward(relu(dense1.forward(x.clone())));
    assert_close(
        "functional.y_fp32",
        &f32_of(y_fp32.clone()),
        &fixture.f32_values("functional.y_fp32"),
        1e-5,
        1e-6,
    );

    let (q1, q2) = (
        QuantizedLinear::from_float(&dense1).unwrap(),
        QuantizedLinear::from_float(&dense2).unwrap(),
    );
    let y_int8 = q2.forward(relu(q1.forward(x)));
    assert_close(
        "functional.y_int8",
        &f32_of(y_int8.clone()),
        &fixture.f32_values("functional.y_int8"),
        REL,
        ABS,
    );

    let ours = mse(y_fp32, y_int8);
    let keras = fixture.f32_values("functional.mse")[0];
    eprintln!("   functional: MSE ours {ours:e}, Keras {keras:e}");
    assert!(
        (ours - keras).abs() <= 0.01 * keras,
        "functional MSE {ours} vs Keras {keras}"
    );
}

#[test]
fn dense_layers_match_keras() {
    for_each_backend!(dense_cases);
}

#[test]
fn embeddings_match_keras() {
    for_each_backend!(embedding_cases);
}

#[test]
fn abs_max_quantize_rounds_half_to_even_like_keras() {
    for_each_backend!(round_half_even);
}

#[test]
fn functional_model_mse_matches_keras() {
    for_each_backend!(functional_mse);
}
