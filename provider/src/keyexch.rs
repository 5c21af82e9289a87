//! KEYEXCH ECDH: the TPM derives Z = x(d * peer) with a software peer key of the same
//! curve; a peer on another curve is refused before the TPM is asked.

use std::ffi::{c_int, c_uchar, c_void};

use tpmkey::public_key::PublicKey;
use tpmkey::{Error, Result};
use zeroize::Zeroizing;

use crate::buffer::answer;
use crate::error::guard_int;
use crate::ffi::*;
use crate::key::{self, Key};
use crate::params::{describe, ParamTable, Params, END};
use crate::{algorithm, dispatch_table, ephemeral_ec, opctx, PROPERTIES};

#[derive(Clone, Debug, Default)]
struct ExchangeCtx {
    key: Option<Key>,
    peer: Option<(Vec<u8>, Vec<u8>)>,
}

impl ExchangeCtx {
    fn key(&self) -> Result<&Key> {
        self.key
            .as_ref()
            .ok_or_else(|| Error::BadInput("ECDH not initialised".into()))
    }

    fn set_peer(&mut self, peer: &Key) -> Result<()> {
        let (PublicKey::Ec { curve: ours, .. }, PublicKey::Ec { curve, x, y }) =
            (self.key()?.public()?, peer.public()?)
        else {
            return Err(Error::BadInput("ECDH needs EC keys on both sides".into()));
        };
        if ours != curve {
            return Err(Error::BadInput(format!(
                "the peer key is on {} but the TPM key on {}",
                curve.name(),
                ours.name()
            )));
        }
        self.peer = Some((x.clone(), y.clone()));
        Ok(())
    }

    fn derive(&self) -> Result<Zeroizing<Vec<u8>>> {
        let (x, y) = self
            .peer
            .as_ref()
            .ok_or_else(|| Error::BadInput("ECDH without a peer key".into()))?;
        self.key()?.tpm()?.ecdh(x, y)
    }
}

unsafe fn ctx<'a>(p: *mut c_void) -> Result<&'a mut ExchangeCtx> {
    // SAFETY: p is a context this module created (the core passes it back).
    unsafe { opctx::borrow(p) }
}

unsafe extern "C" fn newctx(_provctx: *mut c_void) -> *mut c_void {
    opctx::into_raw(ExchangeCtx::default())
}

fn set_params(params: &Params) -> Result<()> {
    for p in params.iter() {
        if p.key().to_bytes() == b"kdf-type" && !p.utf8()?.is_empty() {
            return Err(Error::Unsupported(
                "a KDF inside ECDH (derive the shared secret, then apply the KDF)".into(),
            ));
        }
    }
    Ok(())
}

unsafe extern "C" fn init(
    c: *mut c_void,
    keydata: *mut c_void,
    params: *const OSSL_PARAM,
) -> c_int {
    guard_int("keyexch init", || {
        // SAFETY: our context, our keydata, the core's terminated array.
        let (c, k, params) = unsafe { (ctx(c)?, key::keydata(keydata)?, Params::from_ptr(params)) };
        k.tpm()?;
        c.key = Some(k.clone());
        c.peer = None;
        set_params(&params)
    })
}

unsafe extern "C" fn set_peer(c: *mut c_void, peer: *mut c_void) -> c_int {
    guard_int("keyexch set_peer", || {
        // SAFETY: our context; the peer is keydata of our keymgmt.
        let (c, peer) = unsafe { (ctx(c)?, key::keydata(peer)?) };
        c.set_peer(peer)
    })
}

unsafe extern "C" fn derive(
    c: *mut c_void,
    secret: *mut c_uchar,
    secretlen: *mut usize,
    outlen: usize,
) -> c_int {
    guard_int("keyexch derive", || {
        // SAFETY: our context.
        let c = unsafe { ctx(c) }?;
        let max = match c.key()?.public()? {
            PublicKey::Ec { curve, .. } => curve.coordinate_len(),
            PublicKey::Rsa { .. } => return Err(Error::BadInput("ECDH with an RSA key".into())),
        };
        // SAFETY: OpenSSL's buffer with its size.
        unsafe { answer(secret, secretlen, outlen, max, || c.derive()) }
    })
}

unsafe extern "C" fn set_ctx_params(_c: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    guard_int("keyexch set_ctx_params", || {
        // SAFETY: the core's terminated array.
        set_params(&unsafe { Params::from_ptr(params) })
    })
}

static SETTABLE: ParamTable = ParamTable(&[describe(c"kdf-type", OSSL_PARAM_UTF8_STRING), END]);

unsafe extern "C" fn settable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    SETTABLE.as_ptr()
}

static FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_KEYEXCH_NEWCTX => newctx,
    OSSL_FUNC_KEYEXCH_FREECTX => opctx::freectx::<ExchangeCtx>,
    OSSL_FUNC_KEYEXCH_DUPCTX => opctx::dupctx::<ExchangeCtx>,
    OSSL_FUNC_KEYEXCH_INIT => init,
    OSSL_FUNC_KEYEXCH_SET_PEER => set_peer,
    OSSL_FUNC_KEYEXCH_DERIVE => derive,
    OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS => set_ctx_params,
    OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS => settable_ctx_params,
];

pub static ALGORITHMS: [OSSL_ALGORITHM; 3] = [
    algorithm!(c"ECDH", PROPERTIES, FUNCTIONS),
    algorithm!(
        ephemeral_ec::NAME,
        PROPERTIES,
        ephemeral_ec::keyexch::FUNCTIONS
    ),
    OSSL_ALGORITHM::END,
];
