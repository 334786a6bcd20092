//! `burn_int8::nn` attention and transformer modules: bit-identical to Burn's in float (from a
//! converted Burn module, and from our configs' init), close to float in int8, and trainable
//! (norm gradients through int8 layers) under `Autodiff`.

use crate::common;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::nn::activation::ActivationConfig;
use burn::nn::attention as burn_attn;
use burn::nn::transformer as burn_tf;
use burn::tensor::{Bool, Distribution, Tensor, TensorData, backend::Backend};
use burn_int8::QuantizeExt;
use burn_int8::nn::attention::{
    MhaInput, MultiHeadAttention, MultiHeadAttentionConfig, generate_autoregressive_mask,
};
use burn_int8::nn::transformer::{
    PositionWiseFeedForward, PositionWiseFeedForwardConfig, TransformerDecoder,
    TransformerDecoderConfig, TransformerDecoderInput, TransformerEncoder,
    TransformerEncoderConfig, TransformerEncoderInput,
};
use common::{equal_on_some_attempt, f32_of, materialized, rng_lock};

const D_MODEL: usize = 32;
const D_FF: usize = 64;
const N_HEADS: usize = 4;
const N_LAYERS: usize = 2;
const BATCH: usize = 2;
const SEQ: usize = 5;
/// Memory length of the decoder tests (differs from `SEQ` on purpose).
const MEM: usize = 7;

/// Runs `$body::<B>(&device)` on NdArray and on Flex.
macro_rules! on_cpu_backends {
    ($body:ident) => {{
        let _guard = rng_lock();
        eprintln!("-- ndarray");
        $body::<NdArray>(&Default::default());
        eprintln!("-- flex");
        $body::<Flex>(&Default::default());
    }};
}

fn random<B: Backend>(shape: [usize; 3], device: &B::Device) -> Tensor<B, 3> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// `[BATCH, len]`: the second sequence has its last two positions padded.
fn padding_mask<B: Backend>(len: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    let mut values = vec![false; BATCH * len];
    values[2 * len - 2] = true;
    values[2 * len - 1] = true;
    Tensor::from_data(TensorData::new(values, [BATCH, len]), device)
}

/// ‖actual − expected‖ / ‖expected‖ over the whole vectors.
fn relative_error(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len());
    let diff: f32 = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e) * (a - e))
        .sum::<f32>()
        .sqrt();
    let norm: f32 = expected.iter().map(|e| e * e).sum::<f32>().sqrt();
    assert!(
        norm > 0.0,
        "the float output is zero, the comparison would prove nothing"
    );
    diff / norm
}

fn encoder_config(
    norm_first: bool,
) -> (burn_tf::TransformerEncoderConfig, TransformerEncoderConfig) {
    let burn = burn_tf::TransformerEncoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS)
        .with_dropout(0.0)
        .with_norm_first(norm_first);
    let ours = TransformerEncoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS)
        .with_dropout(0.0)
        .with_norm_first(norm_first);
    (burn, ours)
}

fn decoder_config(
    norm_first: bool,
) -> (burn_tf::TransformerDecoderConfig, TransformerDecoderConfig) {
    let burn = burn_tf::TransformerDecoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS)
        .with_dropout(0.0)
        .with_norm_first(norm_first);
    let ours = TransformerDecoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS)
        .with_dropout(0.0)
        .with_norm_first(norm_first);
    (burn, ours)
}

// ---- Float parity with a converted Burn module -------------------------------------------

