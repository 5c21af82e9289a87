//! SIGNATURE: ECDSA, RSA PKCS#1 v1.5 and RSA-PSS. Messages are hashed here in software;
//! the TPM sees one command per signature. A restricted signing key (tpm2-openssl's RSA-PSS
//! keys) is the exception: the TPM must hash what it signs, so digest-sign collects the
//! message and the core has the TPM hash it (two commands for a short message).
//! Verification runs in software with the public key (see `software`). `algorithm-id`
//! answers X.509 and CMS.

use std::ffi::{c_char, c_int, c_uchar, c_void, CStr};

use tpmkey::hash::{Hash, Hasher};
use tpmkey::public_key::PublicKey;
use tpmkey::{Error, Result, SignScheme, Signature};

use crate::buffer::{answer, input};
use crate::error::{guard, guard_bool, guard_int};
use crate::ffi::*;
use crate::key::{self, Key, KeyType};
use crate::padding::{Padding, Salt};
use crate::params::{describe, ParamList, ParamTable, Params, END};
use crate::{algorithm, der, dispatch_table, opctx, software, PROPERTIES};

#[derive(Clone, Debug)]
struct SignCtx {
    key: Option<Key>,
    hash: Option<Hash>,
    padding: Padding,
    salt: Salt,
    mgf1: Option<Hash>,
    hasher: Option<Hasher>,
    /// The message so far, for digest-sign with a restricted key.
    message: Option<Vec<u8>>,
}

impl SignCtx {
    fn key(&self) -> Result<&Key> {
        self.key
            .as_ref()
            .ok_or_else(|| Error::BadInput("signature operation not initialised".into()))
    }

    fn init(&mut self, key: &Key, params: &Params) -> Result<()> {
        self.padding = if key.key_type == KeyType::RsaPss {
            Padding::Pss
        } else {
            Padding::Pkcs1
        };
        self.key = Some(key.clone());
        self.set_params(params)
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        for p in params.iter() {
            match p.key().to_bytes() {
                b"digest" => {
                    let hash = Hash::from_name(&p.utf8()?)?;
                    if self.hasher.is_some() && self.hash != Some(hash) {
                        self.hasher = Some(Hasher::new(hash));
                    }
                    self.hash = Some(hash);
                }
                b"pad-mode" => {
                    let padding = Padding::from_param(&p)?;
                    if !matches!(padding, Padding::Pkcs1 | Padding::Pss | Padding::None) {
                        return Err(Error::Unsupported(format!(
                            "{} padding for signatures",
                            padding.name()
                        )));
                    }
                    self.padding = padding;
                }
                b"saltlen" => self.salt = Salt::from_param(&p)?,
                b"mgf1-digest" => self.mgf1 = Some(Hash::from_name(&p.utf8()?)?),
                _ => {}
            }
        }
        Ok(())
    }

    fn hash_for(&self, digest: &[u8]) -> Result<Hash> {
        match self.hash {
            Some(h) => Ok(h),
            None => Hash::from_len(digest.len()),
        }
    }

    /// The scheme this context signs with, `hash` the digest's (asked for only where the
    /// scheme has one); None for the raw RSA operation (pad-mode none).
    fn scheme(&self, hash: impl FnOnce() -> Result<Hash>) -> Result<Option<SignScheme>> {
        let key = self.key()?;
        Ok(Some(match key.public()? {
            PublicKey::Ec { .. } => SignScheme::Ecdsa(hash()?),
            PublicKey::Rsa { .. } => match self.padding {
                Padding::Pkcs1 => match self.hash {
                    Some(h) => SignScheme::RsaPkcs1(h),
                    None => SignScheme::RsaPkcs1Raw,
                },
                Padding::Pss => {
                    let hash = hash()?;
                    SignScheme::RsaPss {
                        hash,
                        mgf1: self.mgf1.unwrap_or(hash),
                        salt_len: self.salt.resolve(hash, key.bits()?),
                    }
                }
                _ => return Ok(None),
            },
        }))
    }

