//! Operation contexts handed to OpenSSL as `void *`: boxed on creation, borrowed for a call,
//! duplicated, freed once. One place for the pointer handling every operation needs.

use std::ffi::c_void;

use tpmkey::{Error, Result};

/// Boxes `ctx` and hands it to OpenSSL.
pub(crate) fn into_raw<T>(ctx: T) -> *mut c_void {
    Box::into_raw(Box::new(ctx)).cast()
}

/// # Safety
/// `p` is NULL or came from [`into_raw`] with the same `T`, is not freed, and no other
/// reference to it is alive during the borrow (OpenSSL uses a context from one thread).
pub(crate) unsafe fn borrow<'a, T>(p: *mut c_void) -> Result<&'a mut T> {
    // SAFETY: caller's contract; NULL is checked.
    unsafe { p.cast::<T>().as_mut() }.ok_or_else(|| {
        Error::BadInput(format!(
            "no {} (NULL context)",
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("context")
        ))
    })
}

/// A copy of the context for OpenSSL's dupctx.
///
/// # Safety
/// As [`borrow`].
pub(crate) unsafe fn dup<T: Clone>(p: *mut c_void) -> Result<*mut c_void> {
    // SAFETY: caller's contract.
    Ok(into_raw(unsafe { borrow::<T>(p) }?.clone()))
}

/// # Safety
/// `p` is NULL or came from [`into_raw`] with the same `T`, and is freed exactly once.
pub(crate) unsafe fn free<T>(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: caller's contract: p came from Box::into_raw in into_raw.
        drop(unsafe { Box::from_raw(p.cast::<T>()) });
    }
}

/// OpenSSL's freectx for contexts of type `T`, usable directly in a dispatch table.
///
/// # Safety
/// Called by the core with a context of type `T` it got from this provider, once.
pub(crate) unsafe extern "C" fn freectx<T>(c: *mut c_void) {
    // SAFETY: caller's contract.
    unsafe { free::<T>(c) }
}

/// OpenSSL's dupctx for contexts of type `T`, usable directly in a dispatch table.
///
/// # Safety
/// Called by the core with a live context of type `T` from this provider.
pub(crate) unsafe extern "C" fn dupctx<T: Clone>(c: *mut c_void) -> *mut c_void {
    // SAFETY: caller's contract.
    crate::error::guard("dupctx", std::ptr::null_mut(), || unsafe { dup::<T>(c) })
}
