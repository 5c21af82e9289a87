//! General-purpose functions: C_Initialize, C_Finalize, C_GetInfo.

use cryptoki_sys::*;

use crate::error::{Error, Result};
use crate::state;

pub(crate) const MANUFACTURER: &str = "tpmkey";
pub(crate) const LIBRARY_DESCRIPTION: &str = "tpmkey TPM-backed PKCS#11 token";

/// What C_Initialize's CK_C_INITIALIZE_ARGS said, read by the FFI layer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InitArgs {
    pub flags: CK_FLAGS,
    /// How many of the four mutex callbacks are set (0 or 4 are valid).
    pub mutex_callbacks: usize,
    pub reserved_is_null: bool,
}

pub(crate) fn initialize(args: Option<InitArgs>) -> Result<()> {
    if let Some(a) = args {
        if !a.reserved_is_null {
            return Err(Error::new(
                CKR_ARGUMENTS_BAD,
                "CK_C_INITIALIZE_ARGS.pReserved must be NULL",
            ));
        }
        if a.mutex_callbacks != 0 && a.mutex_callbacks != 4 {
            return Err(Error::new(
                CKR_ARGUMENTS_BAD,
                "either all four mutex callbacks or none",
            ));
        }
        // The module locks with OS primitives only; it cannot use the caller's mutexes.
        if a.mutex_callbacks == 4 && a.flags & CKF_OS_LOCKING_OK == 0 {
            return Err(Error::new(
                CKR_CANT_LOCK,
                "only OS locking is supported (set CKF_OS_LOCKING_OK)",
            ));
        }
    }
    state::initialize()
}

pub(crate) fn finalize() -> Result<()> {
    state::finalize()
}

/// Copies `s` into a blank-padded PKCS#11 string field (cut at a character boundary).
pub(crate) fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

pub(crate) fn info() -> Result<CK_INFO> {
    state::with(|_| Ok(()))?;
    Ok(CK_INFO {
        cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
        manufacturerID: padded(MANUFACTURER),
        flags: 0,
        libraryDescription: padded(LIBRARY_DESCRIPTION),
        libraryVersion: version(),
    })
}

pub(crate) fn version() -> CK_VERSION {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse().unwrap_or(0));
    CK_VERSION {
        major: parts.next().unwrap_or(0),
        minor: parts.next().unwrap_or(0),
    }
}
