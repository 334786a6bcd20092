//! What a quantize call does: [`Mode`] (which way) and [`QuantizeConfig`] (which layers, in
//! which [`Int8Format`]).

use std::fmt;

use crate::{Int8Format, Rotation, Scheme};

/// Which way the visit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quantize,
    Dequantize,
}

type SkipPredicate = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// What to quantize, and how. By default every swappable layer, Keras-exact.
///
/// The format is chosen for the whole model ([`Self::scheme`], [`Self::rotate`]) and overridden
/// by layer path ([`Self::scheme_for`], which matches as [`Self::skip`] does: a layer, or every
/// layer under a module; the longest matching path wins). Convolutions are Keras-only and get
/// [`Int8Format::KERAS`] whatever is asked; the report says which format each layer got.
#[derive(Default)]
pub struct QuantizeConfig {
    skip_paths: Vec<String>,
    skip_predicates: Vec<SkipPredicate>,
    format: Int8Format,
    scheme_overrides: Vec<(String, Scheme)>,
}

impl QuantizeConfig {
    /// The scale scheme of every layer not named by [`Self::scheme_for`].
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.format.scheme = scheme;
        self
    }

    /// The rotation of every layer's input (the same for all layers).
    pub fn rotate(mut self, rotation: Rotation) -> Self {
        self.format.rotation = rotation;
        self
    }

    /// The scheme of the layer at `path` (dot-separated field names; `*` for any one segment,
    /// `"layers.*.mlp.down_proj"`) and everything under it. The longest matching path wins.
    pub fn scheme_for(mut self, path: impl Into<String>, scheme: Scheme) -> Self {
        self.scheme_overrides.push((path.into(), scheme));
        self
    }

    /// True when every layer gets the same format and none stays float: no skip, no per-layer
    /// scheme. (A loader may then quantize each layer as it reads it.)
    pub fn is_uniform(&self) -> bool {
        self.skip_paths.is_empty()
            && self.skip_predicates.is_empty()
            && self.scheme_overrides.is_empty()
    }

    /// The format asked for the layer at `path`.
    pub fn format_at(&self, path: &str) -> Int8Format {
        let scheme = self
            .scheme_overrides
            .iter()
            .filter(|(prefix, _)| is_at_or_under(path, prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.format.scheme, |(_, scheme)| *scheme);
        Int8Format::new(scheme, self.format.rotation)
    }

    /// The paths given to [`Self::scheme_for`] that name no layer of `layers`.
    pub(super) fn unmatched_scheme_paths<'s>(&'s self, layers: &[String]) -> Vec<&'s str> {
        self.scheme_overrides
            .iter()
            .map(|(path, _)| path)
            .filter(|path| !layers.iter().any(|layer| is_at_or_under(layer, path)))
            .map(String::as_str)
            .collect()
    }

    /// Keeps float the layer at `path` (dot-separated field names, e.g. `"head"` or
    /// `"blocks.3.mlp"`; `*` for any one segment, `"blocks.*.mlp"`) and everything under it.
    pub fn skip(mut self, path: impl Into<String>) -> Self {
        self.skip_paths.push(path.into());
        self
    }

    /// Keeps float every layer whose path satisfies `predicate`.
    pub fn skip_if(mut self, predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.skip_predicates.push(Box::new(predicate));
        self
    }

    /// The paths given to [`Self::skip`] that name no layer of `layers` (neither a layer nor a
    /// module above one), in the order given.
    pub(super) fn unmatched_skips<'s>(&'s self, layers: &[String]) -> Vec<&'s str> {
        self.skip_paths
            .iter()
            .filter(|skip| !layers.iter().any(|layer| is_at_or_under(layer, skip)))
            .map(String::as_str)
            .collect()
    }

    /// True when the layer at `path` is to stay float.
    pub(super) fn skips(&self, path: &str) -> bool {
        let listed = self
            .skip_paths
            .iter()
            .any(|skip| is_at_or_under(path, skip));
        listed || self.skip_predicates.iter().any(|predicate| predicate(path))
    }
}

impl fmt::Debug for QuantizeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuantizeConfig")
            .field("skip_paths", &self.skip_paths)
            .field("skip_predicates", &self.skip_predicates.len())
            .field("format", &self.format)
            .field("scheme_overrides", &self.scheme_overrides)
            .finish()
    }
}

/// True when `path` is `module` or a layer under it (`module.` a prefix); an empty `module`
/// names nothing. A `*` segment of `module` stands for any one segment of `path`
/// (`layers.*.mlp.down_proj`); other characters match themselves.
fn is_at_or_under(path: &str, module: &str) -> bool {
    if module.is_empty() {
        return false;
    }
    let mut path = path.split('.');
    module.split('.').all(|pattern| {
        path.next()
            .is_some_and(|segment| pattern == "*" || pattern == segment)
    })
}

/// The (at most `n`) paths among `layers` and the modules above them closest to `name` by
/// edit distance, nearest first.
pub(super) fn closest_paths(name: &str, layers: &[String], n: usize) -> Vec<String> {
    let mut candidates: Vec<&str> = Vec::new();
    for layer in layers {
        let mut end = layer.len();
        loop {
            candidates.push(&layer[..end]);
            match layer[..end].rfind('.') {
                Some(dot) => end = dot,
                None => break,
            }
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(n)
        .map(|(_, path)| path.to_string())
        .collect()
}

/// Levenshtein distance over chars. Written here (a dozen lines) rather than pulling a crate
/// into the library's light dependency set for one error message.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_a_layer_or_a_module_and_star_matches_one_segment() {
        assert!(is_at_or_under("layers.3.mlp.down_proj", "layers.3.mlp"));
        assert!(is_at_or_under(
            "layers.3.mlp.down_proj",
            "layers.3.mlp.down_proj"
        ));
        assert!(!is_at_or_under("layers.3.mlp_x.down_proj", "layers.3.mlp"));
        assert!(!is_at_or_under("layers.31.mlp", "layers.3"));
        assert!(is_at_or_under(
            "layers.31.mlp.down_proj",
            "layers.*.mlp.down_proj"
        ));
        assert!(is_at_or_under("layers.0.mlp.down_proj", "*"));
        assert!(!is_at_or_under("layers.0.mlp", "layers.*.mlp.down_proj"));
        assert!(!is_at_or_under(
            "layers.0.mlp.up_proj",
            "layers.*.mlp.down_proj"
        ));
        assert!(!is_at_or_under("layers.0", ""));
        let config = QuantizeConfig::default()
            .rotate(Rotation::Hadamard)
            .scheme_for("layers.*.mlp.down_proj", Scheme::Q8_0)
            .scheme_for("layers.2", Scheme::Keras);
        let at = |path| config.format_at(path).scheme;
        assert_eq!(at("layers.1.mlp.down_proj"), Scheme::Q8_0);
        assert_eq!(at("layers.1.mlp.up_proj"), Scheme::Keras);
        // The longer path wins.
        assert_eq!(at("layers.2.mlp.down_proj"), Scheme::Q8_0);
        assert_eq!(config.format_at("x").rotation, Rotation::Hadamard);
    }
}
