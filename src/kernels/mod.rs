//! The seam: the one module that knows the backends and picks a kernel for every int8
//! operation. Layers and models call the functions here, never `cpu/` or `gpu/`.
//!
//! For each operation the choice is, in order: under `Autodiff<B>` a straight-through op
//! around the inner backend's own choice (`autodiff.rs`); a direct kernel where the backend has
//! one (`cpu/` for flex and ndarray, `gpu/` for the cubecl backends wgpu and CUDA); otherwise
//! Burn tensor ops (`generic.rs`), exact on every backend. Every route gives the same bits.
//!
//! - `backend.rs`: the one table from cargo features to backend types ([`backend`]), and the
//!   one way to reach a backend's storage.
//! - The weight's layout comes from [`Int8Weight`] as a type, [`ChannelRows`]: each output
//!   channel's K values one contiguous run (`[N, K]` row-major). No kernel guesses a layout
//!   from strides; a free [`int8_matmul`] on an arbitrary `[K, N]` tensor is laid out that way
//!   once, first.
//!
//! Adding a backend, a kernel or a quantization scheme touches this folder only.

mod autodiff;
mod backend;
mod conv;
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub mod cpu;
pub mod generic;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod gpu;
mod pool;
pub(crate) mod transformer;

use burn::tensor::{DType, Int, Tensor, backend::Backend};

use crate::{Int8Format, Int8Weight, Rotation, Scheme};
use backend::KernelBackend;
pub(crate) use conv::conv2d;
pub use conv::{ConvGeometry, generic_quantized_conv2d};
pub(crate) use pool::{max_pool1d, max_pool2d};

/// An int8 weight as every kernel reads it: `values [N, K]` (I8), row-major and dense, one
/// output channel per row, its scales (`[N]` for Keras, `[N · K / 32]` for Q8_0) and its
/// format. Made by [`Int8Weight::channel_rows`] (a view of the stored bytes, no copy) or by
/// laying out a free operand once ([`int8_matmul`]).
#[derive(Debug, Clone)]
pub struct ChannelRows<B: Backend> {
    pub(crate) values: Tensor<B, 2, Int>,
    pub(crate) scale: Tensor<B, 1>,
    pub(crate) format: Int8Format,
}

impl<B: Backend> ChannelRows<B> {
    /// Rows `channels` of this weight: still dense, still channel rows.
    pub(crate) fn channels(&self, channels: std::ops::Range<usize>) -> Self {
        let [_, k] = self.values.dims();
        let per_channel = self.format.scheme.scales_per_channel(k);
        Self {
            values: self.values.clone().slice([channels.clone(), 0..k]),
            scale: self.scale.clone().narrow(
                0,
                channels.start * per_channel,
                channels.len() * per_channel,
            ),
            format: self.format,
        }
    }

    /// `[N, K]`.
    pub(crate) fn dims(&self) -> [usize; 2] {
        self.values.dims()
    }

    /// The same rows seen as unrotated: for a caller that rotated the activations itself.
    fn unrotated(&self) -> Self {
        let mut rows = self.clone();
        rows.format.rotation = Rotation::None;
        rows
    }

    /// The float rows `[N, K]` back: Keras's `q / scale`, or Q8_0's `q · d` per block; rotated
    /// back where the weight was rotated.
    pub(crate) fn dequantize(&self) -> Tensor<B, 2> {
        let rows = match self.format.scheme {
            Scheme::Keras | Scheme::Sample => crate::quantizers::dequantize(
                self.values.clone(),
                self.scale.clone().unsqueeze_dim(1),
            ),
            Scheme::Q8_0 => generic::q8_0_dequantize(self.values.clone(), self.scale.clone()),
        };
        rotated(self.format.rotation, rows)
    }
}

/// Keras's quantized dense product: dynamic per-row AbsMax quantization of `x [M, K]`, the
/// int8 product with `weight` (`[K, N]` seen as a linear layer's, `[N, K]` as an embedding's
/// tied logits: its channels are the outputs either way), then
/// `acc / (x_scale · weight_scale) + bias [N]`.
///
/// Under `Autodiff<B>` the gradient of `x` is Keras's straight-through `dy · dequant(W)ᵀ`; the
/// weight and its scale get none (they are frozen), the bias gets `Σ_rows dy`.
pub fn quantized_matmul<B: Backend>(
    x: Tensor<B, 2>,
    weight: &Int8Weight<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    fused_product(x, &weight.channel_rows(), bias)
}

