//! ResNet-18 at 224×224 with its BatchNorms folded into the convolutions (as exporters do, and
//! as the ONNX Runtime side of `benches/ort_resnet18.py` builds it): conv 7×7/2, max pool,
//! four stages of two basic blocks (64, 128, 256, 512 channels; a 1×1/2 shortcut where the
//! shape changes), global average pool, a 1000-way linear head. Random weights: for speed only.
//! Written with `burn_int8::nn` (its `MaxPool2d` has a direct kernel on flex);
//! [`ResNet18::forward_burn_pool`] runs the same model with Burn's own max pool.

use burn::module::Module;
use burn::nn::{PaddingConfig2d, Relu};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn_int8::Quantize;
use burn_int8::nn::conv::{Conv2d, Conv2dConfig};
use burn_int8::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn_int8::nn::{Linear, LinearConfig};

fn conv<B: Backend>(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let padding = kernel / 2;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .init(device)
}

/// Two 3×3 convolutions and the residual (through a 1×1/2 convolution when the shape changes).
#[derive(Module, Debug, Quantize)]
pub struct BasicBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
    pub shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> BasicBlock<B> {
    pub fn new(c_in: usize, c_out: usize, stride: usize, device: &B::Device) -> Self {
        Self {
            conv1: conv([c_in, c_out], 3, stride, device),
            conv2: conv([c_out, c_out], 3, 1, device),
            shortcut: (stride != 1 || c_in != c_out)
                .then(|| conv([c_in, c_out], 1, stride, device)),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = relu(self.conv1.forward(x.clone()));
        let y = self.conv2.forward(y);
        let residual = match &self.shortcut {
            Some(shortcut) => shortcut.forward(x),
            None => x,
        };
        relu(y + residual)
    }
}

#[derive(Module, Debug, Quantize)]
pub struct ResNet18<B: Backend> {
    pub stem: Conv2d<B>,
    pub blocks: Vec<BasicBlock<B>>,
    pub head: Linear<B>,
    pub pool: MaxPool2d,
    pub average: AdaptiveAvgPool2d,
    pub relu: Relu,
}

impl<B: Backend> ResNet18<B> {
    pub fn new(device: &B::Device) -> Self {
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (stage, c_out) in [64, 128, 256, 512].into_iter().enumerate() {
            let stride = if stage == 0 { 1 } else { 2 };
            blocks.push(BasicBlock::new(c_in, c_out, stride, device));
            blocks.push(BasicBlock::new(c_out, c_out, 1, device));
            c_in = c_out;
        }
        Self {
            stem: conv([3, 64], 7, 2, device),
            blocks,
            head: LinearConfig::new(512, 1000).init(device),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            average: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            relu: Relu::new(),
        }
    }

    /// `[batch, 3, 224, 224]` to logits `[batch, 1000]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_pooled(images, |x| self.pool.forward(x))
    }

    /// [`Self::forward`] with Burn's own `MaxPool2d` (the same configuration and bits): the
    /// model as a plain Burn user writes it.
    pub fn forward_burn_pool(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let pool = burn::nn::pool::MaxPool2d {
            stride: self.pool.stride,
            kernel_size: self.pool.kernel_size,
            padding: self.pool.padding.clone(),
            dilation: self.pool.dilation,
            ceil_mode: self.pool.ceil_mode,
        };
        self.forward_pooled(images, |x| pool.forward(x))
    }

    fn forward_pooled(
        &self,
        images: Tensor<B, 4>,
        pool: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Tensor<B, 2> {
        let [batch, _, _, _] = images.dims();
        let mut x = pool(self.relu.forward(self.stem.forward(images)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.average.forward(x).reshape([batch, 512]);
        self.head.forward(x)
    }
}

/// Every distinct convolution of ResNet-18 at 224×224: `(name, c_in, c_out, kernel, stride,
/// input size)`.
pub const RESNET18_CONVS: [(&str, usize, usize, usize, usize, usize); 11] = [
    ("stem_7x7s2", 3, 64, 7, 2, 224),
    ("l1_3x3", 64, 64, 3, 1, 56),
    ("l2_3x3s2", 64, 128, 3, 2, 56),
    ("l2_3x3", 128, 128, 3, 1, 28),
    ("l2_1x1s2", 64, 128, 1, 2, 56),
    ("l3_3x3s2", 128, 256, 3, 2, 28),
    ("l3_3x3", 256, 256, 3, 1, 14),
    ("l3_1x1s2", 128, 256, 1, 2, 28),
    ("l4_3x3s2", 256, 512, 3, 2, 14),
    ("l4_3x3", 512, 512, 3, 1, 7),
    ("l4_1x1s2", 256, 512, 1, 2, 14),
];
