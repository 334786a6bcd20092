//! Choosing a backend at run time, among those compiled in (cargo features `ndarray`, `flex`,
//! `wgpu`, `cuda`), so one build serves every backend.

use std::fmt;

/// A Burn backend `--backend` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    Ndarray,
    Flex,
    /// Vulkan through wgpu (plain WGSL has no i8 type).
    #[value(alias = "vulkan")]
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

    /// `--backend`'s value parser: a name clap's [`clap::ValueEnum`] knows (any case, `vulkan`
    /// for wgpu) of a backend compiled in. Its errors are clap's, with these messages.
    pub fn parse_compiled(name: &str) -> Result<Self, BackendError> {
        let kind = <Self as clap::ValueEnum>::from_str(name, true)
            .map_err(|_| BackendError::Unknown(name.to_string()))?;
        if !kind.is_compiled() {
            return Err(BackendError::NotCompiled(kind));
        }
        Ok(kind)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Checks that `device` answers, before any real work: a backend compiled in may still have
/// no device here (no Vulkan driver, no NVIDIA GPU). Backends report that by panicking on
/// first use; this turns it into [`BackendError::NoDevice`] and keeps the panic message off
/// stderr.
pub fn probe_device<B: burn::tensor::backend::Backend>(
    kind: BackendKind,
    device: &B::Device,
) -> Result<(), BackendError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        burn::tensor::Tensor::<B, 1>::zeros([1], device).into_data()
    }));
    std::panic::set_hook(hook);
    outcome.map(drop).map_err(|payload| {
        let reason = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend failed to start".to_string());
        let hint = match kind {
            BackendKind::Wgpu => " (is a Vulkan driver installed? On a machine without a GPU, Mesa's lavapipe: `apt-get install mesa-vulkan-drivers`)",
            BackendKind::Cuda => " (is an NVIDIA GPU and its driver present?)",
            _ => "",
        };
        BackendError::NoDevice { kind, reason: format!("{reason}{hint}") }
    })
}

/// Runs `$body::<Backend>(device)` (an expression generic over the backend) on `$kind`.
///
/// ```ignore
/// with_backend!(kind, |B, device| run::<B>(device))
/// ```
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
pub(crate) use with_backend;

/// Sets the number of CPU threads the CPU backends (flex, ndarray) use, through rayon's global
/// pool. Call it once, before any tensor work; a second call is an error.
pub fn set_num_threads(threads: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
}
