//! `burn_int8::nn::pool::{MaxPool1d, MaxPool2d}` against Burn's own modules, bit for bit:
//! flex's direct kernel on every instruction set this CPU runs, and the layers on flex,
//! ndarray and wgpu (lavapipe). Cases: ResNet's 3×3/2 with padding 1, 2×2/2, stride 1,
//! dilation, `Same` with an even kernel (asymmetric `-inf` padding), ceil mode (windows past
//! the image), maps narrower than the window, batches; inputs with NaN, ±0 and ±inf placed
//! where the first tap of a window, a later tap and ties decide the result.

use burn::nn::pool as burn_pool;
use burn::nn::{PaddingConfig1d, PaddingConfig2d};
use burn::tensor::{Distribution, Tensor, TensorData, backend::Backend};
use burn_int8::kernels::cpu::{Isa, try_max_pool2d};
use burn_int8::nn::pool::{MaxPool1dConfig, MaxPool2d, MaxPool2dConfig};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::common::f32_of;
use crate::conv_kernels::differing;

/// `(input, kernel, stride, padding, dilation, ceil_mode)`.
type Case = (
    [usize; 4],
    [usize; 2],
    [usize; 2],
    PaddingConfig2d,
    [usize; 2],
    bool,
);

fn cases() -> Vec<Case> {
    use PaddingConfig2d::{Explicit, Same, Valid};
    vec![
        (
            [1, 8, 112, 112],
            [3, 3],
            [2, 2],
            Explicit(1, 1, 1, 1),
            [1, 1],
            false,
        ),
        ([2, 3, 13, 13], [2, 2], [2, 2], Valid, [1, 1], false),
        ([2, 3, 13, 13], [2, 2], [2, 2], Valid, [1, 1], true),
        ([1, 4, 17, 23], [3, 3], [1, 1], Same, [1, 1], false),
        ([1, 4, 17, 23], [2, 2], [1, 1], Same, [1, 1], false),
        ([1, 2, 9, 40], [4, 3], [3, 2], Same, [1, 1], true),
        (
            [1, 3, 20, 37],
            [3, 3],
            [2, 3],
            Explicit(1, 0, 1, 1),
            [2, 2],
            false,
        ),
        (
            [3, 2, 11, 19],
            [3, 5],
            [2, 2],
            Explicit(1, 2, 0, 1),
            [1, 1],
            true,
        ),
        (
            [1, 2, 5, 6],
            [3, 3],
            [1, 1],
            Explicit(1, 1, 1, 1),
            [2, 3],
            false,
        ),
        (
            [2, 2, 2, 3],
            [3, 3],
            [2, 2],
            Explicit(1, 1, 1, 1),
            [1, 1],
            true,
        ),
        ([1, 5, 1, 1], [2, 2], [1, 1], Same, [1, 1], false),
        ([1, 1, 7, 70], [5, 5], [4, 4], Valid, [1, 1], true),
        // A 1-D pool as `MaxPool1d` runs it: one row, a `[1, k]` window.
        (
            [2, 3, 1, 50],
            [1, 3],
            [1, 2],
            Explicit(0, 1, 0, 1),
            [1, 1],
            false,
        ),
        (
            [1, 2, 1, 17],
            [1, 3],
            [1, 2],
            Explicit(0, 2, 0, 0),
            [1, 2],
            true,
        ),
    ]
}

