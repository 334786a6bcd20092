//! `Int8Weight`: the one int8 weight type of every quantized layer (linear, embedding, conv).

use burn::module::{Module, Param, ParamId};
use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

use crate::Int8Error;
use crate::kernels::ChannelRows;
use crate::quantizers::{dequantize, quantize_per_channel};

/// An int8 weight: I8 values, one f32 scale per output channel, and which axis those
/// channels are.
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
/// - `scale` is Keras's `kernel_scale`, a multiplier (`q = w · scale`). Values and scale are
///   frozen: Keras does not train them either.
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
        check_axis(channel_axis, D)?;
        let (values, scale) = quantize_per_channel(weight, channel_axis, what)?;
        Ok(Self::assemble(values, scale, channel_axis))
    }

    /// An int8 weight from values and scales made elsewhere (a Keras checkpoint, shards put
    /// back together). `values` must be I8 and `scale` hold one entry per channel; the values
    /// are laid out channel-major here if they are not already.
    pub fn from_parts(
        values: Tensor<B, D, Int>,
        scale: Tensor<B, 1>,
        channel_axis: usize,
    ) -> Result<Self, Int8Error> {
        check_axis(channel_axis, D)?;
        if values.dtype() != DType::I8 {
            return Err(Int8Error::WrongDType {
                what: "int8 weight values".into(),
                expected: DType::I8,
                found: values.dtype(),
            });
        }
        let channels = values.dims()[channel_axis];
        if scale.dims() != [channels] {
            return Err(Int8Error::ShapeMismatch {
                what: "int8 weight scale".into(),
                expected: format!("[{channels}]"),
                found: scale.dims().to_vec(),
            });
        }
        Ok(Self::assemble(
            channel_major(values, channel_axis),
            scale,
            channel_axis,
        ))
    }

    fn assemble(values: Tensor<B, D, Int>, scale: Tensor<B, 1>, channel_axis: usize) -> Self {
        Self {
            values: Param::initialized(ParamId::new(), values)
                .load_mapper(move |values| channel_major(values, channel_axis)),
            scale: Param::initialized(ParamId::new(), scale).set_require_grad(false),
            channel_axis,
        }
    }

    /// The logical shape of the values.
    pub fn dims(&self) -> [usize; D] {
        self.values.val().dims()
    }

    /// The axis of the values that holds the output channels.
    pub fn channel_axis(&self) -> usize {
        self.channel_axis
    }

    /// `[channels]`.
    pub fn scale(&self) -> Tensor<B, 1> {
        self.scale.val()
    }

    /// The values as every kernel reads them: channel rows `[channels, inputs]`, one output
    /// channel's values per row (for a linear layer the transpose of `[d_input, d_output]`, for
    /// an embedding or a convolution its own bytes). A view of the stored bytes, never a copy:
    /// the layout is this type's, declared once.
    pub fn channel_rows(&self) -> ChannelRows<B> {
        let values = self.values.val();
        let dims = values.dims();
        let channels = dims[self.channel_axis];
        let inputs = dims.iter().product::<usize>() / channels.max(1);
        // Stored channel-major: with the channel axis first, the bytes are row-major.
        let values = if self.channel_axis == 0 {
            values
        } else {
            values.swap_dims(0, self.channel_axis)
        };
        ChannelRows {
            values: values.reshape([channels, inputs]),
            scale: self.scale(),
        }
    }

    /// The float weight back (`q / scale`, Keras's dequantize), in the logical shape.
    pub fn dequantize(&self) -> Tensor<B, D> {
        let mut shape = [1; D];
        shape[self.channel_axis] = self.dims()[self.channel_axis];
        dequantize(self.values.val(), self.scale.val().reshape(shape))
    }
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
