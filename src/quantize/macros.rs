//! `swappable_layer!`: the [`crate::Quantize`] impl every float-or-int8 layer shares
//! (`crate::quantize::swappable_layer!(Linear, QuantizedLinear, nn::Linear<B>, channel_axis = 1)`
//! in `linear.rs`, and the same for the embedding and the convolutions).

/// Implements [`crate::Quantize`] for a swappable layer (`src/layers/swappable.rs`: a struct
/// with Burn's fields whose int8 type has `from_float` and `dequantize`, and whose float layer
/// has a `weight` quantized with one scale per entry of `channel_axis`, as the int8 type's
/// `from_float` calls `Int8Weight::quantize`). The layer's name is its [`crate::LayerKind`] in
/// the report. Quantizing records the weight's error in the report ([`crate::LayerError`]),
/// through one transient dequantized copy of the weight.
macro_rules! swappable_layer {
    ($layer:ident, $int8:ident, $float:ty, channel_axis = $axis:expr) => {
        impl<B: burn::tensor::backend::Backend> crate::Quantize<B> for $layer<B> {
            fn visit_quantize(
                &mut self,
                ctx: &mut crate::QuantizeContext<'_>,
            ) -> Result<(), crate::Int8Error> {
                use crate::Mode;
                let swapped = match (ctx.mode(), self.float_layer(), self.int8_layer()) {
                    (Mode::Quantize, Some(layer), _) if ctx.allows_quantize() => {
                        let format = ctx.format();
                        let int8 = match $int8::from_float_as(&layer, format) {
                            // A shape the scheme cannot hold (Q8_0 needs whole blocks of 32
                            // inputs) keeps Keras's scheme, as llama.cpp falls back per tensor;
                            // the report says which format the layer got.
                            Err(crate::Int8Error::UnsupportedFormat { what, reason, .. }) => {
                                tracing::warn!(path = %ctx.path(), "{what}: {reason}; Keras's scheme instead");
                                let fallback = crate::Int8Format { scheme: crate::Scheme::Keras, ..format };
                                $int8::from_float_as(&layer, fallback)
                            }
                            other => other,
                        }
                        .map_err(|e| ctx.locate(e))?;
                        let error = crate::quantize::measure::weight_error(
                            layer.weight.val(),
                            int8.dequantize().weight.val(),
                            $axis,
                        );
                        let weight = &int8.weight;
                        ctx.record_error(
                            crate::LayerKind::$layer,
                            weight.format(),
                            weight.bytes(),
                            error,
                        );
                        Some($layer::from(int8))
                    }
                    (Mode::Dequantize, _, Some(layer)) => Some($layer::from(layer.dequantize())),
                    _ => None,
                };
                let was_quantized = self.is_quantized();
                ctx.swap(self, swapped, was_quantized, crate::LayerKind::$layer);
                Ok(())
            }
        }
    };
}
pub(crate) use swappable_layer;
