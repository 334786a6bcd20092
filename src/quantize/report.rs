//! What a quantize (or dequantize) call did: [`QuantizeReport`], with [`SkipReason`] for each
//! layer left as it was and [`LayerError`] for each layer int8 changed.

use std::fmt;

use super::LayerKind;

/// Why a layer was left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Named by [`crate::QuantizeConfig::skip`] or [`crate::QuantizeConfig::skip_if`].
    Config,
    /// Already int8: quantizing again would be a double quantization.
    AlreadyQuantized,
    /// A plain Burn layer (`nn::Linear`, ...) cannot change type in place.
    NotSwappable(LayerKind),
    /// A float layer inside a module that does not implement [`crate::Quantize`] (a `burn::nn`
    /// module such as `MultiHeadAttention`, or a user module without the derive): it is found
    /// by Burn's `ModuleVisitor` but cannot be reached to swap. `inside` names the struct that
    /// holds the layer; `fix` says what to change.
    Unreachable {
        layer: LayerKind,
        inside: String,
        fix: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Config => f.write_str("kept float by the QuantizeConfig"),
            SkipReason::AlreadyQuantized => f.write_str("already int8"),
            SkipReason::NotSwappable(kind) => {
                write!(
                    f,
                    "burn::nn::{kind} cannot change type in place; use burn_int8::nn::{kind}"
                )
            }
            SkipReason::Unreachable { layer, inside, fix } => {
                write!(f, "burn::nn::{layer} inside {inside}; {fix}")
            }
        }
    }
}

/// How much quantizing one layer's weight changed it.
///
/// A low [`Self::sqnr_db`] or a high [`Self::worst_channel_relative_error`] marks a layer worth
/// keeping float with [`crate::QuantizeConfig::skip`]: one outlier weight stretches its
/// channel's scale, and the channel's other weights lose most of their 8 bits.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerError {
    /// The layer path, as in [`QuantizeReport::changed`] (empty for a lone layer).
    pub path: String,
    pub kind: LayerKind,
    /// The format the layer got (a convolution is always Keras).
    pub format: crate::Int8Format,
    /// Bytes of its int8 weight: values and scales.
    pub bytes: usize,
    /// Signal over quantization noise of the whole weight, in dB:
    /// `10·log10(Σw² / Σ(w − dequant(q))²)`; `+inf` when the int8 weight is exact.
    pub sqnr_db: f64,
    /// The largest, over output channels, of `‖w_c − dequant(q)_c‖₂ / ‖w_c‖₂` (0 for a channel
    /// that is quantized exactly, an all-zero one included).
    pub worst_channel_relative_error: f64,
    /// The output channel with that error: its index along the axis that has one scale per
    /// entry (the column of a `Linear` weight, the row of an `Embedding` table, the output
    /// channel of a convolution).
    pub worst_channel: usize,
}

/// The error numbers of one weight, before they get a path and a kind
/// ([`super::measure::weight_error`] measures them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WeightError {
    pub sqnr_db: f64,
    pub worst_channel_relative_error: f64,
    pub worst_channel: usize,
}

/// What a quantize (or dequantize) call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantizeReport {
    /// `(path, layer kind)` of every layer that changed precision.
    pub changed: Vec<(String, LayerKind)>,
    /// `(path, reason)` of every quantizable layer left as it was.
    pub skipped: Vec<(String, SkipReason)>,
    /// Parameter bytes of the whole model before and after (from dtypes and shapes).
    pub bytes_before: usize,
    pub bytes_after: usize,
    /// How much int8 changed each quantized layer's weight, worst first (lowest SQNR; NaN
    /// last). Empty after a dequantize. The layers at the top are the ones to keep float with
    /// [`crate::QuantizeConfig::skip`] when the quantized model loses accuracy.
    ///
    /// Measured from the weights alone (no data), once, while quantizing: each layer's int8
    /// weight is dequantized into one transient float copy, compared with the float weight,
    /// and dropped. The quantized model computes nothing extra at run time.
    pub errors: Vec<LayerError>,
}

impl QuantizeReport {
    /// How many quantized layers got each format, and their int8 weight bytes.
    pub fn formats(&self) -> Vec<(crate::Int8Format, usize, usize)> {
        let mut counts: Vec<(crate::Int8Format, usize, usize)> = Vec::new();
        for error in &self.errors {
            match counts
                .iter_mut()
                .find(|(format, ..)| *format == error.format)
            {
                Some((_, layers, bytes)) => {
                    *layers += 1;
                    *bytes += error.bytes;
                }
                None => counts.push((error.format, 1, error.bytes)),
            }
        }
        counts
    }

    /// The `n` layers int8 changed the most (fewer when fewer were quantized).
    pub fn worst(&self, n: usize) -> &[LayerError] {
        &self.errors[..n.min(self.errors.len())]
    }

    /// Orders [`Self::errors`] worst first: ascending SQNR, NaN last, then the larger worst
    /// channel error first. Stable, so ties keep the visit order.
    pub(super) fn sort_errors(&mut self) {
        self.errors.sort_by(|a, b| {
            a.sqnr_db
                .is_nan()
                .cmp(&b.sqnr_db.is_nan())
                .then(a.sqnr_db.total_cmp(&b.sqnr_db))
                .then(
                    b.worst_channel_relative_error
                        .total_cmp(&a.worst_channel_relative_error),
                )
        });
    }
}

impl fmt::Display for QuantizeReport {
    /// One summary line, the layers int8 changed the most (the worst 5, and a count), then
    /// every skipped layer with its reason (the first 20, and a count).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 20;
        const WORST_SHOWN: usize = 5;
        write!(
            f,
            "{} layer(s) changed, {} skipped, parameters {} -> {} bytes",
            self.changed.len(),
            self.skipped.len(),
            self.bytes_before,
            self.bytes_after
        )?;
        // Keras-only reports read as they always have; other formats get a line each.
        let formats = self.formats();
        if formats
            .iter()
            .any(|(format, ..)| *format != crate::Int8Format::KERAS)
        {
            for (format, layers, bytes) in formats {
                write!(f, "\n  {format}: {layers} layer(s), {bytes} weight bytes")?;
            }
        }
        for error in self.worst(WORST_SHOWN) {
            let path = if error.path.is_empty() {
                "(root)"
            } else {
                error.path.as_str()
            };
            let format = if error.format == crate::Int8Format::KERAS {
                String::new()
            } else {
                format!(", {}", error.format)
            };
            write!(
                f,
                "\n  worst: {path} ({}{format}): SQNR {:.1} dB, worst channel {} relative error {:.2}%",
                error.kind,
                error.sqnr_db,
                error.worst_channel,
                100.0 * error.worst_channel_relative_error
            )?;
        }
        if self.errors.len() > WORST_SHOWN {
            let best = self
                .errors
                .iter()
                .map(|e| e.sqnr_db)
                .filter(|s| !s.is_nan())
                .max_by(f64::total_cmp);
            write!(
                f,
                "\n  ... {} more layer(s)",
                self.errors.len() - WORST_SHOWN
            )?;
            if let Some(best) = best {
                write!(f, ", best SQNR {best:.1} dB")?;
            }
        }
        for (path, reason) in self.skipped.iter().take(SHOWN) {
            write!(f, "\n  stayed float: {path}: {reason}")?;
        }
        if self.skipped.len() > SHOWN {
            write!(f, "\n  ... and {} more", self.skipped.len() - SHOWN)?;
        }
        Ok(())
    }
}
