//! RAND "TPM-SEED": an entropy source backed by TPM2_GetRandom (encrypted on the bus), for
//! the openssl.cnf `[random]` section (`seed = TPM-SEED`, `seed_properties =
//! provider=tpmkey`): OpenSSL's own DRBG stays in charge and is seeded from the TPM. No
//! DRBG is registered under a default name (reference.md §4).

use std::ffi::{c_int, c_uchar, c_uint, c_void};

use tpmkey::{keys, Error, Result};
use zeroize::Zeroize;

use crate::error::{guard, guard_int};
use crate::ffi::*;
use crate::params::{describe, ParamTable, Params, END};
use crate::{algorithm, dispatch_table, opctx, PROPERTIES};

/// The strength claimed: the TPM's DRBG is SHA-256 based.
const STRENGTH: i64 = 256;
/// Bytes per request (the core splits GetRandom into TPM-sized pieces).
const MAX_REQUEST: i64 = 128;
/// EVP_RAND_STATE_READY: a seed source is always ready.
const STATE_READY: i64 = 1;

/// The seed source has no state of its own; the context exists because OpenSSL needs one.
#[derive(Debug)]
struct SeedCtx;

unsafe extern "C" fn newctx(
    _provctx: *mut c_void,
    _parent: *mut c_void,
    _parent_calls: *const OSSL_DISPATCH,
) -> *mut c_void {
    opctx::into_raw(SeedCtx)
}

unsafe extern "C" fn instantiate(
    _c: *mut c_void,
    _strength: c_uint,
    _prediction_resistance: c_int,
    _pstr: *const c_uchar,
    _pstr_len: usize,
    _params: *const OSSL_PARAM,
) -> c_int {
    1
}

unsafe extern "C" fn uninstantiate(_c: *mut c_void) -> c_int {
    1
}

fn fill(out: &mut [u8], strength: c_uint) -> Result<()> {
    if i64::from(strength) > STRENGTH {
        return Err(Error::Unsupported(format!(
            "{strength}-bit randomness (the TPM seed source gives {STRENGTH})"
        )));
    }
    keys::random(out)
}

unsafe extern "C" fn generate(
    _c: *mut c_void,
    out: *mut c_uchar,
    outlen: usize,
    strength: c_uint,
    _prediction_resistance: c_int,
    _adin: *const c_uchar,
    _adin_len: usize,
) -> c_int {
    guard_int("TPM-SEED generate", || {
        if out.is_null() {
            return Err(Error::BadInput("no output buffer".into()));
        }
        // SAFETY: OpenSSL's buffer, writable for outlen bytes.
        fill(
            unsafe { std::slice::from_raw_parts_mut(out, outlen) },
            strength,
        )
    })
}

unsafe extern "C" fn reseed(
    _c: *mut c_void,
    _prediction_resistance: c_int,
    _ent: *const c_uchar,
    _ent_len: usize,
    _adin: *const c_uchar,
    _adin_len: usize,
) -> c_int {
    1
}

/// The parent interface a DRBG uses: hands out a fresh buffer of TPM randomness.
unsafe extern "C" fn get_seed(
    _c: *mut c_void,
    buffer: *mut *mut c_uchar,
    entropy: c_int,
    min_len: usize,
    max_len: usize,
    _prediction_resistance: c_int,
    _adin: *const c_uchar,
    _adin_len: usize,
) -> usize {
    guard("TPM-SEED get_seed", 0, || {
        if buffer.is_null() {
            return Err(Error::BadInput("no seed buffer pointer".into()));
        }
        let bytes = usize::try_from(entropy).unwrap_or(0).div_ceil(8);
        let len = min_len.max(bytes).min(max_len.max(min_len));
        let mut seed = vec![0u8; len].into_boxed_slice();
        fill(&mut seed, 0)?;
        // SAFETY: buffer is OpenSSL's out-pointer (checked); clear_seed frees the box.
        unsafe { *buffer = Box::into_raw(seed).cast() };
        Ok(len)
    })
}

unsafe extern "C" fn clear_seed(_c: *mut c_void, buffer: *mut c_uchar, len: usize) {
    if !buffer.is_null() {
        // SAFETY: buffer and len are what get_seed returned (a boxed slice of len bytes).
        let mut seed = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buffer, len)) };
        seed.zeroize();
    }
}

unsafe extern "C" fn enable_locking(_c: *mut c_void) -> c_int {
    // The core serialises TPM access itself.
    1
}

unsafe extern "C" fn lock(_c: *mut c_void) -> c_int {
    1
}

unsafe extern "C" fn unlock(_c: *mut c_void) {}

unsafe extern "C" fn get_ctx_params(_c: *mut c_void, params: *mut OSSL_PARAM) -> c_int {
    guard_int("TPM-SEED get_ctx_params", || {
        // SAFETY: the core's terminated array.
        let params = unsafe { Params::from_ptr(params) };
        for mut p in params.iter() {
            match p.key().to_bytes() {
                b"state" => p.set_int(STATE_READY)?,
                b"strength" => p.set_int(STRENGTH)?,
                b"max_request" => p.set_int(MAX_REQUEST)?,
                _ => {}
            }
        }
        Ok(())
    })
}

static GETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_RAND_PARAM_STATE, OSSL_PARAM_INTEGER),
    describe(OSSL_RAND_PARAM_STRENGTH, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(OSSL_RAND_PARAM_MAX_REQUEST, OSSL_PARAM_UNSIGNED_INTEGER),
    END,
]);

unsafe extern "C" fn gettable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    GETTABLE.as_ptr()
}

static FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_RAND_NEWCTX => newctx,
    OSSL_FUNC_RAND_FREECTX => opctx::freectx::<SeedCtx>,
    OSSL_FUNC_RAND_INSTANTIATE => instantiate,
    OSSL_FUNC_RAND_UNINSTANTIATE => uninstantiate,
    OSSL_FUNC_RAND_GENERATE => generate,
    OSSL_FUNC_RAND_RESEED => reseed,
    OSSL_FUNC_RAND_ENABLE_LOCKING => enable_locking,
    OSSL_FUNC_RAND_LOCK => lock,
    OSSL_FUNC_RAND_UNLOCK => unlock,
    OSSL_FUNC_RAND_GET_CTX_PARAMS => get_ctx_params,
    OSSL_FUNC_RAND_GETTABLE_CTX_PARAMS => gettable_ctx_params,
    OSSL_FUNC_RAND_GET_SEED => get_seed,
    OSSL_FUNC_RAND_CLEAR_SEED => clear_seed,
];

pub static ALGORITHMS: [OSSL_ALGORITHM; 2] = [
    algorithm!(c"TPM-SEED", PROPERTIES, FUNCTIONS),
    OSSL_ALGORITHM::END,
];
