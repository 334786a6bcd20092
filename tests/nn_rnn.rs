//! `burn_int8::nn`'s recurrent modules and SwiGlu: in float they are Burn's modules bit for bit
//! (converted with `From`, or built from our configs), and quantized they stay close to float,
//! report every gate linear and pass gradients under `Autodiff`.

use crate::common;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::Module;
use burn::nn;
use burn::nn::activation::ActivationConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burn_int8::nn::{
    BiGru, BiGruConfig, BiLstm, BiLstmConfig, Gru, GruConfig, Lstm, LstmConfig, LstmState, SwiGlu,
    SwiGluConfig,
};
use burn_int8::{Quantize, QuantizeExt};
use common::{equal_on_some_attempt, f32_of, materialized, rng_lock};

const D_INPUT: usize = 8;
const D_HIDDEN: usize = 16;
const BATCH: usize = 2;
const SEQ: usize = 6;

fn random<B: Backend, const D: usize>(shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// `‖actual − expected‖ / ‖expected‖`.
fn relative_error(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "length");
    let diff = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e) * (a - e))
        .sum::<f32>()
        .sqrt();
    let norm = expected.iter().map(|e| e * e).sum::<f32>().sqrt();
    assert!(
        norm > 0.0,
        "the float output is zero, the comparison would prove nothing"
    );
    diff / norm
}

fn assert_int8_close(what: &str, int8: Vec<f32>, float: Vec<f32>) {
    assert!(
        int8.iter().all(|v| v.is_finite()),
        "{what}: non-finite int8 output"
    );
    let error = relative_error(&int8, &float);
    assert!(
        error > 0.0,
        "{what}: int8 output equals float, the layers were not quantized"
    );
    assert!(error < 0.05, "{what}: relative error {error} against float");
}

fn changed_paths(report: &burn_int8::QuantizeReport) -> Vec<String> {
    assert!(
        report
            .changed
            .iter()
            .all(|(_, kind)| *kind == burn_int8::LayerKind::Linear),
        "{:?}",
        report.changed
    );
    report
        .changed
        .iter()
        .map(|(path, _)| path.clone())
        .collect()
}

/// `prefix.gate.input_transform`, `prefix.gate.hidden_transform` for every gate, in field order.
fn gate_paths(prefix: &str, gates: &[&str]) -> Vec<String> {
    gates
        .iter()
        .flat_map(|gate| {
            ["input_transform", "hidden_transform"].map(|t| format!("{prefix}{gate}.{t}"))
        })
        .collect()
}

const LSTM_GATES: [&str; 4] = ["input_gate", "forget_gate", "output_gate", "cell_gate"];
const GRU_GATES: [&str; 3] = ["update_gate", "reset_gate", "new_gate"];

fn lstm_linears<B: Backend>(lstm: &Lstm<B>) -> Vec<&burn_int8::nn::Linear<B>> {
    [
        &lstm.input_gate,
        &lstm.forget_gate,
        &lstm.output_gate,
        &lstm.cell_gate,
    ]
    .into_iter()
    .flat_map(|gate| [&gate.input_transform, &gate.hidden_transform])
    .collect()
}

// ---- Float: bit-identical to Burn ---------------------------------------------------------

fn lstm_configs() -> Vec<nn::LstmConfig> {
    vec![
        nn::LstmConfig::new(D_INPUT, D_HIDDEN, true),
        nn::LstmConfig::new(D_INPUT, D_HIDDEN, true).with_batch_first(false),
        nn::LstmConfig::new(D_INPUT, D_HIDDEN, false).with_reverse(true),
        nn::LstmConfig::new(D_INPUT, D_HIDDEN, true)
            .with_clip(Some(0.5))
            .with_input_forget(true),
        nn::LstmConfig::new(D_INPUT, D_HIDDEN, true)
            .with_batch_first(false)
            .with_reverse(true)
            .with_gate_activation(ActivationConfig::HardSigmoid(nn::HardSigmoidConfig::new()))
            .with_cell_activation(ActivationConfig::Softsign)
            .with_hidden_activation(ActivationConfig::Relu),
    ]
}

