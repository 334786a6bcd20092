//! Gradients through the int8 product under `Autodiff<B>`: Keras's straight-through rule.
//!
//! Rounding has no useful derivative, so Keras defines the input gradient of its int8 `Dense`
//! as that of the dequantized layer, `dx = dy · dequant(W)ᵀ`, and freezes the int8 weight and
//! its scale. Here the forward pass is the inner backend's int8 product, with its direct
//! kernels, and the backward pass computes `dx = (dy / w_scale) · W_qᵀ`, widening `W_q` one
//! bounded tile at a time (never a whole f32 copy of the weight). The bias gets `Σ_rows dy`.
//!
//! Dispatch is by type, like the kernels: `Autodiff<I>` (and `Autodiff<I, BalancedCheckpointing>`)
//! over each backend this crate has kernels for. Any other autodiff backend takes
//! [`straight_through_any`], which gives the same gradients through Burn's own matmul at the
//! price of a float copy of the weight per call.

use std::any::TypeId;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{FloatDType, Int, Tensor, TensorPrimitive, backend::Backend};

use crate::ops::{WEIGHT_TILE_ELEMENTS, quantized_matmul_kn};
use crate::primitive::same_type;
use crate::quantizers::dequantize;

/// [`crate::ops::quantized_matmul`] on an autodiff backend, with straight-through gradients; `None` when
/// `B` does not track gradients.
pub(crate) fn try_quantized_matmul<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 2, Int>,
    weight_scale: &Tensor<B, 1>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    if !B::ad_enabled(&x.device()) {
        return None;
    }
    macro_rules! on_inner {
        ($inner:ty) => {
            if let Some(output) =
                on_autodiff::<B, $inner, NoCheckpointing>(x, weight, weight_scale, bias)
            {
                return Some(output);
            }
            if let Some(output) =
                on_autodiff::<B, $inner, BalancedCheckpointing>(x, weight, weight_scale, bias)
            {
                return Some(output);
            }
        };
    }
    #[cfg(feature = "flex")]
    on_inner!(burn::backend::Flex);
    #[cfg(feature = "ndarray")]
    on_inner!(burn::backend::NdArray);
    #[cfg(feature = "wgpu")]
    on_inner!(burn::backend::Vulkan);
    #[cfg(feature = "cuda")]
    on_inner!(burn::backend::Cuda);
    Some(straight_through_any(
        x.clone(),
        weight.clone(),
        weight_scale.clone(),
        bias.cloned(),
    ))
}

/// The recorded op when `B` is `Autodiff<I, C>`: the forward pass runs on `I`.
fn on_autodiff<B: Backend, I: Backend, C: CheckpointStrategy>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 2, Int>,
    weight_scale: &Tensor<B, 1>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    if TypeId::of::<B>() != TypeId::of::<Autodiff<I, C>>() {
        return None;
    }
    type Tracked<I, C> = FloatTensor<Autodiff<I, C>>;
    let x: Tracked<I, C> = same_type(x.clone().into_primitive().tensor()).ok()?;
    // Autodiff does not track int tensors: the weight is `I`'s own primitive.
    let weight: IntTensor<I> = same_type(weight.clone().into_primitive()).ok()?;
    let weight_scale: Tracked<I, C> =
        same_type(weight_scale.clone().into_primitive().tensor()).ok()?;
    let bias: Option<Tracked<I, C>> = match bias {
        Some(bias) => Some(same_type(bias.clone().into_primitive().tensor()).ok()?),
        None => None,
    };

    let inner = |primitive: FloatTensor<I>| {
        Tensor::<I, 1>::from_primitive(TensorPrimitive::Float(primitive))
    };
    let output = quantized_matmul_kn(
        Tensor::<I, 2>::from_primitive(TensorPrimitive::Float(x.primitive.clone())),
        Tensor::<I, 2, Int>::from_primitive(weight.clone()),
        inner(weight_scale.primitive.clone()),
        bias.as_ref().map(|bias| inner(bias.primitive.clone())),
    )
    .into_primitive()
    .tensor();

    // The scale is frozen: it is state, not a parent.
    let state = (weight, weight_scale.primitive);
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
    /// The int8 weight `[K, N]` and its scale `[N]`.
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

/// `dy [M, N] · dequant(W)ᵀ` as `(dy / scale) · W_qᵀ`, giving `[M, K]`. `W_q` is widened to f32
/// a tile of whole input rows at a time, at most [`WEIGHT_TILE_ELEMENTS`] elements.
pub(crate) fn input_grad<B: Backend>(
    output_grad: Tensor<B, 2>,
    weight: Tensor<B, 2, Int>,
    weight_scale: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let [k, n] = weight.dims();
    let scaled = output_grad.div(weight_scale.unsqueeze_dim(0));
    let rows_per_tile = (WEIGHT_TILE_ELEMENTS / n.max(1)).clamp(1, k.max(1));
    let mut tiles: Vec<Tensor<B, 2>> = (0..k)
        .step_by(rows_per_tile)
        .map(|start| {
            let rows = start..(start + rows_per_tile).min(k);
            let tile = weight.clone().slice([rows, 0..n]).cast(FloatDType::F32);
            scaled.clone().matmul(tile.transpose())
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
    weight: Tensor<B, 2, Int>,
    weight_scale: Tensor<B, 1>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let value = crate::ops::generic_quantized_matmul_kn(
        x.clone().detach(),
        weight.clone(),
        weight_scale.clone(),
        bias,
    );
    let carrier = x.matmul(dequantize(weight, weight_scale.unsqueeze_dim(0)));
    carrier.clone().sub(carrier.detach()).add(value)
}
