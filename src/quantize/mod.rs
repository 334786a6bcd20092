//! `Quantize`: rewrite a whole model in place, like Keras's `model.quantize("int8")`.
//!
//! A model implements [`Quantize`] with `#[derive(Quantize)]`: the derive visits every field
//! whose type mentions the backend `B` (skip one with `#[quantize(skip)]`). The swappable
//! layers ([`crate::Linear`], [`crate::Embedding`], [`crate::Conv1d`], [`crate::Conv2d`]) turn
//! from `Float` into `Int8`; everything else (norms, activations) stays float.
//!
//! The [`QuantizeReport`] says, for every layer quantized, how much int8 changed its weight
//! ([`LayerError`]), worst layer first: the layers to keep float with [`QuantizeConfig::skip`].
//!
//! - this file: the traits and the run (all or nothing), and [`param_bytes`];
//! - `config`: [`QuantizeConfig`] and [`Mode`]; `context`: [`QuantizeContext`], the state of
//!   one visit; `report`: [`QuantizeReport`] and its parts; `layer_kind`: [`LayerKind`];
//! - `measure`: how much int8 changed a weight; `visitor`: the float layers inside modules
//!   without a `Quantize` impl; `burn_impls`: `Quantize` for Burn's own types;
//! - `macros`: `swappable_layer!`, the impl the swappable layers share; `derive_support`: what the
//!   derive expands to (public as `burn_int8::__derive`).

mod burn_impls;
mod config;
mod context;
pub mod derive_support;
mod layer_kind;
mod macros;
pub(crate) mod measure;
mod report;
mod visitor;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bool, Int, Tensor, backend::Backend};

use crate::Int8Error;

pub use config::{Mode, QuantizeConfig};
pub use context::QuantizeContext;
pub use layer_kind::LayerKind;
pub(crate) use macros::swappable_layer;
pub use report::{LayerError, QuantizeReport, SkipReason};

/// Implemented by every module that can hold swappable layers.
pub trait Quantize<B: Backend> {
    /// Visits this module's quantizable layers, quantizing or dequantizing them per `ctx.mode()`.
    fn visit_quantize(&mut self, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error>;
}

/// The one-call API, for every module that implements [`Quantize`].
pub trait QuantizeExt<B: Backend>: Quantize<B> + Module<B> {
    /// Quantizes every swappable layer to int8, in place, like Keras's `model.quantize("int8")`.
    ///
    /// All or nothing: on an error (a NaN weight, say) the model is left exactly as it was.
    /// A [`QuantizeConfig::skip`] path that names no layer of the model (a typo, an empty
    /// string, a `*` pattern that matches nothing) is [`Int8Error::UnknownSkip`], listing the closest paths.
    /// Layers that are already int8 are skipped and reported, never quantized twice.
    fn quantize_with(&mut self, config: &QuantizeConfig) -> Result<QuantizeReport, Int8Error> {
        run(self, config, Mode::Quantize)
    }

    /// [`Self::quantize_with`] with the default config (quantize every swappable layer).
    fn quantize_int8(&mut self) -> Result<QuantizeReport, Int8Error> {
        self.quantize_with(&QuantizeConfig::default())
    }

    /// Turns every int8 layer back into a float layer (`q / scale`). Keras has no equivalent.
    fn dequantize(&mut self) -> Result<QuantizeReport, Int8Error> {
        run(self, &QuantizeConfig::default(), Mode::Dequantize)
    }
}

impl<B: Backend, M: Quantize<B> + Module<B>> QuantizeExt<B> for M {}

fn run<B: Backend, M: Quantize<B> + Module<B>>(
    model: &mut M,
    config: &QuantizeConfig,
    mode: Mode,
) -> Result<QuantizeReport, Int8Error> {
    let bytes_before = param_bytes::<B, M>(model);
    // Work on a clone (tensors are shared, so this is cheap) and commit only on success.
    let mut candidate = model.clone();
    let mut ctx = QuantizeContext::new(config, mode);
    candidate.visit_quantize(&mut ctx)?;
    if mode == Mode::Quantize
        && let Some(skip) = config.unmatched_skips(ctx.layers()).first()
    {
        return Err(Int8Error::UnknownSkip {
            path: skip.to_string(),
            closest: config::closest_paths(skip, ctx.layers(), 3),
        });
    }
    if mode == Mode::Quantize
        && let Some(path) = config.unmatched_scheme_paths(ctx.layers()).first()
    {
        return Err(Int8Error::UnknownSchemePath {
            path: path.to_string(),
            closest: config::closest_paths(path, ctx.layers(), 3),
        });
    }
    let mut report = ctx.into_report();
    report.sort_errors();
    report.bytes_before = bytes_before;
    report.bytes_after = param_bytes::<B, M>(&candidate);
    *model = candidate;
    tracing::info!(%report, "{mode:?} done");
    Ok(report)
}

/// Bytes held by every parameter of `module`, from dtypes and shapes (int8 counts 1 byte).
pub fn param_bytes<B: Backend, M: Module<B>>(module: &M) -> usize {
    struct Counter(usize);
    impl<B: Backend> ModuleVisitor<B> for Counter {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            self.0 += value.shape().num_elements() * value.dtype().size();
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
            let value = param.val();
            self.0 += value.shape().num_elements() * value.dtype().size();
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
            let value = param.val();
            self.0 += value.shape().num_elements() * value.dtype().size();
        }
    }
    let mut counter = Counter(0);
    module.visit(&mut counter);
    counter.0
}