fn lstm_float_parity<B: Backend>(device: &B::Device) {
    for config in lstm_configs() {
        B::seed(device, 42);
        let burn = materialized::<B, _>(config.init::<B>(device));
        let ours: Lstm<B> = burn.clone().into();
        let shape = if config.batch_first {
            [BATCH, SEQ, D_INPUT]
        } else {
            [SEQ, BATCH, D_INPUT]
        };
        let x = random::<B, 3>(shape, device);
        for with_state in [false, true] {
            let (burn_state, our_state) = if with_state {
                let cell = random::<B, 2>([BATCH, D_HIDDEN], device);
                let hidden = random::<B, 2>([BATCH, D_HIDDEN], device);
                // `burn_int8::nn::LstmState` is Burn's type: one value serves both modules.
                (
                    Some(nn::LstmState::new(cell.clone(), hidden.clone())),
                    Some(LstmState::new(cell, hidden)),
                )
            } else {
                (None, None)
            };
            let (y_burn, state_burn) = burn.forward(x.clone(), burn_state);
            let (y_ours, state_ours) = ours.forward(x.clone(), our_state);
            assert_eq!(
                f32_of(y_ours),
                f32_of(y_burn),
                "{config:?}, state {with_state}: output"
            );
            assert_eq!(
                f32_of(state_ours.cell),
                f32_of(state_burn.cell),
                "{config:?}, state {with_state}: cell"
            );
            assert_eq!(
                f32_of(state_ours.hidden),
                f32_of(state_burn.hidden),
                "{config:?}, state {with_state}: hidden"
            );
        }
    }
}

fn bilstm_float_parity<B: Backend>(device: &B::Device) {
    let configs = [
        nn::BiLstmConfig::new(D_INPUT, D_HIDDEN, true),
        nn::BiLstmConfig::new(D_INPUT, D_HIDDEN, true)
            .with_batch_first(false)
            .with_clip(Some(0.5)),
    ];
    for config in configs {
        B::seed(device, 42);
        let burn = materialized::<B, _>(config.init::<B>(device));
        let ours: BiLstm<B> = burn.clone().into();
        let shape = if config.batch_first {
            [BATCH, SEQ, D_INPUT]
        } else {
            [SEQ, BATCH, D_INPUT]
        };
        let x = random::<B, 3>(shape, device);
        for with_state in [false, true] {
            let (burn_state, our_state) = if with_state {
                let cell = random::<B, 3>([2, BATCH, D_HIDDEN], device);
                let hidden = random::<B, 3>([2, BATCH, D_HIDDEN], device);
                (
                    Some(nn::LstmState::new(cell.clone(), hidden.clone())),
                    Some(LstmState::new(cell, hidden)),
                )
            } else {
                (None, None)
            };
            let (y_burn, state_burn) = burn.forward(x.clone(), burn_state);
            let (y_ours, state_ours) = ours.forward(x.clone(), our_state);
            assert_eq!(
                f32_of(y_ours),
                f32_of(y_burn),
                "{config:?}, state {with_state}: output"
            );
            assert_eq!(
                f32_of(state_ours.cell),
                f32_of(state_burn.cell),
                "{config:?}, state {with_state}: cell"
            );
            assert_eq!(
                f32_of(state_ours.hidden),
                f32_of(state_burn.hidden),
                "{config:?}, state {with_state}: hidden"
            );
        }
    }
}

fn gru_float_parity<B: Backend>(device: &B::Device) {
    let configs = [
        nn::GruConfig::new(D_INPUT, D_HIDDEN, true),
        nn::GruConfig::new(D_INPUT, D_HIDDEN, true).with_reset_after(false),
        nn::GruConfig::new(D_INPUT, D_HIDDEN, false).with_clip(Some(0.5)),
        nn::GruConfig::new(D_INPUT, D_HIDDEN, true)
            .with_reset_after(false)
            .with_gate_activation(ActivationConfig::HardSigmoid(nn::HardSigmoidConfig::new()))
            .with_hidden_activation(ActivationConfig::Relu),
    ];
    for config in configs {
        B::seed(device, 42);
        let burn = materialized::<B, _>(config.init::<B>(device));
        let ours: Gru<B> = burn.clone().into();
        let x = random::<B, 3>([BATCH, SEQ, D_INPUT], device);
        let state = random::<B, 2>([BATCH, D_HIDDEN], device);
        for state in [None, Some(state)] {
            let with_state = state.is_some();
            let y_burn = burn.forward(x.clone(), state.clone());
            let y_ours = ours.forward(x.clone(), state);
            assert_eq!(
                f32_of(y_ours),
                f32_of(y_burn),
                "{config:?}, state {with_state}: output"
            );
        }
    }
}

