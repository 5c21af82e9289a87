//! RAND: two generators fed by TPM2_GetRandom (encrypted on the bus).
//!
//! - "TPM-SEED", an entropy source for the openssl.cnf `[random]` section (`seed =
//!   TPM-SEED`, `seed_properties = provider=tpmkey`): OpenSSL's own DRBG stays in charge and
//!   is seeded from the TPM.
//! - "CTR-DRBG", the name libcrypto fetches for its DRBGs, offered only when no other
//!   provider in the library context offers it (`openssl rand -provider tpmkey`, or with
//!   the base provider only). It is a Hash_DRBG (`drbg`) seeded and reseeded from the TPM,
//!   so one TPM command serves 65,536 requests. With the default or FIPS provider loaded,
//!   in either order, theirs is the only one and RAND_bytes never reaches the TPM
//!   (reference.md §4).

use std::ffi::{c_int, c_uchar, c_uint, c_void, CStr};
use std::sync::Mutex;

use tpmkey::{keys, Error, Result};
use zeroize::{Zeroize, Zeroizing};

use crate::buffer::input;
use crate::drbg::{self, HashDrbg};
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

/// Refuses requests for more than the strength the TPM's DRBG has.
fn check_strength(strength: c_uint) -> Result<()> {
    if i64::from(strength) > STRENGTH {
        return Err(Error::Unsupported(format!(
            "{strength}-bit randomness (tpmkey's generators give {STRENGTH})"
        )));
    }
    Ok(())
}

/// OpenSSL's output buffer.
///
/// # Safety
/// `out` is NULL or writable for `outlen` bytes during the borrow.
unsafe fn output<'a>(out: *mut c_uchar, outlen: usize) -> Result<&'a mut [u8]> {
    if out.is_null() {
        return Err(Error::BadInput("no output buffer".into()));
    }
    // SAFETY: caller's contract; checked non-NULL.
    Ok(unsafe { std::slice::from_raw_parts_mut(out, outlen) })
}

fn fill(out: &mut [u8], strength: c_uint) -> Result<()> {
    check_strength(strength)?;
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
        // SAFETY: OpenSSL's buffer, writable for outlen bytes.
        fill(unsafe { output(out, outlen) }?, strength)
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

/// The name libcrypto fetches for its primary, public and private DRBGs.
const DRBG_NAME: &CStr = c"CTR-DRBG";
/// EVP_RAND_STATE_UNINITIALISED.
const STATE_UNINITIALISED: i64 = 0;

/// A seeded generator and the process it was seeded in (a forked child reseeds).
#[derive(Debug)]
struct Seeded {
    drbg: HashDrbg,
    pid: u32,
}

impl Seeded {
    fn from_tpm(personalization: &[u8]) -> Result<Seeded> {
        let mut seed = Zeroizing::new([0u8; drbg::ENTROPY_LEN + drbg::NONCE_LEN]);
        keys::random(&mut seed[..])?;
        let (entropy, nonce) = seed.split_at(drbg::ENTROPY_LEN);
        Ok(Seeded {
            drbg: HashDrbg::new(entropy, nonce, personalization),
            pid: std::process::id(),
        })
    }

    fn reseed(&mut self, additional: &[u8]) -> Result<()> {
        let mut entropy = Zeroizing::new([0u8; drbg::ENTROPY_LEN]);
        keys::random(&mut entropy[..])?;
        self.drbg.reseed(&entropy[..], additional);
        self.pid = std::process::id();
        Ok(())
    }
}

/// One DRBG instance; OpenSSL may share it between threads, so the state is locked here.
#[derive(Debug, Default)]
struct DrbgCtx {
    state: Mutex<Option<Seeded>>,
}

impl DrbgCtx {
    fn with<R>(&self, f: impl FnOnce(&mut Option<Seeded>) -> Result<R>) -> Result<R> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Integrity("the DRBG lock is poisoned".into()))?;
        f(&mut state)
    }
}

unsafe fn drbg_ctx<'a>(p: *mut c_void) -> Result<&'a DrbgCtx> {
    // SAFETY: p is a context drbg_newctx created; shared use goes through the mutex.
    unsafe { opctx::borrow::<DrbgCtx>(p) }.map(|c| &*c)
}

