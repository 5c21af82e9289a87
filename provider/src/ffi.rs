//! The raw OpenSSL core interface, declared by hand: the types of `core.h`, the function ids
//! of `core_dispatch.h` and the parameter names of `core_names.h` that openssl-sys does not
//! give (reference.md §1). Nothing but declarations; a unit test checks every id and name
//! against the headers installed on this machine.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr};

/// `OSSL_PARAM` of core.h (the same layout as openssl-sys's, with Debug).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct OSSL_PARAM {
    pub key: *const c_char,
    pub data_type: std::ffi::c_uint,
    pub data: *mut c_void,
    pub data_size: usize,
    pub return_size: usize,
}

/// The core's handle for this provider instance (opaque).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct OSSL_CORE_HANDLE {
    _private: [u8; 0],
}

/// A BIO of the application, seen through the core (opaque).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct OSSL_CORE_BIO {
    _private: [u8; 0],
}

/// Any function of a dispatch table; the id says its real signature.
pub(crate) type DispatchFn = unsafe extern "C" fn();

#[repr(C)]
#[derive(Debug)]
pub(crate) struct OSSL_DISPATCH {
    pub function_id: c_int,
    pub function: Option<DispatchFn>,
}

impl OSSL_DISPATCH {
    pub(crate) const END: OSSL_DISPATCH = OSSL_DISPATCH {
        function_id: 0,
        function: None,
    };
}

// SAFETY: dispatch tables are immutable statics of function pointers.
unsafe impl Sync for OSSL_DISPATCH {}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct OSSL_ALGORITHM {
    pub algorithm_names: *const c_char,
    pub property_definition: *const c_char,
    pub implementation: *const OSSL_DISPATCH,
    pub algorithm_description: *const c_char,
}

// SAFETY: algorithm tables are immutable statics pointing at other statics.
unsafe impl Sync for OSSL_ALGORITHM {}

impl OSSL_ALGORITHM {
    pub(crate) const END: OSSL_ALGORITHM = OSSL_ALGORITHM {
        algorithm_names: std::ptr::null(),
        property_definition: std::ptr::null(),
        implementation: std::ptr::null(),
        algorithm_description: std::ptr::null(),
    };
}

#[repr(C)]
#[derive(Debug)]
pub(crate) struct OSSL_ITEM {
    pub id: std::ffi::c_uint,
    pub ptr: *mut c_void,
}

// SAFETY: reason-string tables are immutable statics pointing at string literals.
unsafe impl Sync for OSSL_ITEM {}

/// `OSSL_CALLBACK`: hands an object (as parameters) back to the core.
pub(crate) type OSSL_CALLBACK =
    unsafe extern "C" fn(params: *const OSSL_PARAM, arg: *mut c_void) -> c_int;

/// `OSSL_PASSPHRASE_CALLBACK`: asks the application for a password.
pub(crate) type OSSL_PASSPHRASE_CALLBACK = unsafe extern "C" fn(
    pass: *mut c_char,
    pass_size: usize,
    pass_len: *mut usize,
    params: *const OSSL_PARAM,
    arg: *mut c_void,
) -> c_int;

// Upcalls the provider takes from the core's dispatch table.
pub(crate) type CoreGetParamsFn =
    unsafe extern "C" fn(handle: *const OSSL_CORE_HANDLE, params: *mut OSSL_PARAM) -> c_int;
pub(crate) type CoreNewErrorFn = unsafe extern "C" fn(handle: *const OSSL_CORE_HANDLE);
pub(crate) type CoreSetErrorDebugFn = unsafe extern "C" fn(
    handle: *const OSSL_CORE_HANDLE,
    file: *const c_char,
    line: c_int,
    func: *const c_char,
);
/// Takes a `va_list`: only the C shim calls it.
pub(crate) type CoreVsetErrorFn = unsafe extern "C" fn();
pub(crate) type BioReadExFn = unsafe extern "C" fn(
    bio: *mut OSSL_CORE_BIO,
    data: *mut c_void,
    data_len: usize,
    bytes_read: *mut usize,
) -> c_int;
pub(crate) type BioWriteExFn = unsafe extern "C" fn(
    bio: *mut OSSL_CORE_BIO,
    data: *const c_void,
    data_len: usize,
    written: *mut usize,
) -> c_int;

