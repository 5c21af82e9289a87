//! Fuzzes the PKCS#11 module with sequences of C_* calls: templates (attribute types,
//! values and buffer lengths), mechanisms and their parameters, data lengths, output buffer
//! sizes and object handles all come from the fuzzer. The module runs in-process against a
//! temporary store and a real swtpm the harness starts once per fuzzing process (never a
//! mock TPM; what the TPM answers is the `tpm_response` targets' part).
//!
//! What the caller hands in stays valid C: every pointer points to a buffer of the length
//! passed with it, and parameter structures that hold pointers (OAEP, ECDH1) are built
//! around fuzzer bytes. Array attributes (CKF_ARRAY_ATTRIBUTE) are left out of raw
//! attribute types, since their value is a pointer array. RSA key generation is left out
//! (seconds per key on swtpm); EC key generation is fuzzed.
//!
//! Findings: a crash, a sanitizer report, a hang, or CKR_GENERAL_ERROR (the module's
//! answer to a panic it caught). Objects an input created are destroyed after it, and every
//! session is closed, so inputs do not depend on each other.
//!
//! Run from pkcs11/: `cargo +nightly fuzz run call_sequence`

#![no_main]

use std::ffi::c_void;
use std::ptr;
use std::sync::{Mutex, OnceLock};

use cryptoki_sys::*;
use libfuzzer_sys::fuzz_target;
use tpmkey_testenv::{fuzz_input::FuzzInput as Input, Swtpm, TempDir, TpmEndpoint};

// Links the module's rlib; its exported entry point is declared here.
use tpmkey_pkcs11 as _;

extern "C" {
    fn C_GetFunctionList(list: CK_FUNCTION_LIST_PTR_PTR) -> CK_RV;
}

const SO_PIN: &[u8] = b"fuzz-so-pin";
const USER_PIN: &[u8] = b"fuzz-user-pin";
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The swtpm and store live for the whole process; dropped at exit (see `stop_at_exit`).
static ENV: Mutex<Option<(Swtpm, TempDir)>> = Mutex::new(None);

struct Fixture {
    f: &'static CK_FUNCTION_LIST,
    slot: CK_SLOT_ID,
    /// Handles of the token's objects made by the fixture (never destroyed by an input).
    keep: Vec<CK_OBJECT_HANDLE>,
}

extern "C" fn stop_at_exit() {
    if let Ok(mut env) = ENV.lock() {
        env.take();
    }
}

macro_rules! call {
    ($f:expr, $name:ident $(, $arg:expr)*) => {
        // SAFETY: a function of the module's list, called with pointers to live buffers of
        // the lengths passed alongside.
        unsafe { ($f.$name.expect(stringify!($name)))($($arg),*) }
    };
}

fn ok(rv: CK_RV, what: &str) {
    assert_eq!(rv, CKR_OK, "fixture: {what} returned 0x{rv:x}");
}

