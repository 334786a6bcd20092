//! What a quantize call does: [`Mode`] (which way) and [`QuantizeConfig`] (which layers).

use std::fmt;

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

    /// True when the layer at `path` is to stay float.
    pub(super) fn skips(&self, path: &str) -> bool {
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
