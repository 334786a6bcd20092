//! Gradients through int8 layers under `Autodiff`: Keras's straight-through rule.
//!
//! The expectation is independent of the int8 code: the same layer dequantized to Burn's own
//! float module (`dequantize()`), differentiated by Burn. Losses are linear in the layer's
//! output (`Σ y · r`), so the output gradient is `r` for both and the input gradients must
//! agree to float rounding, although the int8 and float outputs differ.

use crate::common;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::module::Param;
use burn::nn::conv::{Conv1dConfig, Conv2dConfig};
use burn::nn::{self, LayerNormConfig, LinearConfig, PaddingConfig1d, PaddingConfig2d};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use burn_int8::{
    Int8Weight, QuantizedConv1d, QuantizedConv2d, QuantizedEmbedding, QuantizedLinear,
};
use common::f32_of;

/// Asserts `|a - e| <= 2e-5 · max|e| + 1e-6` element-wise: float rounding, nothing more.
fn assert_grad_close(what: &str, actual: Vec<f32>, expected: Vec<f32>) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        scale > 0.0,
        "{what}: the expected gradient is zero, the test would prove nothing"
    );
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() <= 2e-5 * scale + 1e-6,
            "{what}[{i}]: int8 {a}, dequantized float {e} (scale {scale})"
        );
    }
}

fn random<B: AutodiffBackend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// `d(Σ y·r)/dx` for the int8 and the dequantized layer, and their bias gradients.
fn linear_grads<B: AutodiffBackend>(device: &B::Device) {
    let float = LinearConfig::new(64, 32).init::<B>(device);
    let int8 = QuantizedLinear::from_float(&float).unwrap();
    let dequantized = int8.dequantize();
    // Rank 3, as a transformer feeds it.
    let x = random::<B, 3>([2, 3, 64], device);
    let r = random::<B, 3>([2, 3, 32], device);

    let x_int8 = x.clone().require_grad();
    let grads = int8.forward(x_int8.clone()).mul(r.clone()).sum().backward();
    let (dx_int8, db_int8) = (
        x_int8.grad(&grads).unwrap(),
        int8.bias.as_ref().unwrap().val().grad(&grads).unwrap(),
    );
    assert!(
        int8.weight.scale.val().grad(&grads).is_none(),
        "the int8 weight scale is frozen"
    );

    let x_float = x.require_grad();
    let grads = dequantized.forward(x_float.clone()).mul(r).sum().backward();
    let (dx_float, db_float) = (
        x_float.grad(&grads).unwrap(),
        dequantized
            .bias
            .as_ref()
            .unwrap()
            .val()
            .grad(&grads)
            .unwrap(),
    );

    assert_grad_close("linear dx", f32_of(dx_int8), f32_of(dx_float));
    assert_grad_close("linear dbias", f32_of(db_int8), f32_of(db_float));
}

/// The bug this rule fixes: a trainable norm *upstream* of an int8 layer.
fn upstream_norm_grads<B: AutodiffBackend>(device: &B::Device) {
    let norm = LayerNormConfig::new(48).init::<B>(device);
    let float = LinearConfig::new(48, 24).init::<B>(device);
    let int8 = QuantizedLinear::from_float(&float).unwrap();
    let dequantized = int8.dequantize();
    let x = random::<B, 2>([5, 48], device);
    let r = random::<B, 2>([5, 24], device);

    let grads = int8
        .forward(norm.forward(x.clone()))
        .mul(r.clone())
        .sum()
        .backward();
    let gamma_int8 = norm.gamma.val().grad(&grads).unwrap();
    let beta_int8 = norm.beta.as_ref().unwrap().val().grad(&grads).unwrap();
    let grads = dequantized.forward(norm.forward(x)).mul(r).sum().backward();
    let gamma_float = norm.gamma.val().grad(&grads).unwrap();
    let beta_float = norm.beta.as_ref().unwrap().val().grad(&grads).unwrap();
    assert_grad_close("norm gamma", f32_of(gamma_int8), f32_of(gamma_float));
    assert_grad_close("norm beta", f32_of(beta_int8), f32_of(beta_float));
}

