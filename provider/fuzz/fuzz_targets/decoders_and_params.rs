//! Fuzzes the provider through OpenSSL in-process: its DECODERs (TSS2 PEM and DER, as
//! `PEM_read_bio_PrivateKey` and `openssl pkey -in` reach them) with the fuzzer's bytes, and
//! the OSSL_PARAM setters of its KEYMGMT (keygen options: group, bits, e, user-auth, parent,
//! pcr, policy-signer, ...), SIGNATURE (digest, pad-mode, saltlen, mgf1-digest) and
//! ASYM_CIPHER (pad-mode, oaep-label, digest, implicit-rejection) with fuzzed names, types
//! and values, each followed by the operation with fuzzed data. The provider is added to a
//! library context as a built-in (its `OSSL_provider_init` linked in, so the fuzzer sees its
//! coverage) next to OpenSSL's default provider; the TPM is a real swtpm the harness starts
//! once per fuzzing process. RSA key generation is left out (seconds per key on swtpm).
//!
//! Every OSSL_PARAM is valid C: a NUL-terminated name, a value buffer of the size given
//! (strings NUL-terminated after it); pointer types (UTF8_PTR, OCTET_PTR) are not used.
//!
//! Input: the first byte picks the mode, the rest is the mode's input.
//!
//! Run from provider/: `cargo +nightly fuzz run decoders_and_params`

#![no_main]

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::ptr;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use tpmkey_testenv::fuzz_input::FuzzInput as Input;
use tpmkey_testenv::Swtpm;

// Links the provider's rlib; its entry point is declared here.
use tpmkey_provider as _;

#[repr(C)]
struct OsslParam {
    key: *const c_char,
    data_type: c_uint,
    data: *mut c_void,
    data_size: usize,
    return_size: usize,
}

type ProviderInit = unsafe extern "C" fn(
    *const c_void,
    *const c_void,
    *mut *const c_void,
    *mut *mut c_void,
) -> c_int;

extern "C" {
    fn OSSL_provider_init(
        handle: *const c_void,
        input: *const c_void,
        out: *mut *const c_void,
        provctx: *mut *mut c_void,
    ) -> c_int;
    fn OSSL_LIB_CTX_new() -> *mut c_void;
    fn OSSL_PROVIDER_add_builtin(
        ctx: *mut c_void,
        name: *const c_char,
        init: ProviderInit,
    ) -> c_int;
    fn OSSL_PROVIDER_load(ctx: *mut c_void, name: *const c_char) -> *mut c_void;
    fn OSSL_DECODER_CTX_new_for_pkey(
        pkey: *mut *mut c_void,
        input_type: *const c_char,
        input_struct: *const c_char,
        keytype: *const c_char,
        selection: c_int,
        libctx: *mut c_void,
        propquery: *const c_char,
    ) -> *mut c_void;
    fn OSSL_DECODER_from_data(ctx: *mut c_void, data: *mut *const u8, len: *mut usize) -> c_int;
    fn OSSL_DECODER_CTX_free(ctx: *mut c_void);
    fn EVP_PKEY_free(pkey: *mut c_void);
    fn EVP_PKEY_get_bits(pkey: *const c_void) -> c_int;
    fn EVP_PKEY_CTX_new_from_name(
        libctx: *mut c_void,
        name: *const c_char,
        propq: *const c_char,
    ) -> *mut c_void;
    fn EVP_PKEY_CTX_new_from_pkey(
        libctx: *mut c_void,
        pkey: *mut c_void,
        propq: *const c_char,
    ) -> *mut c_void;
    fn EVP_PKEY_CTX_free(ctx: *mut c_void);
    fn EVP_PKEY_CTX_set_params(ctx: *mut c_void, params: *const OsslParam) -> c_int;
    fn EVP_PKEY_keygen_init(ctx: *mut c_void) -> c_int;
    fn EVP_PKEY_generate(ctx: *mut c_void, pkey: *mut *mut c_void) -> c_int;
    fn EVP_PKEY_sign_init(ctx: *mut c_void) -> c_int;
    fn EVP_PKEY_sign(
        ctx: *mut c_void,
        sig: *mut u8,
        siglen: *mut usize,
        tbs: *const u8,
        tbslen: usize,
    ) -> c_int;
    fn EVP_PKEY_decrypt_init(ctx: *mut c_void) -> c_int;
    fn EVP_PKEY_decrypt(
        ctx: *mut c_void,
        out: *mut u8,
        outlen: *mut usize,
        input: *const u8,
        inlen: usize,
    ) -> c_int;
    fn ERR_clear_error();
}

