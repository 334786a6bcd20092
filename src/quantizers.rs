//! The quantization math, exactly as Keras 3 computes it (`keras/src/quantizers/quantizers.py`).
//!
//! ```text
//! scale = 127 / (max(|x|, axis, keepdims) + 1e-7)   # a multiplier
//! q     = clip(round_half_to_even(x * scale), -127, 127) as int8
//! x    ~= q / scale                                 # dequantize: always a division
//! ```
//! The keras.io guide's prose (`2*amax/256`, clip to [-128, 127]) is *not* what the code does;
//! this file follows the code, which produced the guide's numbers. -128 never occurs.

use burn::tensor::{Bool, DType, FloatDType, Int, IntDType, Tensor, TensorData, backend::Backend};

pub use crate::scheme::Q8_0_BLOCK;

use crate::Int8Error;

/// Largest int8 magnitude Keras produces: the range is symmetric, -128 is never used.
pub const INT8_MAX: f32 = 127.0;
/// Keras's `epsilon` in `abs_max_quantize`, added to the max before dividing.
pub const ABS_MAX_EPSILON: f32 = 1e-7;

/// `abs_max_quantize(x, axis)` of Keras: int8 values (dtype I8, same shape as `x`) and the
/// scale, reduced over `axis` with the dimension kept (shape 1 there).
pub fn abs_max_quantize<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    axis: usize,
) -> Result<(Tensor<B, D, Int>, Tensor<B, D>), Int8Error> {
    if axis >= D {
        return Err(Int8Error::AxisOutOfRange { axis, rank: D });
    }
    let shape = x.dims();
    if shape.contains(&0) {
        return Err(Int8Error::EmptyTensor {
            what: "tensor".into(),
            shape: shape.to_vec(),
        });
    }
    Ok(abs_max_quantize_along(x, axis))
}

/// [`abs_max_quantize`] for callers that already checked the axis and emptiness.
pub(crate) fn abs_max_quantize_along<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    axis: usize,
) -> (Tensor<B, D, Int>, Tensor<B, D>) {
    let amax = x.clone().abs().max_dim(axis);
    // `127 / (amax + eps)` as one IEEE division, as Keras does (not `127 * recip(...)`).
    let numerator = Tensor::full(amax.shape(), INT8_MAX, &amax.device());
    let scale = numerator.div(amax.add_scalar(ABS_MAX_EPSILON));
    let q = quantize_with_scale(x, scale.clone());
    (q, scale)
}

/// [`abs_max_quantize_along`] for one row in host memory, bit for bit: the same IEEE
/// operations in the same order. Writes `out` and returns the scale. The CPU kernels quantize
/// activation rows with it once per call.
#[inline(always)]
pub(crate) fn abs_max_quantize_row(row: &[f32], out: &mut [i8]) -> f32 {
    // Written so the compiler vectorises it: the maximum is kept per lane (max is exact, so
    // the order does not matter), comparisons stand in for `f32::max`, and rounding uses the
    // 1.5·2^23 trick, whose bit pattern then holds the integer, instead of `rintf` and a
    // saturating cast per element.
    const LANES: usize = 16;
    let (mut maxes, mut nans) = ([0.0f32; LANES], [false; LANES]);
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for ((max, nan), &v) in maxes.iter_mut().zip(nans.iter_mut()).zip(chunk) {
            *max = if v.abs() > *max { v.abs() } else { *max };
            *nan |= v.is_nan();
        }
    }
    let amax = maxes
        .iter()
        .chain(tail)
        .fold(0.0f32, |max, &v| if v.abs() > max { v.abs() } else { max });
    // A NaN row has a NaN scale, as in the tensor version (whose outputs are NaN either way).
    let amax = if nans.contains(&true) || tail.iter().any(|v| v.is_nan()) {
        f32::NAN
    } else {
        amax
    };
    let scale = INT8_MAX / (amax + ABS_MAX_EPSILON);
    for (q, &v) in out.iter_mut().zip(row) {
        // Clamping before rounding is the same as after: the bounds are integers.
        let clamped = (v * scale).clamp(-INT8_MAX, INT8_MAX);
        // The addition rounds half to even (the default rounding mode), NaN aside.
        let integer = (clamped + MAGIC).to_bits() as i32 - MAGIC_BITS;
        *q = if clamped.is_nan() { 0 } else { integer as i8 };
    }
    scale
}

/// 1.5·2^23: adding it to `|v| <= 2^22` leaves no fraction bits.
const MAGIC: f32 = 12_582_912.0;
/// The bits of `MAGIC`: `(MAGIC + j).to_bits() = MAGIC_BITS + j` for small integers `j`.
const MAGIC_BITS: i32 = 0x4B40_0000;