fn embedding_grads<B: AutodiffBackend>(device: &B::Device) {
    let float = nn::EmbeddingConfig::new(40, 16).init::<B>(device);
    let int8 = QuantizedEmbedding::from_float(&float).unwrap();
    let dequantized = int8.dequantize();

    // Tied logits `h · Eᵀ`: a product like a dense layer's.
    let hidden = random::<B, 3>([2, 3, 16], device);
    let r = random::<B, 3>([2, 3, 40], device);
    let h_int8 = hidden.clone().require_grad();
    let grads = int8.reverse(h_int8.clone()).mul(r.clone()).sum().backward();
    let dh_int8 = h_int8.grad(&grads).unwrap();
    let h_float = hidden.require_grad();
    let logits = h_float
        .clone()
        .matmul(dequantized.weight.val().transpose().unsqueeze_dim(0));
    let grads = logits.mul(r).sum().backward();
    assert_grad_close(
        "tied logits dh",
        f32_of(dh_int8),
        f32_of(h_float.grad(&grads).unwrap()),
    );

    // Lookups: nothing upstream to reach, but the graph downstream must still train.
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![3i64, 0, 39, 7], [2, 2]), device);
    let head = LinearConfig::new(16, 5).init::<B>(device);
    let r = random::<B, 3>([2, 2, 5], device);
    let grads = head
        .forward(int8.forward(ids.clone()))
        .mul(r.clone())
        .sum()
        .backward();
    let head_int8 = head.weight.val().grad(&grads).unwrap();
    assert!(
        int8.weight.scale.val().grad(&grads).is_none(),
        "the int8 embedding is frozen"
    );
    let grads = head
        .forward(dequantized.forward(ids))
        .mul(r)
        .sum()
        .backward();
    assert_grad_close(
        "head after int8 lookup",
        f32_of(head_int8),
        f32_of(head.weight.val().grad(&grads).unwrap()),
    );
}

fn conv_grads<B: AutodiffBackend>(device: &B::Device) {
    // Conv2d with stride, padding, dilation and groups.
    let float = Conv2dConfig::new([4, 6], [3, 3])
        .with_stride([2, 1])
        .with_dilation([1, 2])
        .with_groups(2)
        .with_padding(PaddingConfig2d::Explicit(1, 2, 1, 2))
        .init::<B>(device);
    let int8 = QuantizedConv2d::from_float(&float).unwrap();
    let dequantized = int8.dequantize();
    let x = random::<B, 4>([2, 4, 7, 9], device);
    let y_shape = dequantized.forward(x.clone()).dims();
    let r = random::<B, 4>(y_shape, device);
    let x_int8 = x.clone().require_grad();
    let grads = int8.forward(x_int8.clone()).mul(r.clone()).sum().backward();
    let (dx_int8, db_int8) = (
        x_int8.grad(&grads).unwrap(),
        int8.bias.as_ref().unwrap().val().grad(&grads).unwrap(),
    );
    let x_float = x.require_grad();
    let grads = dequantized.forward(x_float.clone()).mul(r).sum().backward();
    assert_grad_close(
        "conv2d dx",
        f32_of(dx_int8),
        f32_of(x_float.grad(&grads).unwrap()),
    );
    assert_grad_close(
        "conv2d dbias",
        f32_of(db_int8),
        f32_of(
            dequantized
                .bias
                .as_ref()
                .unwrap()
                .val()
                .grad(&grads)
                .unwrap(),
        ),
    );

    let float = Conv1dConfig::new(3, 5, 3)
        .with_padding(PaddingConfig1d::Same)
        .init::<B>(device);
    let int8 = QuantizedConv1d::from_float(&float).unwrap();
    let dequantized = int8.dequantize();
    let x = random::<B, 3>([2, 3, 11], device);
    let r = random::<B, 3>([2, 5, 11], device);
    let x_int8 = x.clone().require_grad();
    let grads = int8.forward(x_int8.clone()).mul(r.clone()).sum().backward();
    let dx_int8 = x_int8.grad(&grads).unwrap();
    let x_float = x.require_grad();
    let grads = dequantized.forward(x_float.clone()).mul(r).sum().backward();
    assert_grad_close(
        "conv1d dx",
        f32_of(dx_int8),
        f32_of(x_float.grad(&grads).unwrap()),
    );
}