    /// The signature of a digest (or, for PKCS#1 without a digest, of raw input).
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>> {
        let tpm = self.key()?.tpm()?;
        let Some(scheme) = self.scheme(|| self.hash_for(tbs))? else {
            return Ok(tpm.rsa_private(tbs)?.to_vec());
        };
        Ok(encode(tpm.sign(scheme, tbs)?))
    }

    /// The signature of a whole message, hashed by the TPM (a restricted key).
    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>> {
        let tpm = self.key()?.tpm()?;
        let hash = self
            .hash
            .ok_or_else(|| Error::BadInput("digest-sign without a digest".into()))?;
        let Some(scheme) = self.scheme(|| Ok(hash))? else {
            return Err(Error::Unsupported(
                "raw RSA (no padding) with a restricted signing key".into(),
            ));
        };
        Ok(encode(tpm.sign_message(scheme, message)?))
    }

    fn verify(&self, sig: &[u8], tbs: &[u8]) -> Result<bool> {
        let key = self.key()?;
        let mut params = ParamList::new();
        let public = key.public()?;
        if let Some(h) = self.hash {
            params.utf8(OSSL_SIGNATURE_PARAM_DIGEST, h.name());
        }
        if let PublicKey::Rsa { .. } = public {
            params.utf8(OSSL_SIGNATURE_PARAM_PAD_MODE, self.padding.name());
            if self.padding == Padding::Pss {
                params.utf8(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &self.salt.name());
                if let Some(m) = self.mgf1.or(self.hash) {
                    params.utf8(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, m.name());
                }
            }
        }
        // A PSS-restricted key verifies as a plain RSA key with PSS padding.
        let key_type = if key.key_type == KeyType::Ec {
            KeyType::Ec
        } else {
            KeyType::Rsa
        };
        software::verify(public, key_type, params, tbs, sig)
    }

    fn algorithm_id(&self) -> Result<Vec<u8>> {
        let key = self.key()?;
        let hash = self
            .hash
            .ok_or_else(|| Error::BadInput("algorithm-id before a digest was set".into()))?;
        Ok(match key.public()? {
            PublicKey::Ec { .. } => der::ecdsa_algorithm_id(hash),
            PublicKey::Rsa { .. } if self.padding == Padding::Pss => der::rsa_pss_algorithm_id(
                hash,
                self.mgf1.unwrap_or(hash),
                self.salt.resolve(hash, key.bits()?),
            ),
            PublicKey::Rsa { .. } => der::rsa_pkcs1_algorithm_id(hash),
        })
    }