extern "C" {
    /// provider/shim/provider_shim.c: new_error + set_error_debug(file, line, func) +
    /// vset_error("%s", text).
    pub(crate) fn tpmkey_raise_error(
        new_error: Option<CoreNewErrorFn>,
        set_debug: Option<CoreSetErrorDebugFn>,
        vset: Option<CoreVsetErrorFn>,
        handle: *const OSSL_CORE_HANDLE,
        reason: u32,
        file: *const c_char,
        line: c_int,
        func: *const c_char,
        text: *const c_char,
    );
}

// libcrypto functions openssl-sys 0.9 does not declare (libcrypto is linked through it).
extern "C" {
    pub(crate) fn EVP_PKEY_CTX_new_from_pkey(
        libctx: *mut openssl_sys::OSSL_LIB_CTX,
        pkey: *mut openssl_sys::EVP_PKEY,
        propquery: *const c_char,
    ) -> *mut openssl_sys::EVP_PKEY_CTX;
    pub(crate) fn OSSL_PROVIDER_do_all(
        libctx: *mut openssl_sys::OSSL_LIB_CTX,
        cb: unsafe extern "C" fn(*mut openssl_sys::OSSL_PROVIDER, *mut c_void) -> c_int,
        cbdata: *mut c_void,
    ) -> c_int;
    pub(crate) fn OSSL_PROVIDER_query_operation(
        prov: *const openssl_sys::OSSL_PROVIDER,
        operation_id: c_int,
        no_cache: *mut c_int,
    ) -> *const OSSL_ALGORITHM;
    pub(crate) fn OSSL_PROVIDER_unquery_operation(
        prov: *const openssl_sys::OSSL_PROVIDER,
        operation_id: c_int,
        algs: *const OSSL_ALGORITHM,
    );
    pub(crate) fn OSSL_PROVIDER_get0_provider_ctx(
        prov: *const openssl_sys::OSSL_PROVIDER,
    ) -> *mut c_void;
}

/// `OSSL_FUNC_core_get_libctx`: the library context the provider was loaded into.
pub(crate) type CoreGetLibctxFn = unsafe extern "C" fn(*const OSSL_CORE_HANDLE) -> *mut c_void;

/// Declares integer constants and a list of them for the header check.
macro_rules! header_ints {
    ($list:ident: $($name:ident = $value:expr),* $(,)?) => {
        $(pub(crate) const $name: c_int = $value;)*
        #[cfg(test)]
        pub(crate) const $list: &[(&str, c_int)] = &[$((stringify!($name), $value)),*];
    };
}

/// Declares parameter-name constants and a list of them for the header check.
macro_rules! header_names {
    ($list:ident: $($name:ident = $value:expr),* $(,)?) => {
        $(pub(crate) const $name: &CStr = $value;)*
        #[cfg(test)]
        pub(crate) const $list: &[(&str, &CStr)] = &[$((stringify!($name), $value)),*];
    };
}

