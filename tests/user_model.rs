//! Shaped like a user's project: a model with `burn::nn` modules and `burn_int8::nn` ones,
//! and no `Quantize` code beyond the derive. It compiles, quantizes, and reports by path every
//! layer that stayed float, with the reason and the fix.

use burn::backend::NdArray;
use burn::module::Module;
use burn::nn::{self, LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn_int8::{LayerKind, Quantize, QuantizeExt, SkipReason};

/// A user module without the derive, holding a plain Burn linear.
#[derive(Module, Debug)]
struct Adapter<B: Backend> {
    proj: nn::Linear<B>,
}

#[derive(Module, Debug, Quantize)]
struct UserModel<B: Backend> {
    /// Burn's own: its four linears cannot be reached.
    attention: nn::attention::MultiHeadAttention<B>,
    /// Ours: every linear becomes int8.
    encoder: burn_int8::nn::transformer::TransformerEncoder<B>,
    /// Burn's own LSTM, and ours.
    lstm: nn::Lstm<B>,
    int8_lstm: burn_int8::nn::Lstm<B>,
    adapter: Adapter<B>,
    blocks: Vec<nn::attention::MultiHeadAttention<B>>,
    norm: LayerNorm<B>,
    head: burn_int8::nn::Linear<B>,
}

#[test]
fn a_mixed_user_model_quantizes_and_reports_what_stayed_float() {
    let device = Default::default();
    let mut model = UserModel::<NdArray> {
        attention: nn::attention::MultiHeadAttentionConfig::new(16, 2).init(&device),
        encoder: burn_int8::nn::transformer::TransformerEncoderConfig::new(16, 32, 2, 1)
            .init(&device),
        lstm: nn::LstmConfig::new(16, 8, true).init(&device),
        int8_lstm: burn_int8::nn::LstmConfig::new(16, 8, true).init(&device),
        adapter: Adapter {
            proj: nn::LinearConfig::new(16, 16).init(&device),
        },
        blocks: vec![nn::attention::MultiHeadAttentionConfig::new(16, 2).init(&device)],
        norm: LayerNormConfig::new(16).init(&device),
        head: burn_int8::nn::LinearConfig::new(16, 4).init(&device),
    };
    let report = model.quantize_int8().unwrap();
    let text = report.to_string();
    eprintln!("{text}");

    // Ours: 6 encoder linears, 8 LSTM gate linears, the head.
    assert_eq!(report.changed.len(), 15, "{:?}", report.changed);
    assert!(
        report
            .changed
            .iter()
            .any(|(path, _)| path == "encoder.layers.0.mha.query")
    );
    assert!(
        report
            .changed
            .iter()
            .any(|(path, _)| path == "int8_lstm.input_gate.input_transform")
    );

    // Burn's: 4 + 8 + 1 + 4 linears reported, with the fix.
    assert_eq!(report.skipped.len(), 17, "{text}");
    let reason = |path: &str| {
        report
            .skipped
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{path} not reported: {text}"))
    };
    assert_eq!(
        reason("attention.query"),
        SkipReason::Unreachable {
            layer: LayerKind::Linear,
            inside: "MultiHeadAttention".into(),
            fix: "use burn_int8::nn::attention::MultiHeadAttention".into()
        }
    );
    assert!(text.contains("attention.query: burn::nn::Linear inside MultiHeadAttention; use burn_int8::nn::attention::MultiHeadAttention"));
    assert!(matches!(
        reason("blocks.0.value"),
        SkipReason::Unreachable { .. }
    ));
    let SkipReason::Unreachable { fix, .. } = reason("lstm.forget_gate.hidden_transform") else {
        panic!()
    };
    assert_eq!(fix, "use burn_int8::nn::Lstm");
    let SkipReason::Unreachable { inside, fix, .. } = reason("adapter.proj") else {
        panic!()
    };
    assert_eq!(
        (inside.as_str(), fix.as_str()),
        (
            "Adapter",
            "derive Quantize for Adapter and use burn_int8::nn layers in it"
        )
    );
}