    fn get_params(&self, params: &Params) -> Result<()> {
        for mut p in params.iter() {
            match p.key().to_bytes() {
                b"algorithm-id" => p.set_octets(&self.algorithm_id()?)?,
                b"digest" => {
                    if let Some(h) = self.hash {
                        p.set_utf8(h.name())?
                    }
                }
                b"digest-size" => {
                    if let Some(h) = self.hash {
                        p.set_int(h.len() as i64)?
                    }
                }
                b"pad-mode" => {
                    if p.is_string() {
                        p.set_utf8(self.padding.name())?
                    } else {
                        p.set_int(self.padding.openssl_id())?
                    }
                }
                b"saltlen" => {
                    if p.is_string() {
                        p.set_utf8(&self.salt.name())?
                    } else {
                        p.set_int(self.salt.openssl_id())?
                    }
                }
                b"mgf1-digest" => {
                    if let Some(h) = self.mgf1.or(self.hash) {
                        p.set_utf8(h.name())?
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A signature as OpenSSL takes it: ECDSA as DER, RSA as it is.
fn encode(sig: Signature) -> Vec<u8> {
    match sig {
        Signature::Ecdsa { r, s } => der::ecdsa_signature(&r, &s),
        Signature::Rsa(sig) => sig,
    }
}

unsafe fn ctx<'a>(p: *mut c_void) -> Result<&'a mut SignCtx> {
    // SAFETY: p is a context this module created (the core passes it back).
    unsafe { opctx::borrow(p) }
}

unsafe extern "C" fn newctx(_provctx: *mut c_void, _propq: *const c_char) -> *mut c_void {
    guard("signature newctx", std::ptr::null_mut(), || {
        Ok(opctx::into_raw(SignCtx {
            key: None,
            hash: None,
            padding: Padding::Pkcs1,
            salt: Salt::Digest,
            mgf1: None,
            hasher: None,
            message: None,
        }))
    })
}

unsafe extern "C" fn init(
    c: *mut c_void,
    keydata: *mut c_void,
    params: *const OSSL_PARAM,
) -> c_int {
    guard_int("signature init", || {
        // SAFETY: our context, our keydata, the core's terminated parameter array.
        let (c, k, params) = unsafe { (ctx(c)?, key::keydata(keydata)?, Params::from_ptr(params)) };
        c.hasher = None;
        c.message = None;
        c.init(k, &params)
    })
}

unsafe extern "C" fn sign(
    c: *mut c_void,
    sig: *mut c_uchar,
    siglen: *mut usize,
    sigsize: usize,
    tbs: *const c_uchar,
    tbslen: usize,
) -> c_int {
    guard_int("signature sign", || {
        // SAFETY: our context; OpenSSL's buffers with their sizes.
        let c = unsafe { ctx(c) }?;
        let max = c.key()?.max_size()?;
        // SAFETY: as above.
        unsafe { answer(sig, siglen, sigsize, max, || c.sign(input(tbs, tbslen)?)) }
    })
}

unsafe extern "C" fn verify(
    c: *mut c_void,
    sig: *const c_uchar,
    siglen: usize,
    tbs: *const c_uchar,
    tbslen: usize,
) -> c_int {
    guard_bool("signature verify", || {
        // SAFETY: our context; OpenSSL's buffers with their sizes.
        let c = unsafe { ctx(c) }?;
        // SAFETY: as above.
        c.verify(unsafe { input(sig, siglen) }?, unsafe {
            input(tbs, tbslen)
        }?)
    })
}

unsafe extern "C" fn digest_sign_init(
    c: *mut c_void,
    mdname: *const c_char,
    keydata: *mut c_void,
    params: *const OSSL_PARAM,
) -> c_int {
    guard_int("signature digest sign init", || {
        // SAFETY: the core's arguments, as `digest_begin` takes them.
        unsafe { digest_begin(c, mdname, keydata, params, true) }
    })
}

unsafe extern "C" fn digest_verify_init(
    c: *mut c_void,
    mdname: *const c_char,
    keydata: *mut c_void,
    params: *const OSSL_PARAM,
) -> c_int {
    guard_int("signature digest verify init", || {
        // SAFETY: the core's arguments, as `digest_begin` takes them.
        unsafe { digest_begin(c, mdname, keydata, params, false) }
    })
}

/// DigestSignInit / DigestVerifyInit: hashing starts with `mdname` (SHA-256 when none is
/// named); a digest-sign on a restricted key also collects the message, which the TPM
/// must hash itself.
///
/// # Safety
/// `c` is this module's context, `keydata` a key of this provider, `mdname` null or
/// NUL-terminated, `params` null or a terminated OSSL_PARAM array.
unsafe fn digest_begin(
    c: *mut c_void,
    mdname: *const c_char,
    keydata: *mut c_void,
    params: *const OSSL_PARAM,
    signing: bool,
) -> Result<()> {
    // SAFETY: as the caller promises.
    let (c, k, params) = unsafe { (ctx(c)?, key::keydata(keydata)?, Params::from_ptr(params)) };
    let hash = if mdname.is_null() {
        Hash::Sha256
    } else {
        // SAFETY: a NUL-terminated name from OpenSSL.
        let name = unsafe { CStr::from_ptr(mdname) }.to_string_lossy();
        if name.is_empty() {
            Hash::Sha256
        } else {
            Hash::from_name(&name)?
        }
    };
    c.hash = Some(hash);
    c.hasher = Some(Hasher::new(hash));
    c.init(k, &params)?;
    c.message = (signing && c.key()?.is_restricted()).then(Vec::new);
    Ok(())
}

unsafe extern "C" fn digest_update(c: *mut c_void, data: *const c_uchar, len: usize) -> c_int {
    guard_int("signature digest update", || {
        // SAFETY: our context; data readable for len bytes.
        let (c, data) = unsafe { (ctx(c)?, input(data, len)?) };
        if let Some(message) = &mut c.message {
            message.extend_from_slice(data);
        }
        c.hasher
            .as_mut()
            .ok_or_else(|| Error::BadInput("digest update before init".into()))?
            .update(data);
        Ok(())
    })
}

fn message_digest(c: &SignCtx) -> Result<Vec<u8>> {
    Ok(c.hasher
        .as_ref()
        .ok_or_else(|| Error::BadInput("digest final before init".into()))?
        .digest_so_far())
}

unsafe extern "C" fn digest_sign_final(
    c: *mut c_void,
    sig: *mut c_uchar,
    siglen: *mut usize,
    sigsize: usize,
) -> c_int {
    guard_int("signature digest sign final", || {
        // SAFETY: our context.
        let c = unsafe { ctx(c) }?;
        let max = c.key()?.max_size()?;
        // SAFETY: OpenSSL's buffer with its size.
        unsafe {
            answer(sig, siglen, sigsize, max, || match &c.message {
                Some(message) => c.sign_message(message),
                None => c.sign(&message_digest(c)?),
            })
        }
    })
}

unsafe extern "C" fn digest_verify_final(
    c: *mut c_void,
    sig: *const c_uchar,
    siglen: usize,
) -> c_int {
    guard_bool("signature digest verify final", || {
        // SAFETY: our context; sig readable for siglen bytes.
        let (c, sig) = unsafe { (ctx(c)?, input(sig, siglen)?) };
        c.verify(sig, &message_digest(c)?)
    })
}

unsafe extern "C" fn get_ctx_params(c: *mut c_void, params: *mut OSSL_PARAM) -> c_int {
    guard_int("signature get_ctx_params", || {
        // SAFETY: our context; the core's terminated array.
        let (c, params) = unsafe { (ctx(c)?, Params::from_ptr(params)) };
        c.get_params(&params)
    })
}

unsafe extern "C" fn set_ctx_params(c: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    guard_int("signature set_ctx_params", || {
        // SAFETY: our context; the core's terminated array.
        let (c, params) = unsafe { (ctx(c)?, Params::from_ptr(params)) };
        c.set_params(&params)
    })
}

static GETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, OSSL_PARAM_OCTET_STRING),
    describe(OSSL_SIGNATURE_PARAM_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(
        OSSL_SIGNATURE_PARAM_DIGEST_SIZE,
        OSSL_PARAM_UNSIGNED_INTEGER,
    ),
    describe(OSSL_SIGNATURE_PARAM_PAD_MODE, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, OSSL_PARAM_UTF8_STRING),
    END,
]);
static SETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_SIGNATURE_PARAM_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_SIGNATURE_PARAM_PROPERTIES, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_SIGNATURE_PARAM_PAD_MODE, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, OSSL_PARAM_UTF8_STRING),
    END,
]);

unsafe extern "C" fn gettable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    GETTABLE.as_ptr()
}

