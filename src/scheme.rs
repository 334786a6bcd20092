//! Which int8 format a layer gets: its scale [`Scheme`] and its input [`Rotation`].
//!
//! - [`Scheme::Keras`] (the default, bit-exact with Keras 3): one AbsMax scale per output
//!   channel of the weight, one per activation row at run time.
//! - [`Scheme::Q8_0`], llama.cpp's Q8_0: the weight in blocks of [`Q8_0_BLOCK`] consecutive input
//!   values with one f16 scale each (8.5 bits a weight), activations quantized per block of
//!   32 at run time, int8 products summed in i32 within a block and the blocks combined in
//!   f32 with both scales (ggml's `vec_dot_q8_0_q8_0`). It needs the input size to be a
//!   multiple of 32, as ggml does.
//! - [`Scheme::Sample`], for convolutions: the weight as Keras's (one scale per output
//!   channel), the activations with **one AbsMax scale per sample** (each image of the batch)
//!   instead of one per output position. Keras's rule quantizes every window on its own, so a
//!   3×3 convolution quantizes each input value 9 times; a per-sample scale quantizes it once,
//!   as ONNX Runtime's per-tensor activations do (its static scale is calibrated, this one is
//!   measured on each sample at run time, so no calibration data is needed and one sample's
//!   result does not depend on the others in its batch). Dense layers and embeddings keep
//!   Keras's per-row scale (a row of a dense layer already is its sample), depthwise
//!   convolutions too (their kernel finds each window's scale as it reads it).
//! - [`Rotation::Hadamard`] with either: the layer's input dimension rotated by the
//!   Walsh–Hadamard transform of [`crate::rotation`] (the weight once, when quantized; each
//!   activation row at run time), which spreads outlier features before they are quantized.
//!
//! A convolution asked for Q8_0 (or a rotation) gets Keras's scheme, a dense layer or an
//! embedding asked for [`Scheme::Sample`] too; the report says which format each layer got.

use std::fmt;
use std::str::FromStr;

/// Input values per Q8_0 block, as in ggml (`QK8_0`).
pub const Q8_0_BLOCK: usize = 32;

/// How a weight and its activations are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// Keras's: per output channel (weights) and per row (activations).
    #[default]
    Keras,
    /// llama.cpp's Q8_0: per block of 32 inputs, f16 scales.
    Q8_0,
    /// Convolutions: per output channel (weights) and per sample (activations).
    Sample,
}

/// An orthogonal transform of a layer's input dimension applied before quantizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rotation {
    #[default]
    None,
    /// The block-diagonal Walsh–Hadamard transform ([`crate::rotation`]).
    Hadamard,
}

/// The int8 format of one layer: its scheme and rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Int8Format {
    pub scheme: Scheme,
    pub rotation: Rotation,
}

impl Int8Format {
    /// Keras-exact, unrotated: the default.
    pub const KERAS: Int8Format = Int8Format {
        scheme: Scheme::Keras,
        rotation: Rotation::None,
    };

    pub fn new(scheme: Scheme, rotation: Rotation) -> Self {
        Self { scheme, rotation }
    }
}

impl Scheme {
    /// The names the command line and reports use.
    pub const NAMES: [&'static str; 3] = ["keras", "q8_0", "sample"];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Keras => "keras",
            Scheme::Q8_0 => "q8_0",
            Scheme::Sample => "sample",
        }
    }

    /// How many scales an output channel of `inputs` values has: one (Keras, Sample), one per
    /// block of [`Q8_0_BLOCK`] (Q8_0).
    pub fn scales_per_channel(self, inputs: usize) -> usize {
        match self {
            Scheme::Keras | Scheme::Sample => 1,
            Scheme::Q8_0 => inputs / Q8_0_BLOCK,
        }
    }
}

impl Rotation {
    pub const NAMES: [&'static str; 2] = ["none", "hadamard"];

    pub fn name(self) -> &'static str {
        match self {
            Rotation::None => "none",
            Rotation::Hadamard => "hadamard",
        }
    }
}

/// A name that is not one of [`Scheme::NAMES`] or [`Rotation::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{found}`; expected one of: {}", expected.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub found: String,
    pub expected: &'static [&'static str],
}

impl FromStr for Scheme {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keras" => Ok(Scheme::Keras),
            "q8_0" => Ok(Scheme::Q8_0),
            "sample" => Ok(Scheme::Sample),
            _ => Err(UnknownName {
                what: "scheme",
                found: s.to_string(),
                expected: &Scheme::NAMES,
            }),
        }
    }
}

impl FromStr for Rotation {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Rotation::None),
            "hadamard" => Ok(Rotation::Hadamard),
            _ => Err(UnknownName {
                what: "rotation",
                found: s.to_string(),
                expected: &Rotation::NAMES,
            }),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads what [`Int8Format`]'s `Display` writes (`q8_0+hadamard`).
impl FromStr for Int8Format {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rotation) = s.split_once('+').unwrap_or((s, "none"));
        Ok(Int8Format::new(scheme.parse()?, rotation.parse()?))
    }
}

/// `keras`, `q8_0`, `keras+hadamard`, `q8_0+hadamard`.
impl fmt::Display for Int8Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rotation {
            Rotation::None => write!(f, "{}", self.scheme),
            rotation => write!(f, "{}+{rotation}", self.scheme),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for name in Scheme::NAMES {
            assert_eq!(name.parse::<Scheme>().unwrap().name(), name);
        }
        for name in Rotation::NAMES {
            assert_eq!(name.parse::<Rotation>().unwrap().name(), name);
        }
        let error = "q4_0".parse::<Scheme>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown scheme `q4_0`; expected one of: keras, q8_0, sample"
        );
        assert_eq!(Int8Format::default(), Int8Format::KERAS);
        assert_eq!(
            Int8Format::new(Scheme::Q8_0, Rotation::Hadamard).to_string(),
            "q8_0+hadamard"
        );
        assert_eq!(Int8Format::KERAS.to_string(), "keras");
        for scheme in [Scheme::Keras, Scheme::Q8_0, Scheme::Sample] {
            for rotation in [Rotation::None, Rotation::Hadamard] {
                let format = Int8Format::new(scheme, rotation);
                assert_eq!(format.to_string().parse::<Int8Format>(), Ok(format));
            }
        }
        assert!("keras+spin".parse::<Int8Format>().is_err());
    }
}
