//! `Quantize`: rewrite a whole model in place, like Keras's `model.quantize("int8")`.
//!
//! A model implements [`Quantize`] with `#[derive(Quantize)]`: the derive visits every field
//! whose type mentions the backend `B` (skip one with `#[quantize(skip)]`). The swappable
//! layers ([`crate::Linear`], [`crate::Embedding`], [`crate::Conv1d`], [`crate::Conv2d`]) turn
//! from `Float` into `Int8`; everything else (norms, activations) stays float.
//!
//! The [`QuantizeReport`] says, for every layer quantized, how much int8 changed its weight
//! ([`LayerError`]), worst layer first: the layers to keep float with [`QuantizeConfig::skip`].

use std::fmt;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn;
use burn::tensor::{Bool, Int, Tensor, backend::Backend};

use crate::Int8Error;
use crate::weight_error::{LayerError, WeightError};

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
    let mut ctx = QuantizeContext {
        config,
        mode,
        path: Vec::new(),
        report: QuantizeReport::default(),
    };
    candidate.visit_quantize(&mut ctx)?;
    let mut report = ctx.report;
    report.sort_errors();
    report.bytes_before = bytes_before;
    report.bytes_after = param_bytes::<B, M>(&candidate);
    *model = candidate;
    tracing::info!(%report, "{mode:?} done");
    Ok(report)
}

/// Which way the visit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quantize,
    Dequantize,
}

type SkipPredicate = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// What to quantize. By default every swappable layer.
#[derive(Default)]
pub struct QuantizeConfig {
    skip_paths: Vec<String>,
    skip_predicates: Vec<SkipPredicate>,
}

impl QuantizeConfig {
    /// Keeps float the layer at `path` (dot-separated field names, e.g. `"head"` or
    /// `"blocks.3.mlp"`) and everything under it.
    pub fn skip(mut self, path: impl Into<String>) -> Self {
        self.skip_paths.push(path.into());
        self
    }

    /// Keeps float every layer whose path satisfies `predicate`.
    pub fn skip_if(mut self, predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.skip_predicates.push(Box::new(predicate));
        self
    }

    fn skips(&self, path: &str) -> bool {
        let listed = self.skip_paths.iter().any(|skip| {
            path == skip
                || path
                    .strip_prefix(skip.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        });
        listed || self.skip_predicates.iter().any(|predicate| predicate(path))
    }
}

impl fmt::Debug for QuantizeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuantizeConfig")
            .field("skip_paths", &self.skip_paths)
            .field("skip_predicates", &self.skip_predicates.len())
            .finish()
    }
}

