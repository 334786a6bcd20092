//! The record schema: the names under which quantizable layers keep their tensors in a record.
//!
//! Burn names a tensor by its path of fields. A swappable layer ([`crate::Linear`], ...) writes
//! its own names (`src/layers/swappable.rs`):
//! - **float**: Burn's, `<layer>.weight` and `<layer>.bias`, so a `burn::nn` checkpoint is a
//!   record of the swappable model and the reverse;
//! - **int8**: under an `Int8` segment, `<layer>.Int8.weight.values` (the I8 values of its
//!   [`crate::Int8Weight`]), `<layer>.Int8.weight.scale`, `<layer>.Int8.bias`: the record says
//!   it is int8, and these names are the ones int8 records have always had.
//!
//! Float records written before this (the swappable layers were enums then) have their float
//! tensors under a `Float` segment (`<layer>.Float.weight`); `burn_int8::store::load` still
//! reads them ([`legacy_float_as_current`]). The names are spelled here once for whoever reads a
//! record without building the model (the loader's precision check, a preset's check against
//! its config); a test holds them to the names a saved layer really has.

/// The segment an int8 swappable layer's tensors sit under.
pub const INT8: &str = "Int8";
/// The segment float swappable layers' tensors sat under in records written before they had
/// Burn's names (read by `store::load`, never written).
pub const LEGACY_FLOAT: &str = "Float";
/// A layer's weight: the float layer's tensor, or the int8 layer's [`crate::Int8Weight`].
pub const WEIGHT: &str = "weight";
/// An [`crate::Int8Weight`]'s I8 values, in the layer's logical shape.
pub const VALUES: &str = "values";
/// An [`crate::Int8Weight`]'s per-channel scales.
pub const SCALE: &str = "scale";

/// `<parent>.<name>`, or `name` at the root (an empty `parent`).
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `<layer>.<segment>`: where the int8 layer at `layer` keeps its tensors ([`INT8`]), or where
/// a legacy float record kept them ([`LEGACY_FLOAT`]).
pub fn variant(layer: &str, segment: &str) -> String {
    join(layer, segment)
}

/// The weight of the float layer at `layer`: `<layer>.weight`.
pub fn float_weight(layer: &str) -> String {
    join(layer, WEIGHT)
}

/// The I8 values of the int8 layer at `layer`: `<layer>.weight.values`.
pub fn int8_values(layer: &str) -> String {
    join(&float_weight(layer), VALUES)
}

/// The scales of the int8 layer at `layer`: `<layer>.weight.scale`.
pub fn int8_scale(layer: &str) -> String {
    join(&float_weight(layer), SCALE)
}

/// True when `key` is the weight of a float layer (`….weight`) or the values of an int8 one
/// (`….weight.values`): the tensor that carries the layer's shape.
pub fn is_layer_weight(key: &str) -> bool {
    let leaf = |suffix: &str| {
        key.strip_suffix(suffix)
            .is_some_and(|parent| parent.is_empty() || parent.ends_with('.'))
    };
    leaf(WEIGHT) || leaf(&join(WEIGHT, VALUES))
}

/// True when `key` lies under the `Int8` segment of a swappable layer (below the root).
pub fn is_int8(key: &str) -> bool {
    key.contains(&format!(".{INT8}.")) || key.starts_with(&format!("{INT8}."))
}

/// The float name of a tensor of an int8 layer (`a.Int8.weight.values` → `a.weight`,
/// `a.Int8.bias` → `a.bias`); `None` for the scales and for keys outside an int8 layer.
pub fn int8_as_float(key: &str) -> Option<String> {
    let (layer, rest) = split_segment(key, INT8)?;
    let rest = match rest.strip_prefix(&format!("{WEIGHT}.")) {
        Some(VALUES) => WEIGHT,
        Some(_) => return None,
        None => rest,
    };
    Some(join(layer, rest))
}