header_ints! { DISPATCH_IDS:
    // Core upcalls.
    OSSL_FUNC_CORE_GET_PARAMS = 2,
    OSSL_FUNC_CORE_GET_LIBCTX = 4,
    OSSL_FUNC_CORE_NEW_ERROR = 5,
    OSSL_FUNC_CORE_SET_ERROR_DEBUG = 6,
    OSSL_FUNC_CORE_VSET_ERROR = 7,
    OSSL_FUNC_BIO_READ_EX = 42,
    OSSL_FUNC_BIO_WRITE_EX = 43,
    // Provider.
    OSSL_FUNC_PROVIDER_TEARDOWN = 1024,
    OSSL_FUNC_PROVIDER_GETTABLE_PARAMS = 1025,
    OSSL_FUNC_PROVIDER_GET_PARAMS = 1026,
    OSSL_FUNC_PROVIDER_QUERY_OPERATION = 1027,
    OSSL_FUNC_PROVIDER_GET_REASON_STRINGS = 1029,
    OSSL_FUNC_PROVIDER_GET_CAPABILITIES = 1030,
    // Operations.
    OSSL_OP_RAND = 5,
    OSSL_OP_KEYMGMT = 10,
    OSSL_OP_KEYEXCH = 11,
    OSSL_OP_SIGNATURE = 12,
    OSSL_OP_ASYM_CIPHER = 13,
    OSSL_OP_ENCODER = 20,
    OSSL_OP_DECODER = 21,
    OSSL_OP_STORE = 22,
    // RAND.
    OSSL_FUNC_RAND_NEWCTX = 1,
    OSSL_FUNC_RAND_FREECTX = 2,
    OSSL_FUNC_RAND_INSTANTIATE = 3,
    OSSL_FUNC_RAND_UNINSTANTIATE = 4,
    OSSL_FUNC_RAND_GENERATE = 5,
    OSSL_FUNC_RAND_RESEED = 6,
    OSSL_FUNC_RAND_ENABLE_LOCKING = 8,
    OSSL_FUNC_RAND_LOCK = 9,
    OSSL_FUNC_RAND_UNLOCK = 10,
    OSSL_FUNC_RAND_GETTABLE_CTX_PARAMS = 12,
    OSSL_FUNC_RAND_GET_CTX_PARAMS = 15,
    OSSL_FUNC_RAND_GET_SEED = 18,
    OSSL_FUNC_RAND_CLEAR_SEED = 19,
    // KEYMGMT.
    OSSL_FUNC_KEYMGMT_NEW = 1,
    OSSL_FUNC_KEYMGMT_GEN_INIT = 2,
    OSSL_FUNC_KEYMGMT_GEN_SET_TEMPLATE = 3,
    OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS = 4,
    OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS = 5,
    OSSL_FUNC_KEYMGMT_GEN = 6,
    OSSL_FUNC_KEYMGMT_GEN_CLEANUP = 7,
    OSSL_FUNC_KEYMGMT_LOAD = 8,
    OSSL_FUNC_KEYMGMT_FREE = 10,
    OSSL_FUNC_KEYMGMT_GET_PARAMS = 11,
    OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS = 12,
    OSSL_FUNC_KEYMGMT_SET_PARAMS = 13,
    OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS = 14,
    OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME = 20,
    OSSL_FUNC_KEYMGMT_HAS = 21,
    OSSL_FUNC_KEYMGMT_VALIDATE = 22,
    OSSL_FUNC_KEYMGMT_MATCH = 23,
    OSSL_FUNC_KEYMGMT_IMPORT = 40,
    OSSL_FUNC_KEYMGMT_IMPORT_TYPES = 41,
    OSSL_FUNC_KEYMGMT_EXPORT = 42,
    OSSL_FUNC_KEYMGMT_EXPORT_TYPES = 43,
    OSSL_FUNC_KEYMGMT_DUP = 44,
    // KEYEXCH.
    OSSL_FUNC_KEYEXCH_NEWCTX = 1,
    OSSL_FUNC_KEYEXCH_INIT = 2,
    OSSL_FUNC_KEYEXCH_DERIVE = 3,
    OSSL_FUNC_KEYEXCH_SET_PEER = 4,
    OSSL_FUNC_KEYEXCH_FREECTX = 5,
    OSSL_FUNC_KEYEXCH_DUPCTX = 6,
    OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS = 7,
    OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS = 8,
    // SIGNATURE.
    OSSL_FUNC_SIGNATURE_NEWCTX = 1,
    OSSL_FUNC_SIGNATURE_SIGN_INIT = 2,
    OSSL_FUNC_SIGNATURE_SIGN = 3,
    OSSL_FUNC_SIGNATURE_VERIFY_INIT = 4,
    OSSL_FUNC_SIGNATURE_VERIFY = 5,
    OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT = 8,
    OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE = 9,
    OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL = 10,
    OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT = 12,
    OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE = 13,
    OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL = 14,
    OSSL_FUNC_SIGNATURE_FREECTX = 16,
    OSSL_FUNC_SIGNATURE_DUPCTX = 17,
    OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS = 18,
    OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS = 19,
    OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS = 20,
    OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS = 21,
    // ASYM_CIPHER.
    OSSL_FUNC_ASYM_CIPHER_NEWCTX = 1,
    OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT = 2,
    OSSL_FUNC_ASYM_CIPHER_ENCRYPT = 3,
    OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT = 4,
    OSSL_FUNC_ASYM_CIPHER_DECRYPT = 5,
    OSSL_FUNC_ASYM_CIPHER_FREECTX = 6,
    OSSL_FUNC_ASYM_CIPHER_DUPCTX = 7,
    OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS = 8,
    OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS = 9,
    OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS = 10,
    OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS = 11,
    // ENCODER.
    OSSL_FUNC_ENCODER_NEWCTX = 1,
    OSSL_FUNC_ENCODER_FREECTX = 2,
    OSSL_FUNC_ENCODER_DOES_SELECTION = 10,
    OSSL_FUNC_ENCODER_ENCODE = 11,
    // DECODER.
    OSSL_FUNC_DECODER_NEWCTX = 1,
    OSSL_FUNC_DECODER_FREECTX = 2,
    OSSL_FUNC_DECODER_DOES_SELECTION = 10,
    OSSL_FUNC_DECODER_DECODE = 11,
    // STORE.
    OSSL_FUNC_STORE_OPEN = 1,
    OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS = 3,
    OSSL_FUNC_STORE_SET_CTX_PARAMS = 4,
    OSSL_FUNC_STORE_LOAD = 5,
    OSSL_FUNC_STORE_EOF = 6,
    OSSL_FUNC_STORE_CLOSE = 7,
    // Key selections.
    OSSL_KEYMGMT_SELECT_PRIVATE_KEY = 0x01,
    OSSL_KEYMGMT_SELECT_PUBLIC_KEY = 0x02,
    OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS = 0x04,
    OSSL_KEYMGMT_SELECT_OTHER_PARAMETERS = 0x80,
}