fn mha_parity<B: Backend>(device: &B::Device) {
    // Self-attention with both masks.
    B::seed(device, 42);
    let burn_mha = materialized(
        burn_attn::MultiHeadAttentionConfig::new(D_MODEL, N_HEADS)
            .with_dropout(0.0)
            .init::<B>(device),
    );
    let ours = MultiHeadAttention::from(burn_mha.clone());
    let x = random::<B>([BATCH, SEQ, D_MODEL], device);
    let (mask_pad, mask_attn) = (
        padding_mask::<B>(SEQ, device),
        generate_autoregressive_mask::<B>(BATCH, SEQ, device),
    );
    let expected = burn_mha.forward(
        burn_attn::MhaInput::self_attn(x.clone())
            .mask_pad(mask_pad.clone())
            .mask_attn(mask_attn.clone()),
    );
    let actual = ours.forward(
        MhaInput::self_attn(x)
            .mask_pad(mask_pad)
            .mask_attn(mask_attn),
    );
    assert_eq!(
        f32_of(actual.context),
        f32_of(expected.context),
        "self-attention context"
    );
    assert_eq!(
        f32_of(actual.weights),
        f32_of(expected.weights),
        "self-attention weights"
    );

    // Cross-attention with quiet softmax and another min_float.
    let burn_mha = materialized(
        burn_attn::MultiHeadAttentionConfig::new(D_MODEL, N_HEADS)
            .with_dropout(0.0)
            .with_quiet_softmax(true)
            .with_min_float(-1.0e3)
            .init::<B>(device),
    );
    let ours: MultiHeadAttention<B> = burn_mha.clone().into();
    let (q, kv) = (
        random::<B>([BATCH, SEQ, D_MODEL], device),
        random::<B>([BATCH, MEM, D_MODEL], device),
    );
    let mask_pad = padding_mask::<B>(MEM, device);
    let expected = burn_mha.forward(
        burn_attn::MhaInput::new(q.clone(), kv.clone(), kv.clone()).mask_pad(mask_pad.clone()),
    );
    let actual = ours.forward(MhaInput::new(q, kv.clone(), kv).mask_pad(mask_pad));
    assert_eq!(
        f32_of(actual.context),
        f32_of(expected.context),
        "cross-attention context"
    );
    assert_eq!(
        f32_of(actual.weights),
        f32_of(expected.weights),
        "cross-attention weights"
    );
}

#[test]
fn multi_head_attention_matches_burn() {
    on_cpu_backends!(mha_parity);
}

fn pwff_parity<B: Backend>(device: &B::Device) {
    for activation in [ActivationConfig::Gelu, ActivationConfig::Relu] {
        B::seed(device, 42);
        let burn_pwff = materialized(
            burn_tf::PositionWiseFeedForwardConfig::new(D_MODEL, D_FF)
                .with_dropout(0.0)
                .with_activation(activation.clone())
                .init::<B>(device),
        );
        let ours = PositionWiseFeedForward::from(burn_pwff.clone());
        let x = random::<B>([BATCH, SEQ, D_MODEL], device);
        assert_eq!(
            f32_of(ours.forward(x.clone())),
            f32_of(burn_pwff.forward(x)),
            "{activation:?}"
        );
    }
}

#[test]
fn position_wise_feed_forward_matches_burn() {
    on_cpu_backends!(pwff_parity);
}

fn encoder_parity<B: Backend>(device: &B::Device) {
    for norm_first in [false, true] {
        let (burn_config, _) = encoder_config(norm_first);
        B::seed(device, 42);
        let burn_encoder = materialized(burn_config.init::<B>(device));
        let ours = TransformerEncoder::from(burn_encoder.clone());
        let x = random::<B>([BATCH, SEQ, D_MODEL], device);
        let mask_pad = padding_mask::<B>(SEQ, device);

        let expected = burn_encoder
            .forward(burn_tf::TransformerEncoderInput::new(x.clone()).mask_pad(mask_pad.clone()));
        let actual = ours.forward(TransformerEncoderInput::new(x.clone()).mask_pad(mask_pad));
        assert_eq!(
            f32_of(actual),
            f32_of(expected),
            "norm_first {norm_first}, mask_pad"
        );

        let mask_attn = generate_autoregressive_mask::<B>(BATCH, SEQ, device);
        let expected = burn_encoder
            .forward(burn_tf::TransformerEncoderInput::new(x.clone()).mask_attn(mask_attn.clone()));
        let actual = ours.forward(TransformerEncoderInput::new(x).mask_attn(mask_attn));
        assert_eq!(
            f32_of(actual),
            f32_of(expected),
            "norm_first {norm_first}, mask_attn"
        );
    }
}

#[test]
fn transformer_encoder_matches_burn() {
    on_cpu_backends!(encoder_parity);
}

