//! [`LayerKind`]: which kind of layer a report line is about.

use std::fmt;

/// The kinds of layer that hold a weight this crate quantizes: each is a swappable
/// float-or-int8 layer here ([`crate::Linear`], ...) and a plain layer in `burn::nn`.
///
/// `Display` gives the type's name (`"Linear"`), as the report's text spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerKind {
    Linear,
    Embedding,
    Conv1d,
    Conv2d,
}

impl LayerKind {
    /// Every kind, in declaration order.
    pub const ALL: [LayerKind; 4] = [
        LayerKind::Linear,
        LayerKind::Embedding,
        LayerKind::Conv1d,
        LayerKind::Conv2d,
    ];

    /// The type's name, the same in `burn::nn`, in this crate and in Burn's module visitor
    /// (`"Struct:Linear"`).
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Linear => "Linear",
            LayerKind::Embedding => "Embedding",
            LayerKind::Conv1d => "Conv1d",
            LayerKind::Conv2d => "Conv2d",
        }
    }

    /// The kind named `name` (a type name, as [`Self::name`] gives it).
    pub fn from_name(name: &str) -> Option<LayerKind> {
        LayerKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_into_their_kind() {
        for kind in LayerKind::ALL {
            assert_eq!(LayerKind::from_name(&kind.to_string()), Some(kind));
        }
        assert_eq!(LayerKind::from_name("Conv3d"), None);
    }
}
