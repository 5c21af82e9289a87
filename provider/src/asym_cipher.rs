//! ASYM_CIPHER RSA: decryption with the TPM's raw RSA operation and the padding removed on
//! the host (OAEP with any digest and label, PKCS#1 v1.5, and TLS key transport with
//! implicit rejection); encryption with the public key in software. PKCS#1 v1.5
//! decryption does implicit rejection by default, as OpenSSL 3.2+ does (a malformed block
//! decrypts to a deterministic synthetic message, see `tpmkey::implicit_rejection`); the
//! `implicit-rejection` parameter set to 0 turns it off.

use std::ffi::{c_int, c_uchar, c_void};

use tpmkey::hash::Hash;
use tpmkey::rsa_padding::{tls_premaster_decode, TLS_PREMASTER_LEN};
use tpmkey::{Error, Result, RsaPadding};
use zeroize::Zeroizing;

use crate::buffer::{answer, input};
use crate::error::{guard, guard_int};
use crate::ffi::*;
use crate::key::{self, Key};
use crate::padding::Padding;
use crate::params::{describe, ParamList, ParamTable, Params, END};
use crate::{algorithm, dispatch_table, opctx, software, PROPERTIES};

/// OpenSSL 3.2+'s OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION (an unsigned integer, 0 turns
/// implicit rejection off); not in the 3.0 headers the names in `ffi` are checked against.
const OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION: &std::ffi::CStr = c"implicit-rejection";

#[derive(Clone, Debug)]
struct CipherCtx {
    key: Option<Key>,
    padding: Padding,
    oaep: Hash,
    mgf1: Option<Hash>,
    label: Zeroizing<Vec<u8>>,
    client_version: u16,
    alt_version: Option<u16>,
    implicit_rejection: bool,
}

impl CipherCtx {
    fn key(&self) -> Result<&Key> {
        self.key
            .as_ref()
            .ok_or_else(|| Error::BadInput("RSA cipher operation not initialised".into()))
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        for p in params.iter() {
            match p.key().to_bytes() {
                b"pad-mode" => self.padding = Padding::from_param(&p)?,
                b"digest" => self.oaep = Hash::from_name(&p.utf8()?)?,
                b"mgf1-digest" => self.mgf1 = Some(Hash::from_name(&p.utf8()?)?),
                b"oaep-label" => self.label = Zeroizing::new(p.octets()?.to_vec()),
                b"tls-client-version" => self.client_version = version(p.int()?)?,
                b"tls-negotiated-version" => {
                    let v = version(p.int()?)?;
                    self.alt_version = (v != 0).then_some(v);
                }
                b"implicit-rejection" => self.implicit_rejection = p.int()? != 0,
                _ => {}
            }
        }
        if self.padding == Padding::Pss {
            return Err(Error::Unsupported("PSS padding for encryption".into()));
        }
        Ok(())
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let tpm = self.key()?.tpm()?;
        match self.padding {
            Padding::Oaep => tpm.decrypt(
                RsaPadding::Oaep {
                    hash: self.oaep,
                    mgf1: self.mgf1.unwrap_or(self.oaep),
                },
                &self.label,
                ciphertext,
            ),
            Padding::Pkcs1 if self.implicit_rejection => {
                tpmkey::implicit_rejection::pkcs1_v15_decrypt(tpm, ciphertext)
            }
            Padding::Pkcs1 => tpm.decrypt(RsaPadding::Pkcs1, &[], ciphertext),
            Padding::None => tpm.decrypt(RsaPadding::None, &[], ciphertext),
            Padding::Pkcs1Tls => {
                let em = tpm.decrypt(RsaPadding::None, &[], ciphertext)?;
                Ok(tls_premaster_decode(
                    &em,
                    self.client_version,
                    self.alt_version,
                ))
            }
            Padding::Pss => Err(Error::Unsupported("PSS padding for decryption".into())),
        }
    }

    fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let key = self.key()?;
        let mut params = ParamList::new();
        params.utf8(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, self.padding.name());
        if self.padding == Padding::Oaep {
            params
                .utf8(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, self.oaep.name())
                .utf8(
                    OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST,
                    self.mgf1.unwrap_or(self.oaep).name(),
                );
            if !self.label.is_empty() {
                params.octets(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, &self.label);
            }
        }
        software::encrypt(key.public()?, params, plaintext)
    }
}

fn version(v: i64) -> Result<u16> {
    u16::try_from(v).map_err(|_| Error::BadInput(format!("TLS version {v}")))
}

unsafe fn ctx<'a>(p: *mut c_void) -> Result<&'a mut CipherCtx> {
    // SAFETY: p is a context this module created (the core passes it back).
    unsafe { opctx::borrow(p) }
}

unsafe extern "C" fn newctx(_provctx: *mut c_void) -> *mut c_void {
    guard("asym_cipher newctx", std::ptr::null_mut(), || {
        Ok(opctx::into_raw(CipherCtx {
            key: None,
            padding: Padding::Pkcs1,
            oaep: Hash::Sha1,
            mgf1: None,
            label: Zeroizing::new(Vec::new()),
            client_version: 0,
            alt_version: None,
            implicit_rejection: true,
        }))
    })
}

