//! The record schema: the names under which quantizable layers keep their tensors in a record.
//!
//! Burn names a tensor by its path of fields, enum variants included, so these names follow
//! from the types: a swappable layer ([`crate::Linear`], ...) is an enum whose `Float` variant
//! holds the `burn::nn` layer (`<layer>.Float.weight`) and whose `Int8` variant holds the int8
//! layer, whose [`crate::Int8Weight`] keeps `values` and `scale`
//! (`<layer>.Int8.weight.values`, `<layer>.Int8.weight.scale`). They are spelled here once for
//! whoever reads a record without building the model (the loader's precision check, a preset's
//! check against its config); a test holds them to the names a saved layer really has.

/// The variant a swappable layer's tensors sit under while it is float.
pub const FLOAT: &str = "Float";
/// The variant a swappable layer's tensors sit under once it is int8.
pub const INT8: &str = "Int8";
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

/// The layer held by the swappable layer at `layer` while it is `variant` ([`FLOAT`] or
/// [`INT8`]): `<layer>.Float`, `<layer>.Int8`.
pub fn variant(layer: &str, variant: &str) -> String {
    join(layer, variant)
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

/// True when `key` lies under the `Int8` variant of a swappable layer (below the root).
pub fn is_int8(key: &str) -> bool {
    key.contains(&format!(".{INT8}."))
}

/// `key` of an int8 swappable layer read under its `Float` variant (the name the same tensor
/// has while the layer is float, for the tensors both have, e.g. the bias); `None` when `key`
/// is not under an `Int8` variant.
pub fn int8_as_float(key: &str) -> Option<String> {
    other_variant(key, INT8, FLOAT)
}

/// `key` of a float swappable layer read under its `Int8` variant; `None` when `key` is not
/// under a `Float` variant.
pub fn float_as_int8(key: &str) -> Option<String> {
    other_variant(key, FLOAT, INT8)
}

/// `key` with its first `.from.` segment read as `.to.`.
fn other_variant(key: &str, from: &str, to: &str) -> Option<String> {
    let from = format!(".{from}.");
    key.contains(&from)
        .then(|| key.replacen(&from, &format!(".{to}."), 1))
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
        let float = variant("dense", FLOAT);
        assert_eq!(
            keys(&model),
            BTreeSet::from([float_weight(&float), format!("{float}.bias")])
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

        assert!(is_int8(&int8_values(&int8)) && !is_int8(&float_weight(&float)));
        assert!(is_layer_weight(&int8_values(&int8)) && is_layer_weight(&float_weight(&float)));
        assert!(!is_layer_weight(&int8_scale(&int8)) && !is_layer_weight("dense.Float.bias"));
        assert!(!is_layer_weight("dense.Float.extra_weight"));
        assert_eq!(
            int8_as_float("dense.Int8.bias").as_deref(),
            Some("dense.Float.bias")
        );
        assert_eq!(
            float_as_int8("dense.Float.bias").as_deref(),
            Some("dense.Int8.bias")
        );
        assert_eq!(int8_as_float("dense.Float.bias"), None);
    }
}
