//! `Int8Weight`: the one int8 weight type of every quantized layer (linear, embedding, conv).

use burn::module::{Module, Param, ParamId};
use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

use crate::kernels::{ChannelRows, rotated};
use crate::quantizers::{
    Q8_0_BLOCK, abs_max_quantize_along, ensure_finite, ensure_non_empty, q8_0_quantize_rows,
};
use crate::{Int8Error, Int8Format, Scheme};

/// An int8 weight: I8 values, their f32 scales, which axis holds the output channels, and the
/// [`Int8Format`] (scheme and rotation) they were quantized with.
///
/// - `values` keep the layer's logical shape (`[d_input, d_output]` for a linear layer as in
///   `nn::Linear`, `[vocab, d_model]` for an embedding, `[c_out, c_in / groups, k…]` for a
///   convolution), 1 byte per weight.
/// - Layout, declared here once: the values are stored **channel-major** (each output
///   channel's values one contiguous run, as GGUF and PyTorch store weights). That is what
///   the CPU kernels stream at decode and tile at prefill; for an embedding or a convolution
///   (channels on axis 0) it is plain row-major, for a linear layer the `[d_output, d_input]`
///   bytes seen transposed. Records save the logical tensor row-major, so files stay portable
///   across machines and backends; on load the values parameter's load mapper (burn-store
///   calls it) lays them out channel-major again, once per load, never per call, with no
///   matching on module names.
/// - `scale` depends on the scheme ([`crate::scheme`]). Keras (and Sample): `[channels]`, Keras's
///   `kernel_scale`, a multiplier (`q = w · scale`). Q8_0: `[channels · inputs / 32]`, each
///   channel's block scales in order, f16 values held as f32, which multiply the other way
///   (`w ≈ q · d`, as GGUF stores them). Values and scale are frozen: Keras does not train
///   them either.
/// - With [`crate::Rotation::Hadamard`] the values are those of the weight with its input axis
///   rotated ([`crate::rotation`]); the products rotate each activation row the same way first.
/// - The format is the layer's configuration, like its shape: it is not in the record. A record
///   loads into a model quantized with the same [`crate::QuantizeConfig`] (a Q8_0 scale has
///   another shape than a Keras one, so a mix-up of schemes is a typed shape error).
///
/// The product with it is [`crate::kernels::quantized_matmul`]: one dispatch picks the CPU kernel,
/// the GPU kernel or the generic path, the same way under `Autodiff<B>`.
#[derive(Module, Debug)]
pub struct Int8Weight<B: Backend, const D: usize> {
    /// Dtype I8, the layer's logical shape, stored channel-major.
    pub values: Param<Tensor<B, D, Int>>,
    /// `[channels]`, one per entry of `values` along `channel_axis`.
    pub scale: Param<Tensor<B, 1>>,
    /// The axis of `values` that holds the output channels. The layer fixes it, so it is not
    /// part of the record.
    channel_axis: usize,
    #[module(skip)]
    format: Int8Format,
}

impl<B: Backend, const D: usize> Int8Weight<B, D> {
    /// Quantizes a float weight with one AbsMax scale per entry of `channel_axis` (Keras's
    /// `abs_max_quantize` with every other axis reduced). `what` names the weight in errors:
    /// an empty weight or one holding NaN or infinity is refused.
    pub fn quantize(
        weight: Tensor<B, D>,
        channel_axis: usize,
        what: &str,
    ) -> Result<Self, Int8Error> {
        Self::quantize_as(weight, channel_axis, what, Int8Format::KERAS)
    }

    /// [`Self::quantize`] in the given format: the input axis (every axis but `channel_axis`)
    /// rotated first if the format says so, then scaled by its scheme. Q8_0 needs the inputs
    /// per channel to be a multiple of 32 ([`Int8Error::UnsupportedFormat`] otherwise).
    pub fn quantize_as(
        weight: Tensor<B, D>,
        channel_axis: usize,
        what: &str,
        format: Int8Format,
    ) -> Result<Self, Int8Error> {
        check_axis(channel_axis, D)?;
        ensure_non_empty(&weight, what)?;
        ensure_finite(&weight, what)?;
        let dims = weight.dims();
        let (channels, inputs) = (dims[channel_axis], inputs_per_channel(&dims, channel_axis));
        check_format(format, inputs, what)?;
        // One row per channel: the I8 result is stored that way, channel-major (as GGUF and
        // PyTorch store weights), and seen through a view with the weight's own axes.
        let swapped = weight.swap_dims(0, channel_axis);
        let swapped_dims = swapped.dims();
        let rows = rotated(format.rotation, swapped.reshape([channels, inputs]));
        let (values, scale) = match format.scheme {
            // Sample differs from Keras in its activations only.
            Scheme::Keras | Scheme::Sample => {
                let (values, scale) = abs_max_quantize_along(rows, 1);
                (values, scale.reshape([channels]))
            }
            Scheme::Q8_0 => q8_0_quantize_rows(rows),
        };
        let values = values.reshape(swapped_dims).swap_dims(0, channel_axis);
        Ok(Self::assemble(values, scale, channel_axis, format))
    }

    /// An int8 weight from values and scales made elsewhere (a Keras checkpoint, shards put
    /// back together). `values` must be I8 and `scale` hold one entry per channel; the values
    /// are laid out channel-major here if they are not already.
    pub fn from_parts(
        values: Tensor<B, D, Int>,
        scale: Tensor<B, 1>,
        channel_axis: usize,
    ) -> Result<Self, Int8Error> {
        Self::from_parts_as(values, scale, channel_axis, Int8Format::KERAS)
    }

