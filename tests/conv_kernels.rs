//! The direct int8 convolution of the CPU kernels against the generic path (im2col through
//! Burn tensor ops), bit for bit, in both schemes (Keras's per-position activation scales and
//! the per-sample ones of `Scheme::Sample`), on every instruction set this CPU runs:
//! 1×1, 3×3 and 7×7 kernels, stride, dilation, asymmetric padding, grouped and depthwise
//! (with and without a channel multiplier), Conv1d-shaped, batch 1 and batched, maps narrower
//! than a vector (lane groups that span rows and images), K not a multiple of 4, and inputs
//! built to round exactly on ties.

use burn::tensor::{Distribution, Tensor, TensorData, backend::Backend};
use burn_int8::kernels::cpu::{Isa, try_quantized_conv2d};
use burn_int8::kernels::{ConvGeometry, generic_quantized_conv2d};
use burn_int8::{Int8Format, Int8Weight, Rotation, Scheme};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::common::f32_of;

/// One case: input `[batch, c_in, h, w]`, `c_out`, kernel, stride, dilation, padding
/// `((top, bottom), (left, right))`, groups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Case {
    pub(crate) input: [usize; 4],
    pub(crate) c_out: usize,
    pub(crate) kernel: [usize; 2],
    pub(crate) stride: [usize; 2],
    pub(crate) dilation: [usize; 2],
    pub(crate) padding: ((usize, usize), (usize, usize)),
    pub(crate) groups: usize,
}

const fn case(
    input: [usize; 4],
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: usize,
    groups: usize,
) -> Case {
    Case {
        input,
        c_out,
        kernel,
        stride,
        dilation: [1, 1],
        padding: ((padding, padding), (padding, padding)),
        groups,
    }
}

pub(crate) const CASES: &[Case] = &[
    // 1×1 (a plain GEMM, read in place), batch 1 and batched, odd channel counts.
    case([1, 16, 9, 9], 24, [1, 1], [1, 1], 0, 1),
    case([3, 20, 5, 6], 13, [1, 1], [1, 1], 0, 1),
    // 1×1 stride 2 (ResNet's downsampling shortcut).
    case([2, 16, 14, 14], 32, [1, 1], [2, 2], 0, 1),
    // 3×3 "same", 3×3 stride 2, a 7×7 stem on 3 channels (K = 147, not a multiple of 4).
    case([1, 8, 17, 19], 16, [3, 3], [1, 1], 1, 1),
    case([2, 12, 15, 16], 10, [3, 3], [2, 2], 1, 1),
    case([1, 3, 32, 32], 16, [7, 7], [2, 2], 3, 1),
    // A weight over 256 KiB (512 × 576 bytes): its VNNI offsets are summed by several threads.
    case([1, 64, 6, 6], 512, [3, 3], [1, 1], 1, 1),
    // Maps narrower than 16 (lane groups spanning rows and images), batched.
    case([5, 32, 7, 7], 40, [3, 3], [1, 1], 1, 1),
    case([4, 9, 3, 2], 5, [3, 3], [1, 1], 1, 1),
    // Grouped.
    case([2, 16, 10, 11], 8, [3, 3], [1, 1], 1, 2),
    case([1, 12, 9, 9], 12, [3, 3], [1, 2], 1, 3),
    // Depthwise: stride 1 and 2, a channel multiplier of 2, a 5×5 kernel, batched.
    case([1, 24, 14, 14], 24, [3, 3], [1, 1], 1, 24),
    case([2, 32, 15, 15], 32, [3, 3], [2, 2], 1, 32),
    case([1, 6, 9, 10], 12, [3, 3], [1, 1], 1, 6),
    case([3, 5, 8, 8], 5, [5, 5], [1, 1], 2, 5),
    // Depthwise on rows wider than a vector (whole 16-output blocks inside the image, and edge
    // blocks), stride 1 and 2, batched.
    case([2, 8, 21, 40], 8, [3, 3], [1, 1], 1, 8),
    case([1, 6, 20, 70], 6, [3, 3], [2, 2], 1, 6),
    // Depthwise 3×3 stride 1 on maps at least 16 wide (the padded-rows path on AVX-512): no
    // padding and exactly one block a row, asymmetric padding with a one-output tail block,
    // padding wider than the kernel reaches (windows of zeros only).
    case([1, 3, 6, 18], 3, [3, 3], [1, 1], 0, 3),
    Case {
        input: [2, 5, 9, 33],
        c_out: 5,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        padding: ((2, 0), (0, 2)),
        groups: 5,
    },
    Case {
        input: [1, 2, 4, 20],
        c_out: 2,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        padding: ((0, 3), (3, 1)),
        groups: 2,
    },
    // Depthwise 3×3 on maps where a 16-output block spans three rows (7 wide, MobileNetV2's
    // last stage) and more (4 wide: the taps buffer path instead of registers).
    case([2, 16, 7, 7], 16, [3, 3], [1, 1], 1, 16),
    case([2, 4, 5, 4], 4, [3, 3], [1, 1], 1, 4),
    // Depthwise with dilation, a multiplier, asymmetric padding and a horizontal stride alone.
    Case {
        input: [1, 4, 19, 37],
        c_out: 8,
        kernel: [3, 3],
        stride: [1, 2],
        dilation: [2, 2],
        padding: ((0, 2), (1, 0)),
        groups: 4,
    },
    // Conv1d-shaped: height 1, a kernel of 1 × 5, stride 2.
    case([2, 10, 1, 37], 7, [1, 5], [1, 2], 0, 1),
    case([1, 4, 1, 50], 4, [1, 3], [1, 1], 0, 4),
    // Dilation and asymmetric padding.
    Case {
        input: [2, 6, 13, 12],
        c_out: 9,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [2, 3],
        padding: ((2, 1), (0, 3)),
        groups: 1,
    },
    Case {
        input: [1, 8, 12, 12],
        c_out: 8,
        kernel: [3, 2],
        stride: [2, 3],
        dilation: [2, 1],
        padding: ((1, 0), (2, 1)),
        groups: 8,
    },
];