#[cfg(test)]
pub(crate) const OTHER_HEADER_INTS: &[(&str, &str, c_int)] = &[
    ("core.h", "OSSL_PARAM_INTEGER", OSSL_PARAM_INTEGER as c_int),
    (
        "core.h",
        "OSSL_PARAM_UNSIGNED_INTEGER",
        OSSL_PARAM_UNSIGNED_INTEGER as c_int,
    ),
    (
        "core.h",
        "OSSL_PARAM_UTF8_STRING",
        OSSL_PARAM_UTF8_STRING as c_int,
    ),
    (
        "core.h",
        "OSSL_PARAM_OCTET_STRING",
        OSSL_PARAM_OCTET_STRING as c_int,
    ),
    (
        "core.h",
        "OSSL_PARAM_UTF8_PTR",
        OSSL_PARAM_UTF8_PTR as c_int,
    ),
    (
        "core.h",
        "OSSL_PARAM_OCTET_PTR",
        OSSL_PARAM_OCTET_PTR as c_int,
    ),
    ("core_object.h", "OSSL_OBJECT_PKEY", OSSL_OBJECT_PKEY),
];

/// `OSSL_KEYMGMT_SELECT_KEYPAIR` (a macro over the two selections in the header).
pub(crate) const OSSL_KEYMGMT_SELECT_KEYPAIR: c_int =
    OSSL_KEYMGMT_SELECT_PRIVATE_KEY | OSSL_KEYMGMT_SELECT_PUBLIC_KEY;