/// `clip(round_half_to_even(x * scale), -127, 127)` as I8. `scale` broadcasts against `x`.
pub fn quantize_with_scale<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    scale: Tensor<B, D>,
) -> Tensor<B, D, Int> {
    // Burn's `round` is round-half-to-even on every backend, like `jnp.round`.
    x.mul(scale)
        .round()
        .clamp(-INT8_MAX, INT8_MAX)
        .cast(IntDType::I8)
}

/// Keras's dequantize: `q / scale` (a true division).
pub fn dequantize<B: Backend, const D: usize>(
    q: Tensor<B, D, Int>,
    scale: Tensor<B, D>,
) -> Tensor<B, D> {
    q.cast(FloatDType::F32).div(scale)
}

/// Fails with [`Int8Error::NonFinite`] when `x` holds a NaN or an infinity.
pub fn ensure_finite<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    what: &str,
) -> Result<(), Int8Error> {
    let bad: Tensor<B, D, Bool> = x.clone().is_finite().bool_not();
    let count = bad.int().sum().into_scalar();
    let count = burn::tensor::ElementConversion::elem::<i64>(count) as usize;
    if count > 0 {
        return Err(Int8Error::NonFinite {
            what: what.to_string(),
            count,
        });
    }
    Ok(())
}

/// Fails unless `x` is a non-empty tensor; used on weights before quantizing them.
pub(crate) fn ensure_non_empty<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    what: &str,
) -> Result<(), Int8Error> {
    let shape = x.dims();
    if shape.contains(&0) {
        return Err(Int8Error::EmptyTensor {
            what: what.to_string(),
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

/// llama.cpp's Q8_0 of a weight's channel rows `[channels, inputs]` (`inputs` a multiple of
/// [`Q8_0_BLOCK`]), exactly as ggml's `quantize_row_q8_0_ref` (the weights `llama-quantize`
/// writes): per block of 32, `d = amax / 127`, values `roundf(x / d)` (half away from zero,
/// through the f32 reciprocal), and `d` stored as f16. Returns the I8 values (row-major, as the
/// rows) and the block scales `[channels · inputs / 32]` (f16 values, held as f32), which
/// multiply: `w ≈ q · d`.
pub(crate) fn q8_0_quantize_rows<B: Backend>(
    rows: Tensor<B, 2>,
) -> (Tensor<B, 2, Int>, Tensor<B, 1>) {
    let [channels, inputs] = rows.dims();
    let device = rows.device();
    // `iter` converts whatever float dtype the backend holds; nothing to fail on.
    let data: Vec<f32> = rows.into_data().iter::<f32>().collect();
    let mut values = vec![0i8; data.len()];
    let mut scales = vec![0f32; data.len() / Q8_0_BLOCK];
    for ((block, out), scale) in data
        .chunks_exact(Q8_0_BLOCK)
        .zip(values.chunks_exact_mut(Q8_0_BLOCK))
        .zip(scales.iter_mut())
    {
        let amax = block.iter().fold(0.0f32, |max, &v| max.max(v.abs()));
        let d = amax / INT8_MAX;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (q, &v) in out.iter_mut().zip(block) {
            *q = (v * id).round() as i8;
        }
        *scale = half::f16::from_f32(d).to_f32();
    }
    let blocks = inputs / Q8_0_BLOCK;
    (
        Tensor::from_data(
            TensorData::new(values, [channels, inputs]),
            (&device, DType::I8),
        ),
        Tensor::from_data(TensorData::new(scales, [channels * blocks]), &device),
    )
}

/// Q8_0's run-time quantization of one activation row (ggml's x86 `quantize_row_q8_0`): per
/// block of 32, values `round_half_even(x · (127 / amax))` (0 for an all-zero block) and the
/// block scale `amax / 127`. ggml rounds that scale to f16; it stays f32 here, one rounding
/// fewer, the same int8 values. A block holding NaN gets a NaN scale, so the output says so.
#[inline(always)]
pub(crate) fn q8_0_quantize_activation_row(row: &[f32], values: &mut [i8], scales: &mut [f32]) {
    for ((block, out), scale) in row
        .chunks_exact(Q8_0_BLOCK)
        .zip(values.chunks_exact_mut(Q8_0_BLOCK))
        .zip(scales.iter_mut())
    {
        let mut amax = 0.0f32;
        let mut nan = false;
        for &v in block {
            amax = if v.abs() > amax { v.abs() } else { amax };
            nan |= v.is_nan();
        }
        let id = if amax != 0.0 { INT8_MAX / amax } else { 0.0 };
        for (q, &v) in out.iter_mut().zip(block) {
            let rounded = (v * id).clamp(-INT8_MAX, INT8_MAX);
            let integer = (rounded + MAGIC).to_bits() as i32 - MAGIC_BITS;
            *q = if rounded.is_nan() { 0 } else { integer as i8 };
        }
        *scale = if nan { f32::NAN } else { amax / INT8_MAX };
    }
}

/// [`q8_0_quantize_activation_row`] through Burn tensor ops, on rows `[m, k]`: the same
/// values and scales (`[m, k / 32]`), for the generic path and the GPU.
pub(crate) fn q8_0_quantize_activations<B: Backend>(
    x: Tensor<B, 2>,
) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
    let [m, k] = x.dims();
    let blocks = k / Q8_0_BLOCK;
    let x = x.reshape([m, blocks, Q8_0_BLOCK]);
    let nan = x.clone().is_nan().int().max_dim(2).bool();
    // `max_dim` of |x|: NaN is handled by the mask below, as in the row version.
    let amax = x.clone().abs().max_dim(2);
    let zero = amax.clone().equal_elem(0.0);
    let numerator = Tensor::full(amax.shape(), INT8_MAX, &amax.device());
    let id = numerator.div(amax.clone()).mask_fill(zero, 0.0);
    let q = x
        .mul(id)
        .clamp(-INT8_MAX, INT8_MAX)
        .round()
        .cast(IntDType::I8)
        .reshape([m, k]);
    let scale = amax.div_scalar(INT8_MAX).mask_fill(nan, f32::NAN);
    (q, scale.reshape([m, blocks]))
}

/// Mean squared error between two float tensors, as the Keras guide prints it.
pub fn mse<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    let diff = a.sub(b);
    let value = diff.clone().mul(diff).mean().into_scalar();
    burn::tensor::ElementConversion::elem::<f32>(value)
}

/// The storage dtype of every int8 weight in this crate.
pub const INT8_DTYPE: DType = DType::I8;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData};

    /// The host-row quantizer the CPU kernels use gives the tensor version's bits: ties
    /// included (amax 127 makes the scale exactly 1, so `k + 0.5` are true ties).
    #[test]
    fn row_quantizer_matches_the_tensor_version() {
        let device = Default::default();
        let ties = vec![
            127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5, -126.5, 0.0, -127.0,
        ];
        let random = Tensor::<NdArray, 1>::random([4099], Distribution::Normal(0.0, 3.0), &device)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // Longer than one 16-lane chunk too, with the maximum inside a chunk.
        for row in [
            ties.repeat(3),
            ties,
            random,
            vec![0.0; 5],
            vec![1e-30, -3e-38, 2e-45],
        ] {
            let tensor = Tensor::<NdArray, 2>::from_data(
                TensorData::new(row.clone(), [1, row.len()]),
                &device,
            );
            let (q, scale) = abs_max_quantize(tensor, 1).unwrap();
            let mut out = vec![0i8; row.len()];
            let row_scale = abs_max_quantize_row(&row, &mut out);
            assert_eq!(
                row_scale.to_bits(),
                scale.into_data().to_vec::<f32>().unwrap()[0].to_bits()
            );
            assert_eq!(out, q.into_data().convert::<i8>().to_vec::<i8>().unwrap());
        }
    }

    /// Q8_0's activation quantizer: the host row version (CPU kernel) and the tensor version
    /// (generic path) give the same values and scales, ties and an all-zero block included.
    #[test]
    fn q8_0_row_quantizer_matches_the_tensor_version() {
        let device = Default::default();
        let mut row: Vec<f32> =
            Tensor::<NdArray, 1>::random([256], Distribution::Normal(0.0, 3.0), &device)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
        // A block whose amax is 127 (scale 1: `k + 0.5` are true ties) and an all-zero block.
        row[..8].copy_from_slice(&[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -126.5, 3.5]);
        row[32..64].fill(0.0);
        let (mut values, mut scales) = (vec![0i8; 256], vec![0f32; 8]);
        q8_0_quantize_activation_row(&row, &mut values, &mut scales);
        let tensor = Tensor::<NdArray, 2>::from_data(TensorData::new(row, [1, 256]), &device);
        let (q, scale) = q8_0_quantize_activations(tensor);
        assert_eq!(
            values,
            q.into_data().convert::<i8>().to_vec::<i8>().unwrap()
        );
        let scale = scale.into_data().to_vec::<f32>().unwrap();
        assert_eq!(
            scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
            scale.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(&values[..8], &[127, 0, 2, 2, 0, -2, -126, 4]);
        assert_eq!(scales[1], 0.0);
    }
}
