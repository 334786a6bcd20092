//! `QuantizedLinear`: Keras's int8 `Dense`, and the swappable [`Linear`] layer.

use burn::config::Config;
use burn::module::Initializer;
use burn::module::{Module, Param};
use burn::nn;
use burn::nn::LinearLayout;
use burn::tensor::{Tensor, backend::Backend};

use crate::kernels::{map_rows, quantized_matmul, quantized_matmul_shared};
use crate::{Int8Error, Int8Format, Int8Weight};

/// A linear layer with int8 weights.
///
/// `y = (x_q @ W_q) / (x_scale * weight_scale) + bias`, with `x_q` quantized per row at run
/// time. The weight and its scales are not trainable (Keras freezes them too); the bias is.
#[derive(Module, Debug)]
pub struct QuantizedLinear<B: Backend> {
    /// `[d_input, d_output]` (the layout of `nn::Linear`), one scale per output column.
    pub weight: Int8Weight<B, 2>,
    /// `[d_output]`, float and trainable.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> QuantizedLinear<B> {
    /// Quantizes a float weight `[d_input, d_output]` with one scale per output column.
    pub fn from_weights(
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Result<Self, Int8Error> {
        Self::from_weights_as(weight, bias, Int8Format::KERAS)
    }

    /// [`Self::from_weights`] in the given format ([`crate::scheme`]).
    pub fn from_weights_as(
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
        format: Int8Format,
    ) -> Result<Self, Int8Error> {
        crate::layers::refuse_per_sample(format, "linear weight")?;
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
        Ok(Self {
            weight: Int8Weight::quantize_as(weight, 1, "linear weight", format)?,
            bias: bias.map(Param::from_tensor),
        })
    }

    /// Quantizes a Burn `nn::Linear` (its bias is kept as is).
    pub fn from_float(linear: &nn::Linear<B>) -> Result<Self, Int8Error> {
        Self::from_float_as(linear, Int8Format::KERAS)
    }

    /// [`Self::from_float`] in the given format.
    pub fn from_float_as(linear: &nn::Linear<B>, format: Int8Format) -> Result<Self, Int8Error> {
        Self::from_weights_as(
            linear.weight.val(),
            linear.bias.as_ref().map(Param::val),
            format,
        )
    }

    /// Back to a float `nn::Linear` (`q / scale`, Keras's dequantize).
    pub fn dequantize(&self) -> nn::Linear<B> {
        nn::Linear {
            weight: Param::from_tensor(self.weight.dequantize()),
            bias: self.bias.clone(),
        }
    }

    /// `[d_input, d_output]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.dims()
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
    pub fn try_forward<const D: usize>(
        &self,
        input: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, Int8Error> {
        int8_forward(&self.weight, self.bias.as_ref(), input)
    }
}

/// The int8 product of a linear layer on `[..., d_input]`, with a typed error on a wrong shape.
fn int8_forward<B: Backend, const D: usize>(
    weight: &Int8Weight<B, 2>,
    bias: Option<&Param<Tensor<B, 1>>>,
    input: Tensor<B, D>,
) -> Result<Tensor<B, D>, Int8Error> {
    let [d_input, d_output] = weight.dims();
    let dims = input.dims();
    if D == 0 || dims[D - 1] != d_input {
        return Err(Int8Error::ShapeMismatch {
            what: "QuantizedLinear input".into(),
            expected: format!("[..., {d_input}]"),
            found: dims.to_vec(),
        });
    }
    Ok(map_rows(input, d_output, |rows| {
        quantized_matmul(rows, weight, bias.map(Param::val))
    }))
}

/// A linear layer that is float or int8: Burn's `nn::Linear` until `model.quantize_int8()`
/// turns it int8 in place.
///
/// **Fields as in Burn.** `weight` and `bias` are Burn's fields, so code written for
/// `nn::Linear` (reading `linear.bias`, replacing it as Burn's modern-lstm example sets its
/// forget-gate bias, reading `linear.weight.val()`) works unchanged on a float layer, and its
/// record is Burn's (`fc.weight`, `fc.bias`): a `burn::nn` checkpoint loads into it and back.
///
/// **Once int8**, the weight lives in [`Self::int8_weight`] (I8 values, one scale per output
/// column), and:
/// - `bias` is still the float bias, read, written and trained as before;
/// - `weight` keeps no tensor (1 byte a weight means no float copy): its shape is still there
///   (`weight.lazy_shape()`, [`Self::weight_dims`]), but `weight.val()` **panics** with a
///   message that names [`Self::int8_weight`] and `dequantize()`. Assigning `weight` on an
///   int8 layer changes nothing until the model is dequantized (the int8 weight is what
///   `forward` uses); `dequantize()` replaces it.
/// - its record says int8: the `weight` slot holds the I8 values and f32 scales
///   (`burn_int8::io::burn_record`), `fc.Int8.weight.values` / `.scale` / `fc.Int8.bias` in
///   burn-store.
#[derive(Debug, Clone)]
pub struct Linear<B: Backend> {
    /// `[d_input, d_output]` as in `nn::Linear` while float; no tensor once int8 (see above).
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_output]`, float and trainable in both precisions.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The int8 weight `[d_input, d_output]`, one scale per output column, once quantized.
    int8: Option<Int8Weight<B, 2>>,
}

crate::layers::swappable::swappable_module!(
    Linear, LinearRecord, burn = nn::Linear, int8 = QuantizedLinear, rank = 2,
    channel_axis = 1,
    params = [bias: Option<Param<Tensor<B, 1>>>],
    consts = [],
    optional_params = [bias]
);

impl<B: Backend> Linear<B> {
    /// A float layer from Burn's config, ready to train and quantize later.
    pub fn new(config: &nn::LinearConfig, device: &B::Device) -> Self {
        Self::from(config.init(device))
    }

    /// Applies the layer to `[..., d_input]`, giving `[..., d_output]`: Burn's own forward
    /// while float, the int8 product once int8.
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        match &self.int8 {
            None => self.as_burn().forward(input),
            Some(weight) => match int8_forward(weight, self.bias.as_ref(), input) {
                Ok(output) => output,
                Err(err) => panic!("{err}"),
            },
        }
    }

    /// `layers[i].forward(input)` for every `i`, for layers that read the same input (a
    /// block's q, k and v projections; its gate and up projections). Where all of them are int8
    /// on a CPU backend, the input rows are quantized once and the products run as one parallel
    /// job, with the same bits; elsewhere each layer runs alone.
    pub fn forward_shared<const D: usize, const L: usize>(
        layers: [&Self; L],
        input: Tensor<B, D>,
    ) -> [Tensor<B, D>; L] {
        let dims = input.dims();
        let d_input = dims[D - 1];
        let int8: Vec<(&Int8Weight<B, 2>, Option<Tensor<B, 1>>)> = layers
            .iter()
            .filter_map(|layer| match &layer.int8 {
                Some(weight) if weight.dims()[0] == d_input => {
                    Some((weight, layer.bias.as_ref().map(Param::val)))
                }
                _ => None,
            })
            .collect();
        let Ok(int8) = <[(&Int8Weight<B, 2>, Option<Tensor<B, 1>>); L]>::try_from(int8) else {
            return layers.map(|layer| layer.forward(input.clone()));
        };
        let rows = input.reshape([dims[..D - 1].iter().product(), d_input]);
        let outputs = quantized_matmul_shared(rows, int8);
        outputs.map(|output| {
            let mut output_dims = dims;
            output_dims[D - 1] = output.dims()[1];
            output.reshape(output_dims)
        })
    }
}

crate::quantize::swappable_layer!(Linear, QuantizedLinear, nn::Linear<B>, channel_axis = 1);

/// `burn::nn::LinearConfig`, giving a swappable [`Linear`].
#[derive(Config, Debug)]
pub struct LinearConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the output features.
    pub d_output: usize,
    /// If a bias should be applied during the linear transformation.
    #[config(default = true)]
    pub bias: bool,
    /// The type of function used to initialize neural network parameters.
    #[config(default = "Initializer::KaimingUniform{gain:1.0/f64::sqrt(3.0), fan_out_only:false}")]
    pub initializer: Initializer,
    /// The layout in which the linear parameters are stored.
    #[config(default = "LinearLayout::Row")]
    pub layout: LinearLayout,
}

impl LinearConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Linear<B> {
        Linear::from(self.to_burn().init(device))
    }

    /// Burn's config with the same values.
    pub fn to_burn(&self) -> nn::LinearConfig {
        nn::LinearConfig::new(self.d_input, self.d_output)
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone())
            .with_layout(self.layout)
    }
}

crate::layers::config_conversions::config_conversions!(
    LinearConfig,
    nn::LinearConfig,
    [d_input, d_output, bias, initializer, layout]
);