pub(crate) const OSSL_PARAM_INTEGER: u32 = 1;
pub(crate) const OSSL_PARAM_UNSIGNED_INTEGER: u32 = 2;
pub(crate) const OSSL_PARAM_UTF8_STRING: u32 = 4;
pub(crate) const OSSL_PARAM_OCTET_STRING: u32 = 5;
pub(crate) const OSSL_PARAM_UTF8_PTR: u32 = 6;
pub(crate) const OSSL_PARAM_OCTET_PTR: u32 = 7;
/// `OSSL_PARAM_UNMODIFIED`: return_size before anyone answered.
pub(crate) const OSSL_PARAM_UNMODIFIED: usize = usize::MAX;
pub(crate) const OSSL_OBJECT_PKEY: c_int = 2;

header_names! { PARAM_NAMES:
    OSSL_PROV_PARAM_NAME = c"name",
    OSSL_PROV_PARAM_VERSION = c"version",
    OSSL_PROV_PARAM_BUILDINFO = c"buildinfo",
    OSSL_PROV_PARAM_STATUS = c"status",
    OSSL_PKEY_PARAM_BITS = c"bits",
    OSSL_PKEY_PARAM_SECURITY_BITS = c"security-bits",
    OSSL_PKEY_PARAM_MAX_SIZE = c"max-size",
    OSSL_PKEY_PARAM_GROUP_NAME = c"group",
    OSSL_PKEY_PARAM_DEFAULT_DIGEST = c"default-digest",
    OSSL_PKEY_PARAM_MANDATORY_DIGEST = c"mandatory-digest",
    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY = c"encoded-pub-key",
    OSSL_PKEY_PARAM_PUB_KEY = c"pub",
    OSSL_PKEY_PARAM_RSA_N = c"n",
    OSSL_PKEY_PARAM_RSA_E = c"e",
    OSSL_PKEY_PARAM_RSA_PRIMES = c"primes",
    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT = c"point-format",
    OSSL_PKEY_PARAM_EC_ENCODING = c"encoding",
    OSSL_PKEY_PARAM_EC_PUB_X = c"qx",
    OSSL_PKEY_PARAM_EC_PUB_Y = c"qy",
    OSSL_SIGNATURE_PARAM_ALGORITHM_ID = c"algorithm-id",
    OSSL_SIGNATURE_PARAM_DIGEST = c"digest",
    OSSL_SIGNATURE_PARAM_PROPERTIES = c"properties",
    OSSL_SIGNATURE_PARAM_PAD_MODE = c"pad-mode",
    OSSL_SIGNATURE_PARAM_MGF1_DIGEST = c"mgf1-digest",
    OSSL_SIGNATURE_PARAM_PSS_SALTLEN = c"saltlen",
    OSSL_SIGNATURE_PARAM_DIGEST_SIZE = c"digest-size",
    OSSL_ASYM_CIPHER_PARAM_PAD_MODE = c"pad-mode",
    OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST = c"digest",
    OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST = c"mgf1-digest",
    OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL = c"oaep-label",
    OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION = c"tls-client-version",
    OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION = c"tls-negotiated-version",
    OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE = c"ecdh-cofactor-mode",
    OSSL_EXCHANGE_PARAM_KDF_TYPE = c"kdf-type",
    OSSL_EXCHANGE_PARAM_KDF_DIGEST = c"kdf-digest",
    OSSL_EXCHANGE_PARAM_KDF_DIGEST_PROPS = c"kdf-digest-props",
    OSSL_EXCHANGE_PARAM_KDF_OUTLEN = c"kdf-outlen",
    OSSL_EXCHANGE_PARAM_KDF_UKM = c"kdf-ukm",
    OSSL_RAND_PARAM_STATE = c"state",
    OSSL_RAND_PARAM_STRENGTH = c"strength",
    OSSL_RAND_PARAM_MAX_REQUEST = c"max_request",
    OSSL_OBJECT_PARAM_TYPE = c"type",
    OSSL_OBJECT_PARAM_DATA_TYPE = c"data-type",
    OSSL_OBJECT_PARAM_DATA_STRUCTURE = c"data-structure",
    OSSL_OBJECT_PARAM_REFERENCE = c"reference",
    OSSL_OBJECT_PARAM_DATA = c"data",
    OSSL_PASSPHRASE_PARAM_INFO = c"info",
    OSSL_CAPABILITY_TLS_GROUP_NAME = c"tls-group-name",
    OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL = c"tls-group-name-internal",
    OSSL_CAPABILITY_TLS_GROUP_ID = c"tls-group-id",
    OSSL_CAPABILITY_TLS_GROUP_ALG = c"tls-group-alg",
    OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS = c"tls-group-sec-bits",
    OSSL_CAPABILITY_TLS_GROUP_MIN_TLS = c"tls-min-tls",
    OSSL_CAPABILITY_TLS_GROUP_MAX_TLS = c"tls-max-tls",
    OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS = c"tls-min-dtls",
    OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS = c"tls-max-dtls",
}

