//! The life of a session's active operation (find, sign, verify, encrypt, decrypt,
//! digest): a call that finishes it takes it out of the session; CKR_BUFFER_TOO_SMALL, the
//! one error that does not end an operation, puts it back.

use cryptoki_sys::*;

use crate::error::{Error, Result};

/// The active operation, for a call that continues it (C_*Update).
pub fn active<Op>(slot: &mut Option<Op>) -> Result<&mut Op> {
    slot.as_mut()
        .ok_or_else(|| Error::rv(CKR_OPERATION_NOT_INITIALIZED))
}

/// Runs the call that ends the active operation; the operation survives only a
/// CKR_BUFFER_TOO_SMALL from `f`.
pub fn finish<Op, R>(slot: &mut Option<Op>, f: impl FnOnce(&mut Op) -> Result<R>) -> Result<R> {
    let mut op = slot
        .take()
        .ok_or_else(|| Error::rv(CKR_OPERATION_NOT_INITIALIZED))?;
    let result = f(&mut op);
    if result.as_ref().is_err_and(Error::keeps_operation) {
        *slot = Some(op);
    }
    result
}

/// CKR_BUFFER_TOO_SMALL (with the size needed) for a missing or short output buffer.
pub fn check_capacity(capacity: Option<usize>, needed: usize) -> Result<()> {
    if capacity.is_none_or(|c| c < needed) {
        Err(Error::buffer_too_small(needed))
    } else {
        Ok(())
    }
}
