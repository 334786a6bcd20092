//! `swappable_module!`: the hand-written `Module` of every float-or-int8 layer ([`crate::Linear`],
//! [`crate::Embedding`], [`crate::Conv1d`], [`crate::Conv2d`]), so that a float layer is, for
//! every reader of a model, exactly Burn's layer:
//!
//! - **Burn's recorders** (`into_record`/`load_record`): the record has Burn's fields in Burn's
//!   order, the weight being Burn's own parameter item while float
//!   ([`crate::io::burn_record::WeightRecord`]), so `fc1.weight`, `fc1.bias` of a `burn::nn`
//!   checkpoint load as they are, and our float checkpoints load into `burn::nn` models.
//! - **burn-store** (`visit`/`map`): a float layer's tensors are `<layer>.weight`,
//!   `<layer>.bias` under Burn's container names (`Struct:Linear`); an int8 layer's are under
//!   `<layer>.Int8.` (`<layer>.Int8.weight.values`, `.scale`, `<layer>.Int8.bias`), the names
//!   int8 records have always had ([`crate::io::record`]).
//!
//! Burn's enum derive would put the float layer under a `Float` variant (`fc1.Float.weight`),
//! which no Burn checkpoint has: that is why this is written by hand.

use burn::module::{Param, ParamId};
use burn::tensor::{Shape, Tensor, backend::Backend};

/// The `weight` of a layer that is int8: no tensor, only the float weight's shape and device.
/// Reading it is a programming error that names the fix; writing it has no effect on the int8
/// product (the layers' docs say so).
pub(crate) fn int8_placeholder<B: Backend, const D: usize>(
    layer: &'static str,
    dims: [usize; D],
    device: B::Device,
) -> Param<Tensor<B, D>> {
    Param::uninitialized(
        ParamId::new(),
        move |_, _| {
            panic!(
                "`{layer}::weight` was read on an int8 layer: once quantized it keeps no float \
                 weight (1 byte a weight); read `int8_weight()`, or `dequantize()` the model \
                 first"
            )
        },
        device,
        false,
        Shape::new(dims),
    )
}

