//! Errors to OpenSSL's error queue through the core's error upcall, and the guard every
//! `extern "C"` entry goes through: panics are caught, errors reported with the tpmkey text
//! (the TPM cause in words) and the source file, line and function of the entry that raised
//! them, and the C failure value returned.

use std::ffi::{c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::sync::RwLock;

use tpmkey::{Error, Result};

use crate::ffi::{
    tpmkey_raise_error, CoreNewErrorFn, CoreSetErrorDebugFn, CoreVsetErrorFn, OSSL_CORE_HANDLE,
    OSSL_ITEM,
};

/// The core's error functions and the handle of the provider instance that reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ErrorUpcall {
    pub handle: *const OSSL_CORE_HANDLE,
    pub new_error: Option<CoreNewErrorFn>,
    pub set_debug: Option<CoreSetErrorDebugFn>,
    pub vset: Option<CoreVsetErrorFn>,
}

// SAFETY: the handle and functions belong to libcrypto and are valid process-wide while the
// provider is loaded; the core's error functions are thread-safe.
unsafe impl Send for ErrorUpcall {}
// SAFETY: as above.
unsafe impl Sync for ErrorUpcall {}

static UPCALL: RwLock<Option<ErrorUpcall>> = RwLock::new(None);

pub(crate) fn install(upcall: ErrorUpcall) {
    *UPCALL.write().unwrap_or_else(|p| p.into_inner()) = Some(upcall);
}

/// Reason codes: what kind of failure, the text says which.
#[repr(u32)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reason {
    Config = 1,
    TpmUnreachable = 2,
    Tpm = 3,
    Integrity = 4,
    KeyFile = 5,
    Unsupported = 6,
    BadInput = 7,
    Io = 8,
    Internal = 9,
    BadPassword = 10,
    PolicyNotSatisfied = 11,
}

fn reason(e: &Error) -> Reason {
    match e {
        Error::Config(_) => Reason::Config,
        Error::Tcti { .. } => Reason::TpmUnreachable,
        e if e.is_bad_auth() => Reason::BadPassword,
        e if e.is_policy_failure() => Reason::PolicyNotSatisfied,
        Error::Tpm { .. } => Reason::Tpm,
        Error::Integrity(_) => Reason::Integrity,
        Error::KeyFile(_) => Reason::KeyFile,
        Error::Unsupported(_) => Reason::Unsupported,
        Error::BadInput(_) => Reason::BadInput,
        Error::Io { .. } => Reason::Io,
        _ => Reason::Internal,
    }
}

/// `OSSL_FUNC_PROVIDER_GET_REASON_STRINGS`.
pub(crate) static REASON_STRINGS: [OSSL_ITEM; 12] = [
    item(Reason::Config, c"tpmkey configuration error"),
    item(Reason::TpmUnreachable, c"TPM unreachable"),
    item(Reason::Tpm, c"TPM command failed"),
    item(
        Reason::Integrity,
        c"TPM response failed its integrity check",
    ),
    item(Reason::KeyFile, c"malformed TPM key file"),
    item(Reason::Unsupported, c"not supported by tpmkey"),
    item(Reason::BadInput, c"invalid input"),
    item(Reason::Io, c"I/O error"),
    item(Reason::Internal, c"internal error"),
    item(Reason::BadPassword, c"wrong key password"),
    item(
        Reason::PolicyNotSatisfied,
        c"platform state does not satisfy the key's policy",
    ),
    OSSL_ITEM {
        id: 0,
        ptr: std::ptr::null_mut(),
    },
];

const fn item(reason: Reason, text: &'static std::ffi::CStr) -> OSSL_ITEM {
    OSSL_ITEM {
        id: reason as u32,
        ptr: text.as_ptr() as *mut std::ffi::c_void,
    }
}

/// Puts `e` on OpenSSL's error queue; `func` names the OpenSSL operation, `at` the place in
/// the provider's source that raises it (its file and line go to the error's debug data).
fn raise(e: &Error, func: &str, at: &Location<'_>) {
    // A TPM in lockout also says how it recovers (one TPM2_GetCapability, on this error only).
    let text = if e.is_lockout() {
        format!("{e}: {}", tpmkey::dictionary_attack::lockout_advice())
    } else {
        e.to_string()
    };
    tpmkey::log::write(
        tpmkey::log::Level::Debug,
        "tpmkey",
        &format!("{func}: {text}"),
    );
    let Some(up) = *UPCALL.read().unwrap_or_else(|p| p.into_inner()) else {
        return;
    };
    let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
    let func = CString::new(func).unwrap_or_default();
    let file = CString::new(at.file()).unwrap_or_default();
    let line = c_int::try_from(at.line()).unwrap_or(0);
    // SAFETY: the upcall functions and handle came from the core at init; the strings are
    // NUL-terminated and live across the call; the shim checks the functions for NULL.
    unsafe {
        tpmkey_raise_error(
            up.new_error,
            up.set_debug,
            up.vset,
            up.handle,
            reason(e) as u32,
            file.as_ptr(),
            line,
            func.as_ptr(),
            text.as_ptr(),
        );
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs `f`, catching panics; on error or panic reports to the queue and returns `failed`.
/// The error carries the file and line of the `guard` call (the entry point OpenSSL called,
/// through `#[track_caller]`) and `func`, the OpenSSL function it serves.
#[track_caller]
pub(crate) fn guard<T>(func: &str, failed: T, f: impl FnOnce() -> Result<T>) -> T {
    let at = Location::caller();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            raise(&e, func, at);
            failed
        }
        Err(p) => {
            raise(&Error::Panic(panic_message(p)), func, at);
            failed
        }
    }
}

/// [`guard`] for the usual `int` result: 1 on success, 0 on failure.
#[track_caller]
pub(crate) fn guard_int(func: &str, f: impl FnOnce() -> Result<()>) -> c_int {
    guard(func, 0, || f().map(|()| 1))
}

/// [`guard`] for functions answering a boolean as `int` (has, match, does_selection).
#[track_caller]
pub(crate) fn guard_bool(func: &str, f: impl FnOnce() -> Result<bool>) -> c_int {
    guard(func, 0, || f().map(c_int::from))
}

/// A line at level error (standard error unless `TPMKEY_LOG` says otherwise; see
/// `tpmkey::log`), for causes OpenSSL drops (config-time provider errors, the decoders'
/// errors on its file store path). Never secrets.
pub(crate) fn log(message: &str) {
    tpmkey::log::write(tpmkey::log::Level::Error, "tpmkey", message);
}