/// The int8 name of a float layer's tensor (`a.weight` → `a.Int8.weight.values`, `a.bias` →
/// `a.Int8.bias`).
pub fn float_as_int8(key: &str) -> Option<String> {
    let (layer, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let int8 = variant(layer, INT8);
    Some(if leaf == WEIGHT {
        int8_values(&int8)
    } else {
        join(&int8, leaf)
    })
}

/// The current name of a tensor of a legacy float record (`a.Float.weight` → `a.weight`);
/// `None` when `key` has no `Float` segment.
pub fn legacy_float_as_current(key: &str) -> Option<String> {
    let (layer, rest) = split_segment(key, LEGACY_FLOAT)?;
    Some(join(layer, rest))
}

/// `(before, after)` around the first `segment` of `key` (`a.Int8.b` → `("a", "b")`).
fn split_segment<'a>(key: &'a str, segment: &str) -> Option<(&'a str, &'a str)> {
    if let Some(rest) = key.strip_prefix(&format!("{segment}.")) {
        return Some(("", rest));
    }
    let marker = format!(".{segment}.");
    let at = key.find(&marker)?;
    Some((&key[..at], &key[at + marker.len()..]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use burn::backend::NdArray;
    use burn::module::Module;
    use burn::nn::LinearConfig;
    use burn::tensor::backend::Backend;
    use burn_store::ModuleSnapshot;

    use super::*;
    use crate::{Linear, QuantizeExt};

    #[derive(Module, Debug, crate::Quantize)]
    struct Model<B: Backend> {
        dense: Linear<B>,
    }

    fn keys<M: ModuleSnapshot<NdArray>>(model: &M) -> BTreeSet<String> {
        model
            .collect(None, None, false)
            .iter()
            .map(|s| s.full_path())
            .collect()
    }

    #[test]
    fn the_schema_names_the_tensors_a_layer_saves() {
        let device = Default::default();
        let mut model = Model::<NdArray> {
            dense: Linear::new(&LinearConfig::new(4, 2), &device),
        };
        // Float: Burn's own names.
        assert_eq!(
            keys(&model),
            BTreeSet::from([float_weight("dense"), "dense.bias".to_string()])
        );
        model.quantize_int8().unwrap();
        let int8 = variant("dense", INT8);
        assert_eq!(
            keys(&model),
            BTreeSet::from([
                int8_values(&int8),
                int8_scale(&int8),
                format!("{int8}.bias")
            ])
        );
        assert_eq!(int8_values(&int8), "dense.Int8.weight.values");
        assert_eq!(int8_values(""), "weight.values");

        assert!(is_int8(&int8_values(&int8)) && !is_int8(&float_weight("dense")));
        assert!(is_int8("Int8.weight.values"));
        assert!(is_layer_weight(&int8_values(&int8)) && is_layer_weight(&float_weight("dense")));
        assert!(!is_layer_weight(&int8_scale(&int8)) && !is_layer_weight("dense.bias"));
        assert!(!is_layer_weight("dense.extra_weight"));
        assert_eq!(
            int8_as_float("dense.Int8.bias").as_deref(),
            Some("dense.bias")
        );
        assert_eq!(
            int8_as_float("dense.Int8.weight.values").as_deref(),
            Some("dense.weight")
        );
        assert_eq!(int8_as_float("dense.Int8.weight.scale"), None);
        assert_eq!(int8_as_float("dense.bias"), None);
        assert_eq!(
            float_as_int8("dense.bias").as_deref(),
            Some("dense.Int8.bias")
        );
        assert_eq!(
            float_as_int8("a.b.weight").as_deref(),
            Some("a.b.Int8.weight.values")
        );
        assert_eq!(
            legacy_float_as_current("a.Float.weight").as_deref(),
            Some("a.weight")
        );
        assert_eq!(
            legacy_float_as_current("Float.bias").as_deref(),
            Some("bias")
        );
        assert_eq!(legacy_float_as_current("a.weight"), None);
    }
}
