//! [`Quantize`] for Burn's own types, so a derived model may hold them: containers visit their
//! elements, float modules stay float, and plain Burn layers are reported (they cannot become
//! int8 in place).

use burn::module::Param;
use burn::nn;
use burn::tensor::{Tensor, backend::Backend};

use super::{LayerKind, Quantize, QuantizeContext};
use crate::Int8Error;

// ---- Containers -------------------------------------------------------------------------

impl<B: Backend, T: Quantize<B>> Quantize<B> for Option<T> {
    fn visit_quantize(&mut self, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
        match self {
            Some(inner) => inner.visit_quantize(ctx),
            None => Ok(()),
        }
    }
}

impl<B: Backend, T: Quantize<B>> Quantize<B> for Vec<T> {
    fn visit_quantize(&mut self, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
        for (index, item) in self.iter_mut().enumerate() {
            ctx.visit_child(&index.to_string(), item)?;
        }
        Ok(())
    }
}

// ---- Modules that stay float ------------------------------------------------------------

macro_rules! stays_float {
    ($($ty:ty),* $(,)?) => {$(
        impl<B: Backend> Quantize<B> for $ty {
            fn visit_quantize(&mut self, _ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
                Ok(())
            }
        }
    )*};
}

stays_float!(
    nn::LayerNorm<B>,
    nn::RmsNorm<B>,
    nn::BatchNorm<B>,
    nn::GroupNorm<B>,
    nn::InstanceNorm<B>,
    nn::PRelu<B>,
    nn::RotaryEncoding<B>,
    nn::PositionalEncoding<B>,
);

impl<B: Backend, const D: usize> Quantize<B> for Param<Tensor<B, D>> {
    fn visit_quantize(&mut self, _ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
        Ok(())
    }
}

impl<B: Backend, const D: usize> Quantize<B> for Tensor<B, D> {
    fn visit_quantize(&mut self, _ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
        Ok(())
    }
}

// ---- Plain Burn layers: reported, since they cannot become int8 in place ----------------

macro_rules! not_swappable {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        impl<B: Backend> Quantize<B> for $ty {
            fn visit_quantize(&mut self, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
                ctx.not_swappable(LayerKind::$kind);
                Ok(())
            }
        }
    )*};
}

not_swappable!(
    nn::Linear<B> => Linear,
    nn::Embedding<B> => Embedding,
    nn::conv::Conv1d<B> => Conv1d,
    nn::conv::Conv2d<B> => Conv2d,
);