/// [`quantized_matmul`] through Burn tensor ops (the int8 product still on the GPU kernels
/// where there are some), in the weight's format: the oracle the fused kernels are tested
/// against.
pub fn generic_quantized_matmul<B: Backend>(
    x: Tensor<B, 2>,
    weight: &Int8Weight<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let rows = weight.channel_rows();
    let x = match rows.format.rotation {
        Rotation::None => x,
        Rotation::Hadamard => generic::rotate_rows(x),
    };
    match rows.format.scheme {
        // A dense product's rows are its samples: Sample is Keras's rule here.
        Scheme::Keras | Scheme::Sample => generic::quantized_matmul(x, &rows.unrotated(), bias),
        Scheme::Q8_0 => generic::q8_0_matmul(x, &rows.unrotated(), bias),
    }
}

/// [`quantized_matmul`] of several weights applied to the same `x` (a block's q, k and v
/// projections; its gate and up projections). On the CPU kernels the rows of `x` are quantized
/// once and every product runs as one parallel job; elsewhere each runs alone. Same bits.
pub fn quantized_matmul_shared<B: Backend, const L: usize>(
    x: Tensor<B, 2>,
    layers: [(&Int8Weight<B, 2>, Option<Tensor<B, 1>>); L],
) -> [Tensor<B, 2>; L] {
    let mut rows: Vec<(ChannelRows<B>, Option<Tensor<B, 1>>)> = layers
        .iter()
        .map(|(weight, bias)| (weight.channel_rows(), bias.clone()))
        .collect();
    // Rotated once for all of them when all are rotated.
    let x = if rows
        .iter()
        .all(|(weight, _)| weight.format.rotation == Rotation::Hadamard)
    {
        for (weight, _) in rows.iter_mut() {
            *weight = weight.unrotated();
        }
        rotate_rows(x)
    } else {
        x
    };
    // Under autodiff each product records its own straight-through op.
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if KernelBackend::is_cpu::<B>()
        && !B::ad_enabled(&x.device())
        && rows
            .iter()
            .all(|(weight, _)| weight.format == Int8Format::KERAS)
        && let Some(outputs) = cpu::try_quantized_matmul_shared(&x, &rows)
        && let Ok(outputs) = outputs.try_into()
    {
        return outputs;
    }
    let mut outputs = rows
        .into_iter()
        .map(|(weight, bias)| fused_product(x.clone(), &weight, bias));
    std::array::from_fn(|_| outputs.next().expect("one output per layer"))
}

/// The fused product on channel rows: the dispatch every int8 dense product goes through.
pub(crate) fn fused_product<B: Backend>(
    x: Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    if weight.format.rotation == Rotation::Hadamard {
        return fused_product(rotate_rows(x), &weight.unrotated(), bias);
    }
    if weight.format.scheme == Scheme::Q8_0 {
        return q8_0_product(x, weight, bias);
    }
    // Under `Autodiff<I>` this records a straight-through op and comes back here on `I`.
    if let Some(output) = autodiff::try_quantized_matmul(&x, weight, bias.as_ref()) {
        return output;
    }
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if KernelBackend::is_cpu::<B>()
        && let Some(output) = cpu::try_quantized_matmul(&x, weight, bias.as_ref())
    {
        return output;
    }
    generic::quantized_matmul(x, weight, bias)
}

/// Q8_0's product (llama.cpp's `vec_dot_q8_0_q8_0`): activations quantized per block of 32,
/// i32 sums within a block, blocks combined in f32 with both scales.
fn q8_0_product<B: Backend>(
    x: Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    if B::ad_enabled(&x.device()) {
        return autodiff::straight_through_q8_0(x, weight, bias);
    }
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if KernelBackend::is_cpu::<B>()
        && let Some(output) = cpu::try_q8_0_matmul(cpu::Isa::detect(), &x, weight, bias.as_ref())
    {
        return output;
    }
    generic::q8_0_matmul(x, weight, bias)
}

/// `x [M, K]` with each row rotated by the Walsh–Hadamard transform of [`crate::rotation`]
/// (block-diagonal where `K` is not a power of two): on the host for the CPU backends, through
/// Burn tensor ops elsewhere (and under autodiff, where it is differentiable). Same bits.
pub fn rotate_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if KernelBackend::is_cpu::<B>()
        && !B::ad_enabled(&x.device())
        && let Some(rotated) = cpu::try_rotate_rows(&x)
    {
        return rotated;
    }
    generic::rotate_rows(x)
}

