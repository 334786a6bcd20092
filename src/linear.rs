//! `QuantizedLinear`: Keras's int8 `Dense`, and the swappable [`Linear`] enum.

use burn::module::{Module, Param, ParamId};
use burn::nn;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::ops::{map_rows, quantized_matmul};
use crate::quantizers::{dequantize, quantize_per_channel};
use crate::Int8Error;

/// A linear layer with int8 weights.
///
/// `y = (x_q @ W_q) / (x_scale * weight_scale) + bias`, with `x_q` quantized per row at run
/// time. The weight and its scales are not trainable (Keras freezes them too); the bias is.
#[derive(Module, Debug)]
pub struct QuantizedLinear<B: Backend> {
    /// `[d_input, d_output]`, dtype I8 (1 byte per weight), the layout of `nn::Linear`.
    pub weight: Param<Tensor<B, 2, Int>>,
    /// `[d_output]`: Keras's `kernel_scale`, a multiplier (`q = w * scale`).
    pub weight_scale: Param<Tensor<B, 1>>,
    /// `[d_output]`, float and trainable.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> QuantizedLinear<B> {
    /// Quantizes a float weight `[d_input, d_output]` with one scale per output column.
    pub fn from_weights(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Result<Self, Int8Error> {
        let [_, d_output] = weight.dims();
        if let Some(bias) = &bias
            && bias.dims() != [d_output]
        {
            return Err(Int8Error::ShapeMismatch {
                what: "linear bias".into(),
                expected: format!("[{d_output}]"),
                found: bias.dims().to_vec(),
            });
        }
        let (weight, weight_scale) = quantize_per_channel(weight, 1, "linear weight")?;
        Ok(Self {
            // The weight declares its layout: a record loaded into this layer (burn-store calls
            // the parameter's load mapper) is re-laid channel-major, as quantizing left it.
            weight: Param::initialized(ParamId::new(), weight).load_mapper(channel_major::<B>),
            weight_scale: Param::initialized(ParamId::new(), weight_scale).set_require_grad(false),
            bias: bias.map(Param::from_tensor),
        })
    }

    /// Quantizes a Burn `nn::Linear` (its bias is kept as is).
    pub fn from_float(linear: &nn::Linear<B>) -> Result<Self, Int8Error> {
        Self::from_weights(linear.weight.val(), linear.bias.as_ref().map(Param::val))
    }

    /// Back to a float `nn::Linear` (`q / scale`, Keras's dequantize).
    pub fn dequantize(&self) -> nn::Linear<B> {
        let weight = dequantize(self.weight.val(), self.weight_scale.val().unsqueeze_dim(0));
        nn::Linear { weight: Param::from_tensor(weight), bias: self.bias.clone() }
    }

    /// `[d_input, d_output]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.val().dims()
    }

    /// Applies the layer to `[..., d_input]`, giving `[..., d_output]`.
    ///
    /// # Panics
    /// When the last input dimension is not `d_input`, like `nn::Linear`; see [`Self::try_forward`].
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        match self.try_forward(input) {
            Ok(output) => output,
            Err(err) => panic!("{err}"),
        }
    }

    /// [`Self::forward`] with a typed error on a wrong input shape.
    pub fn try_forward<const D: usize>(&self, input: Tensor<B, D>) -> Result<Tensor<B, D>, Int8Error> {
        let [d_input, d_output] = self.dims();
        let dims = input.dims();
        if D == 0 || dims[D - 1] != d_input {
            return Err(Int8Error::ShapeMismatch {
                what: "QuantizedLinear input".into(),
                expected: format!("[..., {d_input}]"),
                found: dims.to_vec(),
            });
        }
        Ok(map_rows(input, d_output, |rows| {
            quantized_matmul(rows, self.weight.val(), self.weight_scale.val(), self.bias.as_ref().map(Param::val))
        }))
    }
}

/// A linear layer that is float or int8; `model.quantize_int8()` turns `Float` into `Int8`.
#[derive(Module, Debug)]
pub enum Linear<B: Backend> {
    Float(nn::Linear<B>),
    Int8(QuantizedLinear<B>),
}

impl<B: Backend> Linear<B> {
    /// A float layer from Burn's config, ready to train and quantize later.
    pub fn new(config: &nn::LinearConfig, device: &B::Device) -> Self {
        Linear::Float(config.init(device))
    }

    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Linear::Float(layer) => layer.forward(input),
            Linear::Int8(layer) => layer.forward(input),
        }
    }

    /// `layers[i].forward(input)` for every `i`, for layers that read the same input (a
    /// block's q, k and v projections; its gate and up projections). Where all of them are int8
    /// on a CPU backend, the input rows are quantized once and the products run as one parallel
    /// job, with the same bits; elsewhere each layer runs alone.
    pub fn forward_shared<const D: usize, const L: usize>(layers: [&Self; L], input: Tensor<B, D>) -> [Tensor<B, D>; L] {
        #[cfg(any(feature = "flex", feature = "ndarray"))]
        if let Some(outputs) = shared_int8_forward(&layers, &input) {
            return outputs;
        }
        layers.map(|layer| layer.forward(input.clone()))
    }
}

/// [`Linear::forward_shared`] on the CPU kernels, when every layer is int8 and fits the input.
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn shared_int8_forward<B: Backend, const D: usize, const L: usize>(layers: &[&Linear<B>; L], input: &Tensor<B, D>) -> Option<[Tensor<B, D>; L]> {
    let dims = input.dims();
    let d_input = *dims.last()?;
    let mut tensors = Vec::with_capacity(L);
    for layer in layers {
        let Linear::Int8(layer) = layer else { return None };
        if layer.dims()[0] != d_input {
            return None;
        }
        tensors.push((layer.weight.val(), layer.weight_scale.val(), layer.bias.as_ref().map(Param::val)));
    }
    let refs: Vec<crate::cpu::LayerRef<'_, B>> = tensors.iter().map(|(weight, scale, bias)| (weight, scale, bias.as_ref())).collect();
    let rows = input.clone().reshape([dims[..D - 1].iter().product(), d_input]);
    let outputs = crate::cpu::try_quantized_matmul_shared(&rows, &refs)?;
    let shaped: Vec<Tensor<B, D>> = outputs
        .into_iter()
        .map(|output| {
            let mut output_dims = dims;
            output_dims[D - 1] = output.dims()[1];
            output.reshape(output_dims)
        })
        .collect();
    shaped.try_into().ok()
}

crate::quantize::swappable_layer!(Linear, QuantizedLinear, nn::Linear<B>, channel_axis = 1);

/// The I8 weight `[d_input, d_output]` stored channel-major (`[d_output, d_input]` bytes seen
/// transposed): the layout `quantizers::quantize_per_channel` gives it and the one the CPU kernels
/// stream best at decode. A record holds the logical tensor row-major; this is the load mapper of
/// every [`QuantizedLinear`] weight, so a reloaded layer is laid out (and as fast) as the one that
/// was saved, once per load, never per call.
fn channel_major<B: Backend>(weight: Tensor<B, 2, Int>) -> Tensor<B, 2, Int> {
    let (device, dtype) = (weight.device(), weight.dtype());
    // Through host memory, once per load: the channel-major bytes, seen transposed.
    let values: TensorData = weight.swap_dims(0, 1).into_data();
    Tensor::<B, 2, Int>::from_data(values, (&device, dtype)).swap_dims(0, 1)
}
