//! The provider itself: `OSSL_provider_init`, teardown, its parameters (name, version,
//! build info, status), the operations it offers, and the configuration it takes from its
//! openssl.cnf section. The TPM is not touched here: a provider whose TPM is unreachable
//! still loads, and each operation then names the TCTI and the cause.

use std::ffi::{c_int, c_void};

use tpmkey::{connection, Error, Result};

use crate::bio::{self, BioUpcalls};
use crate::error::{self, guard, guard_int, ErrorUpcall, REASON_STRINGS};
use crate::ffi::*;
use crate::params::{describe, ParamTable, Params, StringRequest, END};
use crate::{
    asym_cipher, capabilities, decoder, dispatch_table, encoder, keyexch, keymgmt, openssl_cnf,
    rand, signature, store,
};

/// Hands `pairs` to the core configuration (they win over environment and file).
fn configure(pairs: &[(String, String)]) -> Result<()> {
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    connection::configure(&borrowed).map(|_| ())
}

/// The provider context: this instance's core handle and library context.
#[derive(Debug)]
struct ProvCtx {
    _handle: *const OSSL_CORE_HANDLE,
    /// None when the core has no get_libctx; NULL is the default library context.
    libctx: Option<*mut c_void>,
}

fn core_function(input: *const OSSL_DISPATCH, id: c_int) -> Option<DispatchFn> {
    let mut p = input;
    loop {
        // SAFETY: the core's dispatch table is terminated by function_id 0; we stop there.
        let entry = unsafe { p.as_ref() }?;
        if entry.function_id == 0 {
            return None;
        }
        if entry.function_id == id {
            return entry.function;
        }
        // SAFETY: not yet at the terminator, so the next entry exists.
        p = unsafe { p.add(1) };
    }
}

/// Casts a core function to the signature its id names.
///
/// # Safety
/// `F` is the function pointer type the core documents for that id.
unsafe fn typed<F: Copy>(f: Option<DispatchFn>) -> Option<F> {
    // SAFETY: caller's contract; both are plain function pointers of the same size.
    f.map(|f| unsafe { std::mem::transmute_copy::<DispatchFn, F>(&f) })
}

fn init(
    handle: *const OSSL_CORE_HANDLE,
    input: *const OSSL_DISPATCH,
    out: *mut *const OSSL_DISPATCH,
    provctx: *mut *mut c_void,
) -> Result<()> {
    if out.is_null() || provctx.is_null() || input.is_null() {
        return Err(Error::BadInput("provider init without tables".into()));
    }
    // SAFETY: the ids name exactly these signatures (core_dispatch.h).
    unsafe {
        error::install(ErrorUpcall {
            handle,
            new_error: typed(core_function(input, OSSL_FUNC_CORE_NEW_ERROR)),
            set_debug: typed(core_function(input, OSSL_FUNC_CORE_SET_ERROR_DEBUG)),
            vset: core_function(input, OSSL_FUNC_CORE_VSET_ERROR),
        });
        bio::install(BioUpcalls {
            read_ex: typed(core_function(input, OSSL_FUNC_BIO_READ_EX)),
            write_ex: typed(core_function(input, OSSL_FUNC_BIO_WRITE_EX)),
        });
    }
    // SAFETY: as above.
    let get_params: Option<CoreGetParamsFn> =
        unsafe { typed(core_function(input, OSSL_FUNC_CORE_GET_PARAMS)) };
    if let Some(get_params) = get_params {
        let mut name = StringRequest::new(&["provider-name"]);
        // SAFETY: handle is ours, the request array is terminated and its slots writable.
        if unsafe { get_params(handle, name.as_mut_ptr()) } == 1 {
            if let Some((_, name)) = name.answers().into_iter().next() {
                openssl_cnf::check_section(&name)?;
            }
        }
        // The section may set every key the core configuration knows.
        let mut request = StringRequest::new(tpmkey::config::KEYS);
        // SAFETY: handle is ours, the request array is terminated and its slots writable.
        if unsafe { get_params(handle, request.as_mut_ptr()) } == 1 {
            let pairs = request.answers();
            if !pairs.is_empty() {
                configure(&pairs)?;
            }
        }
    }
    // SAFETY: the id names this signature (core_dispatch.h).
    let get_libctx: Option<CoreGetLibctxFn> =
        unsafe { typed(core_function(input, OSSL_FUNC_CORE_GET_LIBCTX)) };
    // SAFETY: the core's function with its own handle.
    let libctx = get_libctx.map(|f| unsafe { f(handle) });
    // SAFETY: out and provctx are the core's out-pointers, checked non-NULL above.
    unsafe {
        *out = PROVIDER_FUNCTIONS.as_ptr();
        *provctx = Box::into_raw(Box::new(ProvCtx {
            _handle: handle,
            libctx,
        }))
        .cast();
    }
    Ok(())
}

