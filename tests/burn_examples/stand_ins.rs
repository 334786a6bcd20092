//! What Burn's example models import from the rest of their example crates: the batch types
//! of their `data` modules, and the four items of `burn::train` they name (Burn's `train`
//! feature pulls in burn-train, its dataset and TUI dependencies; this crate's tests only need
//! the types to exist). Same names, fields and signatures as Burn v0.21.0.

use burn::prelude::*;

/// `examples/mnist/src/data.rs`.
#[derive(Clone, Debug)]
pub struct MnistBatch<B: Backend> {
    pub images: Tensor<B, 3>,
    pub targets: Tensor<B, 1, Int>,
}

/// `examples/text-classification/src/data/batcher.rs`.
#[derive(Debug, Clone)]
pub struct TextClassificationTrainingBatch<B: Backend> {
    pub tokens: Tensor<B, 2, Int>,
    pub labels: Tensor<B, 1, Int>,
    pub mask_pad: Tensor<B, 2, Bool>,
}

/// `examples/text-classification/src/data/batcher.rs`.
#[derive(Debug, Clone)]
pub struct TextClassificationInferenceBatch<B: Backend> {
    pub tokens: Tensor<B, 2, Int>,
    pub mask_pad: Tensor<B, 2, Bool>,
}

/// `burn::train`'s items that the example models name.
pub mod train {
    use burn::module::AutodiffModule;
    use burn::optim::GradientsParams;
    use burn::prelude::*;
    use burn::tensor::backend::AutodiffBackend;

    pub struct ClassificationOutput<B: Backend> {
        pub loss: Tensor<B, 1>,
        pub output: Tensor<B, 2>,
        pub targets: Tensor<B, 1, Int>,
    }

    pub struct TrainOutput<T> {
        pub grads: GradientsParams,
        pub item: T,
    }

    impl<T> TrainOutput<T> {
        pub fn new<B: AutodiffBackend, M: AutodiffModule<B>>(
            module: &M,
            grads: B::Gradients,
            item: T,
        ) -> Self {
            Self {
                grads: GradientsParams::from_grads(grads, module),
                item,
            }
        }
    }

    pub trait TrainStep {
        type Input;
        type Output;
        fn step(&self, item: Self::Input) -> TrainOutput<Self::Output>;
    }

    pub trait InferenceStep {
        type Input;
        type Output;
        fn step(&self, item: Self::Input) -> Self::Output;
    }
}
