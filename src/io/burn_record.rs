//! The weight slot of a swappable layer's record for Burn's recorders (`NamedMpkFileRecorder`,
//! `BinFileRecorder`, `CompactRecorder`, ...): Burn's own float parameter while the layer is
//! float, our int8 weight once it is int8.
//!
//! Burn serializes a parameter as `{ id, param }` (`burn::record::ParamSerde`). A float layer's
//! weight is exactly that, so its record is byte for byte Burn's and a Burn checkpoint loads
//! into the swappable layer (and the reverse). An int8 weight keeps the same two fields, with
//! an `id` that starts with [`INT8_ID_PREFIX`] (says "this is int8") and a `param` that holds
//! the I8 values and the f32 scales **as they are**: Burn's precision settings convert float
//! tensors to f16 and int tensors to i32/i16, which would turn 1 byte a weight into 4 and round
//! the scales. Because the `id` comes first in every format, even bincode (which does not
//! describe itself) knows which `param` follows before reading it.

use core::fmt;
use core::marker::PhantomData;

use burn::module::{Param, ParamId};
use burn::record::{ParamSerde, PrecisionSettings, Record};
use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The start of the `id` of an int8 weight in a record: `burn_int8:int8:<values id>`.
pub const INT8_ID_PREFIX: &str = "burn_int8:int8:";

/// The weight of a swappable layer in a record: Burn's float parameter, or an int8 weight.
#[derive(Debug, Clone)]
pub enum WeightRecord<B: Backend, const D: usize> {
    /// The float weight, as Burn's layer records it.
    Float(Param<Tensor<B, D>>),
    /// The int8 weight: I8 values in the layer's logical shape and one f32 scale per channel.
    Int8 {
        values_id: ParamId,
        values: Tensor<B, D, Int>,
        scale_id: ParamId,
        scale: Tensor<B, 1>,
    },
}

/// Burn's serialized float parameter (`ParamSerde` of a float tensor at the settings' precision).
type FloatItem<B, const D: usize, S> = <Param<Tensor<B, D>> as Record<B>>::Item<S>;
/// The `param` half of [`FloatItem`].
type FloatTensorItem<B, const D: usize, S> = <Tensor<B, D> as Record<B>>::Item<S>;

/// The serialized form of a [`WeightRecord`] (the `Item` of Burn's `Record`).
#[derive(Clone)]
pub enum WeightItem<B: Backend, const D: usize, S: PrecisionSettings> {
    /// Burn's serialized float parameter, untouched.
    Float(FloatItem<B, D, S>),
    /// The int8 weight's tensors, never converted by the precision settings.
    Int8 {
        values_id: String,
        payload: Int8Payload,
    },
}

/// What an int8 weight stores in the `param` field: its I8 values and f32 scales as they are.
#[derive(Clone, Serialize, Deserialize)]
pub struct Int8Payload {
    /// I8, the layer's logical shape.
    pub values: TensorData,
    /// F32, one per output channel.
    pub scale: TensorData,
    /// The scale parameter's id.
    pub scale_id: String,
}

impl<B: Backend, const D: usize> Record<B> for WeightRecord<B, D> {
    type Item<S: PrecisionSettings> = WeightItem<B, D, S>;

    fn into_item<S: PrecisionSettings>(self) -> Self::Item<S> {
        match self {
            WeightRecord::Float(param) => WeightItem::Float(param.into_item()),
            WeightRecord::Int8 {
                values_id,
                values,
                scale_id,
                scale,
            } => WeightItem::Int8 {
                values_id: format!("{INT8_ID_PREFIX}{}", values_id.serialize()),
                payload: Int8Payload {
                    values: values.into_data(),
                    // f32 whatever the settings: a rounded scale would change every output.
                    scale: scale.into_data().convert::<f32>(),
                    scale_id: scale_id.serialize(),
                },
            },
        }
    }

