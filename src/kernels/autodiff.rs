//! Gradients through the int8 product under `Autodiff<B>`: Keras's straight-through rule.
//!
//! Rounding has no useful derivative, so Keras defines the input gradient of its int8 `Dense`
//! as that of the dequantized layer, `dx = dy · dequant(W)ᵀ`, and freezes the int8 weight and
//! its scale. Here the forward pass is the inner backend's int8 product, with its direct
//! kernels, and the backward pass computes `dx = (dy / w_scale) · W_qᵀ`, widening `W_q` one
//! bounded tile at a time (never a whole f32 copy of the weight). The bias gets `Σ_rows dy`.
//!
//! Dispatch is by the seam's table (`backend.rs`): `Autodiff<I>` (and
//! `Autodiff<I, BalancedCheckpointing>`) over each backend this crate has kernels for. Any other autodiff backend takes
//! [`straight_through_any`], which gives the same gradients through Burn's own matmul at the
//! price of a float copy of the weight per call.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{FloatDType, Int, Tensor, TensorPrimitive, backend::Backend};

use super::backend::{KernelBackend, is_type, same_type};
use super::generic::WEIGHT_TILE_ELEMENTS;
use super::{ChannelRows, fused_product};
use crate::quantizers::dequantize;

/// The seam's fused product on an autodiff backend, with straight-through gradients; `None`
/// when `B` does not track gradients.
pub(crate) fn try_quantized_matmul<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    if !B::ad_enabled(&x.device()) {
        return None;
    }
    /// Either checkpointing strategy over the inner backend `I`.
    fn on_inner<B: Backend, I: Backend>(
        x: &Tensor<B, 2>,
        weight: &ChannelRows<B>,
        bias: Option<&Tensor<B, 1>>,
    ) -> Option<Tensor<B, 2>> {
        on_autodiff::<B, I, NoCheckpointing>(x, weight, bias)
            .or_else(|| on_autodiff::<B, I, BalancedCheckpointing>(x, weight, bias))
    }
    let inner = match KernelBackend::of::<B>() {
        #[cfg(feature = "flex")]
        Some(KernelBackend::Flex) => on_inner::<B, burn::backend::Flex>(x, weight, bias),
        #[cfg(feature = "ndarray")]
        Some(KernelBackend::NdArray) => on_inner::<B, burn::backend::NdArray>(x, weight, bias),
        #[cfg(feature = "wgpu")]
        Some(KernelBackend::Vulkan) => on_inner::<B, burn::backend::Vulkan>(x, weight, bias),
        #[cfg(feature = "cuda")]
        Some(KernelBackend::Cuda) => on_inner::<B, burn::backend::Cuda>(x, weight, bias),
        _ => None,
    };
    Some(inner.unwrap_or_else(|| straight_through_any(x.clone(), weight.clone(), bias.cloned())))
}

/// The recorded op when `B` is `Autodiff<I, C>`: the forward pass runs on `I`.
fn on_autodiff<B: Backend, I: Backend, C: CheckpointStrategy>(
    x: &Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    if !is_type::<B, Autodiff<I, C>>() {
        return None;
    }
    type Tracked<I, C> = FloatTensor<Autodiff<I, C>>;
    let x: Tracked<I, C> = same_type(x.clone().into_primitive().tensor()).ok()?;
    // Autodiff does not track int tensors: the weight is `I`'s own primitive.
    let values: IntTensor<I> = same_type(weight.values.clone().into_primitive()).ok()?;
    let weight_scale: Tracked<I, C> =
        same_type(weight.scale.clone().into_primitive().tensor()).ok()?;
    let bias: Option<Tracked<I, C>> = match bias {
        Some(bias) => Some(same_type(bias.clone().into_primitive().tensor()).ok()?),
        None => None,
    };

    let inner = |primitive: FloatTensor<I>| {
        Tensor::<I, 1>::from_primitive(TensorPrimitive::Float(primitive))
    };
    let inner_weight = ChannelRows {
        values: Tensor::<I, 2, Int>::from_primitive(values.clone()),
        scale: inner(weight_scale.primitive.clone()),
        format: crate::Int8Format::KERAS,
    };
    let output = fused_product(
        Tensor::<I, 2>::from_primitive(TensorPrimitive::Float(x.primitive.clone())),
        &inner_weight,
        bias.as_ref().map(|bias| inner(bias.primitive.clone())),
    )
    .into_primitive()
    .tensor();

    // The scale is frozen: it is state, not a parent.
    let state = (values, weight_scale.primitive);
    let tracked: Tracked<I, C> = match bias {
        Some(bias) => match StraightThrough
            .prepare::<C>([x.node, bias.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        },
        None => match StraightThrough
            .prepare::<C>([x.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        },
    };
    let tracked: B::FloatTensorPrimitive = same_type(tracked).ok()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(tracked)))
}

