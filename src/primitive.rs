//! Reaching a backend's own tensor type from generic code, for the direct kernels.

use std::any::TypeId;
use std::mem::ManuallyDrop;

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
