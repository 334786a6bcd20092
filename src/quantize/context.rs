//! [`QuantizeContext`]: the state of one visit, which every [`Quantize`] impl is handed.

use burn::module::Module;
use burn::tensor::backend::Backend;

use super::report::WeightError;
use super::{LayerError, LayerKind, Mode, Quantize, QuantizeConfig, QuantizeReport, SkipReason};
use crate::Int8Error;

/// State of one visit: the current module path, the config and the report being built.
pub struct QuantizeContext<'a> {
    config: &'a QuantizeConfig,
    mode: Mode,
    path: Vec<String>,
    report: QuantizeReport,
    /// The path of every layer visited (swappable or not), to check the config's skip list.
    layers: Vec<String>,
}

impl<'a> QuantizeContext<'a> {
    pub(super) fn new(config: &'a QuantizeConfig, mode: Mode) -> Self {
        Self {
            config,
            mode,
            path: Vec::new(),
            report: QuantizeReport::default(),
            layers: Vec::new(),
        }
    }

    pub(super) fn into_report(self) -> QuantizeReport {
        self.report
    }

    /// The path of every layer the visit met.
    pub(super) fn layers(&self) -> &[String] {
        &self.layers
    }
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

    /// The int8 format the config asks for the current layer.
    pub fn format(&self) -> crate::Int8Format {
        self.config.format_at(&self.path())
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
    pub(crate) fn record_error(
        &mut self,
        kind: LayerKind,
        format: crate::Int8Format,
        bytes: usize,
        error: WeightError,
    ) {
        self.report.errors.push(LayerError {
            path: self.path(),
            kind,
            format,
            bytes,
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
        kind: LayerKind,
    ) {
        self.layers.push(self.path());
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
        for (inner_path, reason) in super::visitor::unreachable_layers::<B, T>(child) {
            let path = [self.path(), inner_path]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(".");
            if let SkipReason::Unreachable { layer, inside, fix } = &reason {
                tracing::warn!(%path, "{layer} inside {inside} stays float; {fix}");
            }
            self.layers.push(path.clone());
            self.report.skipped.push((path, reason));
        }
        self.path.pop();
    }

    /// Records a plain Burn layer that cannot be swapped.
    pub fn not_swappable(&mut self, kind: LayerKind) {
        self.layers.push(self.path());
        if self.mode == Mode::Quantize {
            tracing::warn!(path = %self.path(), "{kind} is a plain Burn layer and stays float; use burn_int8::{kind}");
            self.report
                .skipped
                .push((self.path(), SkipReason::NotSwappable(kind)));
        }
    }
}