/// Why a layer was left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Named by [`QuantizeConfig::skip`] or [`QuantizeConfig::skip_if`].
    Config,
    /// Already int8: quantizing again would be a double quantization.
    AlreadyQuantized,
    /// A plain Burn layer (`nn::Linear`, ...) cannot change type in place.
    NotSwappable(&'static str),
    /// A float layer inside a module that does not implement [`Quantize`] (a `burn::nn` module
    /// such as `MultiHeadAttention`, or a user module without the derive): it is found by
    /// Burn's `ModuleVisitor` but cannot be reached to swap. `fix` says what to change.
    Unreachable {
        layer: &'static str,
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

/// What a quantize (or dequantize) call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantizeReport {
    /// `(path, layer kind)` of every layer that changed precision.
    pub changed: Vec<(String, &'static str)>,
    /// `(path, reason)` of every quantizable layer left as it was.
    pub skipped: Vec<(String, SkipReason)>,
    /// Parameter bytes of the whole model before and after (from dtypes and shapes).
    pub bytes_before: usize,
    pub bytes_after: usize,
    /// How much int8 changed each quantized layer's weight, worst first (lowest SQNR; NaN
    /// last). Empty after a dequantize. The layers at the top are the ones to keep float with
    /// [`QuantizeConfig::skip`] when the quantized model loses accuracy.
    ///
    /// Measured from the weights alone (no data), once, while quantizing: each layer's int8
    /// weight is dequantized into one transient float copy, compared with the float weight,
    /// and dropped. The quantized model computes nothing extra at run time.
    pub errors: Vec<LayerError>,
}

impl QuantizeReport {
    /// The `n` layers int8 changed the most (fewer when fewer were quantized).
    pub fn worst(&self, n: usize) -> &[LayerError] {
        &self.errors[..n.min(self.errors.len())]
    }

    /// Orders [`Self::errors`] worst first: ascending SQNR, NaN last, then the larger worst
    /// channel error first. Stable, so ties keep the visit order.
    fn sort_errors(&mut self) {
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
        for error in self.worst(WORST_SHOWN) {
            let path = if error.path.is_empty() {
                "(root)"
            } else {
                error.path.as_str()
            };
            write!(
                f,
                "\n  worst: {path} ({}): SQNR {:.1} dB, worst channel {} relative error {:.2}%",
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

/// State of one visit: the current module path, the config and the report being built.
pub struct QuantizeContext<'a> {
    config: &'a QuantizeConfig,
    mode: Mode,
    path: Vec<String>,
    report: QuantizeReport,
}

impl QuantizeContext<'_> {
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The dot-separated path of the module being visited.
    pub fn path(&self) -> String {
        self.path.join(".")
    }

    /// Visits `child` under the field name `name`.
    pub fn visit_child<B: Backend, T: Quantize<B> + ?Sized>(
        &mut self,
        name: &str,
        child: &mut T,
    ) -> Result<(), Int8Error> {
        self.path.push(name.to_string());
        let result = child.visit_quantize(self);
        self.path.pop();
        result
    }

    /// True when the current layer may be quantized; records a skip when the config names it.
    pub fn allows_quantize(&mut self) -> bool {
        let path = self.path();
        if self.config.skips(&path) {
            self.report.skipped.push((path, SkipReason::Config));
            return false;
        }
        true
    }

    /// Records how much quantizing the current layer (a `kind`) changed its weight; the
    /// swappable layers call it in [`Mode::Quantize`] only.
    pub(crate) fn record_error(&mut self, kind: &'static str, error: WeightError) {
        self.report.errors.push(LayerError {
            path: self.path(),
            kind,
            sqnr_db: error.sqnr_db,
            worst_channel_relative_error: error.worst_channel_relative_error,
            worst_channel: error.worst_channel,
        });
    }

    /// Tags an error with the current layer path.
    pub fn locate(&self, error: Int8Error) -> Int8Error {
        error.at_layer(&self.path())
    }

    /// Puts `replacement` (if any) into `slot` and records what happened.
    pub fn swap<T>(
        &mut self,
        slot: &mut T,
        replacement: Option<T>,
        was_quantized: bool,
        kind: &'static str,
    ) {
        match replacement {
            Some(layer) => {
                *slot = layer;
                self.report.changed.push((self.path(), kind));
            }
            None if self.mode == Mode::Quantize && was_quantized => {
                tracing::info!(path = %self.path(), "already int8: skipped");
                self.report
                    .skipped
                    .push((self.path(), SkipReason::AlreadyQuantized));
            }
            None => {}
        }
    }

    /// Visits `child`, a module without a [`Quantize`] impl, under the field name `name`: Burn's
    /// `ModuleVisitor` finds the float layers inside, and each is reported as
    /// [`SkipReason::Unreachable`] with the fix. The derive calls this for such fields.
    pub fn visit_unquantizable<B: Backend, T: Module<B>>(&mut self, name: &str, child: &T) {
        if self.mode != Mode::Quantize {
            return;
        }
        self.path.push(name.to_string());
        let mut finder = FloatLayerFinder {
            stack: Vec::new(),
            found: Vec::new(),
        };
        child.visit(&mut finder);
        let outer = short_type_name(std::any::type_name::<T>());
        for (inner_path, layer, inside) in finder.found {
            let path = [self.path(), inner_path]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(".");
            let inside = if inside.is_empty() {
                outer.clone()
            } else {
                inside
            };
            let fix = match counterpart(&outer).or_else(|| counterpart(&inside)) {
                Some(ours) => format!("use burn_int8::nn::{ours}"),
                None => format!("derive Quantize for {inside} and use burn_int8::nn layers in it"),
            };
            tracing::warn!(%path, "{layer} inside {inside} stays float; {fix}");
            self.report
                .skipped
                .push((path, SkipReason::Unreachable { layer, inside, fix }));
        }
        self.path.pop();
    }

    /// Records a plain Burn layer that cannot be swapped.
    pub fn not_swappable(&mut self, kind: &'static str) {
        if self.mode == Mode::Quantize {
            tracing::warn!(path = %self.path(), "{kind} is a plain Burn layer and stays float; use burn_int8::{kind}");
            self.report
                .skipped
                .push((self.path(), SkipReason::NotSwappable(kind)));
        }
    }
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

/// Finds float `Linear`/`Embedding`/`Conv` weights in any module, with their paths and the
/// struct that holds each layer.
struct FloatLayerFinder {
    /// `(field name, type of the struct that has the field)` from the root down.
    stack: Vec<(String, String)>,
    /// `(layer path, layer kind, owner struct)`.
    found: Vec<(String, &'static str, String)>,
}

impl<B: Backend> ModuleVisitor<B> for FloatLayerFinder {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<B, D>>) {
        let Some((field, container)) = self.stack.last() else {
            return;
        };
        let layer = match (field.as_str(), container.as_str()) {
            ("weight", "Struct:Linear") => "Linear",
            ("weight", "Struct:Embedding") => "Embedding",
            ("weight", "Struct:Conv1d") => "Conv1d",
            ("weight", "Struct:Conv2d") => "Conv2d",
            _ => return,
        };
        let layer_path = &self.stack[..self.stack.len() - 1];
        let path = layer_path
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        // The struct holding the layer: the nearest enclosing struct above it.
        let inside = layer_path
            .iter()
            .rev()
            .find_map(|(_, container)| container.strip_prefix("Struct:"))
            .unwrap_or_default()
            .to_string();
        self.found.push((path, layer, inside));
    }
}

/// `burn_nn::modules::attention::mha::MultiHeadAttention<B>` → `MultiHeadAttention`; a
/// container (`Vec<X>`, `Option<X>`) gives its element's name.
fn short_type_name(full: &str) -> String {
    let mut name = full;
    while let Some(inner) = ["alloc::vec::Vec<", "core::option::Option<"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
    {
        name = inner.strip_suffix('>').unwrap_or(inner);
    }
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::").next().unwrap_or(base).to_string()
}

/// This crate's counterpart of a `burn::nn` module, as a path under `burn_int8::nn`.
fn counterpart(module: &str) -> Option<String> {
    const TRANSFORMER: [&str; 5] = [
        "TransformerEncoder",
        "TransformerEncoderLayer",
        "TransformerDecoder",
        "TransformerDecoderLayer",
        "PositionWiseFeedForward",
    ];
    const ROOT: [&str; 6] = ["Lstm", "BiLstm", "Gru", "BiGru", "GateController", "SwiGlu"];
    if module == "MultiHeadAttention" {
        Some("attention::MultiHeadAttention".into())
    } else if TRANSFORMER.contains(&module) {
        Some(format!("transformer::{module}"))
    } else if ROOT.contains(&module) {
        Some(module.into())
    } else {
        None
    }
}

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
    ($($ty:ty => $kind:literal),* $(,)?) => {$(
        impl<B: Backend> Quantize<B> for $ty {
            fn visit_quantize(&mut self, ctx: &mut QuantizeContext<'_>) -> Result<(), Int8Error> {
                ctx.not_swappable($kind);
                Ok(())
            }
        }
    )*};
}

not_swappable!(
    nn::Linear<B> => "Linear",
    nn::Embedding<B> => "Embedding",
    nn::conv::Conv1d<B> => "Conv1d",
    nn::conv::Conv2d<B> => "Conv2d",
);

// ---- The swappable float-or-int8 layers -------------------------------------------------

/// Implements `From<float layer>`, `is_quantized` and [`Quantize`] for a `Float`/`Int8` enum
/// whose int8 type has `from_float` and `dequantize`, and whose float layer has a `weight`
/// quantized with one scale per entry of `channel_axis` (as the int8 type's `from_float` calls
/// `quantize_per_channel`). Quantizing records the weight's error in the report
/// ([`crate::LayerError`]), through one transient dequantized copy of the weight.
macro_rules! swappable_layer {
    ($enum:ident, $int8:ident, $float:ty, channel_axis = $axis:expr) => {
        impl<B: burn::tensor::backend::Backend> $enum<B> {
            /// True once the layer holds int8 weights.
            pub fn is_quantized(&self) -> bool {
                matches!(self, $enum::Int8(_))
            }
        }

        impl<B: burn::tensor::backend::Backend> From<$float> for $enum<B> {
            fn from(layer: $float) -> Self {
                $enum::Float(layer)
            }
        }

        impl<B: burn::tensor::backend::Backend> crate::Quantize<B> for $enum<B> {
            fn visit_quantize(
                &mut self,
                ctx: &mut crate::QuantizeContext<'_>,
            ) -> Result<(), crate::Int8Error> {
                use crate::Mode;
                let swapped = match (ctx.mode(), &*self) {
                    (Mode::Quantize, $enum::Float(layer)) if ctx.allows_quantize() => {
                        let int8 = $int8::from_float(layer).map_err(|e| ctx.locate(e))?;
                        let error = crate::weight_error::weight_error(
                            layer.weight.val(),
                            int8.dequantize().weight.val(),
                            $axis,
                        );
                        ctx.record_error(stringify!($enum), error);
                        Some($enum::Int8(int8))
                    }
                    (Mode::Dequantize, $enum::Int8(layer)) => {
                        Some($enum::Float(layer.dequantize()))
                    }
                    _ => None,
                };
                let was_quantized = self.is_quantized();
                ctx.swap(self, swapped, was_quantized, stringify!($enum));
                Ok(())
            }
        }
    };
}
pub(crate) use swappable_layer;