fn attr<T>(type_: CK_ATTRIBUTE_TYPE, value: &T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_,
        pValue: value as *const T as *mut c_void,
        ulValueLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

fn bytes_attr(type_: CK_ATTRIBUTE_TYPE, value: &[u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_,
        pValue: value.as_ptr() as *mut c_void,
        ulValueLen: value.len() as CK_ULONG,
    }
}

fn login(f: &CK_FUNCTION_LIST, s: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> CK_RV {
    call!(
        f,
        C_Login,
        s,
        user,
        pin.as_ptr() as *mut u8,
        pin.len() as CK_ULONG
    )
}

fn open(f: &CK_FUNCTION_LIST, slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    let mut s = 0;
    let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
    ok(
        call!(f, C_OpenSession, slot, flags, ptr::null_mut(), None, &mut s),
        "C_OpenSession",
    );
    s
}

fn generate(
    f: &CK_FUNCTION_LIST,
    s: CK_SESSION_HANDLE,
    mechanism: CK_MECHANISM_TYPE,
    public: &[CK_ATTRIBUTE],
) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let mut mech = CK_MECHANISM {
        mechanism,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let yes: CK_BBOOL = CK_TRUE;
    let private = [
        attr(CKA_TOKEN, &yes),
        attr(CKA_SIGN, &yes),
        attr(CKA_DECRYPT, &yes),
        attr(CKA_DERIVE, &yes),
        bytes_attr(CKA_ID, b"fixture"),
    ];
    let (mut pub_h, mut priv_h) = (0, 0);
    ok(
        call!(
            f,
            C_GenerateKeyPair,
            s,
            &mut mech,
            public.as_ptr() as *mut CK_ATTRIBUTE,
            public.len() as CK_ULONG,
            private.as_ptr() as *mut CK_ATTRIBUTE,
            private.len() as CK_ULONG,
            &mut pub_h,
            &mut priv_h
        ),
        "C_GenerateKeyPair",
    );
    (pub_h, priv_h)
}

/// Starts swtpm, initialises the module and a token with an EC and an RSA key pair.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tpm = Swtpm::start();
        // No dictionary-attack lockout (recovery time 0): the fuzzer's wrong PINs must not
        // lock the TPM for the inputs after them.
        tpm.tpm2_tools_ok([
            "tpm2_dictionarylockout",
            "-s",
            "-n",
            "1000",
            "-t",
            "0",
            "-l",
            "0",
        ]);
        let store = TempDir::new("pkcs11-fuzz-store");
        std::env::set_var("TPMKEY_TCTI", tpm.tcti());
        std::env::set_var("TPMKEY_STORE", store.path());
        std::env::set_var("TPMKEY_CONF", "/dev/null");
        std::env::set_var("TPMKEY_OBJECTS", "per-operation");
        *ENV.lock().unwrap_or_else(|p| p.into_inner()) = Some((tpm, store));
        // SAFETY: registers a plain function without arguments.
        unsafe { libc::atexit(stop_at_exit) };

        let mut list: CK_FUNCTION_LIST_PTR = ptr::null_mut();
        // SAFETY: the module's entry point with a valid out-pointer; the list is static.
        let f: &'static CK_FUNCTION_LIST = unsafe {
            ok(C_GetFunctionList(&mut list), "C_GetFunctionList");
            &*list
        };
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: ptr::null_mut(),
        };
        ok(
            call!(f, C_Initialize, &mut args as *mut _ as *mut c_void),
            "C_Initialize",
        );
        let mut slots = [0 as CK_SLOT_ID; 8];
        let mut n = slots.len() as CK_ULONG;
        ok(
            call!(f, C_GetSlotList, CK_FALSE, slots.as_mut_ptr(), &mut n),
            "C_GetSlotList",
        );
        assert!(n > 0, "fixture: no slot");
        let slot = slots[0];
        let mut label = [b' '; 32];
        label[..4].copy_from_slice(b"fuzz");
        ok(
            call!(
                f,
                C_InitToken,
                slot,
                SO_PIN.as_ptr() as *mut u8,
                SO_PIN.len() as CK_ULONG,
                label.as_mut_ptr()
            ),
            "C_InitToken",
        );
        let s = open(f, slot);
        ok(login(f, s, CKU_SO, SO_PIN), "C_Login SO");
        ok(
            call!(
                f,
                C_InitPIN,
                s,
                USER_PIN.as_ptr() as *mut u8,
                USER_PIN.len() as CK_ULONG
            ),
            "C_InitPIN",
        );
        ok(call!(f, C_Logout, s), "C_Logout");
        ok(login(f, s, CKU_USER, USER_PIN), "C_Login user");
        let yes: CK_BBOOL = CK_TRUE;
        let bits: CK_ULONG = 2048;
        let (ec_pub, ec_priv) = generate(
            f,
            s,
            CKM_EC_KEY_PAIR_GEN,
            &[
                attr(CKA_TOKEN, &yes),
                attr(CKA_VERIFY, &yes),
                bytes_attr(CKA_EC_PARAMS, P256_OID),
            ],
        );
        let (rsa_pub, rsa_priv) = generate(
            f,
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[
                attr(CKA_TOKEN, &yes),
                attr(CKA_VERIFY, &yes),
                attr(CKA_ENCRYPT, &yes),
                attr(CKA_MODULUS_BITS, &bits),
            ],
        );
        ok(call!(f, C_CloseAllSessions, slot), "C_CloseAllSessions");
        Fixture {
            f,
            slot,
            keep: vec![ec_pub, ec_priv, rsa_pub, rsa_priv],
        }
    })
}