fn encoder_autoregressive_parity<B: Backend>(device: &B::Device) {
    for norm_first in [false, true] {
        let (burn_config, _) = encoder_config(norm_first);
        B::seed(device, 42);
        let burn_encoder = materialized(burn_config.init::<B>(device));
        let ours = TransformerEncoder::from(burn_encoder.clone());
        let x = random::<B>([BATCH, SEQ, D_MODEL], device);
        let mask_attn = generate_autoregressive_mask::<B>(BATCH, SEQ, device);

        let mut burn_cache = burn_encoder.new_autoregressive_cache();
        let mut our_cache = ours.new_autoregressive_cache();
        for i in 1..=SEQ {
            let input = x.clone().slice([0..BATCH, 0..i, 0..D_MODEL]);
            let mask = mask_attn.clone().slice([0..BATCH, 0..i, 0..i]);
            let expected = burn_encoder.forward_autoregressive_inference(
                burn_tf::TransformerEncoderInput::new(input.clone()).mask_attn(mask.clone()),
                &mut burn_cache,
            );
            let actual = ours.forward_autoregressive_inference(
                TransformerEncoderInput::new(input).mask_attn(mask),
                &mut our_cache,
            );
            assert_eq!(actual.dims(), [BATCH, i, D_MODEL]);
            assert_eq!(
                f32_of(actual),
                f32_of(expected),
                "norm_first {norm_first}, step {i}"
            );
        }
    }
}

#[test]
fn transformer_encoder_autoregressive_inference_matches_burn() {
    on_cpu_backends!(encoder_autoregressive_parity);
}

fn decoder_parity<B: Backend>(device: &B::Device) {
    for norm_first in [false, true] {
        let (burn_config, _) = decoder_config(norm_first);
        B::seed(device, 42);
        let burn_decoder = materialized(burn_config.init::<B>(device));
        let ours = TransformerDecoder::from(burn_decoder.clone());
        let target = random::<B>([BATCH, SEQ, D_MODEL], device);
        let memory = random::<B>([BATCH, MEM, D_MODEL], device);
        let target_pad = padding_mask::<B>(SEQ, device);
        let target_attn = generate_autoregressive_mask::<B>(BATCH, SEQ, device);
        let memory_pad = padding_mask::<B>(MEM, device);

        let expected = burn_decoder.forward(
            burn_tf::TransformerDecoderInput::new(target.clone(), memory.clone())
                .target_mask_pad(target_pad.clone())
                .target_mask_attn(target_attn.clone())
                .memory_mask_pad(memory_pad.clone()),
        );
        let actual = ours.forward(
            TransformerDecoderInput::new(target.clone(), memory.clone())
                .target_mask_pad(target_pad)
                .target_mask_attn(target_attn.clone())
                .memory_mask_pad(memory_pad),
        );
        assert_eq!(f32_of(actual), f32_of(expected), "norm_first {norm_first}");

        // Step by step with the autoregressive caches.
        let mut burn_cache = burn_decoder.new_autoregressive_cache();
        let mut our_cache = ours.new_autoregressive_cache();
        for i in 1..=SEQ {
            let input = target.clone().slice([0..BATCH, 0..i, 0..D_MODEL]);
            let mask = target_attn.clone().slice([0..BATCH, 0..i, 0..i]);
            let expected = burn_decoder.forward_autoregressive_inference(
                burn_tf::TransformerDecoderInput::new(input.clone(), memory.clone())
                    .target_mask_attn(mask.clone()),
                &mut burn_cache,
            );
            let actual = ours.forward_autoregressive_inference(
                TransformerDecoderInput::new(input, memory.clone()).target_mask_attn(mask),
                &mut our_cache,
            );
            assert_eq!(
                f32_of(actual),
                f32_of(expected),
                "norm_first {norm_first}, autoregressive step {i}"
            );
        }
    }
}

#[test]
fn transformer_decoder_matches_burn() {
    on_cpu_backends!(decoder_parity);
}

// ---- Our configs: Burn's defaults, and Burn's init --------------------------------------

#[test]
fn configs_have_burns_fields_and_defaults() {
    // Display is the config's JSON: same fields, same order, same default values.
    assert_eq!(
        MultiHeadAttentionConfig::new(D_MODEL, N_HEADS).to_string(),
        burn_attn::MultiHeadAttentionConfig::new(D_MODEL, N_HEADS).to_string()
    );
    assert_eq!(
        PositionWiseFeedForwardConfig::new(D_MODEL, D_FF).to_string(),
        burn_tf::PositionWiseFeedForwardConfig::new(D_MODEL, D_FF).to_string()
    );
    assert_eq!(
        TransformerEncoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS).to_string(),
        burn_tf::TransformerEncoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS).to_string()
    );
    assert_eq!(
        TransformerDecoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS).to_string(),
        burn_tf::TransformerDecoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS).to_string()
    );

    // Conversions both ways keep every field.
    let burn_config = burn_tf::TransformerEncoderConfig::new(D_MODEL, D_FF, N_HEADS, N_LAYERS)
        .with_dropout(0.25)
        .with_norm_first(true)
        .with_quiet_softmax(true)
        .with_activation(ActivationConfig::Relu)
        .with_layer_norm_eps(1e-6);
    let ours = TransformerEncoderConfig::from(burn_config.clone());
    assert_eq!(ours.to_string(), burn_config.to_string());
    assert_eq!(
        burn_tf::TransformerEncoderConfig::from(&ours).to_string(),
        burn_config.to_string()
    );
}

