//! The life of a session's active operation (find, sign, verify, encrypt, decrypt,
//! digest): a C_*Init begins it where none of its kind is active; a call that finishes it
//! takes it out of the session; CKR_BUFFER_TOO_SMALL, the one error that does not end an
//! operation, puts it back; C_SessionCancel ends any.

use cryptoki_sys::*;

use crate::error::{Error, Result};
use crate::state;

/// Whether an operation of a kind may begin: CKR_OPERATION_ACTIVE while one runs. A C_*Init
/// asks this before any other check.
pub(crate) fn begin<Op>(slot: &Option<Op>) -> Result<()> {
    if slot.is_some() {
        Err(Error::rv(CKR_OPERATION_ACTIVE))
    } else {
        Ok(())
    }
}

/// The active operation, for a call that continues it (C_*Update).
pub(crate) fn active<Op>(slot: &mut Option<Op>) -> Result<&mut Op> {
    slot.as_mut()
        .ok_or_else(|| Error::rv(CKR_OPERATION_NOT_INITIALIZED))
}

/// Runs the call that ends the active operation; the operation survives only a
/// CKR_BUFFER_TOO_SMALL from `f`.
pub(crate) fn finish<Op, R>(
    slot: &mut Option<Op>,
    f: impl FnOnce(&mut Op) -> Result<R>,
) -> Result<R> {
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
pub(crate) fn check_capacity(capacity: Option<usize>, needed: usize) -> Result<()> {
    if capacity.is_none_or(|c| c < needed) {
        Err(Error::buffer_too_small(needed))
    } else {
        Ok(())
    }
}

/// C_SessionCancel: ends the session's operations whose CKF_* flags are set in `flags`.
pub(crate) fn cancel(session: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
    fn end<Op>(slot: &mut Option<Op>, flags: CK_FLAGS, flag: CK_FLAGS) {
        if flags & flag != 0 {
            *slot = None;
        }
    }
    state::with(|m| {
        let s = m.session(session)?;
        end(&mut s.find, flags, CKF_FIND_OBJECTS);
        end(&mut s.sign, flags, CKF_SIGN);
        end(&mut s.verify, flags, CKF_VERIFY);
        end(&mut s.encrypt, flags, CKF_ENCRYPT);
        end(&mut s.decrypt, flags, CKF_DECRYPT);
        end(&mut s.digest, flags, CKF_DIGEST);
        Ok(())
    })
}