pub(crate) fn geometry(case: &Case) -> ConvGeometry {
    ConvGeometry {
        stride: case.stride,
        dilation: case.dilation,
        groups: case.groups,
        padding: case.padding,
    }
}

/// Input values where many products land on exact ties: every window holds a 127 (so the
/// scale is exactly 1) among half-integers.
pub(crate) fn ties_input<B: Backend>(
    shape: [usize; 4],
    rng: &mut StdRng,
    device: &B::Device,
) -> Tensor<B, 4> {
    let [b, c, h, w] = shape;
    let mut values = Vec::with_capacity(b * c * h * w);
    for _ in 0..b * c {
        for y in 0..h {
            for x in 0..w {
                values.push(if y % 2 == 0 && x % 2 == 0 {
                    127.0
                } else {
                    rng.random_range(-127i32..127) as f32 + 0.5
                });
            }
        }
    }
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A case's weight quantized in `scheme`, a bias, and two inputs: normal values and
/// [`ties_input`].
pub(crate) fn case_operands_as<B: Backend>(
    case: &Case,
    scheme: Scheme,
    rng: &mut StdRng,
    device: &B::Device,
) -> (Int8Weight<B, 4>, Tensor<B, 1>, [Tensor<B, 4>; 2]) {
    let [_, c_in, _, _] = case.input;
    let [kh, kw] = case.kernel;
    let weight = Tensor::<B, 4>::random(
        [case.c_out, c_in / case.groups, kh, kw],
        Distribution::Normal(0.0, 0.5),
        device,
    );
    let format = Int8Format::new(scheme, Rotation::None);
    let weight = Int8Weight::quantize_as(weight, 0, "conv weight", format).unwrap();
    let bias = Tensor::<B, 1>::random([case.c_out], Distribution::Normal(0.0, 1.0), device);
    let inputs = [
        Tensor::<B, 4>::random(case.input, Distribution::Normal(0.0, 2.0), device),
        ties_input::<B>(case.input, rng, device),
    ];
    (weight, bias, inputs)
}

/// How many of `actual`'s values differ from `expected`'s, bit for bit.
pub(crate) fn differing(actual: &[f32], expected: &[f32]) -> usize {
    assert_eq!(actual.len(), expected.len());
    actual
        .iter()
        .zip(expected)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count()
}

fn matches_generic<B: Backend>(device: &B::Device) {
    let levels = Isa::available();
    assert_eq!(levels.last(), Some(&Isa::Portable));
    let mut rng = StdRng::seed_from_u64(28);
    for (case, scheme) in CASES
        .iter()
        .flat_map(|case| [(case, Scheme::Keras), (case, Scheme::Sample)])
    {
        let (weight, bias, inputs) = case_operands_as::<B>(case, scheme, &mut rng, device);
        for (kind, input) in ["normal", "ties"].iter().zip(inputs) {
            for bias in [None, Some(bias.clone())] {
                let expected =
                    generic_quantized_conv2d(input.clone(), &weight, bias.clone(), geometry(case));
                for &isa in &levels {
                    let direct =
                        try_quantized_conv2d(isa, &input, &weight, bias.as_ref(), geometry(case))
                            .unwrap_or_else(|| panic!("{isa:?} {scheme} declined {case:?}"));
                    assert_eq!(direct.dims(), expected.dims(), "{isa:?} {case:?}");
                    let (direct, expected) = (f32_of(direct), f32_of(expected.clone()));
                    let differ = differing(&direct, &expected);
                    assert_eq!(
                        differ,
                        0,
                        "{isa:?} {scheme} {kind} bias {} {case:?}: {differ} of {} outputs differ",
                        bias.is_some(),
                        expected.len()
                    );
                }
            }
        }
    }
}

#[test]
fn direct_conv_matches_generic_on_every_isa_on_flex() {
    matches_generic::<burn::backend::Flex>(&Default::default());
}

#[test]
fn direct_conv_matches_generic_on_every_isa_on_ndarray() {
    matches_generic::<burn::backend::NdArray>(&Default::default());
}

/// The layers take the direct kernel (the seam's dispatch) and give the generic path's bits.
#[test]
fn layers_take_the_direct_kernel_with_the_generic_bits() {
    use burn::nn::PaddingConfig2d;
    use burn_int8::QuantizeExt;
    use burn_int8::nn::conv::Conv2dConfig;
    type B = burn::backend::Flex;
    let device = Default::default();
    let mut layer = Conv2dConfig::new([8, 16], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 0, 0, 1))
        .with_stride([2, 2])
        .init::<B>(&device);
    layer.quantize_int8().unwrap();
    let quantized = layer.int8_layer().expect("quantized");
    let x = Tensor::<B, 4>::random([2, 8, 20, 20], Distribution::Normal(0.0, 1.0), &device);
    let expected = generic_quantized_conv2d(
        x.clone(),
        &quantized.weight,
        quantized.bias.as_ref().map(|bias| bias.val()),
        ConvGeometry {
            stride: [2, 2],
            dilation: [1, 1],
            groups: 1,
            padding: ((1, 0), (0, 1)),
        },
    );
    assert_eq!(layer.forward(x).into_data(), expected.into_data());
}

