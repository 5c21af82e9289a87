//! The key an operation names by handle: an object handle that names nothing is
//! CKR_KEY_HANDLE_INVALID here, as every C_*Init answers it.

use cryptoki_sys::*;

use crate::attributes::SecretAttributes;
use crate::error::{Error, Result};
use crate::state::{Module, ObjRef};

/// The key object behind `h` for an operation: invalid handles are KEY_HANDLE_INVALID.
pub(crate) fn key_object(
    m: &mut Module,
    session: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
) -> Result<(ObjRef, SecretAttributes)> {
    m.object(session, h).map_err(|e| {
        if e.code() == CKR_OBJECT_HANDLE_INVALID {
            Error::new(CKR_KEY_HANDLE_INVALID, e.cause())
        } else {
            e
        }
    })
}
