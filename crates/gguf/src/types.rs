//! ggml tensor types and their block geometry.
//!
//! Every ggml type stores values in blocks: `block_size` values packed into
//! `type_size` bytes (plain types such as F32 are blocks of one value). The
//! reader needs the geometry of *every* known type, not only the ones it can
//! dequantize, so that it can validate tensor byte ranges of any file and
//! report an unsupported type by name instead of as garbage.

use std::fmt;

/// A ggml tensor element type, numbered as in `ggml.h` / gguf-py's
/// `GGMLQuantizationType`.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
}

/// QK_K: values per super-block of the k-quants.
const QK_K: usize = 256;

impl GgmlType {
    /// All known types, in id order.
    pub const ALL: [GgmlType; 34] = [
        Self::F32,
        Self::F16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q8_1,
        Self::Q2_K,
        Self::Q3_K,
        Self::Q4_K,
        Self::Q5_K,
        Self::Q6_K,
        Self::Q8_K,
        Self::IQ2_XXS,
        Self::IQ2_XS,
        Self::IQ3_XXS,
        Self::IQ1_S,
        Self::IQ4_NL,
        Self::IQ3_S,
        Self::IQ2_S,
        Self::IQ4_XS,
        Self::I8,
        Self::I16,
        Self::I32,
        Self::I64,
        Self::F64,
        Self::IQ1_M,
        Self::BF16,
        Self::TQ1_0,
        Self::TQ2_0,
        Self::MXFP4,
        Self::NVFP4,
        Self::Q1_0,
    ];

    /// The type for a ggml type id, or `None` for ids that are unknown or
    /// were removed from ggml (4, 5, 31..=33, 36..=38).
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The ggml type id as stored in the file.
    pub fn id(self) -> u32 {
        self.info().0
    }

    /// The ggml name, e.g. `"Q4_K"`.
    pub fn name(self) -> &'static str {
        self.info().1
    }

    /// Number of values in one block.
    pub fn block_size(self) -> usize {
        self.info().2
    }

    /// Number of bytes in one block.
    pub fn type_size(self) -> usize {
        self.info().3
    }

    /// Whether this crate can dequantize the type to f32.
    pub fn can_dequantize(self) -> bool {
        matches!(
            self,
            Self::F32
                | Self::F16
                | Self::BF16
                | Self::Q4_0
                | Self::Q4_1
                | Self::Q5_0
                | Self::Q5_1
                | Self::Q8_0
                | Self::Q4_K
                | Self::Q6_K
        )
    }

    /// (id, name, values per block, bytes per block), as in gguf-py's
    /// `GGML_QUANT_SIZES`.
    fn info(self) -> (u32, &'static str, usize, usize) {
        match self {
            Self::F32 => (0, "F32", 1, 4),
            Self::F16 => (1, "F16", 1, 2),
            Self::Q4_0 => (2, "Q4_0", 32, 2 + 16),
            Self::Q4_1 => (3, "Q4_1", 32, 2 + 2 + 16),
            Self::Q5_0 => (6, "Q5_0", 32, 2 + 4 + 16),
            Self::Q5_1 => (7, "Q5_1", 32, 2 + 2 + 4 + 16),
            Self::Q8_0 => (8, "Q8_0", 32, 2 + 32),
            Self::Q8_1 => (9, "Q8_1", 32, 4 + 4 + 32),
            Self::Q2_K => (10, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
            Self::Q3_K => (11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
            Self::Q4_K => (12, "Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12),
            Self::Q5_K => (13, "Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
            Self::Q6_K => (14, "Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
            Self::Q8_K => (15, "Q8_K", QK_K, 4 + QK_K + QK_K / 8),
            Self::IQ2_XXS => (16, "IQ2_XXS", QK_K, 2 + QK_K / 4),
            Self::IQ2_XS => (17, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32),
            Self::IQ3_XXS => (18, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8),
            Self::IQ1_S => (19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),
            Self::IQ4_NL => (20, "IQ4_NL", 32, 2 + 16),
            Self::IQ3_S => (21, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
            Self::IQ2_S => (22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16),
            Self::IQ4_XS => (23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
            Self::I8 => (24, "I8", 1, 1),
            Self::I16 => (25, "I16", 1, 2),
            Self::I32 => (26, "I32", 1, 4),
            Self::I64 => (27, "I64", 1, 8),
            Self::F64 => (28, "F64", 1, 8),
            Self::IQ1_M => (29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
            Self::BF16 => (30, "BF16", 1, 2),
            Self::TQ1_0 => (34, "TQ1_0", QK_K, 2 + 4 * 13),
            Self::TQ2_0 => (35, "TQ2_0", QK_K, 2 + 64),
            Self::MXFP4 => (39, "MXFP4", 32, 1 + 16),
            Self::NVFP4 => (40, "NVFP4", 64, 4 + 32),
            Self::Q1_0 => (41, "Q1_0", 128, 2 + 16),
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 42, 1000, u32::MAX] {
            assert_eq!(GgmlType::from_id(removed), None, "id {removed}");
        }
    }

    #[test]
    fn geometry_of_supported_types() {
        let g = |t: GgmlType| (t.block_size(), t.type_size());
        assert_eq!(g(GgmlType::Q8_0), (32, 34));
        assert_eq!(g(GgmlType::Q5_0), (32, 22));
        assert_eq!(g(GgmlType::Q4_K), (256, 144));
        assert_eq!(g(GgmlType::Q6_K), (256, 210));
        assert_eq!(g(GgmlType::Q4_0), (32, 18));
        assert_eq!(g(GgmlType::Q4_1), (32, 20));
        assert_eq!(g(GgmlType::Q5_1), (32, 24));
    }
}