/// A non-finite input goes to the generic path (its NaN outputs are the reference's).
#[test]
fn non_finite_inputs_decline() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let weight = Int8Weight::quantize(
        Tensor::<B, 4>::random([4, 2, 3, 3], Distribution::Normal(0.0, 1.0), &device),
        0,
        "w",
    )
    .unwrap();
    let mut values = vec![0.5f32; 2 * 6 * 6];
    values[7] = f32::NAN;
    let x = Tensor::<B, 4>::from_data(TensorData::new(values, [1, 2, 6, 6]), &device);
    let geometry = ConvGeometry {
        stride: [1, 1],
        dilation: [1, 1],
        groups: 1,
        padding: ((1, 1), (1, 1)),
    };
    assert!(try_quantized_conv2d(Isa::detect(), &x, &weight, None, geometry).is_none());
}

/// Neither path scans the input for non-finite values: the depthwise kernel finds them from its
/// outputs, the GEMM path while it computes the windows' scales. A NaN or an infinity that a
/// window reads declines to the generic path on every level, in any channel and at the first or
/// last tap of a window. One that no window reads (the last column of a stride-2 map) changes
/// nothing on the depthwise path (2 groups of 1 channel): the result is still the generic
/// path's bits. The GEMM path (one group of 2 channels) checks whole rows of its padded copy,
/// so there it may decline (the generic path then gives the same bits).
#[test]
fn convolutions_decline_exactly_when_a_window_reads_a_non_finite_value() {
    type B = burn::backend::Flex;
    let device = Default::default();
    for (weight_shape, groups) in [([2, 1, 3, 3], 2), ([4, 2, 3, 3], 1)] {
        let weight = Int8Weight::quantize(
            Tensor::<B, 4>::random(weight_shape, Distribution::Normal(0.0, 1.0), &device),
            0,
            "w",
        )
        .unwrap();
        let geometry = ConvGeometry {
            stride: [2, 2],
            dilation: [1, 1],
            groups,
            padding: ((0, 0), (0, 0)),
        };
        // `[1, 2, 7, 8]`: windows read columns 0..=6 of every row; column 7 is never read.
        let at = |c: usize, y: usize, x: usize| (c * 7 + y) * 8 + x;
        let mut rng = StdRng::seed_from_u64(31);
        let base: Vec<f32> = (0..2 * 7 * 8)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let input = |index: usize, value: f32| {
            let mut values = base.clone();
            values[index] = value;
            Tensor::<B, 4>::from_data(TensorData::new(values, [1, 2, 7, 8]), &device)
        };
        for &isa in &Isa::available() {
            for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for index in [at(0, 0, 0), at(1, 6, 6), at(1, 3, 4)] {
                    let x = input(index, value);
                    assert!(
                        try_quantized_conv2d(isa, &x, &weight, None, geometry).is_none(),
                        "{isa:?} groups {groups}: {value} at {index} is read by a window"
                    );
                }
                let x = input(at(1, 3, 7), value);
                match try_quantized_conv2d(isa, &x, &weight, None, geometry) {
                    Some(direct) => {
                        let expected = generic_quantized_conv2d(x, &weight, None, geometry);
                        assert_eq!(
                            differing(&f32_of(direct), &f32_of(expected)),
                            0,
                            "{isa:?} groups {groups} {value}"
                        );
                    }
                    None => assert_eq!(
                        groups, 1,
                        "{isa:?}: depthwise declined for {value} in column 7, which is never read"
                    ),
                }
            }
        }
    }
}

