//! Finds the float layers inside a module that has no [`crate::Quantize`] impl (a `burn::nn`
//! module such as `MultiHeadAttention`, or a user module without the derive), with Burn's
//! `ModuleVisitor`, and says for each why it stays float and what to change.
//!
//! Burn names what it walks through only by its container strings (`"Struct:Linear"`,
//! `"Vec"`, ...); [`read_container`] is the one place that reads them.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, backend::Backend};

use super::{LayerKind, SkipReason};

/// What one of Burn's container strings names: the `container_type` of
/// `ModuleVisitor::enter_module(name, container_type)`, which Burn 0.21 documents as
/// `"Struct:TypeName"`, `"Enum:TypeName"`, `"Vec"`, `"Tuple"` or `"Array"` (an `Option` has
/// none). It is the type that holds the field or entry `name`, not the type of `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Container {
    /// A struct named as a layer this crate quantizes (`"Struct:Linear"`).
    Layer(LayerKind),
    /// Any other struct, by name (`"Struct:MultiHeadAttention"`).
    Struct(String),
    /// An enum, by name (`"Enum:MyEnum"`).
    Enum(String),
    /// A container whose entries are named by index (`"Vec"`, `"Tuple"`, `"Array"`), or
    /// anything a later Burn may add, as Burn spells it.
    Unnamed(String),
}

impl Container {
    /// The type's name, for a struct or an enum.
    fn type_name(&self) -> Option<&str> {
        match self {
            Container::Layer(kind) => Some(kind.name()),
            Container::Struct(name) | Container::Enum(name) => Some(name),
            Container::Unnamed(_) => None,
        }
    }

    /// The struct's name, for a struct.
    fn struct_name(&self) -> Option<&str> {
        match self {
            Container::Layer(kind) => Some(kind.name()),
            Container::Struct(name) => Some(name),
            Container::Enum(_) | Container::Unnamed(_) => None,
        }
    }
}

/// Reads one of Burn's container strings (see [`Container`]).
pub(super) fn read_container(container_type: &str) -> Container {
    if let Some(name) = container_type.strip_prefix("Struct:") {
        return LayerKind::from_name(name)
            .map_or_else(|| Container::Struct(name.to_string()), Container::Layer);
    }
    if let Some(name) = container_type.strip_prefix("Enum:") {
        return Container::Enum(name.to_string());
    }
    Container::Unnamed(container_type.to_string())
}

/// Every float layer of a quantizable kind inside `module`: `(path under module, reason)`.
pub(super) fn unreachable_layers<B: Backend, M: Module<B>>(
    module: &M,
) -> Vec<(String, SkipReason)> {
    let mut finder = FloatLayerFinder::default();
    module.visit(&mut finder);
    finder.found
}

#[derive(Default)]
struct FloatLayerFinder {
    /// `(field or index, the container that holds it)` from the root down.
    stack: Vec<(String, Container)>,
    found: Vec<(String, SkipReason)>,
}

impl<B: Backend> ModuleVisitor<B> for FloatLayerFinder {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), read_container(container_type)));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<B, D>>) {
        // A layer's weight is its field `weight` (Burn's name in every one of these layers).
        let Some((field, Container::Layer(layer))) = self.stack.last() else {
            return;
        };
        if field != "weight" {
            return;
        }
        let above = &self.stack[..self.stack.len() - 1];
        let path = above
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        self.found.push((path, unreachable(*layer, above)));
    }
}

