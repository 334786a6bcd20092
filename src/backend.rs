//! Choosing a backend at run time, among those compiled in (cargo features `ndarray`, `flex`,
//! `wgpu`, `cuda`), so one build serves every backend.

use std::fmt;
use std::str::FromStr;

/// A Burn backend this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Ndarray,
    Flex,
    Wgpu,
    Cuda,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend `{0}`; expected one of ndarray, flex, wgpu, cuda")]
    Unknown(String),
    #[error("backend `{0}` was not compiled in; rebuild with `--features {0}`")]
    NotCompiled(BackendKind),
    #[error("backend `{kind}` has no usable device: {reason}")]
    NoDevice { kind: BackendKind, reason: String },
}

impl BackendKind {
    pub const ALL: [BackendKind; 4] = [BackendKind::Ndarray, BackendKind::Flex, BackendKind::Wgpu, BackendKind::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Ndarray => cfg!(feature = "ndarray"),
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The compiled backends.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|kind| kind.is_compiled()).collect()
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = BackendError;

    /// Parses a backend name and checks that it was compiled in.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let kind = Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name) || (name.eq_ignore_ascii_case("vulkan") && *kind == BackendKind::Wgpu))
            .ok_or_else(|| BackendError::Unknown(name.to_string()))?;
        if !kind.is_compiled() {
            return Err(BackendError::NotCompiled(kind));
        }
        Ok(kind)
    }
}

/// Runs `$body::<Backend>(device)` (an expression generic over the backend) on `$kind`.
///
/// ```ignore
/// with_backend!(kind, |B, device| run::<B>(device))
/// ```
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, |$backend:ident, $device:ident| $body:expr) => {{
        match $kind {
            #[cfg(feature = "ndarray")]
            $crate::backend::BackendKind::Ndarray => {
                type $backend = burn::backend::NdArray;
                let $device = burn::backend::ndarray::NdArrayDevice::default();
                $body
            }
            #[cfg(feature = "flex")]
            $crate::backend::BackendKind::Flex => {
                type $backend = burn::backend::Flex;
                let $device = burn::backend::flex::FlexDevice;
                $body
            }
            #[cfg(feature = "wgpu")]
            $crate::backend::BackendKind::Wgpu => {
                type $backend = burn::backend::Vulkan;
                let $device = burn::backend::wgpu::WgpuDevice::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::BackendKind::Cuda => {
                type $backend = burn::backend::Cuda;
                let $device = burn::backend::cuda::CudaDevice::default();
                $body
            }
            #[allow(unreachable_patterns)]
            other => return Err($crate::backend::BackendError::NotCompiled(other).into()),
        }
    }};
}