const ATTRIBUTE_TYPES: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_KEY_TYPE,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_ID,
    CKA_VALUE,
    CKA_APPLICATION,
    CKA_OBJECT_ID,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_DECRYPT,
    CKA_ENCRYPT,
    CKA_DERIVE,
    CKA_SENSITIVE,
    CKA_EXTRACTABLE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_CERTIFICATE_TYPE,
    CKA_SUBJECT,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_PUBLIC_KEY_INFO,
    CKA_PRIME_1,
    CKA_PRIVATE_EXPONENT,
    CKA_VENDOR_DEFINED | 0x7470_0001,
    CKA_VENDOR_DEFINED | 0x7470_0002,
];

const CLASSES: &[CK_ULONG] = &[
    CKO_DATA,
    CKO_CERTIFICATE,
    CKO_PUBLIC_KEY,
    CKO_PRIVATE_KEY,
    CKO_SECRET_KEY,
];

/// A template: the attributes and the buffers their values point to.
struct Template {
    attrs: Vec<CK_ATTRIBUTE>,
    _values: Vec<Vec<u8>>,
}

impl Template {
    /// `for_output`: value buffers of a fuzzed length (or NULL), for C_GetAttributeValue.
    fn read(input: &mut Input<'_>, for_output: bool) -> Template {
        let count = usize::from(input.u8() % 8);
        let mut attrs = Vec::with_capacity(count);
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            let pick = input.u8();
            let type_ = if pick < 0xf0 {
                ATTRIBUTE_TYPES[usize::from(pick) % ATTRIBUTE_TYPES.len()]
            } else {
                CK_ULONG::from(input.u32()) & !CKF_ARRAY_ATTRIBUTE
            };
            let mut value = match (for_output, input.u8()) {
                (true, n) => vec![0u8; usize::from(n)],
                // A CK_ULONG or CK_BBOOL value of one of the classes, or raw bytes.
                (false, 0) => CLASSES[usize::from(input.u8()) % CLASSES.len()]
                    .to_ne_bytes()
                    .to_vec(),
                (false, 1) => vec![CK_TRUE],
                (false, _) => input.blob(),
            };
            let null = for_output && value.len() == 255;
            attrs.push(CK_ATTRIBUTE {
                type_,
                pValue: if null {
                    ptr::null_mut()
                } else {
                    value.as_mut_ptr() as *mut c_void
                },
                ulValueLen: value.len() as CK_ULONG,
            });
            values.push(value);
        }
        Template {
            attrs,
            _values: values,
        }
    }

    fn ptr(&mut self) -> *mut CK_ATTRIBUTE {
        self.attrs.as_mut_ptr()
    }

    fn len(&self) -> CK_ULONG {
        self.attrs.len() as CK_ULONG
    }
}

const MECHANISMS: &[CK_MECHANISM_TYPE] = &[
    CKM_ECDSA,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_RSA_PKCS_OAEP,
    CKM_ECDH1_DERIVE,
    CKM_SHA256,
    CKM_SHA_1,
    CKM_EC_KEY_PAIR_GEN,
    CKM_RSA_X_509,
];

/// A mechanism and the memory its parameter points into.
struct Mech {
    mech: CK_MECHANISM,
    _param: Vec<u8>,
    _oaep: Box<CK_RSA_PKCS_OAEP_PARAMS>,
    _ecdh: Box<CK_ECDH1_DERIVE_PARAMS>,
    _data: Vec<u8>,
}

impl Mech {
    fn read(input: &mut Input<'_>) -> Mech {
        let pick = input.u8();
        let mechanism = if pick < 0xf0 {
            MECHANISMS[usize::from(pick) % MECHANISMS.len()]
        } else {
            CK_ULONG::from(input.u32())
        };
        let mut param = input.blob();
        let mut data = input.blob();
        let mut oaep = Box::new(CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CK_ULONG::from(input.u8()) << 4,
            mgf: CK_ULONG::from(input.u8() % 4),
            source: CK_ULONG::from(input.u8() % 2),
            pSourceData: ptr::null_mut(),
            ulSourceDataLen: 0,
        });
        let mut ecdh = Box::new(CK_ECDH1_DERIVE_PARAMS {
            kdf: CK_ULONG::from(input.u8() % 3),
            ulSharedDataLen: 0,
            pSharedData: ptr::null_mut(),
            ulPublicDataLen: data.len() as CK_ULONG,
            pPublicData: data.as_mut_ptr(),
        });
        if !data.is_empty() && input.u8() & 1 == 1 {
            oaep.pSourceData = data.as_mut_ptr() as *mut c_void;
            oaep.ulSourceDataLen = data.len() as CK_ULONG;
        }
        // Structures with pointers are built here; any other parameter is raw bytes.
        let (p, len): (*mut c_void, usize) = match mechanism {
            CKM_RSA_PKCS_OAEP => (
                &mut *oaep as *mut _ as *mut c_void,
                std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>(),
            ),
            CKM_ECDH1_DERIVE => (
                &mut *ecdh as *mut _ as *mut c_void,
                std::mem::size_of::<CK_ECDH1_DERIVE_PARAMS>(),
            ),
            _ if param.is_empty() => (ptr::null_mut(), 0),
            _ => (param.as_mut_ptr() as *mut c_void, param.len()),
        };
        Mech {
            mech: CK_MECHANISM {
                mechanism,
                pParameter: p,
                ulParameterLen: len as CK_ULONG,
            },
            _param: param,
            _oaep: oaep,
            _ecdh: ecdh,
            _data: data,
        }
    }
}