fn bigru_float_parity<B: Backend>(device: &B::Device) {
    let configs = [
        nn::BiGruConfig::new(D_INPUT, D_HIDDEN, true),
        nn::BiGruConfig::new(D_INPUT, D_HIDDEN, true)
            .with_batch_first(false)
            .with_reset_after(false),
    ];
    for config in configs {
        B::seed(device, 42);
        let burn = materialized::<B, _>(config.init::<B>(device));
        let ours: BiGru<B> = burn.clone().into();
        let shape = if config.batch_first {
            [BATCH, SEQ, D_INPUT]
        } else {
            [SEQ, BATCH, D_INPUT]
        };
        let x = random::<B, 3>(shape, device);
        let state = random::<B, 3>([2, BATCH, D_HIDDEN], device);
        for state in [None, Some(state)] {
            let with_state = state.is_some();
            let (y_burn, state_burn) = burn.forward(x.clone(), state.clone());
            let (y_ours, state_ours) = ours.forward(x.clone(), state);
            assert_eq!(
                f32_of(y_ours),
                f32_of(y_burn),
                "{config:?}, state {with_state}: output"
            );
            assert_eq!(
                f32_of(state_ours),
                f32_of(state_burn),
                "{config:?}, state {with_state}: state"
            );
        }
    }
}

fn swiglu_float_parity<B: Backend>(device: &B::Device) {
    let configs = [
        nn::SwiGluConfig::new(D_INPUT, D_HIDDEN),
        nn::SwiGluConfig::new(D_INPUT, D_HIDDEN)
            .with_bias(true)
            .with_layout(nn::LinearLayout::Col),
    ];
    for config in configs {
        B::seed(device, 42);
        let burn = materialized::<B, _>(config.init::<B>(device));
        let ours: SwiGlu<B> = burn.clone().into();
        let x = random::<B, 3>([BATCH, SEQ, D_INPUT], device);
        assert_eq!(
            f32_of(ours.forward(x.clone())),
            f32_of(burn.forward(x)),
            "{config:?}"
        );
    }
}

#[test]
fn converted_modules_match_burn_bit_for_bit() {
    let _rng = rng_lock();
    lstm_float_parity::<NdArray>(&Default::default());
    bilstm_float_parity::<NdArray>(&Default::default());
    gru_float_parity::<NdArray>(&Default::default());
    bigru_float_parity::<NdArray>(&Default::default());
    swiglu_float_parity::<NdArray>(&Default::default());

    lstm_float_parity::<Flex>(&Default::default());
    bilstm_float_parity::<Flex>(&Default::default());
    gru_float_parity::<Flex>(&Default::default());
    bigru_float_parity::<Flex>(&Default::default());
    swiglu_float_parity::<Flex>(&Default::default());
}

// ---- Our configs: Burn's fields, defaults and initialisation ------------------------------

#[test]
fn configs_have_burns_fields_and_defaults() {
    // `Display` is the config's JSON: same field names, order and values.
    let (d_in, d_h) = (D_INPUT, D_HIDDEN);
    assert_eq!(
        LstmConfig::new(d_in, d_h, true).to_string(),
        nn::LstmConfig::new(d_in, d_h, true).to_string()
    );
    assert_eq!(
        BiLstmConfig::new(d_in, d_h, false).to_string(),
        nn::BiLstmConfig::new(d_in, d_h, false).to_string()
    );
    assert_eq!(
        GruConfig::new(d_in, d_h, true).to_string(),
        nn::GruConfig::new(d_in, d_h, true).to_string()
    );
    assert_eq!(
        BiGruConfig::new(d_in, d_h, true).to_string(),
        nn::BiGruConfig::new(d_in, d_h, true).to_string()
    );
    assert_eq!(
        SwiGluConfig::new(d_in, d_h).to_string(),
        nn::SwiGluConfig::new(d_in, d_h).to_string()
    );
}

/// `init()` with the generator seeded to 7, every parameter drawn.
fn seeded<B: Backend, M: Module<B>>(device: &B::Device, init: impl FnOnce() -> M) -> M {
    B::seed(device, 7);
    materialized::<B, M>(init())
}