/// The same on the depthwise path for stride-1 3×3 layers on maps 16 or more wide (padded rows
/// on AVX-512): a NaN or an infinity in the first or last column, at a corner or inside, in
/// either channel, declines on every level.
#[test]
fn wide_stride_1_depthwise_declines_when_a_window_reads_a_non_finite_value() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let weight = Int8Weight::quantize(
        Tensor::<B, 4>::random([2, 1, 3, 3], Distribution::Normal(0.0, 1.0), &device),
        0,
        "w",
    )
    .unwrap();
    let geometry = ConvGeometry {
        stride: [1, 1],
        dilation: [1, 1],
        groups: 2,
        padding: ((1, 1), (1, 1)),
    };
    let (height, width) = (5, 37);
    let at = |c: usize, y: usize, x: usize| (c * height + y) * width + x;
    let mut rng = StdRng::seed_from_u64(37);
    let base: Vec<f32> = (0..2 * height * width)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let clean = Tensor::<B, 4>::from_data(
        TensorData::new(base.clone(), [1, 2, height, width]),
        &device,
    );
    for &isa in &Isa::available() {
        let direct = try_quantized_conv2d(isa, &clean, &weight, None, geometry)
            .unwrap_or_else(|| panic!("{isa:?}: finite input"));
        let expected = generic_quantized_conv2d(clean.clone(), &weight, None, geometry);
        assert_eq!(differing(&f32_of(direct), &f32_of(expected)), 0, "{isa:?}");
        for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for index in [
                at(0, 0, 0),
                at(1, 4, 36),
                at(0, 2, 17),
                at(1, 0, 36),
                at(0, 4, 0),
            ] {
                let mut values = base.clone();
                values[index] = value;
                let x = Tensor::<B, 4>::from_data(
                    TensorData::new(values, [1, 2, height, width]),
                    &device,
                );
                assert!(
                    try_quantized_conv2d(isa, &x, &weight, None, geometry).is_none(),
                    "{isa:?}: {value} at {index} is read by a window"
                );
            }
        }
    }
}