/// An object handle: one the input knows (fixture or created) or a raw one.
fn handle(input: &mut Input<'_>, known: &[CK_OBJECT_HANDLE]) -> CK_OBJECT_HANDLE {
    match input.u8() {
        b if b < 0xf0 && !known.is_empty() => known[usize::from(b) % known.len()],
        _ => CK_ULONG::from(input.u32()),
    }
}

/// An output buffer of a fuzzed size, or none (a size query).
fn output(input: &mut Input<'_>) -> (Vec<u8>, bool) {
    match input.u8() {
        0 => (Vec::new(), true),
        n => (vec![0u8; usize::from(n) * 4], false),
    }
}

/// `PKCS11_FUZZ_TRACE=1` prints every call's CK_RV (to see what a seed reaches).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("PKCS11_FUZZ_TRACE").is_some())
}

fn check(rv: CK_RV, what: &str) {
    if trace() {
        eprintln!("{what}: 0x{rv:x}");
    }
    assert_ne!(
        rv, CKR_GENERAL_ERROR,
        "{what}: CKR_GENERAL_ERROR (the module caught a panic or failed inside)"
    );
}

/// Runs one data operation (C_Sign, C_Verify, C_Encrypt, C_Decrypt, C_Digest) with a
/// fuzzed input and output buffer.
fn one_shot(
    input: &mut Input<'_>,
    what: &str,
    op: impl Fn(*mut u8, CK_ULONG, *mut u8, *mut CK_ULONG) -> CK_RV,
) {
    let mut data = input.blob();
    let (mut out, null) = output(input);
    let mut n = out.len() as CK_ULONG;
    let out_ptr = if null {
        ptr::null_mut()
    } else {
        out.as_mut_ptr()
    };
    let rv = op(data.as_mut_ptr(), data.len() as CK_ULONG, out_ptr, &mut n);
    check(rv, what);
    if rv == CKR_OK && !null {
        assert!(
            n as usize <= out.len(),
            "{what}: wrote {n} into {} bytes",
            out.len()
        );
    }
}

