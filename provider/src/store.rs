//! STORE "handle": persistent TPM keys as `handle:0x81xxxxxx`, the URI form users of
//! tpm2-openssl write. A DA-protected key (no noDA in its public area) asks the
//! application for its password; `?pass` asks for any key.

use std::ffi::{c_char, c_int, c_void, CStr};

use tpmkey::public_key::PublicKey;
use tpmkey::{Error, Result, TpmKey};

use crate::decoder::{ask_password, object_params, with_password};
use crate::error::{guard, guard_int};
use crate::ffi::*;
use crate::key::KeyType;
use crate::params::{ParamTable, END};
use crate::{algorithm, dispatch_table, opctx, PROPERTIES};

#[derive(Debug)]
struct HandleCtx {
    handle: u32,
    ask_password: bool,
}

/// Parses `handle:0x81000001` or `handle:0x81000001?pass`.
fn open(uri: &str) -> Result<HandleCtx> {
    let handle = TpmKey::parse_handle_uri(uri)?;
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    let ask_password = match query {
        "" => false,
        "pass" => true,
        other => {
            return Err(Error::BadInput(format!(
                "\"{uri}\": unknown option \"{other}\" (only ?pass)"
            )))
        }
    };
    Ok(HandleCtx {
        handle,
        ask_password,
    })
}

/// What open made of the URI: a handle to load, or why not; and whether load ran.
#[derive(Debug)]
struct OpenCtx {
    target: Result<HandleCtx>,
    done: bool,
}

unsafe fn ctx<'a>(p: *mut c_void) -> Result<&'a mut OpenCtx> {
    // SAFETY: p is a context open_fn created (the core passes it back).
    unsafe { opctx::borrow(p) }
}

unsafe extern "C" fn open_fn(_provctx: *mut c_void, uri: *const c_char) -> *mut c_void {
    guard("store open", std::ptr::null_mut(), || {
        if uri.is_null() {
            return Err(Error::BadInput("no URI".into()));
        }
        // SAFETY: a NUL-terminated URI from OpenSSL.
        let uri = unsafe { CStr::from_ptr(uri) }.to_string_lossy();
        // A malformed handle URI still opens: load then reports why, where OpenSSL shows it
        // (a failed open is hidden behind its retry as a file name).
        let c = OpenCtx {
            target: open(&uri),
            done: false,
        };
        Ok(opctx::into_raw(c))
    })
}

unsafe extern "C" fn load(
    c: *mut c_void,
    object_cb: Option<OSSL_CALLBACK>,
    object_cbarg: *mut c_void,
    pw_cb: Option<OSSL_PASSPHRASE_CALLBACK>,
    pw_cbarg: *mut c_void,
) -> c_int {
    guard_int("store load", || {
        // SAFETY: our context.
        let c = unsafe { ctx(c) }?;
        c.done = true;
        let already = Err(Error::BadInput("the handle was loaded already".into()));
        let c = std::mem::replace(&mut c.target, already)?;
        let tpm = TpmKey::from_persistent(c.handle, None)?;
        let key_type = match tpm.public().key {
            PublicKey::Ec { .. } => KeyType::Ec,
            PublicKey::Rsa { .. } => KeyType::Rsa.served_as(&tpm),
        };
        // A DA-protected key (no noDA) takes a password; `?pass` asks for one in any case.
        // SAFETY: the core's password callback with its argument.
        let password = || unsafe { ask_password(pw_cb, pw_cbarg) };
        let key = with_password(tpm, key_type, c.ask_password, password);
        // SAFETY: the core's callback with its argument; key outlives the call.
        unsafe { object_params(&key).hand_to(object_cb, object_cbarg, "the persistent TPM key") }
    })
}

unsafe extern "C" fn eof(c: *mut c_void) -> c_int {
    // SAFETY: our context (NULL counts as finished).
    c_int::from(unsafe { ctx(c) }.map_or(true, |c| c.done))
}

unsafe extern "C" fn close(c: *mut c_void) -> c_int {
    // SAFETY: the core closes each context it opened once.
    unsafe { opctx::free::<OpenCtx>(c) };
    1
}

unsafe extern "C" fn set_ctx_params(_c: *mut c_void, _params: *const OSSL_PARAM) -> c_int {
    // "expect" and friends: a handle holds one key, there is nothing to choose.
    1
}

static SETTABLE: ParamTable = ParamTable(&[END]);

unsafe extern "C" fn settable_ctx_params(_provctx: *mut c_void) -> *const OSSL_PARAM {
    SETTABLE.as_ptr()
}

static FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_STORE_OPEN => open_fn,
    OSSL_FUNC_STORE_LOAD => load,
    OSSL_FUNC_STORE_EOF => eof,
    OSSL_FUNC_STORE_CLOSE => close,
    OSSL_FUNC_STORE_SET_CTX_PARAMS => set_ctx_params,
    OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS => settable_ctx_params,
];

pub(crate) static ALGORITHMS: [OSSL_ALGORITHM; 2] = [
    algorithm!(c"handle", PROPERTIES, FUNCTIONS),
    OSSL_ALGORITHM::END,
];

#[cfg(test)]
mod tests {
    use super::open;

    #[test]
    fn handle_uris() {
        let c = open("handle:0x81000001?pass").unwrap();
        assert_eq!((c.handle, c.ask_password), (0x8100_0001, true));
        assert!(!open("handle:0x81000002").unwrap().ask_password);
        assert!(open("handle:zz").is_err());
        assert!(open("handle:0x81000001?what").is_err());
        assert!(open("file:x").is_err());
    }
}