/// `Scheme::Sample`'s rule written out in plain Rust, independently of the crate: each image
/// quantized with `127 / (amax + 1e-7)` over all its values (round half to even, clip to
/// ±127), an i64 sum over every tap inside the padded input, then `acc / (x_scale · w_scale) +
/// bias` in f32. The generic path (the kernels' oracle) gives these bits on every case.
#[test]
fn per_sample_generic_path_matches_a_plain_reference() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let mut rng = StdRng::seed_from_u64(41);
    for case in CASES {
        let (weight, bias, inputs) = case_operands_as::<B>(case, Scheme::Sample, &mut rng, &device);
        let [batch, c_in, height, width] = case.input;
        let [kh, kw] = case.kernel;
        let (c_out, groups) = (case.c_out, case.groups);
        let (cig, cog) = (c_in / groups, c_out / groups);
        let ((top, bottom), (left, right)) = case.padding;
        let [sy, sx] = case.stride;
        let [dy, dx] = case.dilation;
        let h_out = (height + top + bottom - dy * (kh - 1) - 1) / sy + 1;
        let w_out = (width + left + right - dx * (kw - 1) - 1) / sx + 1;
        let q_w = burn_int8_testkit::i8_of(weight.values.val());
        let w_scale = f32_of(weight.scale.val());
        let bias_values = f32_of(bias.clone());
        for input in inputs {
            let x = f32_of(input.clone());
            let image = c_in * height * width;
            let mut expected = vec![0f32; batch * c_out * h_out * w_out];
            for b in 0..batch {
                let values = &x[b * image..(b + 1) * image];
                let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = 127.0 / (amax + 1e-7);
                let q: Vec<i64> = values
                    .iter()
                    .map(|v| (v * scale).round_ties_even().clamp(-127.0, 127.0) as i64)
                    .collect();
                for o in 0..c_out {
                    let g = o / cog;
                    for oy in 0..h_out {
                        for ox in 0..w_out {
                            let mut acc = 0i64;
                            for c in 0..cig {
                                for i in 0..kh {
                                    for j in 0..kw {
                                        let y = (oy * sy + i * dy) as isize - top as isize;
                                        let xx = (ox * sx + j * dx) as isize - left as isize;
                                        if y < 0
                                            || xx < 0
                                            || y >= height as isize
                                            || xx >= width as isize
                                        {
                                            continue;
                                        }
                                        let input_at = ((g * cig + c) * height + y as usize)
                                            * width
                                            + xx as usize;
                                        let w_at = ((o * cig + c) * kh + i) * kw + j;
                                        acc += q[input_at] * q_w[w_at] as i64;
                                    }
                                }
                            }
                            expected[((b * c_out + o) * h_out + oy) * w_out + ox] =
                                acc as f32 / (scale * w_scale[o]) + bias_values[o];
                        }
                    }
                }
            }
            let generic =
                generic_quantized_conv2d(input, &weight, Some(bias.clone()), geometry(case));
            let differ = differing(&f32_of(generic), &expected);
            assert_eq!(
                differ,
                0,
                "{case:?}: {differ} of {} outputs differ",
                expected.len()
            );
        }
    }
}