fuzz_target!(|bytes: &[u8]| {
    let fx = fixture();
    let f = fx.f;
    let mut input = Input(bytes);
    let s = open(f, fx.slot);
    let mut known = fx.keep.clone();
    let mut created: Vec<CK_OBJECT_HANDLE> = Vec::new();
    let mut steps = 0;
    let mut role: Option<CK_USER_TYPE> = None;
    while !input.is_empty() && steps < 32 {
        steps += 1;
        match input.u8() % 20 {
            0 => {
                let user = CK_ULONG::from(input.u8() % 3);
                // SO logins get the SO PIN: a locked SO PIN could not be recovered, and
                // the user PIN's wrong tries are what the token counts and unlocks.
                let pin = match input.u8() {
                    _ if user == CKU_SO => SO_PIN.to_vec(),
                    0 => USER_PIN.to_vec(),
                    _ => input.blob(),
                };
                let rv = login(f, s, user, &pin);
                check(rv, "C_Login");
                if rv == CKR_OK && user != CKU_CONTEXT_SPECIFIC {
                    role = Some(user);
                }
            }
            1 => {
                check(call!(f, C_Logout, s), "C_Logout");
                role = None;
            }
            2 => {
                let mut t = Template::read(&mut input, false);
                check(
                    call!(f, C_FindObjectsInit, s, t.ptr(), t.len()),
                    "C_FindObjectsInit",
                );
                let mut found = [0 as CK_OBJECT_HANDLE; 16];
                let max = CK_ULONG::from(input.u8() % 17);
                let mut n = 0;
                check(
                    call!(f, C_FindObjects, s, found.as_mut_ptr(), max, &mut n),
                    "C_FindObjects",
                );
                known.extend_from_slice(&found[..(n as usize).min(found.len())]);
                check(call!(f, C_FindObjectsFinal, s), "C_FindObjectsFinal");
            }
            3 => {
                let h = handle(&mut input, &known);
                let mut t = Template::read(&mut input, true);
                check(
                    call!(f, C_GetAttributeValue, s, h, t.ptr(), t.len()),
                    "C_GetAttributeValue",
                );
            }
            4 => {
                let h = handle(&mut input, &created);
                let mut t = Template::read(&mut input, false);
                check(
                    call!(f, C_SetAttributeValue, s, h, t.ptr(), t.len()),
                    "C_SetAttributeValue",
                );
            }
            5 => {
                let mut t = Template::read(&mut input, false);
                let mut h = 0;
                let rv = call!(f, C_CreateObject, s, t.ptr(), t.len(), &mut h);
                check(rv, "C_CreateObject");
                if rv == CKR_OK {
                    created.push(h);
                    known.push(h);
                }
            }
            6 => {
                let h = handle(&mut input, &created);
                if !fx.keep.contains(&h) {
                    check(call!(f, C_DestroyObject, s, h), "C_DestroyObject");
                }
            }
            7 => {
                let mut m = Mech::read(&mut input);
                let h = handle(&mut input, &known);
                check(call!(f, C_SignInit, s, &mut m.mech, h), "C_SignInit");
                one_shot(&mut input, "C_Sign", |d, dn, o, on| {
                    call!(f, C_Sign, s, d, dn, o, on)
                });
            }
            8 => {
                let mut m = Mech::read(&mut input);
                let h = handle(&mut input, &known);
                check(call!(f, C_SignInit, s, &mut m.mech, h), "C_SignInit");
                for _ in 0..input.u8() % 4 {
                    let mut part = input.blob();
                    check(
                        call!(
                            f,
                            C_SignUpdate,
                            s,
                            part.as_mut_ptr(),
                            part.len() as CK_ULONG
                        ),
                        "C_SignUpdate",
                    );
                }
                let (mut out, null) = output(&mut input);
                let mut n = out.len() as CK_ULONG;
                let p = if null {
                    ptr::null_mut()
                } else {
                    out.as_mut_ptr()
                };
                check(call!(f, C_SignFinal, s, p, &mut n), "C_SignFinal");
            }
            9 => {
                let mut m = Mech::read(&mut input);
                let h = handle(&mut input, &known);
                check(call!(f, C_VerifyInit, s, &mut m.mech, h), "C_VerifyInit");
                let mut data = input.blob();
                let mut sig = input.blob();
                check(
                    call!(
                        f,
                        C_Verify,
                        s,
                        data.as_mut_ptr(),
                        data.len() as CK_ULONG,
                        sig.as_mut_ptr(),
                        sig.len() as CK_ULONG
                    ),
                    "C_Verify",
                );
            }
            10 => {
                let mut m = Mech::read(&mut input);
                let h = handle(&mut input, &known);
                check(call!(f, C_EncryptInit, s, &mut m.mech, h), "C_EncryptInit");
                one_shot(&mut input, "C_Encrypt", |d, dn, o, on| {
                    call!(f, C_Encrypt, s, d, dn, o, on)
                });
            }
            11 => {
                let mut m = Mech::read(&mut input);
                let h = handle(&mut input, &known);
                check(call!(f, C_DecryptInit, s, &mut m.mech, h), "C_DecryptInit");
                one_shot(&mut input, "C_Decrypt", |d, dn, o, on| {
                    call!(f, C_Decrypt, s, d, dn, o, on)
                });
            }
            12 => {
                let mut m = Mech::read(&mut input);
                check(call!(f, C_DigestInit, s, &mut m.mech), "C_DigestInit");
                one_shot(&mut input, "C_Digest", |d, dn, o, on| {
                    call!(f, C_Digest, s, d, dn, o, on)
                });
            }
            13 => {
                let mut out = vec![0u8; usize::from(input.u8()) * 8];
                check(
                    call!(
                        f,
                        C_GenerateRandom,
                        s,
                        out.as_mut_ptr(),
                        out.len() as CK_ULONG
                    ),
                    "C_GenerateRandom",
                );
            }
            14 => {
                let mut info = CK_MECHANISM_INFO {
                    ulMinKeySize: 0,
                    ulMaxKeySize: 0,
                    flags: 0,
                };
                let m = Mech::read(&mut input);
                check(
                    call!(f, C_GetMechanismInfo, fx.slot, m.mech.mechanism, &mut info),
                    "C_GetMechanismInfo",
                );
            }
            15 => {
                let mut m = Mech::read(&mut input);
                if m.mech.mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN {
                    continue;
                }
                let mut public = Template::read(&mut input, false);
                let mut private = Template::read(&mut input, false);
                let (mut ph, mut kh) = (0, 0);
                let rv = call!(
                    f,
                    C_GenerateKeyPair,
                    s,
                    &mut m.mech,
                    public.ptr(),
                    public.len(),
                    private.ptr(),
                    private.len(),
                    &mut ph,
                    &mut kh
                );
                check(rv, "C_GenerateKeyPair");
                if rv == CKR_OK {
                    created.extend([ph, kh]);
                    known.extend([ph, kh]);
                }
            }
            16 => {
                let mut m = Mech::read(&mut input);
                let h = handle(&mut input, &known);
                let mut t = Template::read(&mut input, false);
                let mut out = 0;
                let rv = call!(
                    f,
                    C_DeriveKey,
                    s,
                    &mut m.mech,
                    h,
                    t.ptr(),
                    t.len(),
                    &mut out
                );
                check(rv, "C_DeriveKey");
                if rv == CKR_OK {
                    created.push(out);
                    known.push(out);
                }
            }
            17 => {
                let h = handle(&mut input, &known);
                let mut size = 0;
                check(
                    call!(f, C_GetObjectSize, s, h, &mut size),
                    "C_GetObjectSize",
                );
            }
            18 => {
                let mut info = CK_SESSION_INFO {
                    slotID: 0,
                    state: 0,
                    flags: 0,
                    ulDeviceError: 0,
                };
                check(call!(f, C_GetSessionInfo, s, &mut info), "C_GetSessionInfo");
            }
            _ => {
                // The right PIN of the role logged in (of the user without a login): only
                // C_Login spends wrong tries. The new PIN is the fuzzer's, then put back.
                let mut old = match role {
                    Some(CKU_SO) => SO_PIN.to_vec(),
                    _ => USER_PIN.to_vec(),
                };
                let mut new = input.blob();
                let rv = call!(
                    f,
                    C_SetPIN,
                    s,
                    old.as_mut_ptr(),
                    old.len() as CK_ULONG,
                    new.as_mut_ptr(),
                    new.len() as CK_ULONG
                );
                check(rv, "C_SetPIN");
                if rv == CKR_OK {
                    ok(
                        call!(
                            f,
                            C_SetPIN,
                            s,
                            new.as_mut_ptr(),
                            new.len() as CK_ULONG,
                            old.as_mut_ptr(),
                            old.len() as CK_ULONG
                        ),
                        "C_SetPIN back",
                    );
                }
            }
        }
    }
    // Leave the token as it was: what the input made is destroyed (as the user), the
    // sessions closed, and the token's wrong-PIN count reset by a right login.
    let cleanup = open(f, fx.slot);
    call!(f, C_Logout, s);
    if login(f, cleanup, CKU_USER, USER_PIN) == CKR_PIN_LOCKED {
        // The token's wrong-PIN limit: the SO unlocks the user PIN.
        call!(f, C_Logout, cleanup);
        ok(login(f, cleanup, CKU_SO, SO_PIN), "C_Login SO");
        ok(
            call!(
                f,
                C_InitPIN,
                cleanup,
                USER_PIN.as_ptr() as *mut u8,
                USER_PIN.len() as CK_ULONG
            ),
            "C_InitPIN",
        );
        call!(f, C_Logout, cleanup);
        ok(login(f, cleanup, CKU_USER, USER_PIN), "C_Login user");
    }
    for h in created {
        call!(f, C_DestroyObject, cleanup, h);
    }
    call!(f, C_CloseAllSessions, fx.slot);
});
