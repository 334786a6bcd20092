//! `config_conversions!`: `From` both ways between a config of this crate and Burn's config of
//! the same module, field by field (both have Burn's fields), so code that builds Burn's config
//! elsewhere (a training loop, a saved `config.json`) passes it with `.into()`.

/// `From<Ours> for Burn`, `From<&Ours> for Burn` and `From<Burn> for Ours`, for configs with
/// the same public fields.
macro_rules! config_conversions {
    ($ours:ty, $burn:ty, [$($field:ident),* $(,)?]) => {
        impl From<&$ours> for $burn {
            fn from(config: &$ours) -> Self {
                Self { $($field: config.$field.clone(),)* }
            }
        }

        impl From<$ours> for $burn {
            fn from(config: $ours) -> Self {
                Self::from(&config)
            }
        }

        impl From<$burn> for $ours {
            fn from(config: $burn) -> Self {
                Self { $($field: config.$field,)* }
            }
        }
    };
}
pub(crate) use config_conversions;