/// The entry point OpenSSL looks up in `tpmkey.so`.
///
/// # Safety
/// Called by libcrypto with its core handle, its dispatch table and two out-pointers.
#[no_mangle]
pub(crate) unsafe extern "C" fn OSSL_provider_init(
    handle: *const OSSL_CORE_HANDLE,
    input: *const OSSL_DISPATCH,
    out: *mut *const OSSL_DISPATCH,
    provctx: *mut *mut c_void,
) -> c_int {
    guard_int("OSSL_provider_init", || {
        init(handle, input, out, provctx).inspect_err(|e| {
            // OpenSSL drops the errors of providers activated from openssl.cnf unless
            // `config_diagnostics = 1`: without this line the reason would be lost.
            crate::error::log(&format!("the provider is not loaded: {e}"));
        })
    })
}

unsafe extern "C" fn teardown(provctx: *mut c_void) {
    guard("provider teardown", (), || {
        connection::shutdown();
        if !provctx.is_null() {
            // SAFETY: provctx came from Box::into_raw in init; the core tears down once.
            drop(unsafe { Box::from_raw(provctx.cast::<ProvCtx>()) });
        }
        Ok(())
    })
}

static GETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR),
    describe(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR),
    describe(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR),
    describe(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER),
    END,
]);

unsafe extern "C" fn gettable_params(_provctx: *mut c_void) -> *const OSSL_PARAM {
    GETTABLE.as_ptr()
}

const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(v) => v,
    Err(_) => c"unknown",
};
const BUILDINFO: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!("tpmkey ", env!("CARGO_PKG_VERSION"), " (Rust)\0").as_bytes(),
) {
    Ok(v) => v,
    Err(_) => c"tpmkey",
};

unsafe extern "C" fn get_params(_provctx: *mut c_void, params: *mut OSSL_PARAM) -> c_int {
    guard_int("provider get_params", || {
        // SAFETY: the core's terminated array.
        let params = unsafe { Params::from_ptr(params) };
        for mut p in params.iter() {
            match p.key().to_bytes() {
                b"name" => p.set_utf8_static(c"tpmkey")?,
                b"version" => p.set_utf8_static(VERSION)?,
                b"buildinfo" => p.set_utf8_static(BUILDINFO)?,
                b"status" => p.set_int(1)?,
                _ => {}
            }
        }
        Ok(())
    })
}

unsafe extern "C" fn query_operation(
    provctx: *mut c_void,
    operation: c_int,
    no_cache: *mut c_int,
) -> *const OSSL_ALGORITHM {
    if !no_cache.is_null() {
        // SAFETY: the core's out-pointer, checked non-NULL. The RAND answer depends on
        // which other providers are loaded at the time: not cached.
        unsafe { *no_cache = c_int::from(operation == OSSL_OP_RAND) };
    }
    match operation {
        OSSL_OP_KEYMGMT => keymgmt::ALGORITHMS.as_ptr(),
        OSSL_OP_SIGNATURE => signature::ALGORITHMS.as_ptr(),
        OSSL_OP_ASYM_CIPHER => asym_cipher::ALGORITHMS.as_ptr(),
        OSSL_OP_KEYEXCH => keyexch::ALGORITHMS.as_ptr(),
        OSSL_OP_RAND => {
            // SAFETY: provctx is the context init made (or NULL).
            let libctx = unsafe { provctx.cast::<ProvCtx>().as_ref() }.and_then(|p| p.libctx);
            rand::algorithms(libctx, provctx)
        }
        OSSL_OP_ENCODER => encoder::ALGORITHMS.as_ptr(),
        OSSL_OP_DECODER => decoder::ALGORITHMS.as_ptr(),
        OSSL_OP_STORE => store::ALGORITHMS.as_ptr(),
        _ => std::ptr::null(),
    }
}

unsafe extern "C" fn get_reason_strings(_provctx: *mut c_void) -> *const OSSL_ITEM {
    REASON_STRINGS.as_ptr()
}

static PROVIDER_FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_PROVIDER_TEARDOWN => teardown,
    OSSL_FUNC_PROVIDER_GETTABLE_PARAMS => gettable_params,
    OSSL_FUNC_PROVIDER_GET_PARAMS => get_params,
    OSSL_FUNC_PROVIDER_QUERY_OPERATION => query_operation,
    OSSL_FUNC_PROVIDER_GET_REASON_STRINGS => get_reason_strings,
    OSSL_FUNC_PROVIDER_GET_CAPABILITIES => capabilities::get_capabilities,
];