unsafe extern "C" fn drbg_newctx(
    _provctx: *mut c_void,
    _parent: *mut c_void,
    _parent_calls: *const OSSL_DISPATCH,
) -> *mut c_void {
    // The parent (a seed source, or another of these) is not used: entropy is the TPM's.
    opctx::into_raw(DrbgCtx::default())
}

unsafe extern "C" fn drbg_instantiate(
    c: *mut c_void,
    strength: c_uint,
    _prediction_resistance: c_int,
    pstr: *const c_uchar,
    pstr_len: usize,
    _params: *const OSSL_PARAM,
) -> c_int {
    guard_int("tpmkey DRBG instantiate", || {
        check_strength(strength)?;
        // SAFETY: our context; OpenSSL's personalization string with its length.
        let (c, pstr) = unsafe { (drbg_ctx(c)?, input(pstr, pstr_len)?) };
        let seeded = Seeded::from_tpm(pstr)?;
        c.with(|state| {
            *state = Some(seeded);
            Ok(())
        })
    })
}

unsafe extern "C" fn drbg_uninstantiate(c: *mut c_void) -> c_int {
    guard_int("tpmkey DRBG uninstantiate", || {
        // SAFETY: our context.
        unsafe { drbg_ctx(c) }?.with(|state| {
            *state = None;
            Ok(())
        })
    })
}

unsafe extern "C" fn drbg_generate(
    c: *mut c_void,
    out: *mut c_uchar,
    outlen: usize,
    strength: c_uint,
    prediction_resistance: c_int,
    adin: *const c_uchar,
    adin_len: usize,
) -> c_int {
    guard_int("tpmkey DRBG generate", || {
        check_strength(strength)?;
        // SAFETY: our context; OpenSSL's buffers with their lengths.
        let (c, adin, out) =
            unsafe { (drbg_ctx(c)?, input(adin, adin_len)?, output(out, outlen)?) };
        c.with(|state| {
            let seeded = state
                .as_mut()
                .ok_or_else(|| Error::BadInput("the DRBG is not instantiated".into()))?;
            if prediction_resistance != 0
                || seeded.drbg.needs_reseed()
                || seeded.pid != std::process::id()
            {
                seeded.reseed(&[])?;
            }
            seeded.drbg.generate(out, adin)
        })
    })
}

unsafe extern "C" fn drbg_reseed(
    c: *mut c_void,
    _prediction_resistance: c_int,
    ent: *const c_uchar,
    ent_len: usize,
    adin: *const c_uchar,
    adin_len: usize,
) -> c_int {
    guard_int("tpmkey DRBG reseed", || {
        // SAFETY: our context; OpenSSL's buffers with their lengths.
        let (c, ent, adin) =
            unsafe { (drbg_ctx(c)?, input(ent, ent_len)?, input(adin, adin_len)?) };
        // Entropy the caller hands in is mixed in as additional input, after the TPM's.
        let additional = Zeroizing::new([ent, adin].concat());
        c.with(|state| {
            state
                .as_mut()
                .ok_or_else(|| Error::BadInput("the DRBG is not instantiated".into()))?
                .reseed(&additional)
        })
    })
}

unsafe extern "C" fn drbg_get_ctx_params(c: *mut c_void, params: *mut OSSL_PARAM) -> c_int {
    guard_int("tpmkey DRBG get_ctx_params", || {
        // SAFETY: our context; the core's terminated array.
        let (c, params) = unsafe { (drbg_ctx(c)?, Params::from_ptr(params)) };
        let ready = c.with(|state| Ok(state.is_some()))?;
        for mut p in params.iter() {
            match p.key().to_bytes() {
                b"state" => p.set_int(if ready {
                    STATE_READY
                } else {
                    STATE_UNINITIALISED
                })?,
                b"strength" => p.set_int(STRENGTH)?,
                b"max_request" => p.set_int(drbg::MAX_REQUEST as i64)?,
                _ => {}
            }
        }
        Ok(())
    })
}