/// TPM-specific parameter names (also in include/tpmkey.h for C applications).
pub(crate) mod tpm_names {
    use std::ffi::CStr;
    pub(crate) const USER_AUTH: &CStr = c"user-auth";
    pub(crate) const PARENT: &CStr = c"parent";
    pub(crate) const PARENT_AUTH: &CStr = c"parent-auth";
    pub(crate) const PERSIST: &CStr = c"persist";
    pub(crate) const PCR: &CStr = c"pcr";
    pub(crate) const PCR_VALUES: &CStr = c"pcr-values";
    pub(crate) const POLICY_SIGNER: &CStr = c"policy-signer";
    pub(crate) const POLICY_REF: &CStr = c"policy-ref";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// `#define NAME VALUE` lines of a header, continuation lines joined.
    fn defines(header: &str) -> HashMap<String, String> {
        let text = std::fs::read_to_string(format!("/usr/include/openssl/{header}"))
            .unwrap_or_else(|e| panic!("/usr/include/openssl/{header}: {e}"));
        let joined = text.replace("\\\n", " ");
        let mut out = HashMap::new();
        for line in joined.lines() {
            let line = line.trim_start();
            if !line.starts_with('#') {
                continue;
            }
            let line = line.trim_start_matches('#').trim_start();
            let Some(rest) = line.strip_prefix("define") else {
                continue;
            };
            let mut parts = rest.trim().splitn(2, char::is_whitespace);
            let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = value.split("/*").next().unwrap_or("").trim();
            out.insert(name.to_string(), value.to_string());
        }
        out
    }

    fn resolve(defs: &HashMap<String, String>, name: &str) -> Option<String> {
        let mut v = defs.get(name)?.clone();
        for _ in 0..8 {
            match defs.get(v.as_str()) {
                Some(next) => v = next.clone(),
                None => break,
            }
        }
        Some(v)
    }

    fn parse_int(v: &str) -> Option<c_int> {
        let v = v.trim().trim_start_matches('(').trim_end_matches(')');
        match v.strip_prefix("0x") {
            Some(hex) => c_int::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }

    #[test]
    fn dispatch_ids_match_core_dispatch_h() {
        let defs = defines("core_dispatch.h");
        for (name, value) in DISPATCH_IDS {
            let header = resolve(&defs, name).unwrap_or_else(|| panic!("{name} not in header"));
            assert_eq!(
                parse_int(&header),
                Some(*value),
                "{name}: header says {header}"
            );
        }
        for (file, name, value) in OTHER_HEADER_INTS {
            let defs = defines(file);
            let header = resolve(&defs, name).unwrap_or_else(|| panic!("{name} not in {file}"));
            assert_eq!(
                parse_int(&header),
                Some(*value),
                "{name}: {file} says {header}"
            );
        }
    }

    #[test]
    fn param_names_match_core_names_h() {
        let defs = defines("core_names.h");
        for (name, value) in PARAM_NAMES {
            let header = resolve(&defs, name).unwrap_or_else(|| panic!("{name} not in header"));
            let expected = format!("\"{}\"", value.to_str().unwrap());
            assert_eq!(header, expected, "{name}");
        }
    }
}