fn all_grads<B: AutodiffBackend>(device: &B::Device) {
    linear_grads::<B>(device);
    upstream_norm_grads::<B>(device);
    embedding_grads::<B>(device);
    conv_grads::<B>(device);
}

#[test]
fn straight_through_on_autodiff_ndarray() {
    all_grads::<Autodiff<burn::backend::NdArray>>(&Default::default());
}

#[test]
fn straight_through_on_autodiff_flex() {
    all_grads::<Autodiff<burn::backend::Flex>>(&Default::default());
}

#[test]
fn straight_through_with_balanced_checkpointing() {
    linear_grads::<Autodiff<burn::backend::Flex, BalancedCheckpointing>>(&Default::default());
}

/// `NdArray<f32, i32>` is not a backend with kernels here (those are `NdArray<f32, i64>`), so
/// this exercises the generic straight-through path every other autodiff backend takes.
#[test]
fn straight_through_on_any_other_autodiff_backend() {
    type Other = Autodiff<burn::backend::NdArray<f32, i32>>;
    linear_grads::<Other>(&Default::default());
    upstream_norm_grads::<Other>(&Default::default());
}

#[test]
fn straight_through_on_autodiff_wgpu() {
    let device = burn::backend::wgpu::WgpuDevice::Cpu;
    linear_grads::<Autodiff<burn::backend::Vulkan>>(&device);
}

/// The value under `Autodiff` is the int8 layer's, bit for bit, not the float carrier's.
#[test]
fn autodiff_forward_equals_the_plain_backend() {
    type Plain = burn::backend::Flex;
    let device = Default::default();
    let float = LinearConfig::new(96, 40).init::<Plain>(&device);
    let int8 = QuantizedLinear::from_float(&float).unwrap();
    let x = Tensor::<Plain, 2>::random([7, 96], Distribution::Normal(0.0, 1.0), &device);
    let plain = f32_of(int8.forward(x.clone()));

    type Tracked = Autodiff<Plain>;
    let weight = Int8Weight::from_parts(
        Tensor::<Tracked, 2, burn::tensor::Int>::from_inner(int8.weight.values.val()),
        Tensor::from_inner(int8.weight.scale()),
        1,
    )
    .unwrap();
    let tracked_layer = QuantizedLinear::<Tracked> {
        weight,
        bias: int8
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(Tensor::from_inner(b.val()))),
    };
    let tracked = f32_of(tracked_layer.forward(Tensor::<Tracked, 2>::from_inner(x).require_grad()));
    assert_eq!(tracked, plain);
}

thread_local! {
    static KERNEL_CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts the CPU kernel's `int8 gemm` trace events, per thread.
struct KernelCalls;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for KernelCalls {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event
            .metadata()
            .target()
            .starts_with("burn_int8::kernels::cpu")
        {
            KERNEL_CALLS.with(|calls| calls.set(calls.get() + 1));
        }
    }
}

/// Training keeps the fast path: under `Autodiff<Flex>` and `Autodiff<NdArray>` the int8
/// layer's forward pass runs the direct CPU kernel.
#[test]
fn autodiff_cpu_backends_reach_the_direct_kernels() {
    use tracing_subscriber::layer::SubscriberExt;
    // Global (this is the only test that sets one): scoped dispatchers missed the kernel's events.
    let _ =
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(KernelCalls));
    fn kernel_calls<B: AutodiffBackend>(device: &B::Device) -> usize {
        let before = KERNEL_CALLS.with(|calls| calls.get());
        let layer =
            QuantizedLinear::from_float(&LinearConfig::new(64, 32).init::<B>(device)).unwrap();
        let x = random::<B, 2>([4, 64], device).require_grad();
        let _ = layer.forward(x).sum().backward();
        KERNEL_CALLS.with(|calls| calls.get()) - before
    }
    assert_eq!(
        kernel_calls::<Autodiff<burn::backend::Flex>>(&Default::default()),
        1,
        "Autodiff<Flex>"
    );
    assert_eq!(
        kernel_calls::<Autodiff<burn::backend::NdArray>>(&Default::default()),
        1,
        "Autodiff<NdArray>"
    );
    // The check can fail: the generic path emits no kernel event.
    assert_eq!(
        kernel_calls::<Autodiff<burn::backend::NdArray<f32, i32>>>(&Default::default()),
        0,
        "generic path"
    );
}