/// Values from `{NaN, ±0, ±inf, a few small integers}` (so ties are common) mixed into a
/// normal draw: one in four elements special.
fn special_input<B: Backend>(
    dims: [usize; 4],
    rng: &mut StdRng,
    device: &B::Device,
) -> Tensor<B, 4> {
    let specials = [
        f32::NAN,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1.0,
        -1.0,
        2.0,
    ];
    let count = dims.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| {
            if rng.random_range(0..4) == 0 {
                specials[rng.random_range(0..specials.len())]
            } else {
                rng.random_range(-3.0f32..3.0)
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}

fn pools(case: &Case) -> (burn_pool::MaxPool2d, MaxPool2d) {
    let (_, kernel, stride, padding, dilation, ceil) = case.clone();
    let config = MaxPool2dConfig::new(kernel)
        .with_strides(stride)
        .with_padding(padding)
        .with_dilation(dilation)
        .with_ceil_mode(ceil);
    (
        burn_pool::MaxPool2dConfig::from(&config).init(),
        config.init(),
    )
}

/// `(input [batch, channels, length], kernel, stride, padding, dilation, ceil_mode)`.
type Case1d = ([usize; 3], usize, usize, PaddingConfig1d, usize, bool);

fn cases_1d() -> Vec<Case1d> {
    use PaddingConfig1d::{Explicit, Same, Valid};
    vec![
        ([2, 3, 50], 3, 2, Explicit(1, 1), 1, false),
        ([1, 4, 33], 2, 2, Valid, 1, true),
        ([1, 2, 40], 4, 1, Same, 1, false),
        ([3, 2, 17], 3, 2, Explicit(2, 0), 2, true),
        // Burn's ndarray and wgpu pools panic on a window longer than the padded input (flex
        // gives one output, `-inf` where no tap is inside): this one only reaches past it.
        ([1, 1, 4], 3, 3, Explicit(1, 1), 1, true),
    ]
}

/// The layers on backend `B` give Burn's modules' bits on `B`.
fn layer_matches_burn<B: Backend>(device: &B::Device) {
    let mut rng = StdRng::seed_from_u64(35);
    for case in cases_1d() {
        let (dims, kernel, stride, padding, dilation, ceil) = case.clone();
        let config = MaxPool1dConfig::new(kernel)
            .with_stride(stride)
            .with_padding(padding)
            .with_dilation(dilation)
            .with_ceil_mode(ceil);
        let burn = burn_pool::MaxPool1dConfig::from(&config).init();
        let ours = config.init();
        let [batch, channels, length] = dims;
        let input =
            special_input::<B>([batch, channels, 1, length], &mut rng, device).reshape(dims);
        let expected = burn.forward(input.clone());
        let actual = ours.forward(input);
        assert_eq!(actual.dims(), expected.dims(), "{case:?}");
        let (actual, expected) = (f32_of(actual), f32_of(expected));
        assert_eq!(differing(&actual, &expected), 0, "{case:?}");
    }
    for case in cases() {
        let (burn, ours) = pools(&case);
        let normal = Tensor::<B, 4>::random(case.0, Distribution::Normal(0.0, 1.0), device);
        for input in [normal, special_input::<B>(case.0, &mut rng, device)] {
            let expected = burn.forward(input.clone());
            let actual = ours.forward(input);
            assert_eq!(actual.dims(), expected.dims(), "{case:?}");
            let (actual, expected) = (f32_of(actual), f32_of(expected));
            assert_eq!(differing(&actual, &expected), 0, "{case:?}");
        }
    }
}

#[test]
fn max_pool_layer_gives_burns_bits_on_flex() {
    layer_matches_burn::<burn::backend::Flex>(&Default::default());
}

#[test]
fn max_pool_layer_gives_burns_bits_on_ndarray() {
    layer_matches_burn::<burn::backend::NdArray>(&Default::default());
}

#[test]
fn max_pool_layer_gives_burns_bits_on_wgpu() {
    layer_matches_burn::<burn::backend::Vulkan>(&Default::default());
}

/// Flex's direct kernel on every level this CPU runs, against Burn's module, including a
/// transposed (not dense) input, which the kernel declines.
#[test]
fn direct_max_pool_matches_flex_on_every_isa() {
    type B = burn::backend::Flex;
    let device = Default::default();
    let levels = Isa::available();
    let mut rng = StdRng::seed_from_u64(36);
    // Windows longer than the padded input (ceil mode): flex alone pools them.
    let longer_than_input = [
        (
            [1, 2, 2, 2],
            [3, 3],
            [2, 2],
            PaddingConfig2d::Valid,
            [1, 1],
            true,
        ),
        (
            [1, 1, 1, 2],
            [1, 5],
            [1, 3],
            PaddingConfig2d::Explicit(0, 1, 0, 1),
            [1, 1],
            true,
        ),
    ];
    for case in cases().into_iter().chain(longer_than_input) {
        let (burn, _) = pools(&case);
        let (dims, kernel, stride, padding, dilation, ceil) = case.clone();
        let [_, _, height, width] = dims;
        let pairs = padding_pairs(&padding, [height, width], kernel, stride);
        let input = special_input::<B>(dims, &mut rng, &device);
        let expected = f32_of(burn.forward(input.clone()));
        for &isa in &levels {
            let direct = try_max_pool2d(isa, &input, kernel, stride, pairs, dilation, ceil)
                .unwrap_or_else(|| panic!("{isa:?} declined {case:?}"));
            let differ = differing(&f32_of(direct), &expected);
            assert_eq!(differ, 0, "{isa:?} {case:?}: {differ} outputs differ");
        }
    }
    let transposed =
        Tensor::<B, 4>::random([1, 2, 6, 6], Distribution::Default, &device).swap_dims(2, 3);
    let pairs = ((0, 0), (0, 0));
    assert!(
        try_max_pool2d(
            Isa::detect(),
            &transposed,
            [2, 2],
            [2, 2],
            pairs,
            [1, 1],
            false
        )
        .is_none()
    );
}

/// Burn's padding rule, written out again here as the test's own expectation.
fn padding_pairs(
    padding: &PaddingConfig2d,
    [height, width]: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> ((usize, usize), (usize, usize)) {
    let same = |size: usize, kernel: usize, stride: usize| {
        let total = ((size.div_ceil(stride) - 1) * stride + kernel).saturating_sub(size);
        (total / 2, total - total / 2)
    };
    match *padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (
            same(height, kernel[0], stride[0]),
            same(width, kernel[1], stride[1]),
        ),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
    }
}

/// Under `Autodiff<Flex>` the layer is Burn's op (the kernel has no backward): the same output
/// and the same input gradient as Burn's module.
#[test]
fn max_pool_layer_gives_burns_gradients_under_autodiff() {
    type B = burn::backend::Autodiff<burn::backend::Flex>;
    let device = Default::default();
    let mut rng = StdRng::seed_from_u64(37);
    for case in cases() {
        let (burn, ours) = pools(&case);
        let values = special_input::<burn::backend::Flex>(case.0, &mut rng, &device)
            .into_data()
            .convert::<f32>();
        // Gradients through NaN/inf are NaN either way; finite values keep the test readable.
        let finite: Vec<f32> = values
            .iter::<f32>()
            .map(|v| if v.is_finite() { v } else { 0.5 })
            .collect();
        let run = |pool: &dyn Fn(Tensor<B, 4>) -> Tensor<B, 4>| {
            let input = Tensor::<B, 4>::from_data(TensorData::new(finite.clone(), case.0), &device)
                .require_grad();
            let output = pool(input.clone());
            let grads = (output.clone() * output.clone()).sum().backward();
            let grad = input.grad(&grads).expect("input gradient");
            (f32_of(output.inner()), f32_of(grad))
        };
        let (expected, expected_grad) = run(&|x| burn.forward(x));
        let (actual, actual_grad) = run(&|x| ours.forward(x));
        assert_eq!(differing(&actual, &expected), 0, "{case:?}");
        assert_eq!(differing(&actual_grad, &expected_grad), 0, "{case:?}");
    }
}