unsafe extern "C" fn settable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    SETTABLE.as_ptr()
}

static FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_SIGNATURE_NEWCTX => newctx,
    OSSL_FUNC_SIGNATURE_FREECTX => opctx::freectx::<SignCtx>,
    OSSL_FUNC_SIGNATURE_DUPCTX => opctx::dupctx::<SignCtx>,
    OSSL_FUNC_SIGNATURE_SIGN_INIT => init,
    OSSL_FUNC_SIGNATURE_SIGN => sign,
    OSSL_FUNC_SIGNATURE_VERIFY_INIT => init,
    OSSL_FUNC_SIGNATURE_VERIFY => verify,
    OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT => digest_sign_init,
    OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE => digest_update,
    OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL => digest_sign_final,
    OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT => digest_verify_init,
    OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE => digest_update,
    OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL => digest_verify_final,
    OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS => get_ctx_params,
    OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS => gettable_ctx_params,
    OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS => set_ctx_params,
    OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS => settable_ctx_params,
];

pub(crate) static ALGORITHMS: [OSSL_ALGORITHM; 3] = [
    algorithm!(c"ECDSA", PROPERTIES, FUNCTIONS),
    algorithm!(
        c"RSA:rsaEncryption:1.2.840.113549.1.1.1",
        PROPERTIES,
        FUNCTIONS
    ),
    OSSL_ALGORITHM::END,
];