const PROPQ: &std::ffi::CStr = c"provider=tpmkey";
const OSSL_PARAM_INTEGER: c_uint = 1;
const OSSL_PARAM_UNSIGNED_INTEGER: c_uint = 2;
const OSSL_PARAM_UTF8_STRING: c_uint = 4;
const OSSL_PARAM_OCTET_STRING: c_uint = 5;
const EVP_PKEY_KEYPAIR: c_int = 0x87;

/// `PROVIDER_FUZZ_TRACE=1` prints each step's result (to see what a seed reaches).
fn trace(what: &str, rc: c_int) {
    static TRACE: OnceLock<bool> = OnceLock::new();
    if *TRACE.get_or_init(|| std::env::var_os("PROVIDER_FUZZ_TRACE").is_some()) {
        eprintln!("{what}: {rc}");
    }
}

/// The swtpm lives for the whole process; stopped at exit.
static TPM: Mutex<Option<Swtpm>> = Mutex::new(None);

extern "C" fn stop_at_exit() {
    if let Ok(mut tpm) = TPM.lock() {
        tpm.take();
    }
}

struct Fixture {
    libctx: *mut c_void,
    ec: *mut c_void,
    rsa: *mut c_void,
}

// SAFETY: the library context and keys are used by the fuzzing thread only.
unsafe impl Send for Fixture {}
unsafe impl Sync for Fixture {}

/// A TPM key made by the provider (EC P-256, or RSA 2048).
fn keygen(libctx: *mut c_void, alg: &std::ffi::CStr, params: &[OsslParam]) -> *mut c_void {
    // SAFETY: OpenSSL calls with a live library context and a terminated parameter list.
    unsafe {
        let ctx = EVP_PKEY_CTX_new_from_name(libctx, alg.as_ptr(), PROPQ.as_ptr());
        assert!(!ctx.is_null(), "fixture: no {alg:?} keygen in the provider");
        assert_eq!(EVP_PKEY_keygen_init(ctx), 1, "fixture: keygen init");
        assert_eq!(EVP_PKEY_CTX_set_params(ctx, params.as_ptr()), 1);
        let mut pkey = ptr::null_mut();
        assert_eq!(
            EVP_PKEY_generate(ctx, &mut pkey),
            1,
            "fixture: {alg:?} keygen"
        );
        EVP_PKEY_CTX_free(ctx);
        pkey
    }
}

fn end() -> OsslParam {
    OsslParam {
        key: ptr::null(),
        data_type: 0,
        data: ptr::null_mut(),
        data_size: 0,
        return_size: 0,
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tpm = Swtpm::start();
        std::env::set_var("TPMKEY_TCTI", tpm.tcti());
        std::env::set_var("TPMKEY_CONF", "/dev/null");
        *TPM.lock().unwrap_or_else(|p| p.into_inner()) = Some(tpm);
        // SAFETY: plain OpenSSL set-up calls; the init function has the provider signature.
        unsafe {
            libc::atexit(stop_at_exit);
            let libctx = OSSL_LIB_CTX_new();
            assert!(!libctx.is_null());
            assert_eq!(
                OSSL_PROVIDER_add_builtin(libctx, c"tpmkey".as_ptr(), OSSL_provider_init),
                1
            );
            assert!(!OSSL_PROVIDER_load(libctx, c"tpmkey".as_ptr()).is_null());
            assert!(!OSSL_PROVIDER_load(libctx, c"default".as_ptr()).is_null());
            let mut group = *b"P-256\0";
            let ec = keygen(
                libctx,
                c"EC",
                &[
                    OsslParam {
                        key: c"group".as_ptr(),
                        data_type: OSSL_PARAM_UTF8_STRING,
                        data: group.as_mut_ptr() as *mut c_void,
                        data_size: 5,
                        return_size: usize::MAX,
                    },
                    end(),
                ],
            );
            let mut bits: c_uint = 2048;
            let rsa = keygen(
                libctx,
                c"RSA",
                &[
                    OsslParam {
                        key: c"bits".as_ptr(),
                        data_type: OSSL_PARAM_UNSIGNED_INTEGER,
                        data: &mut bits as *mut c_uint as *mut c_void,
                        data_size: std::mem::size_of::<c_uint>(),
                        return_size: usize::MAX,
                    },
                    end(),
                ],
            );
            Fixture { libctx, ec, rsa }
        }
    })
}

