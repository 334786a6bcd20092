//! Measures how much quantizing one weight changed it: the numbers behind the per-layer lines
//! of [`crate::QuantizeReport`] ([`crate::LayerError`]).
//!
//! Measured once, at quantize time, from the float weight and one dequantized copy of the int8
//! weight (`q / scale`), which lives only while the layer is measured; nothing is measured or
//! kept at run time. It needs no data: only the weights.

use burn::tensor::{FloatDType, Tensor, backend::Backend};

use super::report::WeightError;

/// Compares a float weight with its dequantized int8 copy, per channel along `channel_axis`.
///
/// The sums run on the device; only two `[channels]` vectors (`Σw²` and `Σ(w − ŵ)²` per
/// channel) come to the host, where the ratios are taken in f64. Should reading them back
/// fail, the numbers are NaN (the report sorts those last) rather than an error: the
/// quantization itself succeeded.
pub(crate) fn weight_error<B: Backend, const D: usize>(
    float: Tensor<B, D>,
    dequantized: Tensor<B, D>,
    channel_axis: usize,
) -> WeightError {
    let shape = float.dims();
    let channels = shape[channel_axis];
    let rest: usize = shape.iter().product::<usize>() / channels.max(1);
    // One row per channel, as `Int8Weight::quantize_as` lays the weight out to quantize it.
    let rows = |tensor: Tensor<B, D>| -> Tensor<B, 2> {
        tensor
            .detach()
            .cast(FloatDType::F32)
            .swap_dims(0, channel_axis)
            .reshape([channels, rest])
    };
    let float = rows(float);
    let dequantized = rows(dequantized);
    let diff = float.clone().sub(dequantized);
    let noise = diff.clone().mul(diff).sum_dim(1);
    let signal = float.clone().mul(float).sum_dim(1);
    let host = |tensor: Tensor<B, 2>| -> Vec<f64> {
        match tensor.into_data().convert::<f32>().to_vec::<f32>() {
            Ok(values) => values.into_iter().map(f64::from).collect(),
            Err(error) => {
                tracing::warn!(?error, "reading the quantization error back failed");
                vec![f64::NAN; channels]
            }
        }
    };
    from_channel_sums(&host(signal), &host(noise))
}

/// The error numbers from per-channel `Σw²` (`signal`) and `Σ(w − ŵ)²` (`noise`).
pub(crate) fn from_channel_sums(signal: &[f64], noise: &[f64]) -> WeightError {
    let total_signal: f64 = signal.iter().sum();
    let total_noise: f64 = noise.iter().sum();
    let sqnr_db = if total_noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (total_signal / total_noise).log10()
    };
    // (channel, relative error); NaN only when the sums are NaN, and then it never wins.
    let mut worst = (0, f64::NAN);
    for (channel, (&s, &n)) in signal.iter().zip(noise).enumerate() {
        let relative = if n == 0.0 { 0.0 } else { (n / s).sqrt() };
        if relative > worst.1 || (worst.1.is_nan() && !relative.is_nan()) {
            worst = (channel, relative);
        }
    }
    WeightError {
        sqnr_db,
        worst_channel_relative_error: worst.1,
        worst_channel: worst.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_weights_have_infinite_sqnr_and_zero_error() {
        let error = from_channel_sums(&[4.0, 0.0, 9.0], &[0.0, 0.0, 0.0]);
        assert_eq!(error.sqnr_db, f64::INFINITY);
        assert_eq!(error.worst_channel_relative_error, 0.0);
    }

    #[test]
    fn the_worst_channel_is_the_largest_relative_error() {
        // Channel 1 has the most noise in absolute terms, channel 2 relative to its signal.
        let error = from_channel_sums(&[100.0, 400.0, 1.0], &[0.01, 0.04, 0.0004]);
        assert_eq!(error.worst_channel, 2);
        assert!((error.worst_channel_relative_error - 0.02).abs() < 1e-12);
        assert!((error.sqnr_db - 10.0 * (501.0f64 / 0.0504).log10()).abs() < 1e-9);
        // NaN sums (a failed read-back) never win over a real number, and give NaN otherwise.
        let error = from_channel_sums(&[f64::NAN, 1.0], &[f64::NAN, 0.01]);
        assert_eq!(error.worst_channel, 1);
        let error = from_channel_sums(&[f64::NAN], &[f64::NAN]);
        assert!(error.sqnr_db.is_nan() && error.worst_channel_relative_error.is_nan());
    }
}