fn config_init_parity<B: Backend>(device: &B::Device) {
    let x = random::<B>([BATCH, SEQ, D_MODEL], device);
    let memory = random::<B>([BATCH, MEM, D_MODEL], device);

    for norm_first in [false, true] {
        equal_on_some_attempt(&format!("encoder, norm_first {norm_first}"), || {
            let (burn_config, our_config) = encoder_config(norm_first);
            B::seed(device, 7);
            let burn_encoder = materialized(burn_config.init::<B>(device));
            B::seed(device, 7);
            let ours = materialized(our_config.init::<B>(device));
            assert!(
                !ours.layers[0].mha.query.is_quantized(),
                "init gives float layers"
            );
            (
                f32_of(ours.forward(TransformerEncoderInput::new(x.clone()))),
                f32_of(burn_encoder.forward(burn_tf::TransformerEncoderInput::new(x.clone()))),
            )
        });

        equal_on_some_attempt(&format!("decoder, norm_first {norm_first}"), || {
            let (burn_config, our_config) = decoder_config(norm_first);
            B::seed(device, 7);
            let burn_decoder = materialized(burn_config.init::<B>(device));
            B::seed(device, 7);
            let ours = materialized(our_config.init::<B>(device));
            (
                f32_of(ours.forward(TransformerDecoderInput::new(x.clone(), memory.clone()))),
                f32_of(burn_decoder.forward(burn_tf::TransformerDecoderInput::new(
                    x.clone(),
                    memory.clone(),
                ))),
            )
        });
    }

    equal_on_some_attempt("multi-head attention", || {
        B::seed(device, 7);
        let burn_mha = materialized(
            burn_attn::MultiHeadAttentionConfig::new(D_MODEL, N_HEADS)
                .with_dropout(0.0)
                .init::<B>(device),
        );
        B::seed(device, 7);
        let ours = materialized(
            MultiHeadAttentionConfig::new(D_MODEL, N_HEADS)
                .with_dropout(0.0)
                .init::<B>(device),
        );
        (
            f32_of(ours.forward(MhaInput::self_attn(x.clone())).context),
            f32_of(
                burn_mha
                    .forward(burn_attn::MhaInput::self_attn(x.clone()))
                    .context,
            ),
        )
    });

    equal_on_some_attempt("feed-forward", || {
        B::seed(device, 7);
        let burn_pwff = materialized(
            burn_tf::PositionWiseFeedForwardConfig::new(D_MODEL, D_FF)
                .with_dropout(0.0)
                .init::<B>(device),
        );
        B::seed(device, 7);
        let ours = materialized(
            PositionWiseFeedForwardConfig::new(D_MODEL, D_FF)
                .with_dropout(0.0)
                .init::<B>(device),
        );
        (
            f32_of(ours.forward(x.clone())),
            f32_of(burn_pwff.forward(x.clone())),
        )
    });
}

#[test]
fn config_init_is_burns_init() {
    on_cpu_backends!(config_init_parity);
}

// ---- Int8 --------------------------------------------------------------------------------

const LAYER_LINEARS: [&str; 6] = [
    "mha.query",
    "mha.key",
    "mha.value",
    "mha.output",
    "pwff.linear_inner",
    "pwff.linear_outer",
];

