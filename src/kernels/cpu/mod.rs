//! Direct int8 kernels for the CPU backends (burn-flex and burn-ndarray).
//!
//! They read the I8 weight storage in place (no widened copy of the weight), quantize the
//! activation rows once per call, accumulate exactly in i32 with the widest SIMD the CPU has
//! (`gemm.rs`, `x86.rs`), and fuse Keras's rescale and the bias into the output pass.
//!
//! The seam (`kernels/mod.rs`) calls these for the backends its table marks as CPU; the
//! primitives are moved across unchanged (`same_type`). Under `Autodiff<Flex>` or
//! `Autodiff<NdArray>`, `autodiff.rs` unwraps the float tensors and calls back in on the inner
//! backend. Weights arrive as channel rows (`[N, K]`, dense), the one layout; float types other
//! than f32, or a tensor not dense where it must be, return `None` and the generic path runs
//! instead: never a different answer.

mod attention;
mod conv;
mod conv_sample;
mod depthwise;
mod depthwise_rows;
mod gemm;
#[cfg(feature = "flex")]
mod pool;
mod q8_0;
mod rows;
mod spin_pool;
mod write;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_conv;

use std::any::Any;

use burn::tensor::{DType, Int, Tensor, TensorData, TensorPrimitive, backend::Backend};

use super::ChannelRows;
use super::backend::{KernelBackend, same_type};

pub use attention::try_attend_one_query;
pub(crate) use conv::try_conv2d;
pub use gemm::Isa;
use gemm::{Activations, WeightView, gemm, gemm_shared, rescale_row};
#[cfg(feature = "flex")]
pub use pool::try_max_pool2d;
pub(crate) use rows::try_rotate_rows;
pub use rows::{try_add_rms_norm, try_gelu_tanh_mul, try_rms_norm, try_rope_rotate_half};
pub use write::try_write_in_place;

/// A tensor's elements in host memory, borrowed in place. The backend primitive is kept
/// inside: its storage lives on the heap and does not move with it.
struct Host<E> {
    _primitive: Box<dyn Any>,
    ptr: *const E,
    len: usize,
    strides: Vec<isize>,
}