fn config_init_parity<B: Backend>(device: &B::Device) {
    let (d_in, d_h) = (D_INPUT, D_HIDDEN);
    let x = random::<B, 3>([BATCH, SEQ, D_INPUT], device);
    let x_seq_first = random::<B, 3>([SEQ, BATCH, D_INPUT], device);

    equal_on_some_attempt("LstmConfig::init", || {
        let burn = seeded::<B, _>(device, || {
            nn::LstmConfig::new(d_in, d_h, true)
                .with_clip(Some(1.0))
                .init::<B>(device)
        });
        let ours = seeded::<B, _>(device, || {
            LstmConfig::new(d_in, d_h, true)
                .with_clip(Some(1.0))
                .init::<B>(device)
        });
        let ((y_burn, s_burn), (y_ours, s_ours)) =
            (burn.forward(x.clone(), None), ours.forward(x.clone(), None));
        let ours = [f32_of(y_ours), f32_of(s_ours.hidden)].concat();
        (ours, [f32_of(y_burn), f32_of(s_burn.hidden)].concat())
    });

    equal_on_some_attempt("BiLstmConfig::init", || {
        let burn = seeded::<B, _>(device, || {
            nn::BiLstmConfig::new(d_in, d_h, true)
                .with_batch_first(false)
                .init::<B>(device)
        });
        let ours = seeded::<B, _>(device, || {
            BiLstmConfig::new(d_in, d_h, true)
                .with_batch_first(false)
                .init::<B>(device)
        });
        (
            f32_of(ours.forward(x_seq_first.clone(), None).0),
            f32_of(burn.forward(x_seq_first.clone(), None).0),
        )
    });

    equal_on_some_attempt("GruConfig::init", || {
        let burn = seeded::<B, _>(device, || {
            nn::GruConfig::new(d_in, d_h, true)
                .with_reset_after(false)
                .init::<B>(device)
        });
        let ours = seeded::<B, _>(device, || {
            GruConfig::new(d_in, d_h, true)
                .with_reset_after(false)
                .init::<B>(device)
        });
        (
            f32_of(ours.forward(x.clone(), None)),
            f32_of(burn.forward(x.clone(), None)),
        )
    });

    equal_on_some_attempt("BiGruConfig::init", || {
        let burn = seeded::<B, _>(device, || {
            nn::BiGruConfig::new(d_in, d_h, true).init::<B>(device)
        });
        let ours = seeded::<B, _>(device, || {
            BiGruConfig::new(d_in, d_h, true).init::<B>(device)
        });
        (
            f32_of(ours.forward(x.clone(), None).0),
            f32_of(burn.forward(x.clone(), None).0),
        )
    });

    equal_on_some_attempt("SwiGluConfig::init", || {
        let burn = seeded::<B, _>(device, || {
            nn::SwiGluConfig::new(d_in, d_h)
                .with_bias(true)
                .init::<B>(device)
        });
        let ours = seeded::<B, _>(device, || {
            SwiGluConfig::new(d_in, d_h)
                .with_bias(true)
                .init::<B>(device)
        });
        (
            f32_of(ours.forward(x.clone())),
            f32_of(burn.forward(x.clone())),
        )
    });
}

#[test]
fn configs_initialise_like_burn() {
    let _rng = rng_lock();
    config_init_parity::<NdArray>(&Default::default());
    config_init_parity::<Flex>(&Default::default());
}

// ---- Int8 ---------------------------------------------------------------------------------

fn int8_lstm_and_gru<B: Backend>(device: &B::Device) {
    let x = random::<B, 3>([BATCH, SEQ, D_INPUT], device);

    let float = materialized::<B, _>(LstmConfig::new(D_INPUT, D_HIDDEN, true).init::<B>(device));
    let mut int8 = float.clone();
    let report = int8.quantize_int8().unwrap();
    assert_eq!(changed_paths(&report), gate_paths("", &LSTM_GATES));
    assert!(
        lstm_linears(&int8)
            .iter()
            .all(|linear| linear.is_quantized())
    );
    assert!(report.bytes_after < report.bytes_before);
    let ((y_float, s_float), (y_int8, s_int8)) = (
        float.forward(x.clone(), None),
        int8.forward(x.clone(), None),
    );
    assert_int8_close("lstm output", f32_of(y_int8), f32_of(y_float));
    assert_int8_close("lstm final cell", f32_of(s_int8.cell), f32_of(s_float.cell));

    for reset_after in [true, false] {
        let config = GruConfig::new(D_INPUT, D_HIDDEN, true).with_reset_after(reset_after);
        let float = materialized::<B, _>(config.init::<B>(device));
        let mut int8 = float.clone();
        let report = int8.quantize_int8().unwrap();
        assert_eq!(changed_paths(&report), gate_paths("", &GRU_GATES));
        assert_int8_close(
            &format!("gru output (reset_after {reset_after})"),
            f32_of(int8.forward(x.clone(), None)),
            f32_of(float.forward(x.clone(), None)),
        );
    }
}