fn encoder_int8<B: Backend>(device: &B::Device) {
    for norm_first in [false, true] {
        let (_, our_config) = encoder_config(norm_first);
        B::seed(device, 42);
        let mut model = our_config.init::<B>(device);
        let x = random::<B>([BATCH, SEQ, D_MODEL], device);
        let mask_pad = padding_mask::<B>(SEQ, device);
        let float = f32_of(
            model.forward(TransformerEncoderInput::new(x.clone()).mask_pad(mask_pad.clone())),
        );

        let report = model.quantize_int8().unwrap();
        let changed: Vec<&str> = report
            .changed
            .iter()
            .map(|(path, _)| path.as_str())
            .collect();
        let expected: Vec<String> = (0..N_LAYERS)
            .flat_map(|l| LAYER_LINEARS.map(|name| format!("layers.{l}.{name}")))
            .collect();
        assert_eq!(changed, expected);
        assert!(
            report
                .changed
                .iter()
                .all(|(_, kind)| *kind == burn_int8::LayerKind::Linear),
            "{:?}",
            report.changed
        );
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        assert!(report.bytes_after < report.bytes_before);
        for layer in &model.layers {
            let linears = [
                &layer.mha.query,
                &layer.mha.key,
                &layer.mha.value,
                &layer.mha.output,
                &layer.pwff.linear_inner,
                &layer.pwff.linear_outer,
            ];
            assert!(linears.iter().all(|linear| linear.is_quantized()));
        }

        let int8 = f32_of(model.forward(TransformerEncoderInput::new(x).mask_pad(mask_pad)));
        let error = relative_error(&int8, &float);
        assert!(
            error < 0.05,
            "norm_first {norm_first}: relative error {error}"
        );
    }
}

#[test]
fn int8_encoder_quantizes_every_linear_and_tracks_float() {
    on_cpu_backends!(encoder_int8);
}

fn decoder_int8<B: Backend>(device: &B::Device) {
    let (_, our_config) = decoder_config(false);
    B::seed(device, 42);
    let mut model = our_config.init::<B>(device);
    let target = random::<B>([BATCH, SEQ, D_MODEL], device);
    let memory = random::<B>([BATCH, MEM, D_MODEL], device);
    let mask_attn = generate_autoregressive_mask::<B>(BATCH, SEQ, device);
    let input = || {
        TransformerDecoderInput::new(target.clone(), memory.clone())
            .target_mask_attn(mask_attn.clone())
    };
    let float = f32_of(model.forward(input()));

    let report = model.quantize_int8().unwrap();
    let changed: Vec<&str> = report
        .changed
        .iter()
        .map(|(path, _)| path.as_str())
        .collect();
    let per_layer = [
        "cross_attn.query",
        "cross_attn.key",
        "cross_attn.value",
        "cross_attn.output",
        "self_attn.query",
        "self_attn.key",
        "self_attn.value",
        "self_attn.output",
        "pwff.linear_inner",
        "pwff.linear_outer",
    ];
    let expected: Vec<String> = (0..N_LAYERS)
        .flat_map(|l| per_layer.map(|name| format!("layers.{l}.{name}")))
        .collect();
    assert_eq!(changed, expected);

    let int8 = f32_of(model.forward(input()));
    let error = relative_error(&int8, &float);
    assert!(error < 0.05, "relative error {error}");
}

#[test]
fn int8_decoder_quantizes_every_linear_and_tracks_float() {
    on_cpu_backends!(decoder_int8);
}

// ---- Training after quantizing -------------------------------------------------------------

#[test]
fn int8_encoder_passes_gradients_to_its_norms() {
    type AD = Autodiff<NdArray>;
    let _guard = rng_lock();
    let device = Default::default();
    AD::seed(&device, 42);
    let (_, our_config) = encoder_config(false);
    let mut model = our_config.init::<AD>(&device);
    model.quantize_int8().unwrap();

    let x = random::<AD>([BATCH, SEQ, D_MODEL], &device);
    let r = random::<AD>([BATCH, SEQ, D_MODEL], &device);
    let grads = model
        .forward(TransformerEncoderInput::new(x))
        .mul(r)
        .sum()
        .backward();

    // A norm upstream of int8 layers (layer 0's `norm_1` feeds layer 0's int8 feed-forward).
    for (what, gamma) in [
        ("layers.0.norm_1", &model.layers[0].norm_1.gamma),
        ("layers.1.norm_2", &model.layers[1].norm_2.gamma),
    ] {
        let grad = gamma
            .val()
            .grad(&grads)
            .unwrap_or_else(|| panic!("{what}.gamma has no gradient"));
        let values = f32_of(grad);
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{what}.gamma gradient: {values:?}"
        );
        assert!(
            values.iter().any(|v| *v != 0.0),
            "{what}.gamma gradient is zero"
        );
    }

    // The int8 layers' biases train too.
    let Some(query) = model.layers[0].mha.query.int8_layer() else {
        panic!("layers.0.mha.query is not int8")
    };
    let bias = query
        .bias
        .as_ref()
        .expect("Burn's attention linears have a bias");
    assert!(
        bias.val().grad(&grads).is_some(),
        "the int8 query bias has no gradient"
    );
}