    /// [`Self::from_parts`] for values and scales of the given format (a Q8_0 GGUF's values
    /// and f16 block scales, used as stored: see the `scale` field for each scheme's shape).
    pub fn from_parts_as(
        values: Tensor<B, D, Int>,
        scale: Tensor<B, 1>,
        channel_axis: usize,
        format: Int8Format,
    ) -> Result<Self, Int8Error> {
        check_axis(channel_axis, D)?;
        if values.dtype() != DType::I8 {
            return Err(Int8Error::WrongDType {
                what: "int8 weight values".into(),
                expected: DType::I8,
                found: values.dtype(),
            });
        }
        let dims = values.dims();
        let channels = dims[channel_axis];
        let inputs = inputs_per_channel(&dims, channel_axis);
        check_format(format, inputs, "int8 weight values")?;
        let expected = channels * format.scheme.scales_per_channel(inputs);
        if scale.dims() != [expected] {
            return Err(Int8Error::ShapeMismatch {
                what: format!("int8 weight scale ({})", format.scheme),
                expected: format!("[{expected}]"),
                found: scale.dims().to_vec(),
            });
        }
        Ok(Self::assemble(
            channel_major(values, channel_axis),
            scale,
            channel_axis,
            format,
        ))
    }

    fn assemble(
        values: Tensor<B, D, Int>,
        scale: Tensor<B, 1>,
        channel_axis: usize,
        format: Int8Format,
    ) -> Self {
        Self {
            values: Param::initialized(ParamId::new(), values)
                .load_mapper(move |values| channel_major(values, channel_axis)),
            scale: Param::initialized(ParamId::new(), scale).set_require_grad(false),
            channel_axis,
            format,
        }
    }

    /// The scheme and rotation these values were quantized with.
    pub fn format(&self) -> Int8Format {
        self.format
    }

    /// The logical shape of the values.
    pub fn dims(&self) -> [usize; D] {
        self.values.val().dims()
    }

    /// The axis of the values that holds the output channels.
    pub fn channel_axis(&self) -> usize {
        self.channel_axis
    }

    /// The scales: `[channels]` (Keras) or `[channels · inputs / 32]` (Q8_0).
    pub fn scale(&self) -> Tensor<B, 1> {
        self.scale.val()
    }

    /// Bytes the weight holds in memory and in a record: 1 per value, 4 per scale.
    pub fn bytes(&self) -> usize {
        self.dims().iter().product::<usize>() + 4 * self.scale.val().dims()[0]
    }

    /// The values as every kernel reads them: channel rows `[channels, inputs]`, one output
    /// channel's values per row (for a linear layer the transpose of `[d_input, d_output]`, for
    /// an embedding or a convolution its own bytes). A view of the stored bytes, never a copy:
    /// the layout is this type's, declared once.
    pub fn channel_rows(&self) -> ChannelRows<B> {
        let values = self.values.val();
        let dims = values.dims();
        let channels = dims[self.channel_axis];
        let inputs = inputs_per_channel(&dims, self.channel_axis);
        // Stored channel-major: with the channel axis first, the bytes are row-major.
        let values = if self.channel_axis == 0 {
            values
        } else {
            values.swap_dims(0, self.channel_axis)
        };
        ChannelRows {
            values: values.reshape([channels, inputs]),
            scale: self.scale(),
            format: self.format,
        }
    }

    /// The float weight back, in the logical shape: Keras's dequantize (`q / scale`) or Q8_0's
    /// (`q · d` per block), rotated back where the weight was rotated.
    pub fn dequantize(&self) -> Tensor<B, D> {
        let rows = self.channel_rows().dequantize();
        let mut swapped = self.dims();
        swapped.swap(0, self.channel_axis);
        rows.reshape(swapped).swap_dims(0, self.channel_axis)
    }
}

/// How many inputs each output channel has: every axis but `channel_axis`.
fn inputs_per_channel(dims: &[usize], channel_axis: usize) -> usize {
    dims.iter().product::<usize>() / dims[channel_axis].max(1)
}

fn check_format(format: Int8Format, inputs: usize, what: &str) -> Result<(), Int8Error> {
    if format.scheme == Scheme::Q8_0 && !inputs.is_multiple_of(Q8_0_BLOCK) {
        return Err(Int8Error::UnsupportedFormat {
            what: what.to_string(),
            format,
            reason: format!(
                "{inputs} inputs per output channel is not a multiple of the {Q8_0_BLOCK}-value block"
            ),
        });
    }
    Ok(())
}

fn check_axis(channel_axis: usize, rank: usize) -> Result<(), Int8Error> {
    if channel_axis < rank {
        Ok(())
    } else {
        Err(Int8Error::AxisOutOfRange {
            axis: channel_axis,
            rank,
        })
    }
}

/// `values` stored channel-major: the channel axis outermost in memory, seen through a view
/// with the logical axes. A no-op for channels on axis 0 (row-major already); otherwise one
/// pass through host memory (at quantize or load time).
fn channel_major<B: Backend, const D: usize>(
    values: Tensor<B, D, Int>,
    channel_axis: usize,
) -> Tensor<B, D, Int> {
    if channel_axis == 0 {
        return values;
    }
    let (device, dtype) = (values.device(), values.dtype());
    let bytes: TensorData = values.swap_dims(0, channel_axis).into_data();
    Tensor::<B, D, Int>::from_data(bytes, (&device, dtype)).swap_dims(0, channel_axis)
}