/// Why a float `layer` reached through `above` (its fields and containers from the root of
/// the unquantizable module down) stays float, and the fix.
fn unreachable(layer: LayerKind, above: &[(String, Container)]) -> SkipReason {
    // The struct that holds the layer, and the outermost named type (the module the field
    // holds, or its element in a `Vec`): this crate may have a counterpart of either.
    let holder = above.iter().rev().find_map(|(_, c)| c.struct_name());
    let outer = above.iter().find_map(|(_, c)| c.type_name());
    let (inside, fix) = match holder.or(outer) {
        Some(inside) => {
            let fix = match outer.and_then(counterpart).or_else(|| counterpart(inside)) {
                Some(ours) => format!("use burn_int8::nn::{ours}"),
                None => format!("derive Quantize for {inside} and use burn_int8::nn layers in it"),
            };
            (inside.to_string(), fix)
        }
        // Straight inside a tuple or an array (no named type above): the layer itself is
        // what to change.
        None => {
            let inside = above.iter().rev().find_map(|(_, c)| match c {
                Container::Unnamed(spelled) => Some(spelled.as_str()),
                _ => None,
            });
            (
                inside.unwrap_or("the field").to_string(),
                format!("use burn_int8::nn::{layer}"),
            )
        }
    };
    SkipReason::Unreachable { layer, inside, fix }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use burn::backend::NdArray;
    use burn::nn;
    use burn::nn::conv;

    use super::*;

    type B = NdArray;

    /// Every float parameter of `module` by path, with what [`read_container`] reads from each
    /// container string Burn gives on the way down to it.
    fn reads<M: Module<B>>(module: &M) -> BTreeMap<String, Vec<Container>> {
        #[derive(Default)]
        struct Recorder {
            stack: Vec<(String, Container)>,
            params: BTreeMap<String, Vec<Container>>,
        }
        impl ModuleVisitor<B> for Recorder {
            fn enter_module(&mut self, name: &str, container_type: &str) {
                self.stack
                    .push((name.to_string(), read_container(container_type)));
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.stack.pop();
            }
            fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<B, D>>) {
                let path = self.stack.iter().map(|(name, _)| name.as_str());
                self.params.insert(
                    path.collect::<Vec<_>>().join("."),
                    self.stack.iter().map(|(_, c)| c.clone()).collect(),
                );
            }
        }
        let mut recorder = Recorder::default();
        module.visit(&mut recorder);
        recorder.params
    }

    fn layer(kind: LayerKind) -> Container {
        Container::Layer(kind)
    }

    fn named(name: &str) -> Container {
        Container::Struct(name.into())
    }

    /// Checks what is read on the way to the parameter `path` of `module`, and the layers
    /// [`unreachable_layers`] finds in it.
    fn check<M: Module<B>>(module: &M, path: &str, expected: &[Container], found: &[&str]) {
        let reads = reads(module);
        assert_eq!(
            reads.get(path).map(Vec::as_slice),
            Some(expected),
            "{reads:?}"
        );
        let paths: Vec<_> = unreachable_layers::<B, M>(module)
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(paths, found);
    }

    #[test]
    fn the_four_quantizable_layers_read_as_their_kind() {
        let device = Default::default();
        check(
            &nn::LinearConfig::new(4, 2).init::<B>(&device),
            "weight",
            &[layer(LayerKind::Linear)],
            &[""],
        );
        check(
            &nn::EmbeddingConfig::new(8, 2).init::<B>(&device),
            "weight",
            &[layer(LayerKind::Embedding)],
            &[""],
        );
        check(
            &conv::Conv1dConfig::new(2, 2, 3).init::<B>(&device),
            "weight",
            &[layer(LayerKind::Conv1d)],
            &[""],
        );
        check(
            &conv::Conv2dConfig::new([2, 2], [3, 3]).init::<B>(&device),
            "weight",
            &[layer(LayerKind::Conv2d)],
            &[""],
        );
        // Their biases are not weights.
        let linear = reads(&nn::LinearConfig::new(4, 2).init::<B>(&device));
        assert_eq!(linear["bias"], [layer(LayerKind::Linear)]);
    }

    #[test]
    fn other_layers_with_a_weight_read_as_plain_structs() {
        let device = Default::default();
        check(
            &conv::Conv3dConfig::new([2, 2], [3, 3, 3]).init::<B>(&device),
            "weight",
            &[named("Conv3d")],
            &[],
        );
        check(
            &conv::ConvTranspose1dConfig::new([2, 2], 3).init::<B>(&device),
            "weight",
            &[named("ConvTranspose1d")],
            &[],
        );
        check(
            &conv::ConvTranspose2dConfig::new([2, 2], [3, 3]).init::<B>(&device),
            "weight",
            &[named("ConvTranspose2d")],
            &[],
        );
        check(
            &conv::ConvTranspose3dConfig::new([2, 2], [3, 3, 3]).init::<B>(&device),
            "weight",
            &[named("ConvTranspose3d")],
            &[],
        );
        check(
            &conv::DeformConv2dConfig::new([2, 2], [3, 3]).init::<B>(&device),
            "weight",
            &[named("DeformConv2d")],
            &[],
        );
        check(
            &nn::LayerNormConfig::new(4).init::<B>(&device),
            "gamma",
            &[named("LayerNorm")],
            &[],
        );
        check(
            &nn::RmsNormConfig::new(4).init::<B>(&device),
            "gamma",
            &[named("RmsNorm")],
            &[],
        );
        check(
            &nn::BatchNormConfig::new(4).init::<B>(&device),
            "gamma",
            &[named("BatchNorm")],
            &[],
        );
        check(
            &nn::GroupNormConfig::new(2, 4).init::<B>(&device),
            "gamma",
            &[named("GroupNorm")],
            &[],
        );
        check(
            &nn::InstanceNormConfig::new(4).init::<B>(&device),
            "gamma",
            &[named("InstanceNorm")],
            &[],
        );
        check(
            &nn::PReluConfig::new().init::<B>(&device),
            "alpha",
            &[named("PRelu")],
            &[],
        );
    }

    #[test]
    fn composite_modules_read_as_their_structs_down_to_the_layer() {
        let device = Default::default();
        let linears = |prefix: &str| {
            ["query", "key", "value", "output"].map(|name| format!("{prefix}{name}"))
        };
        let mha = nn::attention::MultiHeadAttentionConfig::new(4, 2).init::<B>(&device);
        check(
            &mha,
            "query.weight",
            &[named("MultiHeadAttention"), layer(LayerKind::Linear)],
            &linears("").each_ref().map(String::as_str),
        );
        let gate = [named("GateController"), layer(LayerKind::Linear)];
        let lstm = nn::LstmConfig::new(4, 2, true).init::<B>(&device);
        let lstm_reads = reads(&lstm);
        assert_eq!(
            lstm_reads["forget_gate.hidden_transform.weight"],
            [&[named("Lstm")][..], &gate].concat()
        );
        assert_eq!(unreachable_layers::<B, _>(&lstm).len(), 8);
        let gru = nn::GruConfig::new(4, 2, true).init::<B>(&device);
        assert_eq!(
            reads(&gru)["new_gate.input_transform.weight"],
            [&[named("Gru")][..], &gate].concat()
        );
        assert_eq!(unreachable_layers::<B, _>(&gru).len(), 6);
        let bilstm = nn::BiLstmConfig::new(4, 2, true).init::<B>(&device);
        assert_eq!(
            reads(&bilstm)["forward.cell_gate.input_transform.weight"],
            [&[named("BiLstm"), named("Lstm")][..], &gate].concat()
        );
        let swiglu = nn::SwiGluConfig::new(4, 2).init::<B>(&device);
        assert_eq!(
            reads(&swiglu)["linear_inner.weight"],
            [named("SwiGlu"), layer(LayerKind::Linear)]
        );
        let encoder = nn::transformer::TransformerEncoderConfig::new(4, 8, 2, 1).init::<B>(&device);
        assert_eq!(
            reads(&encoder)["layers.0.mha.query.weight"],
            [
                named("TransformerEncoder"),
                Container::Unnamed("Vec".into()),
                named("TransformerEncoderLayer"),
                named("MultiHeadAttention"),
                layer(LayerKind::Linear),
            ]
        );
    }

    #[derive(Module, Debug)]
    enum Choice<B: Backend> {
        Plain(nn::Linear<B>),
    }

    #[derive(Module, Debug)]
    struct Holder<B: Backend> {
        choice: Choice<B>,
        maybe: Option<nn::Linear<B>>,
        pair: (nn::Linear<B>, nn::Embedding<B>),
    }

    #[test]
    fn enums_options_and_tuples_read_as_burn_spells_them() {
        let device = Default::default();
        let linear = || nn::LinearConfig::new(4, 2).init::<B>(&device);
        let holder = Holder {
            choice: Choice::Plain(linear()),
            maybe: Some(linear()),
            pair: (linear(), nn::EmbeddingConfig::new(8, 2).init::<B>(&device)),
        };
        let reads = reads(&holder);
        assert_eq!(
            reads["choice.Plain.weight"],
            [
                named("Holder"),
                Container::Enum("Choice".into()),
                layer(LayerKind::Linear)
            ]
        );
        // An `Option` adds no container of its own.
        assert_eq!(
            reads["maybe.weight"],
            [named("Holder"), layer(LayerKind::Linear)]
        );
        assert_eq!(
            reads["pair.1.weight"],
            [
                named("Holder"),
                Container::Unnamed("Tuple".into()),
                layer(LayerKind::Embedding)
            ]
        );
        // Unreachable from `Holder`: each layer is reported as inside it.
        let found = unreachable_layers::<B, _>(&holder);
        assert_eq!(found.len(), 4);
        assert!(found.iter().all(|(_, reason)| matches!(
            reason,
            SkipReason::Unreachable { inside, .. } if inside == "Holder"
        )));
        // A tuple of plain layers on its own: the layer is what to change.
        let pair = (linear(), linear());
        assert_eq!(
            unreachable_layers::<B, _>(&pair)[1],
            (
                "1".to_string(),
                SkipReason::Unreachable {
                    layer: LayerKind::Linear,
                    inside: "Tuple".into(),
                    fix: "use burn_int8::nn::Linear".into()
                }
            )
        );
    }

    #[test]
    fn the_fix_names_our_counterpart_of_the_outer_module() {
        let device = Default::default();
        let lstm = nn::LstmConfig::new(4, 2, true).init::<B>(&device);
        let (path, reason) = &unreachable_layers::<B, _>(&lstm)[0];
        assert_eq!(path, "input_gate.input_transform");
        assert_eq!(
            reason,
            &SkipReason::Unreachable {
                layer: LayerKind::Linear,
                inside: "GateController".into(),
                fix: "use burn_int8::nn::Lstm".into()
            }
        );
    }
}
