//! Public-key operations in software: verification and encryption run in a private
//! OSSL_LIB_CTX with only OpenSSL's default provider (never the application's context,
//! whose providers or engines could route them back to us or elsewhere).

use std::ffi::{c_int, CStr};
use std::ptr;
use std::sync::OnceLock;

use openssl_sys as sys;
use tpmkey::public_key::PublicKey;
use tpmkey::{Error, Result};

use crate::ffi::{self, OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS, OSSL_KEYMGMT_SELECT_PUBLIC_KEY};
use crate::key::{Key, KeyType, Material};
use crate::keymgmt::public_params;
use crate::params::ParamList;

struct LibCtx(*mut sys::OSSL_LIB_CTX);
// SAFETY: an OSSL_LIB_CTX is thread-safe once created; it lives until the process ends.
unsafe impl Send for LibCtx {}
// SAFETY: as above.
unsafe impl Sync for LibCtx {}

static LIBCTX: OnceLock<LibCtx> = OnceLock::new();

fn failed(what: &str) -> Error {
    // SAFETY: reads and clears this thread's libcrypto error queue.
    let code = unsafe { sys::ERR_get_error() };
    // SAFETY: as above; drop what else the private context left.
    unsafe { sys::ERR_clear_error() };
    Error::BadInput(format!(
        "{what} failed in OpenSSL's default provider (error 0x{code:x})"
    ))
}

/// libcrypto's 1-for-success return as a Result (rust-openssl's `cvt`).
fn cvt(r: c_int, what: &str) -> Result<()> {
    if r == 1 {
        Ok(())
    } else {
        Err(failed(what))
    }
}

/// A pointer libcrypto returns, NULL being its failure (rust-openssl's `cvt_p`).
fn cvt_p<T>(p: *mut T, what: &str) -> Result<*mut T> {
    if p.is_null() {
        Err(failed(what))
    } else {
        Ok(p)
    }
}

fn libctx() -> Result<*mut sys::OSSL_LIB_CTX> {
    if let Some(c) = LIBCTX.get() {
        return Ok(c.0);
    }
    // SAFETY: a plain constructor call.
    let ctx = cvt_p(
        unsafe { sys::OSSL_LIB_CTX_new() },
        "creating a library context",
    )?;
    // SAFETY: ctx is valid; the name a NUL-terminated literal.
    let provider = unsafe { sys::OSSL_PROVIDER_load(ctx, c"default".as_ptr()) };
    cvt_p(provider, "loading the default provider")?;
    let ctx = LIBCTX.get_or_init(|| LibCtx(ctx)).0;
    Ok(ctx)
}

/// An EVP_PKEY of the private context, freed on drop.
struct Pkey(*mut sys::EVP_PKEY);

impl Drop for Pkey {
    fn drop(&mut self) {
        // SAFETY: we own the reference.
        unsafe { sys::EVP_PKEY_free(self.0) };
    }
}

/// An EVP_PKEY_CTX of the private context, freed on drop.
struct PkeyCtx(*mut sys::EVP_PKEY_CTX);

impl Drop for PkeyCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context.
        unsafe { sys::EVP_PKEY_CTX_free(self.0) };
    }
}

fn openssl_key(public: &PublicKey, key_type: KeyType) -> Result<Pkey> {
    let ctx = libctx()?;
    let key = Key::new(key_type, Material::Public(public.clone()));
    let selection = OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS;
    let mut params = public_params(&key, selection)?;
    let name: &CStr = match key_type {
        KeyType::Ec => c"EC",
        KeyType::Rsa => c"RSA",
        KeyType::RsaPss => c"RSA-PSS",
    };
    // SAFETY: ctx is the private context, name a literal.
    let pctx = unsafe { sys::EVP_PKEY_CTX_new_from_name(ctx, name.as_ptr(), ptr::null()) };
    let pctx = PkeyCtx(cvt_p(pctx, "creating a key context")?);
    const IMPORT: &str = "importing the public key";
    // SAFETY: pctx valid.
    cvt(unsafe { sys::EVP_PKEY_fromdata_init(pctx.0) }, IMPORT)?;
    let mut pkey = ptr::null_mut();
    // SAFETY: pctx valid; params is a terminated array alive across the call (same layout
    // as openssl-sys's OSSL_PARAM); pkey an out-pointer.
    let r = unsafe {
        sys::EVP_PKEY_fromdata(
            pctx.0,
            &mut pkey,
            selection as c_int,
            params.as_ptr() as *mut sys::OSSL_PARAM,
        )
    };
    cvt(r, IMPORT)?;
    Ok(Pkey(cvt_p(pkey, IMPORT)?))
}

fn operation_ctx(pkey: &Pkey) -> Result<PkeyCtx> {
    // SAFETY: pkey belongs to the private context.
    let ctx = unsafe { ffi::EVP_PKEY_CTX_new_from_pkey(libctx()?, pkey.0, ptr::null()) };
    Ok(PkeyCtx(cvt_p(ctx, "creating an operation context")?))
}

fn set_params(ctx: &PkeyCtx, params: &mut ParamList) -> Result<()> {
    // SAFETY: ctx valid; params a terminated array alive across the call.
    let r =
        unsafe { sys::EVP_PKEY_CTX_set_params(ctx.0, params.as_ptr() as *const sys::OSSL_PARAM) };
    cvt(r, "setting the operation parameters")
}

/// Verifies `sig` over `tbs` (a digest, or raw input without "digest") with the public
/// key; `params` are signature parameters (digest, pad-mode, saltlen, mgf1-digest).
pub(crate) fn verify(
    public: &PublicKey,
    key_type: KeyType,
    mut params: ParamList,
    tbs: &[u8],
    sig: &[u8],
) -> Result<bool> {
    let pkey = openssl_key(public, key_type)?;
    let ctx = operation_ctx(&pkey)?;
    // SAFETY: ctx valid.
    let r = unsafe { sys::EVP_PKEY_verify_init(ctx.0) };
    cvt(r, "starting verification")?;
    set_params(&ctx, &mut params)?;
    // SAFETY: ctx valid; sig and tbs readable for their lengths.
    let r =
        unsafe { sys::EVP_PKEY_verify(ctx.0, sig.as_ptr(), sig.len(), tbs.as_ptr(), tbs.len()) };
    // SAFETY: a failed verification leaves entries on this thread's queue: not ours to show.
    unsafe { sys::ERR_clear_error() };
    Ok(r == 1)
}

/// Encrypts with the public key; `params` are cipher parameters (pad-mode, digest, ...).
pub(crate) fn encrypt(
    public: &PublicKey,
    mut params: ParamList,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let pkey = openssl_key(public, KeyType::Rsa)?;
    let ctx = operation_ctx(&pkey)?;
    // SAFETY: ctx valid.
    let r = unsafe { sys::EVP_PKEY_encrypt_init(ctx.0) };
    cvt(r, "starting encryption")?;
    set_params(&ctx, &mut params)?;
    let mut len = 0usize;
    let (p, n) = (plaintext.as_ptr(), plaintext.len());
    // SAFETY: ctx valid; NULL output asks for the size.
    let r = unsafe { sys::EVP_PKEY_encrypt(ctx.0, ptr::null_mut(), &mut len, p, n) };
    cvt(r, "RSA encryption")?;
    let mut out = vec![0u8; len];
    // SAFETY: out is writable for len bytes; p readable for n.
    let r = unsafe { sys::EVP_PKEY_encrypt(ctx.0, out.as_mut_ptr(), &mut len, p, n) };
    cvt(r, "RSA encryption")?;
    out.truncate(len);
    Ok(out)
}