/// The backward pass of the int8 product; parents are `[x]` or `[x, bias]`.
#[derive(Debug)]
struct StraightThrough;

impl<I: Backend, const N: usize> Backward<I, N> for StraightThrough {
    /// The int8 weight as channel rows `[N, K]` and its scale `[N]`.
    type State = (IntTensor<I>, FloatTensor<I>);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let output_grad =
            Tensor::<I, 2>::from_primitive(TensorPrimitive::Float(grads.consume::<I>(&ops.node)));
        let (weight, weight_scale) = ops.state;
        for (index, parent) in ops.parents.into_iter().enumerate() {
            let Some(parent) = parent else { continue };
            let grad = if index == 0 {
                let weight = Tensor::<I, 2, Int>::from_primitive(weight.clone());
                let weight_scale =
                    Tensor::<I, 1>::from_primitive(TensorPrimitive::Float(weight_scale.clone()));
                input_grad(output_grad.clone(), weight, weight_scale)
                    .into_primitive()
                    .tensor()
            } else {
                let [_, n] = output_grad.dims();
                output_grad
                    .clone()
                    .sum_dim(0)
                    .reshape([n])
                    .into_primitive()
                    .tensor()
            };
            grads.register::<I>(parent.id, grad);
        }
    }
}

/// `dy [M, N] · dequant(W)ᵀ` as `(dy / scale) · W_q`, with `W_q` the channel rows `[N, K]`,
/// giving `[M, K]`. `W_q` is widened to f32 a tile of whole input columns at a time, at most
/// [`WEIGHT_TILE_ELEMENTS`] elements.
fn input_grad<B: Backend>(
    output_grad: Tensor<B, 2>,
    weight: Tensor<B, 2, Int>,
    weight_scale: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let [n, k] = weight.dims();
    let scaled = output_grad.div(weight_scale.unsqueeze_dim(0));
    let columns_per_tile = (WEIGHT_TILE_ELEMENTS / n.max(1)).clamp(1, k.max(1));
    let mut tiles: Vec<Tensor<B, 2>> = (0..k)
        .step_by(columns_per_tile)
        .map(|start| {
            let columns = start..(start + columns_per_tile).min(k);
            let tile = weight.clone().slice([0..n, columns]).cast(FloatDType::F32);
            scaled.clone().matmul(tile)
        })
        .collect();
    if tiles.len() == 1 {
        tiles.pop().expect("one tile")
    } else {
        Tensor::cat(tiles, 1)
    }
}

/// Straight-through on any autodiff backend: the int8 value, with the gradient of
/// `x · dequant(W)` attached (`value + (carrier − detach(carrier))`). Exact values, Keras's
/// gradients, but a float copy of the weight per call: the kernels above avoid it.
fn straight_through_any<B: Backend>(
    x: Tensor<B, 2>,
    weight: ChannelRows<B>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let value = super::generic::quantized_matmul(x.clone().detach(), &weight, bias);
    let dequantized = dequantize(weight.values, weight.scale.unsqueeze_dim(1));
    let carrier = x.matmul(dequantized.transpose());
    carrier.clone().sub(carrier.detach()).add(value)
}

/// Q8_0 under any autodiff backend, by the same rule: the Q8_0 value, with the gradient of
/// `x · dequant(W)` attached. Training through a Q8_0 layer costs a float copy of its weight
/// per call (the Keras scheme's kernels above avoid it).
pub(crate) fn straight_through_q8_0<B: Backend>(
    x: Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let value = super::generic::q8_0_matmul(x.clone().detach(), weight, bias);
    let carrier = x.matmul(weight.dequantize().transpose());
    carrier.clone().sub(carrier.detach()).add(value)
}