static DRBG_FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_RAND_NEWCTX => drbg_newctx,
    OSSL_FUNC_RAND_FREECTX => opctx::freectx::<DrbgCtx>,
    OSSL_FUNC_RAND_INSTANTIATE => drbg_instantiate,
    OSSL_FUNC_RAND_UNINSTANTIATE => drbg_uninstantiate,
    OSSL_FUNC_RAND_GENERATE => drbg_generate,
    OSSL_FUNC_RAND_RESEED => drbg_reseed,
    OSSL_FUNC_RAND_ENABLE_LOCKING => enable_locking,
    OSSL_FUNC_RAND_LOCK => lock,
    OSSL_FUNC_RAND_UNLOCK => unlock,
    OSSL_FUNC_RAND_GET_CTX_PARAMS => drbg_get_ctx_params,
    OSSL_FUNC_RAND_GETTABLE_CTX_PARAMS => gettable_ctx_params,
];

static SEED_ONLY: [OSSL_ALGORITHM; 2] = [
    algorithm!(c"TPM-SEED", PROPERTIES, FUNCTIONS),
    OSSL_ALGORITHM::END,
];

static SEED_AND_DRBG: [OSSL_ALGORITHM; 3] = [
    algorithm!(c"TPM-SEED", PROPERTIES, FUNCTIONS),
    algorithm!(DRBG_NAME, PROPERTIES, DRBG_FUNCTIONS),
    OSSL_ALGORITHM::END,
];

/// True when `names` (OpenSSL's colon-separated list) contains `name`.
fn names_contain(names: &CStr, name: &CStr) -> bool {
    names
        .to_bytes()
        .split(|b| *b == b':')
        .any(|n| n.eq_ignore_ascii_case(name.to_bytes()))
}

struct Search {
    ours: *mut c_void,
    found: bool,
}

unsafe extern "C" fn offers_drbg(prov: *mut openssl_sys::OSSL_PROVIDER, arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Search other_drbg passed; prov an activated provider of the libctx.
    let search = unsafe { &mut *arg.cast::<Search>() };
    // SAFETY: prov is alive during the callback.
    if unsafe { OSSL_PROVIDER_get0_provider_ctx(prov) } == search.ours {
        return 1;
    }
    let mut no_cache = 0;
    // SAFETY: prov is alive during the callback; the table is handed back below.
    let table = unsafe { OSSL_PROVIDER_query_operation(prov, OSSL_OP_RAND, &mut no_cache) };
    let mut entry = table;
    // SAFETY: a provider's algorithm table ends with an entry without names.
    while let Some(alg) = unsafe { entry.as_ref() } {
        if alg.algorithm_names.is_null() {
            break;
        }
        // SAFETY: a NUL-terminated name list of the provider's table.
        if names_contain(unsafe { CStr::from_ptr(alg.algorithm_names) }, DRBG_NAME) {
            search.found = true;
        }
        // SAFETY: not at the terminator yet.
        entry = unsafe { entry.add(1) };
    }
    if !table.is_null() {
        // SAFETY: the table this provider gave for this operation.
        unsafe { OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_RAND, table) };
    }
    c_int::from(!search.found)
}

/// True when another provider loaded in `libctx` (NULL: the default one) offers the DRBG
/// name.
fn other_drbg(libctx: *mut c_void, ours: *mut c_void) -> bool {
    let mut search = Search { ours, found: false };
    // SAFETY: libctx is the one the core gave this provider; the callback only reads.
    unsafe {
        OSSL_PROVIDER_do_all(
            libctx.cast(),
            offers_drbg,
            std::ptr::addr_of_mut!(search).cast(),
        )
    };
    search.found
}

/// The RAND algorithms for this query: the DRBG only when no other provider has one.
/// `libctx` is what the core's get_libctx gave (NULL: the default library context), None
/// when the core offers no get_libctx.
pub(crate) fn algorithms(
    libctx: Option<*mut c_void>,
    provctx: *mut c_void,
) -> *const OSSL_ALGORITHM {
    if libctx.is_none_or(|libctx| other_drbg(libctx, provctx)) {
        SEED_ONLY.as_ptr()
    } else {
        SEED_AND_DRBG.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::names_contain;

    #[test]
    fn name_lists() {
        assert!(names_contain(c"CTR-DRBG", c"CTR-DRBG"));
        assert!(names_contain(c"X:ctr-drbg", c"CTR-DRBG"));
        assert!(!names_contain(c"HASH-DRBG", c"CTR-DRBG"));
    }
}