impl<E> Host<E> {
    fn as_slice(&self) -> &[E] {
        // SAFETY: `ptr` points at `len` initialised elements owned by `_primitive` (see `host`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The elements of a CPU-backend primitive of shape `dims`, from its first one to its last in
/// memory, when its dtype is `dtype` and its strides are positive. `strides` tells where each
/// element is: dense (row-major, or a transpose of it) for most callers, which check it; a
/// slice of a larger buffer (a KV cache) spans more than `dims` holds.
fn host<B: Backend, P: 'static, E: 'static>(
    primitive: P,
    dtype: DType,
    dims: &[usize],
) -> Option<Host<E>> {
    match KernelBackend::of::<B>()? {
        #[cfg(feature = "flex")]
        KernelBackend::Flex => {
            let tensor: burn_flex::FlexTensor = same_type(primitive).ok()?;
            if tensor.dtype() != dtype || !tensor.layout().has_positive_strides() {
                return None;
            }
            let len = span(dims, tensor.layout().strides())?;
            let size = std::mem::size_of::<E>();
            let start = tensor.layout().start_offset() * size;
            let bytes = tensor.bytes().get(start..start + len * size)?;
            let ptr = bytes.as_ptr().cast::<E>();
            if !ptr.is_aligned() {
                return None;
            }
            let strides = tensor.layout().strides().to_vec();
            Some(Host {
                _primitive: Box::new(tensor),
                ptr,
                len,
                strides,
            })
        }
        #[cfg(feature = "ndarray")]
        KernelBackend::NdArray => {
            use burn_ndarray::NdArrayTensor as T;
            let tensor: T = same_type(primitive).ok()?;
            let (ptr, strides, count) = match (&tensor, dtype) {
                (T::I8(storage), DType::I8) => {
                    let view = storage.view();
                    (
                        view.as_ptr().cast::<E>(),
                        view.strides().to_vec(),
                        view.len(),
                    )
                }
                (T::F32(storage), DType::F32) => {
                    let view = storage.view();
                    (
                        view.as_ptr().cast::<E>(),
                        view.strides().to_vec(),
                        view.len(),
                    )
                }
                _ => return None,
            };
            if count != dims.iter().product::<usize>() || strides.iter().any(|&s| s < 0) {
                return None;
            }
            let len = span(dims, &strides)?;
            Some(Host {
                _primitive: Box::new(tensor),
                ptr,
                len,
                strides,
            })
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// How many elements from the first to the last, for positive `strides` (0 for an empty shape).
fn span(dims: &[usize], strides: &[isize]) -> Option<usize> {
    if dims.len() != strides.len() || strides.iter().any(|&s| s < 0) {
        return None;
    }
    if dims.contains(&0) {
        return Some(0);
    }
    dims.iter()
        .zip(strides)
        .try_fold(1usize, |span, (&dim, &stride)| {
            span.checked_add((dim - 1).checked_mul(stride as usize)?)
        })
}

fn host_int8<B: Backend, const D: usize>(tensor: &Tensor<B, D, Int>) -> Option<Host<i8>> {
    host::<B, _, _>(tensor.clone().into_primitive(), DType::I8, &tensor.dims())
}

fn host_f32<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> Option<Host<f32>> {
    match tensor.clone().into_primitive() {
        TensorPrimitive::Float(primitive) => host::<B, _, _>(primitive, DType::F32, &tensor.dims()),
        TensorPrimitive::QFloat(_) => None,
    }
}

/// A 1-D f32 tensor's values in place (scales, bias), or `None`.
fn host_vector<B: Backend>(tensor: &Tensor<B, 1>) -> Option<Host<f32>> {
    host_f32(tensor).filter(|host| host.len <= 1 || host.strides == [1])
}

/// f32 values as a kernel reads them (activation rows `[m, k]`, a convolution's NCHW input):
/// borrowed in place when the tensor's layout already suits the kernel, else a copy made for it.
enum HostValues {
    InPlace(Host<f32>),
    Copied(Vec<f32>),
}

impl HostValues {
    fn as_slice(&self) -> &[f32] {
        match self {
            HostValues::InPlace(host) => host.as_slice(),
            HostValues::Copied(values) => values,
        }
    }
}

fn host_rows<B: Backend>(x: &Tensor<B, 2>) -> Option<HostValues> {
    let [m, k] = x.dims();
    match host_f32(x) {
        Some(host) if host.strides == [k as isize, 1] || m == 1 && host.strides[1] == 1 => {
            Some(HostValues::InPlace(host))
        }
        _ => x
            .clone()
            .into_data()
            .into_vec::<f32>()
            .ok()
            .map(HostValues::Copied),
    }
}

/// Channel rows `[n, k]` as the kernels read them. The layout is the type's ([`ChannelRows`]);
/// the strides are checked only so that a tensor that is not dense is never read as if it were.
fn rows_view(weight: &Host<i8>, n: usize, k: usize) -> Option<WeightView<'_>> {
    // A dimension of size 1 may carry any stride.
    let dense = match weight.strides[..] {
        [s0, s1] => (s0 == k as isize || n == 1) && (s1 == 1 || k == 1),
        _ => false,
    };
    dense.then(|| WeightView {
        data: weight.as_slice(),
        k,
        n,
    })
}

/// Keras's quantized dense product `quantize_rows(x) @ weight / (x_scale · weight_scale) + bias`
/// on a CPU backend; `None` where the generic path must run.
pub(crate) fn try_quantized_matmul<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    try_quantized_matmul_shared(x, &[(weight.clone(), bias.cloned())])?.pop()
}

/// [`try_quantized_matmul`] for several layers applied to the same `x`: its rows quantized
/// once, every product in one parallel job. The same bits as one call per layer.
pub(crate) fn try_quantized_matmul_shared<B: Backend>(
    x: &Tensor<B, 2>,
    layers: &[(ChannelRows<B>, Option<Tensor<B, 1>>)],
) -> Option<Vec<Tensor<B, 2>>> {
    if !KernelBackend::is_cpu::<B>() || layers.is_empty() {
        return None;
    }
    let [m, k] = x.dims();
    if m == 0 || k == 0 {
        return None;
    }
    /// One layer's tensors in host memory.
    struct HostLayer {
        weight: Host<i8>,
        scale: Host<f32>,
        bias: Option<Host<f32>>,
        n: usize,
    }
    let mut host_layers = Vec::with_capacity(layers.len());
    for (weight, bias) in layers {
        let [n, k_weight] = weight.dims();
        if n == 0
            || k != k_weight
            || weight.scale.dims() != [n]
            || bias.as_ref().is_some_and(|bias| bias.dims() != [n])
        {
            return None;
        }
        let bias = match bias {
            Some(bias) => Some(host_vector(bias)?),
            None => None,
        };
        host_layers.push(HostLayer {
            weight: host_int8(&weight.values)?,
            scale: host_vector(&weight.scale)?,
            bias,
            n,
        });
    }
    let views = host_layers
        .iter()
        .map(|layer| rows_view(&layer.weight, layer.n, k))
        .collect::<Option<Vec<_>>>()?;
    tracing::trace!(m, k, n = ?host_layers.iter().map(|layer| layer.n).collect::<Vec<_>>(), "int8 gemm");
    let scales: Vec<&[f32]> = host_layers
        .iter()
        .map(|layer| layer.scale.as_slice())
        .collect();
    let biases: Vec<Option<&[f32]>> = host_layers
        .iter()
        .map(|layer| layer.bias.as_ref().map(Host::as_slice))
        .collect();
    let (rows, x_scale) = Activations::quantize(host_rows(x)?.as_slice(), m, k);
    let outputs = gemm_shared(
        Isa::detect(),
        &rows,
        &views,
        |i, r, j0, acc, out: &mut [f32]| {
            let columns = j0..j0 + acc.len();
            rescale_row(
                acc,
                x_scale[r],
                &scales[i][columns.clone()],
                biases[i].map(|bias| &bias[columns]),
                out,
            );
        },
    );
    let device = x.device();
    Some(
        outputs
            .into_iter()
            .zip(&host_layers)
            .map(|(out, layer)| Tensor::from_data(TensorData::new(out, [m, layer.n]), &device))
            .collect(),
    )
}

/// Q8_0's product `x [M, K] @ weightᵀ + bias` on a CPU backend, on instruction set `isa` (one
/// this CPU has: see [`Isa::available`]); `None` where the generic path must run. Public for
/// the kernel tests, which run every level the CPU has against the generic path.
pub fn try_q8_0_matmul<B: Backend>(
    isa: Isa,
    x: &Tensor<B, 2>,
    weight: &ChannelRows<B>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    if !KernelBackend::is_cpu::<B>() || !isa.runs_here() || B::ad_enabled(&x.device()) {
        return None;
    }
    let [m, k] = x.dims();
    let [n, k_weight] = weight.dims();
    let blocks = crate::Scheme::Q8_0.scales_per_channel(k);
    if m == 0
        || n == 0
        || k != k_weight
        || !k.is_multiple_of(crate::quantizers::Q8_0_BLOCK)
        || weight.scale.dims() != [n * blocks]
        || bias.is_some_and(|bias| bias.dims() != [n])
    {
        return None;
    }
    let values = host_int8(&weight.values)?;
    let view = rows_view(&values, n, k)?;
    let scales = host_vector(&weight.scale)?;
    let bias = match bias {
        Some(bias) => Some(host_vector(bias)?),
        None => None,
    };
    let rows = q8_0::Q8Activations::quantize(host_rows(x)?.as_slice(), m, k);
    let out = q8_0::q8_0_gemm(
        isa,
        &rows,
        q8_0::Q8Weight {
            values: view.data,
            scales: scales.as_slice(),
            n,
            k,
        },
        bias.as_ref().map(Host::as_slice),
    );
    Some(Tensor::from_data(TensorData::new(out, [m, n]), &x.device()))
}

/// `lhs [M, K] @ weightᵀ` in i32 (dtype I32), for I8 `lhs` and I8 channel rows `weight [N, K]`
/// on a CPU backend, on the instruction set `isa` (one this CPU has: see [`Isa::available`]).
/// Public for the kernel tests, which run every level the CPU has.
pub fn try_int8_matmul<B: Backend>(
    isa: Isa,
    lhs: &Tensor<B, 2, Int>,
    weight: &Tensor<B, 2, Int>,
) -> Option<Tensor<B, 2, Int>> {
    if !KernelBackend::is_cpu::<B>() || !isa.runs_here() {
        return None;
    }
    let [m, k] = lhs.dims();
    let [n, k_weight] = weight.dims();
    if m == 0 || k == 0 || n == 0 || k != k_weight {
        return None;
    }
    let data = lhs.clone().into_data();
    if data.dtype != DType::I8 {
        return None;
    }
    let rows = Activations::new(data.as_slice::<i8>().ok()?, m, k);
    let weight = host_int8(weight)?;
    let out = gemm(
        isa,
        &rows,
        rows_view(&weight, n, k)?,
        |_, _, acc, out: &mut [i32]| out.copy_from_slice(acc),
    );
    Some(Tensor::from_data(
        TensorData::new(out, [m, n]),
        (&lhs.device(), DType::I32),
    ))
}

/// Keras's int8 convolution of `input [batch, c_in, h, w]` with `weight [c_out, c_in / groups,
/// kh, kw]` by the direct CPU kernel on instruction set `isa` (one this CPU has: see
/// [`Isa::available`]); `None` where the generic path must run. Public for the kernel tests,
/// which run every level the CPU has against the generic path.
pub fn try_quantized_conv2d<B: Backend>(
    isa: Isa,
    input: &Tensor<B, 4>,
    weight: &crate::Int8Weight<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    geometry: super::ConvGeometry,
) -> Option<Tensor<B, 4>> {
    if !KernelBackend::is_cpu::<B>() || B::ad_enabled(&input.device()) {
        return None;
    }
    let [_, _, kh, kw] = weight.dims();
    try_conv2d(isa, input, &weight.channel_rows(), [kh, kw], bias, geometry)
}