unsafe extern "C" fn init(
    c: *mut c_void,
    keydata: *mut c_void,
    params: *const OSSL_PARAM,
) -> c_int {
    guard_int("asym_cipher init", || {
        // SAFETY: our context, our keydata, the core's terminated array.
        let (c, k, params) = unsafe { (ctx(c)?, key::keydata(keydata)?, Params::from_ptr(params)) };
        if !matches!(k.public()?, tpmkey::public_key::PublicKey::Rsa { .. }) {
            return Err(Error::BadInput("RSA encryption with a non-RSA key".into()));
        }
        c.key = Some(k.clone());
        c.padding = Padding::Pkcs1;
        c.implicit_rejection = true;
        c.set_params(&params)
    })
}

unsafe extern "C" fn decrypt(
    c: *mut c_void,
    out: *mut c_uchar,
    outlen: *mut usize,
    outsize: usize,
    inp: *const c_uchar,
    inlen: usize,
) -> c_int {
    guard_int("asym_cipher decrypt", || {
        // SAFETY: our context.
        let c = unsafe { ctx(c) }?;
        let max = match c.padding {
            Padding::Pkcs1Tls => TLS_PREMASTER_LEN,
            _ => c.key()?.max_size()?,
        };
        // SAFETY: OpenSSL's buffers with their sizes.
        unsafe { answer(out, outlen, outsize, max, || c.decrypt(input(inp, inlen)?)) }
    })
}

unsafe extern "C" fn encrypt(
    c: *mut c_void,
    out: *mut c_uchar,
    outlen: *mut usize,
    outsize: usize,
    inp: *const c_uchar,
    inlen: usize,
) -> c_int {
    guard_int("asym_cipher encrypt", || {
        // SAFETY: our context.
        let c = unsafe { ctx(c) }?;
        let max = c.key()?.max_size()?;
        // SAFETY: OpenSSL's buffers with their sizes.
        unsafe { answer(out, outlen, outsize, max, || c.encrypt(input(inp, inlen)?)) }
    })
}

unsafe extern "C" fn get_ctx_params(c: *mut c_void, params: *mut OSSL_PARAM) -> c_int {
    guard_int("asym_cipher get_ctx_params", || {
        // SAFETY: our context; the core's terminated array.
        let (c, params) = unsafe { (ctx(c)?, Params::from_ptr(params)) };
        for mut p in params.iter() {
            match p.key().to_bytes() {
                b"pad-mode" if p.is_string() => p.set_utf8(c.padding.name())?,
                b"digest" => p.set_utf8(c.oaep.name())?,
                b"mgf1-digest" => p.set_utf8(c.mgf1.unwrap_or(c.oaep).name())?,
                b"oaep-label" => p.set_octets(&c.label)?,
                b"implicit-rejection" => p.set_int(i64::from(c.implicit_rejection))?,
                _ => {}
            }
        }
        Ok(())
    })
}

unsafe extern "C" fn set_ctx_params(c: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    guard_int("asym_cipher set_ctx_params", || {
        // SAFETY: our context; the core's terminated array.
        let (c, params) = unsafe { (ctx(c)?, Params::from_ptr(params)) };
        c.set_params(&params)
    })
}

static GETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, OSSL_PARAM_OCTET_STRING),
    describe(
        OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION,
        OSSL_PARAM_UNSIGNED_INTEGER,
    ),
    END,
]);
static SETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, OSSL_PARAM_OCTET_STRING),
    describe(
        OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION,
        OSSL_PARAM_UNSIGNED_INTEGER,
    ),
    describe(
        OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION,
        OSSL_PARAM_UNSIGNED_INTEGER,
    ),
    describe(
        OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION,
        OSSL_PARAM_UNSIGNED_INTEGER,
    ),
    END,
]);

unsafe extern "C" fn gettable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    GETTABLE.as_ptr()
}

unsafe extern "C" fn settable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    SETTABLE.as_ptr()
}

static FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_ASYM_CIPHER_NEWCTX => newctx,
    OSSL_FUNC_ASYM_CIPHER_FREECTX => opctx::freectx::<CipherCtx>,
    OSSL_FUNC_ASYM_CIPHER_DUPCTX => opctx::dupctx::<CipherCtx>,
    OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT => init,
    OSSL_FUNC_ASYM_CIPHER_ENCRYPT => encrypt,
    OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT => init,
    OSSL_FUNC_ASYM_CIPHER_DECRYPT => decrypt,
    OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS => get_ctx_params,
    OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS => gettable_ctx_params,
    OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS => set_ctx_params,
    OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS => settable_ctx_params,
];

pub(crate) static ALGORITHMS: [OSSL_ALGORITHM; 2] = [
    algorithm!(
        c"RSA:rsaEncryption:1.2.840.113549.1.1.1",
        PROPERTIES,
        FUNCTIONS
    ),
    OSSL_ALGORITHM::END,
];