/// `Scheme::Sample` goes where it is asked and to no layer that cannot hold it: a convolution
/// gets it, a depthwise one and a dense layer keep Keras's scheme (the report says which each
/// got), and the quantized convolution gives the generic path's bits through the seam.
#[test]
fn per_sample_scheme_goes_to_convolutions_only() {
    use burn::nn::PaddingConfig2d;
    use burn_int8::nn::LinearConfig;
    use burn_int8::nn::conv::Conv2dConfig;
    use burn_int8::{QuantizeConfig, QuantizeExt};
    type B = burn::backend::Flex;
    let device = Default::default();
    let config = QuantizeConfig::default().scheme(Scheme::Sample);
    let sample = Int8Format::new(Scheme::Sample, Rotation::None);

    let mut conv = Conv2dConfig::new([8, 16], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init::<B>(&device);
    let report = conv.quantize_with(&config).unwrap();
    assert_eq!(report.errors[0].format, sample);
    let int8 = conv.int8_layer().expect("quantized");
    assert_eq!(int8.weight.format(), sample);
    let x = Tensor::<B, 4>::random([3, 8, 11, 12], Distribution::Normal(0.0, 1.0), &device);
    let expected = generic_quantized_conv2d(
        x.clone(),
        &int8.weight,
        int8.bias.as_ref().map(|bias| bias.val()),
        ConvGeometry {
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
            padding: ((1, 1), (1, 1)),
        },
    );
    assert_eq!(differing(&f32_of(conv.forward(x)), &f32_of(expected)), 0);

    let mut depthwise = Conv2dConfig::new([8, 8], [3, 3])
        .with_groups(8)
        .init::<B>(&device);
    let report = depthwise.quantize_with(&config).unwrap();
    assert_eq!(report.errors[0].format, Int8Format::KERAS);
    let mut linear = LinearConfig::new(16, 4).init::<B>(&device);
    let report = linear.quantize_with(&config).unwrap();
    assert_eq!(report.errors[0].format, Int8Format::KERAS);
}

/// A NaN or an infinity anywhere in a sample declines `Scheme::Sample`'s direct kernel on every
/// level (the sample's scale would be NaN): the generic path runs.
#[test]
fn per_sample_kernel_declines_a_non_finite_sample() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let mut rng = StdRng::seed_from_u64(43);
    let case = &CASES[3];
    let (weight, _, [input, _]) = case_operands_as::<B>(case, Scheme::Sample, &mut rng, &device);
    let values = f32_of(input);
    let last = values.len() - 1;
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for index in [0, last / 2, last] {
            let mut values = values.clone();
            values[index] = value;
            let x = Tensor::<B, 4>::from_data(TensorData::new(values, case.input), &device);
            for &isa in &Isa::available() {
                assert!(
                    try_quantized_conv2d(isa, &x, &weight, None, geometry(case)).is_none(),
                    "{isa:?}: {value} at {index}"
                );
            }
        }
    }
}

/// `Scheme::Sample` under `Autodiff<Flex>`: the forward values are the per-sample result's bits
/// (the generic path on the inner backend), and the input and bias get Keras's straight-through
/// gradients, which do not depend on how the activations were scaled: those of the same int8
/// weight under Keras's scheme.
#[test]
fn per_sample_conv_under_autodiff_has_the_per_sample_values_and_keras_gradients() {
    use burn::nn::PaddingConfig2d;
    use burn_int8::QuantizedConv2d;
    type A = burn::backend::Autodiff<burn::backend::Flex>;
    let device = Default::default();
    let mut rng = StdRng::seed_from_u64(47);
    let case = &CASES[3];
    let (weight, bias, [input, _]) = case_operands_as::<A>(case, Scheme::Sample, &mut rng, &device);
    let layer = |weight: Int8Weight<A, 4>| QuantizedConv2d {
        weight,
        bias: Some(burn::module::Param::from_tensor(bias.clone())),
        stride: case.stride,
        kernel_size: case.kernel,
        dilation: case.dilation,
        groups: case.groups,
        padding: PaddingConfig2d::Explicit(1, 1, 1, 1),
    };
    let keras_weight = Int8Weight::from_parts_as(
        weight.values.val(),
        weight.scale.val(),
        0,
        Int8Format::KERAS,
    )
    .unwrap();
    let expected = generic_quantized_conv2d(
        input.clone().inner(),
        &Int8Weight::from_parts_as(
            weight.values.val().inner(),
            weight.scale.val().inner(),
            0,
            weight.format(),
        )
        .unwrap(),
        Some(bias.clone().inner()),
        geometry(case),
    );
    let gradients = |layer: QuantizedConv2d<A>| {
        let x = input.clone().require_grad();
        let y = layer.forward(x.clone());
        let values = f32_of(y.clone().inner());
        let grads = y.sum().backward();
        let bias = layer.bias.as_ref().expect("bias").val();
        (
            values,
            f32_of(x.grad(&grads).expect("input gradient")),
            f32_of(bias.grad(&grads).expect("bias gradient")),
        )
    };
    let (values, x_grad, bias_grad) = gradients(layer(weight));
    assert_eq!(differing(&values, &f32_of(expected)), 0, "forward values");
    let (_, keras_x_grad, keras_bias_grad) = gradients(layer(keras_weight));
    assert!(x_grad.iter().any(|&g| g != 0.0), "no input gradient");
    assert_eq!(differing(&x_grad, &keras_x_grad), 0, "input gradient");
    assert_eq!(differing(&bias_grad, &keras_bias_grad), 0, "bias gradient");
}