/// Names the provider's setters read, and a few it does not.
const NAMES: &[&str] = &[
    "group",
    "bits",
    "e",
    "primes",
    "user-auth",
    "parent",
    "parent-auth",
    "persist",
    "pcr",
    "pcr-values",
    "policy-signer",
    "policy-ref",
    "digest",
    "pad-mode",
    "saltlen",
    "mgf1-digest",
    "oaep-label",
    "implicit-rejection",
    "properties",
    "point-format",
    "encoding",
    "kdf-type",
    "unknown",
];

/// A parameter list built from the fuzzer's bytes, with the memory it points into.
struct Params {
    list: Vec<OsslParam>,
    _names: Vec<CString>,
    _values: Vec<Vec<u8>>,
}

impl Params {
    fn read(input: &mut Input<'_>) -> Params {
        let count = usize::from(input.u8() % 6);
        let (mut list, mut names, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..count {
            let pick = input.u8();
            let name = if pick < 0xf0 {
                CString::new(NAMES[usize::from(pick) % NAMES.len()]).unwrap_or_default()
            } else {
                let raw: Vec<u8> = input.blob().into_iter().filter(|b| *b != 0).collect();
                CString::new(raw).unwrap_or_default()
            };
            let kind = input.u8() % 4;
            let mut value = input.blob();
            let (data_type, size) = match kind {
                0 => (OSSL_PARAM_INTEGER, value.len()),
                1 => (OSSL_PARAM_UNSIGNED_INTEGER, value.len()),
                2 => {
                    // A C string: no NUL inside, one after the value.
                    value.retain(|b| *b != 0);
                    let n = value.len();
                    value.push(0);
                    (OSSL_PARAM_UTF8_STRING, n)
                }
                _ => (OSSL_PARAM_OCTET_STRING, value.len()),
            };
            list.push(OsslParam {
                key: name.as_ptr(),
                data_type,
                data: if value.is_empty() {
                    ptr::null_mut()
                } else {
                    value.as_mut_ptr() as *mut c_void
                },
                data_size: size,
                return_size: usize::MAX,
            });
            names.push(name);
            values.push(value);
        }
        list.push(end());
        Params {
            list,
            _names: names,
            _values: values,
        }
    }
}

fn decode(fx: &Fixture, input: &mut Input<'_>) {
    let input_type = match input.u8() % 3 {
        0 => ptr::null(),
        1 => c"PEM".as_ptr(),
        _ => c"DER".as_ptr(),
    };
    let data = input.rest();
    // SAFETY: OpenSSL's decoder API over the fuzzer's bytes, which outlive the call.
    unsafe {
        let mut pkey = ptr::null_mut();
        let dctx = OSSL_DECODER_CTX_new_for_pkey(
            &mut pkey,
            input_type,
            ptr::null(),
            ptr::null(),
            EVP_PKEY_KEYPAIR,
            fx.libctx,
            PROPQ.as_ptr(),
        );
        if dctx.is_null() {
            return;
        }
        let (mut p, mut n) = (data.as_ptr(), data.len());
        let rc = OSSL_DECODER_from_data(dctx, &mut p, &mut n);
        trace("OSSL_DECODER_from_data", rc);
        if rc == 1 && !pkey.is_null() {
            EVP_PKEY_get_bits(pkey);
        }
        if !pkey.is_null() {
            EVP_PKEY_free(pkey);
        }
        OSSL_DECODER_CTX_free(dctx);
    }
}

fn keygen_params(fx: &Fixture, input: &mut Input<'_>) {
    let rsa = input.u8() & 1 == 1;
    let params = Params::read(input);
    // SAFETY: OpenSSL calls with live contexts and a terminated parameter list.
    unsafe {
        let alg = if rsa { c"RSA" } else { c"EC" };
        let ctx = EVP_PKEY_CTX_new_from_name(fx.libctx, alg.as_ptr(), PROPQ.as_ptr());
        if ctx.is_null() || EVP_PKEY_keygen_init(ctx) != 1 {
            EVP_PKEY_CTX_free(ctx);
            return;
        }
        let rc = EVP_PKEY_CTX_set_params(ctx, params.list.as_ptr());
        trace("keygen EVP_PKEY_CTX_set_params", rc);
        if rc == 1 && !rsa {
            let mut pkey = ptr::null_mut();
            let rc = EVP_PKEY_generate(ctx, &mut pkey);
            trace("EVP_PKEY_generate", rc);
            if rc == 1 {
                EVP_PKEY_free(pkey);
            }
        }
        EVP_PKEY_CTX_free(ctx);
    }
}

/// EVP_PKEY_sign or EVP_PKEY_decrypt with a fixture key, fuzzed parameters and data, and
/// an output buffer of a fuzzed size (or a size query).
fn operation(fx: &Fixture, input: &mut Input<'_>, decrypt: bool) {
    let key = if decrypt || input.u8() & 1 == 1 {
        fx.rsa
    } else {
        fx.ec
    };
    let params = Params::read(input);
    let size_query = input.u8() == 0;
    let mut out = vec![0u8; usize::from(input.u8()) * 4];
    let data = input.rest().to_vec();
    // SAFETY: OpenSSL calls with live contexts, a terminated parameter list and buffers of
    // the lengths passed.
    unsafe {
        let ctx = EVP_PKEY_CTX_new_from_pkey(fx.libctx, key, PROPQ.as_ptr());
        if ctx.is_null() {
            return;
        }
        let init = if decrypt {
            EVP_PKEY_decrypt_init(ctx)
        } else {
            EVP_PKEY_sign_init(ctx)
        };
        trace("init", init);
        let set = EVP_PKEY_CTX_set_params(ctx, params.list.as_ptr());
        trace("EVP_PKEY_CTX_set_params", set);
        if init == 1 && set == 1 {
            let mut n = out.len();
            let p = if size_query {
                ptr::null_mut()
            } else {
                out.as_mut_ptr()
            };
            let rc = if decrypt {
                EVP_PKEY_decrypt(ctx, p, &mut n, data.as_ptr(), data.len())
            } else {
                EVP_PKEY_sign(ctx, p, &mut n, data.as_ptr(), data.len())
            };
            trace(
                if decrypt {
                    "EVP_PKEY_decrypt"
                } else {
                    "EVP_PKEY_sign"
                },
                rc,
            );
            if rc == 1 && !size_query {
                assert!(n <= out.len(), "wrote {n} bytes into {}", out.len());
            }
        }
        EVP_PKEY_CTX_free(ctx);
    }
}

fuzz_target!(|bytes: &[u8]| {
    let fx = fixture();
    let mut input = Input(bytes);
    match input.u8() % 4 {
        0 => decode(fx, &mut input),
        1 => keygen_params(fx, &mut input),
        2 => operation(fx, &mut input, false),
        _ => operation(fx, &mut input, true),
    }
    // SAFETY: clears this thread's OpenSSL error queue.
    unsafe { ERR_clear_error() };
});