fn int8_bidirectional_and_swiglu<B: Backend>(device: &B::Device) {
    let x = random::<B, 3>([BATCH, SEQ, D_INPUT], device);

    let float = materialized::<B, _>(BiLstmConfig::new(D_INPUT, D_HIDDEN, true).init::<B>(device));
    let mut int8 = float.clone();
    let report = int8.quantize_int8().unwrap();
    let expected = [
        gate_paths("forward.", &LSTM_GATES),
        gate_paths("reverse.", &LSTM_GATES),
    ]
    .concat();
    assert_eq!(changed_paths(&report), expected);
    let (y_int8, y_float) = (
        int8.forward(x.clone(), None).0,
        float.forward(x.clone(), None).0,
    );
    assert_int8_close("bilstm output", f32_of(y_int8), f32_of(y_float));

    let float = materialized::<B, _>(BiGruConfig::new(D_INPUT, D_HIDDEN, true).init::<B>(device));
    let mut int8 = float.clone();
    let report = int8.quantize_int8().unwrap();
    let expected = [
        gate_paths("forward.", &GRU_GATES),
        gate_paths("reverse.", &GRU_GATES),
    ]
    .concat();
    assert_eq!(changed_paths(&report), expected);
    let (y_int8, y_float) = (
        int8.forward(x.clone(), None).0,
        float.forward(x.clone(), None).0,
    );
    assert_int8_close("bigru output", f32_of(y_int8), f32_of(y_float));

    let float = materialized::<B, _>(
        SwiGluConfig::new(D_INPUT, D_HIDDEN)
            .with_bias(true)
            .init::<B>(device),
    );
    let mut int8 = float.clone();
    let report = int8.quantize_int8().unwrap();
    assert_eq!(changed_paths(&report), ["linear_inner", "linear_outer"]);
    assert_int8_close(
        "swiglu output",
        f32_of(int8.forward(x.clone())),
        f32_of(float.forward(x)),
    );
}

#[test]
fn int8_recurrent_modules_track_float() {
    let _rng = rng_lock();
    int8_lstm_and_gru::<NdArray>(&Default::default());
    int8_lstm_and_gru::<Flex>(&Default::default());
    int8_bidirectional_and_swiglu::<NdArray>(&Default::default());
    int8_bidirectional_and_swiglu::<Flex>(&Default::default());
}

/// A user model: an LSTM encoder and a linear head, quantized with one call.
#[derive(Module, Debug, Quantize)]
struct SequenceClassifier<B: Backend> {
    lstm: burn_int8::nn::Lstm<B>,
    head: burn_int8::nn::Linear<B>,
}

impl<B: Backend> SequenceClassifier<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            lstm: LstmConfig::new(D_INPUT, D_HIDDEN, true).init(device),
            head: burn_int8::nn::Linear::new(&nn::LinearConfig::new(D_HIDDEN, 4), device),
        }
    }

    /// Logits `[batch, 4]` from the last hidden state.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let (_, state) = self.lstm.forward(x, None);
        self.head.forward(state.hidden)
    }
}

#[test]
fn a_model_with_an_lstm_quantizes_in_one_call() {
    let _rng = rng_lock();
    let device = Default::default();
    let float = materialized::<NdArray, _>(SequenceClassifier::<NdArray>::new(&device));
    let mut int8 = float.clone();
    let report = int8.quantize_int8().unwrap();

    let mut expected = gate_paths("lstm.", &LSTM_GATES);
    expected.push("head".to_string());
    assert_eq!(changed_paths(&report), expected);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert!(
        lstm_linears(&int8.lstm)
            .iter()
            .all(|linear| linear.is_quantized())
            && int8.head.is_quantized()
    );

    let x = random::<NdArray, 3>([BATCH, SEQ, D_INPUT], &device);
    assert_int8_close(
        "classifier logits",
        f32_of(int8.forward(x.clone())),
        f32_of(float.forward(x)),
    );
}

#[test]
fn a_quantized_lstm_passes_gradients_to_its_input() {
    let _rng = rng_lock();
    type Train = Autodiff<NdArray>;
    let device = Default::default();
    let mut lstm = LstmConfig::new(D_INPUT, D_HIDDEN, true).init::<Train>(&device);
    lstm.quantize_int8().unwrap();
    assert!(
        lstm_linears(&lstm)
            .iter()
            .all(|linear| linear.is_quantized())
    );

    let x = random::<Train, 3>([BATCH, SEQ, D_INPUT], &device).require_grad();
    let r = random::<Train, 3>([BATCH, SEQ, D_HIDDEN], &device);
    let (y, _) = lstm.forward(x.clone(), None);
    let grads = y.mul(r).sum().backward();
    let dx = f32_of(
        x.grad(&grads)
            .expect("a gradient with respect to the input"),
    );
    assert_eq!(dx.len(), BATCH * SEQ * D_INPUT);
    assert!(
        dx.iter().all(|v| v.is_finite()),
        "non-finite input gradient"
    );
    assert!(dx.iter().any(|v| *v != 0.0), "the input gradient is zero");
}