/// Implements `Module`, `AutodiffModule`, `HasAutodiffModule`, `Display`, `ModuleDisplay`, the
/// record type, the conversions from Burn's float layer and from our int8 layer, and the
/// accessors, for a layer struct `{ weight, int8, params..., consts... }`: `params` are Burn's
/// other parameter fields (the bias), `consts` its plain fields (a convolution's stride, ...),
/// which Burn records as empty records, in Burn's order.
macro_rules! swappable_module {
    (
        $layer:ident, $record:ident, burn = $($burn:ident)::+, int8 = $int8:ident, rank = $rank:literal,
        channel_axis = $axis:literal,
        params = [$($param:ident: $pty:ty),* $(,)?],
        consts = [$($const:ident),* $(,)?],
        optional_params = [$($optional:ident),* $(,)?]
    ) => {
        /// The record of the swappable layer: Burn's layer's record while float (same fields,
        /// same order, Burn's parameter items), the int8 weight in the `weight` slot once int8
        /// ([`crate::io::burn_record`]).
        #[derive(burn::record::Record)]
        pub struct $record<B: burn::tensor::backend::Backend> {
            /// Burn's float weight, or the int8 weight.
            pub weight: crate::io::burn_record::WeightRecord<B, $rank>,
            $(
                #[allow(missing_docs)]
                pub $param: <$pty as burn::module::Module<B>>::Record,
            )*
            $(
                #[allow(missing_docs)]
                pub $const: burn::module::EmptyRecord,
            )*
        }

        impl<B: burn::tensor::backend::Backend> $layer<B> {
            const CONTAINER: &'static str = concat!("Struct:", stringify!($layer));
            const INT8_CONTAINER: &'static str = concat!("Struct:", stringify!($int8));
            const ENUM_CONTAINER: &'static str = concat!("Enum:", stringify!($layer));

            /// True once the layer holds int8 weights.
            pub fn is_quantized(&self) -> bool {
                self.int8.is_some()
            }

            /// The int8 weight (I8 values, per-channel scales), once the layer is int8.
            pub fn int8_weight(&self) -> Option<&crate::Int8Weight<B, $rank>> {
                self.int8.as_ref()
            }

            /// The float weight's shape, float or int8 (never reads a tensor).
            pub fn weight_dims(&self) -> [usize; $rank] {
                match &self.int8 {
                    Some(int8) => int8.dims(),
                    None => {
                        let shape = self.weight.lazy_shape();
                        core::array::from_fn(|axis| shape.as_slice()[axis])
                    }
                }
            }

            /// Burn's float layer (sharing this one's tensors), while the layer is float.
            pub fn float_layer(&self) -> Option<$($burn)::+<B>> {
                self.int8.is_none().then(|| self.as_burn())
            }

            /// The int8 layer (sharing this one's tensors), once the layer is int8.
            pub fn int8_layer(&self) -> Option<$int8<B>> {
                self.int8.as_ref().map(|weight| $int8 {
                    weight: weight.clone(),
                    $($param: self.$param.clone(),)*
                    $($const: self.$const.clone(),)*
                })
            }

            /// Burn's layer over this one's fields (for a float layer).
            ///
            /// Reads every parameter first, in Burn's order (weight, then bias): a lazily
            /// initialised parameter cloned before its first read would draw its own values.
            fn as_burn(&self) -> $($burn)::+<B> {
                let _ = self.weight.val();
                $(
                    if let Some(param) = &self.$optional {
                        let _ = param.val();
                    }
                )*
                $($burn)::+ {
                    weight: self.weight.clone(),
                    $($param: self.$param.clone(),)*
                    $($const: self.$const.clone(),)*
                }
            }

            /// The `weight` an int8 layer of these dims shows (see [`int8_placeholder`]).
            fn placeholder(
                int8: &crate::Int8Weight<B, $rank>,
            ) -> burn::module::Param<burn::tensor::Tensor<B, $rank>> {
                crate::layers::swappable::int8_placeholder(
                    stringify!($layer),
                    int8.dims(),
                    int8.values.lazy_device(),
                )
            }

            /// The int8 weight of a record, re-laid as the kernels read it.
            ///
            /// # Panics
            /// When the record's values and scales disagree (Burn's `load_record` has no error
            /// path; `burn_int8::store::load` checks every tensor before loading instead).
            fn int8_from_record(
                values_id: burn::module::ParamId,
                values: burn::tensor::Tensor<B, $rank, burn::tensor::Int>,
                scale_id: burn::module::ParamId,
                scale: burn::tensor::Tensor<B, 1>,
                format: crate::Int8Format,
                device: &B::Device,
            ) -> crate::Int8Weight<B, $rank> {
                let values = values.to_device(device);
                let scale = scale.to_device(device);
                match crate::Int8Weight::from_parts_as(values, scale, $axis, format) {
                    Ok(mut weight) => {
                        weight.values.id = values_id;
                        weight.scale.id = scale_id;
                        weight
                    }
                    Err(error) => panic!(
                        "the int8 record of a {} does not fit: {error}",
                        stringify!($layer)
                    ),
                }
            }
        }

        impl<B: burn::tensor::backend::Backend> From<$($burn)::+<B>> for $layer<B> {
            fn from(layer: $($burn)::+<B>) -> Self {
                Self {
                    weight: layer.weight,
                    int8: None,
                    $($param: layer.$param,)*
                    $($const: layer.$const,)*
                }
            }
        }

        impl<B: burn::tensor::backend::Backend> From<$int8<B>> for $layer<B> {
            fn from(layer: $int8<B>) -> Self {
                Self {
                    weight: Self::placeholder(&layer.weight),
                    int8: Some(layer.weight),
                    $($param: layer.$param,)*
                    $($const: layer.$const,)*
                }
            }
        }

        impl<B: burn::tensor::backend::Backend> burn::module::Module<B> for $layer<B> {
            type Record = $record<B>;

            fn load_record(self, record: Self::Record) -> Self {
                use crate::io::burn_record::WeightRecord;
                let device = self.weight.lazy_device();
                // The format is the model's configuration, not the record's: an int8 layer keeps
                // the one it was quantized with (see `Int8Weight`).
                let format = self.int8.as_ref().map_or(crate::Int8Format::KERAS, |w| w.format());
                let (weight, int8) = match (record.weight, self.int8) {
                    (WeightRecord::Float(param), None) => {
                        (burn::module::Module::<B>::load_record(self.weight, param), None)
                    }
                    // Burn's `load_record` cannot fail: a layer takes the precision of the
                    // record it is given (`burn_int8::store::load` refuses a mismatch instead).
                    (WeightRecord::Float(param), Some(_)) => (param.map(|t| t.to_device(&device)), None),
                    (WeightRecord::Int8 { values_id, values, scale_id, scale }, _) => {
                        let int8 = Self::int8_from_record(
                            values_id, values, scale_id, scale, format, &device,
                        );
                        (Self::placeholder(&int8), Some(int8))
                    }
                };
                Self {
                    weight,
                    int8,
                    $($param: burn::module::Module::<B>::load_record(self.$param, record.$param),)*
                    $($const: self.$const,)*
                }
            }

            fn into_record(self) -> Self::Record {
                use crate::io::burn_record::WeightRecord;
                let weight = match self.int8 {
                    None => WeightRecord::Float(burn::module::Module::<B>::into_record(self.weight)),
                    Some(int8) => WeightRecord::Int8 {
                        values_id: int8.values.id,
                        values: int8.values.val(),
                        scale_id: int8.scale.id,
                        scale: int8.scale.val(),
                    },
                };
                $record {
                    weight,
                    $($param: burn::module::Module::<B>::into_record(self.$param),)*
                    $($const: burn::module::EmptyRecord::new(),)*
                }
            }

            fn visit<V: burn::module::ModuleVisitor<B>>(&self, visitor: &mut V) {
                #[allow(unused_variables)] // a layer without params (the embedding) enters no field
                let container = match &self.int8 {
                    None => {
                        visitor.enter_module("weight", Self::CONTAINER);
                        burn::module::Module::<B>::visit(&self.weight, visitor);
                        visitor.exit_module("weight", Self::CONTAINER);
                        Self::CONTAINER
                    }
                    Some(int8) => {
                        visitor.enter_module(crate::io::record::INT8, Self::ENUM_CONTAINER);
                        visitor.enter_module("weight", Self::INT8_CONTAINER);
                        burn::module::Module::<B>::visit(int8, visitor);
                        visitor.exit_module("weight", Self::INT8_CONTAINER);
                        Self::INT8_CONTAINER
                    }
                };
                $(
                    visitor.enter_module(stringify!($param), container);
                    burn::module::Module::<B>::visit(&self.$param, visitor);
                    visitor.exit_module(stringify!($param), container);
                )*
                if self.int8.is_some() {
                    visitor.exit_module(crate::io::record::INT8, Self::ENUM_CONTAINER);
                }
            }

            fn map<M: burn::module::ModuleMapper<B>>(self, mapper: &mut M) -> Self {
                let quantized = self.int8.is_some();
                #[allow(unused_variables)]
                let (weight, int8, container) = match self.int8 {
                    None => {
                        mapper.enter_module("weight", Self::CONTAINER);
                        let weight = burn::module::Module::<B>::map(self.weight, mapper);
                        mapper.exit_module("weight", Self::CONTAINER);
                        (weight, None, Self::CONTAINER)
                    }
                    Some(int8) => {
                        mapper.enter_module(crate::io::record::INT8, Self::ENUM_CONTAINER);
                        mapper.enter_module("weight", Self::INT8_CONTAINER);
                        let int8 = burn::module::Module::<B>::map(int8, mapper);
                        mapper.exit_module("weight", Self::INT8_CONTAINER);
                        (Self::placeholder(&int8), Some(int8), Self::INT8_CONTAINER)
                    }
                };
                $(
                    mapper.enter_module(stringify!($param), container);
                    let $param = burn::module::Module::<B>::map(self.$param, mapper);
                    mapper.exit_module(stringify!($param), container);
                )*
                if quantized {
                    mapper.exit_module(crate::io::record::INT8, Self::ENUM_CONTAINER);
                }
                Self { weight, int8, $($param,)* $($const: self.$const,)* }
            }

            fn collect_devices(
                &self,
                devices: burn::module::Devices<B>,
            ) -> burn::module::Devices<B> {
                let devices = match &self.int8 {
                    None => burn::module::Module::<B>::collect_devices(&self.weight, devices),
                    Some(int8) => burn::module::Module::<B>::collect_devices(int8, devices),
                };
                $(let devices = burn::module::Module::<B>::collect_devices(&self.$param, devices);)*
                devices
            }

            fn to_device(self, device: &B::Device) -> Self {
                let (weight, int8) = match self.int8 {
                    None => (burn::module::Module::<B>::to_device(self.weight, device), None),
                    Some(int8) => {
                        let int8 = burn::module::Module::<B>::to_device(int8, device);
                        (Self::placeholder(&int8), Some(int8))
                    }
                };
                Self {
                    weight,
                    int8,
                    $($param: burn::module::Module::<B>::to_device(self.$param, device),)*
                    $($const: self.$const,)*
                }
            }

            fn fork(self, device: &B::Device) -> Self {
                let (weight, int8) = match self.int8 {
                    None => (burn::module::Module::<B>::fork(self.weight, device), None),
                    Some(int8) => {
                        let int8 = burn::module::Module::<B>::fork(int8, device);
                        (Self::placeholder(&int8), Some(int8))
                    }
                };
                Self {
                    weight,
                    int8,
                    $($param: burn::module::Module::<B>::fork(self.$param, device),)*
                    $($const: self.$const,)*
                }
            }
        }

        impl<B: burn::tensor::backend::AutodiffBackend> burn::module::AutodiffModule<B>
            for $layer<B>
        {
            type InnerModule = $layer<B::InnerBackend>;

            fn valid(&self) -> Self::InnerModule {
                let (weight, int8) = match &self.int8 {
                    None => (burn::module::AutodiffModule::<B>::valid(&self.weight), None),
                    Some(int8) => {
                        let int8 = burn::module::AutodiffModule::<B>::valid(int8);
                        ($layer::<B::InnerBackend>::placeholder(&int8), Some(int8))
                    }
                };
                $layer {
                    weight,
                    int8,
                    $($param: burn::module::AutodiffModule::<B>::valid(&self.$param),)*
                    $($const: self.$const.clone(),)*
                }
            }

            fn from_inner(module: Self::InnerModule) -> Self {
                let (weight, int8) = match module.int8 {
                    None => (
                        <burn::module::Param<burn::tensor::Tensor<B, $rank>>
                            as burn::module::AutodiffModule<B>>::from_inner(module.weight),
                        None,
                    ),
                    Some(int8) => {
                        let int8 = <crate::Int8Weight<B, $rank>
                            as burn::module::AutodiffModule<B>>::from_inner(int8);
                        (Self::placeholder(&int8), Some(int8))
                    }
                };
                Self {
                    weight,
                    int8,
                    $($param: <$pty as burn::module::AutodiffModule<B>>::from_inner(module.$param),)*
                    $($const: module.$const,)*
                }
            }
        }

        impl<B: burn::tensor::backend::AutodiffBackend> burn::module::HasAutodiffModule<B>
            for $layer<B::InnerBackend>
        {
            type TrainModule = $layer<B>;
        }

        impl<B: burn::tensor::backend::Backend> core::fmt::Display for $layer<B> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let formatted = burn::module::ModuleDisplay::format(self, Default::default());
                write!(f, "{formatted}")
            }
        }

        impl<B: burn::tensor::backend::Backend> burn::module::ModuleDisplayDefault for $layer<B> {
            fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
                let precision = if self.is_quantized() { "int8" } else { "float" };
                content
                    .set_top_level_type(stringify!($layer))
                    .add_debug_attribute("weight", &self.weight_dims())
                    .add_formatted(&precision)
                    .optional()
            }

            fn num_params(&self) -> usize {
                burn::module::Module::num_params(self)
            }
        }

        impl<B: burn::tensor::backend::Backend> burn::module::ModuleDisplay for $layer<B> {}
    };
}
pub(crate) use swappable_module;