    fn from_item<S: PrecisionSettings>(item: Self::Item<S>, device: &B::Device) -> Self {
        match item {
            WeightItem::Float(param) => WeightRecord::Float(Record::<B>::from_item(param, device)),
            WeightItem::Int8 { values_id, payload } => {
                let dtype = payload.values.dtype;
                WeightRecord::Int8 {
                    values_id: id_or_new(values_id.strip_prefix(INT8_ID_PREFIX).unwrap_or("")),
                    // Kept in its stored dtype (I8): the layer checks it when it loads.
                    values: Tensor::from_data(payload.values, (device, dtype)),
                    scale_id: id_or_new(&payload.scale_id),
                    scale: Tensor::from_data(payload.scale.convert::<f32>(), (device, DType::F32)),
                }
            }
        }
    }
}

/// The id a record gives, or a fresh one when it is not an id (ids only tie optimizer state).
fn id_or_new(encoded: &str) -> ParamId {
    ParamId::try_deserialize(encoded).unwrap_or_default()
}

impl<B: Backend, const D: usize, S: PrecisionSettings> Serialize for WeightItem<B, D, S> {
    fn serialize<Se: Serializer>(&self, serializer: Se) -> Result<Se::Ok, Se::Error> {
        match self {
            WeightItem::Float(param) => param.serialize(serializer),
            WeightItem::Int8 { values_id, payload } => {
                let mut state = serializer.serialize_struct("ParamSerde", 2)?;
                state.serialize_field("id", values_id)?;
                state.serialize_field("param", payload)?;
                state.end()
            }
        }
    }
}

impl<'de, B: Backend, const D: usize, S: PrecisionSettings> Deserialize<'de>
    for WeightItem<B, D, S>
{
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        deserializer.deserialize_struct(
            "ParamSerde",
            &["id", "param"],
            WeightVisitor::<B, D, S>(PhantomData),
        )
    }
}

struct WeightVisitor<B, const D: usize, S>(PhantomData<(B, S)>);

fn is_int8(id: &str) -> bool {
    id.starts_with(INT8_ID_PREFIX)
}

fn int8_item<B: Backend, const D: usize, S: PrecisionSettings, E: de::Error>(
    values_id: String,
    payload: Int8Payload,
) -> Result<WeightItem<B, D, S>, E> {
    if payload.values.dtype != DType::I8 {
        return Err(E::custom(format!(
            "an int8 weight's values must be I8, found {:?}",
            payload.values.dtype
        )));
    }
    Ok(WeightItem::Int8 { values_id, payload })
}

impl<'de, B: Backend, const D: usize, S: PrecisionSettings> Visitor<'de>
    for WeightVisitor<B, D, S>
{
    type Value = WeightItem<B, D, S>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a parameter `{ id, param }` (float, or int8 written by burn_int8)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let id: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        if is_int8(&id) {
            let payload = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(1, &self))?;
            int8_item(id, payload)
        } else {
            let param: FloatTensorItem<B, D, S> = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(1, &self))?;
            Ok(WeightItem::Float(ParamSerde::new(id, param)))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Burn and this module write `id` before `param`, so the id says what to read.
        let mut id: Option<String> = None;
        let mut item = None;
        while let Some(key) = map.next_key::<String>()? {
            match (key.as_str(), id.take()) {
                ("id", _) => id = Some(map.next_value()?),
                ("param", Some(id)) if is_int8(&id) => {
                    item = Some(int8_item(id, map.next_value()?)?);
                }
                ("param", Some(id)) => {
                    let param: FloatTensorItem<B, D, S> = map.next_value()?;
                    item = Some(WeightItem::Float(ParamSerde::new(id, param)));
                }
                ("param", None) => {
                    return Err(de::Error::custom(
                        "a parameter's `param` came before its `id`",
                    ));
                }
                (_, kept) => {
                    id = kept;
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        item.ok_or_else(|| de::Error::missing_field("param"))
    }
}