/// `x` as `rotation` leaves it: rotated by [`rotate_rows`], or unchanged.
pub(crate) fn rotated<B: Backend>(rotation: Rotation, x: Tensor<B, 2>) -> Tensor<B, 2> {
    match rotation {
        Rotation::None => x,
        Rotation::Hadamard => rotate_rows(x),
    }
}

/// [`rotate_rows`] through Burn tensor ops only: the oracle of the host rotation.
pub fn generic_rotate_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    generic::rotate_rows(x)
}

/// `lhs [M, K] @ valuesᵀ` in i32, `values` the I8 channel rows `[N, K]` of a weight (a
/// [`ChannelRows`]' values): the bare int8 product, which reads no scale.
pub(crate) fn int8_product<B: Backend>(
    lhs: Tensor<B, 2, Int>,
    values: &Tensor<B, 2, Int>,
) -> Tensor<B, 2, Int> {
    match KernelBackend::of::<B>() {
        #[cfg(any(feature = "flex", feature = "ndarray"))]
        Some(_) if KernelBackend::is_cpu::<B>() => {
            if let Some(product) = cpu::try_int8_matmul(cpu::Isa::detect(), &lhs, values) {
                return product;
            }
        }
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        Some(_) => {
            if let Some(product) = gpu::try_int8_matmul(&lhs, values) {
                return product;
            }
        }
        _ => {}
    }
    generic::int8_matmul(lhs, values.clone().transpose())
}

/// `lhs [M, K] (I8) @ rhs [K, N] (I8)` accumulated exactly in i32, returned as an I32 tensor.
///
/// `rhs` may be any tensor or view: where a direct kernel serves the backend it is first laid
/// out as channel rows (one copy of `rhs`), the only layout the kernels read. An int8 layer's
/// weight is already laid out: use [`quantized_matmul`].
pub fn int8_matmul<B: Backend>(
    lhs: Tensor<B, 2, Int>,
    rhs: Tensor<B, 2, Int>,
) -> Tensor<B, 2, Int> {
    if KernelBackend::of::<B>().is_none() || rhs.dtype() != DType::I8 {
        return generic::int8_matmul(lhs, rhs);
    }
    let device = rhs.device();
    let values = Tensor::from_data(rhs.transpose().into_data(), (&device, DType::I8));
    int8_product(lhs, &values)
}

/// Keras's int8 embedding lookup of `ids [n]` in `weight [vocab, d]`, giving `[n, d]`: the
/// generic path on every backend (a gather and one multiply, no product to speed up).
pub fn embedding_lookup<B: Backend>(
    weight: &Int8Weight<B, 2>,
    ids: Tensor<B, 1, Int>,
) -> Tensor<B, 2> {
    let format = weight.format();
    let rows = match format.scheme {
        Scheme::Keras | Scheme::Sample => {
            generic::embedding_lookup(weight.values.val(), weight.scale(), ids)
        }
        Scheme::Q8_0 => generic::q8_0_embedding_lookup(weight.values.val(), weight.scale(), ids),
    };
    rotated(format.rotation, rows)
}

/// Writes `value` into `buffer[ranges]` (a KV cache's append): in place where the backend's
/// buffer is uniquely owned host memory (flex), else through Burn's `slice_assign`.
pub fn write_block<B: Backend, const D: usize>(
    buffer: Tensor<B, D>,
    ranges: [std::ops::Range<usize>; D],
    value: Tensor<B, D>,
) -> Tensor<B, D> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    let buffer = if KernelBackend::is_cpu::<B>() {
        match cpu::try_write_in_place(buffer, &ranges, &value) {
            Ok(written) => return written,
            Err(buffer) => buffer,
        }
    } else {
        buffer
    };
    buffer.slice_assign(ranges, value)
}

/// Applies `f` to `input [..., d]` seen as rows `[rows, d]`, and shapes its `[rows, d_out]`
/// result back to `[..., d_out]`: how every layer here accepts inputs of any rank.
pub(crate) fn map_rows<B: Backend, const D: usize>(
    input: Tensor<B, D>,
    d_out: usize,
    f: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<B, D> {
    let mut dims = input.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product();
    let output = f(input.reshape([rows, d_in]));
    dims[D - 1] = d_out;
    output.reshape(dims)
}
