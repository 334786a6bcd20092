//! The one table from cargo features to backend types, and the one way to reach a backend's
//! storage from generic code.
//!
//! A backend feature (`flex`, `ndarray`, `wgpu`, `cuda`) adds a variant of [`KernelBackend`];
//! every `match` on it (the CPU storage access, the cubecl runtime, the autodiff unwrap) is
//! then checked by the compiler, so adding a backend cannot forget a place. Storage is reached
//! by moving a generic primitive to the concrete type it is ([`same_type`]), nothing else.

use std::any::TypeId;
use std::mem::ManuallyDrop;

use burn::tensor::backend::Backend;

/// A backend with direct int8 kernels, known by its int tensor primitive: `Autodiff<I>` keeps
/// `I`'s int tensors (autodiff tracks floats only), so it is `I`'s variant too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KernelBackend {
    #[cfg(feature = "flex")]
    Flex,
    #[cfg(feature = "ndarray")]
    NdArray,
    #[cfg(feature = "wgpu")]
    Vulkan,
    #[cfg(feature = "cuda")]
    Cuda,
}

impl KernelBackend {
    /// `B`'s kernels, or `None` when only the generic path serves it.
    pub(crate) fn of<B: Backend>() -> Option<Self> {
        let int = TypeId::of::<B::IntTensorPrimitive>();
        #[cfg(feature = "flex")]
        if int == TypeId::of::<burn_flex::FlexTensor>() {
            return Some(Self::Flex);
        }
        #[cfg(feature = "ndarray")]
        if int == TypeId::of::<burn_ndarray::NdArrayTensor>() {
            return Some(Self::NdArray);
        }
        #[cfg(feature = "wgpu")]
        if int == TypeId::of::<burn_cubecl::tensor::CubeTensor<cubecl::wgpu::WgpuRuntime>>() {
            return Some(Self::Vulkan);
        }
        #[cfg(feature = "cuda")]
        if int == TypeId::of::<burn_cubecl::tensor::CubeTensor<cubecl::cuda::CudaRuntime>>() {
            return Some(Self::Cuda);
        }
        let _ = int;
        None
    }

    /// Whether `B`'s tensors live in host memory, where the `cpu/` kernels read them.
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    pub(crate) fn is_cpu<B: Backend>() -> bool {
        match Self::of::<B>() {
            #[cfg(feature = "flex")]
            Some(Self::Flex) => true,
            #[cfg(feature = "ndarray")]
            Some(Self::NdArray) => true,
            _ => false,
        }
    }
}

/// Moves `value` to type `T` when `A` and `T` are the same type (a generic backend's primitive
/// to the concrete type a kernel knows); hands it back otherwise.
pub(crate) fn same_type<A: 'static, T: 'static>(value: A) -> Result<T, A> {
    if TypeId::of::<A>() == TypeId::of::<T>() {
        let value = ManuallyDrop::new(value);
        // SAFETY: `A` and `T` are the same type (checked above), and the original is not dropped.
        Ok(unsafe { std::mem::transmute_copy::<A, T>(&value) })
    } else {
        Err(value)
    }
}

/// Whether `A` and `T` are the same type.
pub(crate) fn is_type<A: 'static, T: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<T>()
}

#[cfg(feature = "flex")]
/// [`same_type`] on a borrowed value.
pub(crate) fn same_type_mut<A: 'static, T: 'static>(value: &mut A) -> Option<&mut T> {
    if TypeId::of::<A>() == TypeId::of::<T>() {
        // SAFETY: `A` and `T` are the same type (checked above).
        Some(unsafe { &mut *(value as *mut A).cast::<T>() })
    } else {
        None
    }
}
