//! OSSL_FUNC_PROVIDER_GET_CAPABILITIES: the TLS groups tpmkey declares. P-256 and P-384
//! with the ids, security bits and protocol versions OpenSSL's default provider declares,
//! but backed by TPMKEY-EPHEMERAL-EC (software ephemeral keys): with tpmkey listed first,
//! libssl keeps these groups (their key management is tpmkey's, as it requires) where it
//! drops the default provider's, so TLS 1.2 with ECDSA certificates keeps working, and no
//! handshake ever asks tpmkey's TPM key management for a key.

use std::ffi::{c_char, c_int, c_void, CStr};

use tpmkey::{Error, Result};

use crate::ephemeral_ec;
use crate::ffi::*;
use crate::params::ParamList;

/// TLS1_VERSION and DTLS1_VERSION (prov_ssl.h); 0 means no maximum.
const TLS1_VERSION: i32 = 0x0301;
const DTLS1_VERSION: i32 = 0xFEFF;

struct TlsGroup {
    name: &'static str,
    internal_name: &'static str,
    id: u32,
    security_bits: u32,
}

/// As the default provider names them, aliases included (`-groups P-256` finds the alias).
const TLS_GROUPS: [TlsGroup; 4] = [
    TlsGroup {
        name: "secp256r1",
        internal_name: "prime256v1",
        id: 23,
        security_bits: 128,
    },
    TlsGroup {
        name: "P-256",
        internal_name: "prime256v1",
        id: 23,
        security_bits: 128,
    },
    TlsGroup {
        name: "secp384r1",
        internal_name: "secp384r1",
        id: 24,
        security_bits: 192,
    },
    TlsGroup {
        name: "P-384",
        internal_name: "secp384r1",
        id: 24,
        security_bits: 192,
    },
];

fn describe(group: &TlsGroup) -> ParamList {
    let algorithm = ephemeral_ec::NAME.to_str().unwrap_or_default();
    let mut list = ParamList::new();
    list.utf8(OSSL_CAPABILITY_TLS_GROUP_NAME, group.name)
        .utf8(OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL, group.internal_name)
        .uint(OSSL_CAPABILITY_TLS_GROUP_ID, group.id)
        .utf8(OSSL_CAPABILITY_TLS_GROUP_ALG, algorithm)
        .uint(OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS, group.security_bits)
        .int(OSSL_CAPABILITY_TLS_GROUP_MIN_TLS, TLS1_VERSION)
        .int(OSSL_CAPABILITY_TLS_GROUP_MAX_TLS, 0)
        .int(OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS, DTLS1_VERSION)
        .int(OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS, 0);
    list
}

/// Hands each group of `capability` to `cb`; capabilities other than TLS-GROUP have none.
///
/// # Safety
/// `cb` and `arg` are the pair the core passed to `get_capabilities`.
unsafe fn announce(capability: &CStr, cb: Option<OSSL_CALLBACK>, arg: *mut c_void) -> Result<()> {
    if capability != c"TLS-GROUP" {
        return Ok(());
    }
    for group in &TLS_GROUPS {
        let what = format!("the TLS group {}", group.name);
        // SAFETY: the core's callback with its argument.
        unsafe { describe(group).hand_to(cb, arg, &what) }?;
    }
    Ok(())
}

/// # Safety
/// `capability` is NULL or a NUL-terminated string; `cb` the core's callback for `arg`.
pub(crate) unsafe extern "C" fn get_capabilities(
    _provctx: *mut c_void,
    capability: *const c_char,
    cb: Option<OSSL_CALLBACK>,
    arg: *mut c_void,
) -> c_int {
    crate::error::guard_int("provider get_capabilities", || {
        if capability.is_null() {
            return Err(Error::BadInput("no capability named".into()));
        }
        // SAFETY: checked non-NULL, the core passes a NUL-terminated name; cb and arg are
        // the core's pair.
        unsafe { announce(CStr::from_ptr(capability), cb, arg) }
    })
}
