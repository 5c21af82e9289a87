//! KEYEXCH ECDH: the TPM derives Z = x(d * peer) with a software peer key of the same
//! curve; a peer on another curve is refused before the TPM is asked. The parameters CMS
//! (RFC 5753) sets are taken: the cofactor mode (P-256 and P-384 have cofactor 1, so both
//! modes give the same Z) and the ANSI X9.63 KDF with its digest, output length and
//! shared info (ukm), applied on the host to the TPM's Z.

use std::cell::Cell;
use std::ffi::{c_int, c_uchar, c_void};

use tpmkey::hash::Hash;
use tpmkey::public_key::PublicKey;
use tpmkey::{Error, Result};
use zeroize::Zeroizing;

use crate::buffer::answer;
use crate::error::guard_int;
use crate::ffi::*;
use crate::key::{self, Key};
use crate::params::{describe, ParamTable, Params, END};
use crate::{algorithm, dispatch_table, ephemeral_ec, opctx, PROPERTIES};

/// The X9.63 KDF settings (`kdf-type` X963KDF); the digest defaults to SHA-256 until
/// `kdf-digest` names one.
#[derive(Clone, Debug, Default)]
struct X963 {
    enabled: bool,
    hash: Option<Hash>,
    outlen: usize,
    ukm: Vec<u8>,
}

impl X963 {
    /// ANSI X9.63 KDF (SEC 1 v2, 3.6.1): H(Z || counter || SharedInfo) for counter = 1, 2,
    /// ... (32-bit big-endian), truncated to `outlen`.
    fn derive(&self, z: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if self.outlen == 0 {
            return Err(Error::BadInput(
                "the X9.63 KDF needs an output length (kdf-outlen)".into(),
            ));
        }
        let hash = self.hash.unwrap_or(Hash::Sha256);
        let mut out = Zeroizing::new(Vec::with_capacity(self.outlen + hash.len()));
        let mut counter: u32 = 1;
        while out.len() < self.outlen {
            let block = Zeroizing::new(hash.digest(&[z, &counter.to_be_bytes(), &self.ukm]));
            out.extend_from_slice(&block);
            counter = counter
                .checked_add(1)
                .ok_or_else(|| Error::BadInput("X9.63 KDF output too long".into()))?;
        }
        out.truncate(self.outlen);
        Ok(out)
    }
}

thread_local! {
    /// Set between ECDH init and set_peer on this thread: the next key pair OpenSSL
    /// exports to our key management is the peer, and only its public half is taken.
    static PEER_EXPECTED: Cell<bool> = const { Cell::new(false) };
}

/// True (once) when the key pair being imported is the peer of an ECDH this thread
/// started: `EVP_PKEY_derive_set_peer` exports the whole peer, private key included,
/// where a software key pair must otherwise stay with its own provider.
pub(crate) fn peer_expected() -> bool {
    PEER_EXPECTED.with(|p| p.replace(false))
}

#[derive(Clone, Debug, Default)]
struct ExchangeCtx {
    key: Option<Key>,
    peer: Option<(Vec<u8>, Vec<u8>)>,
    kdf: X963,
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
        let z = self.key()?.tpm()?.ecdh(x, y)?;
        if self.kdf.enabled {
            self.kdf.derive(&z)
        } else {
            Ok(z)
        }
    }

    /// The secret's size: the coordinate size, or the KDF's output length.
    fn secret_len(&self) -> Result<usize> {
        if self.kdf.enabled {
            return Ok(self.kdf.outlen);
        }
        match self.key()?.public()? {
            PublicKey::Ec { curve, .. } => Ok(curve.coordinate_len()),
            PublicKey::Rsa { .. } => Err(Error::BadInput("ECDH with an RSA key".into())),
        }
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        for p in params.iter() {
            match p.key().to_bytes() {
                b"ecdh-cofactor-mode" => {
                    // -1 (the key's default), 0 or 1: the same with cofactor 1.
                    let mode = p.int()?;
                    if !(-1..=1).contains(&mode) {
                        return Err(Error::BadInput(format!("ECDH cofactor mode {mode}")));
                    }
                }
                b"kdf-type" => {
                    let kdf = p.utf8()?;
                    self.kdf.enabled = match kdf.as_str() {
                        "" => false,
                        k if k.eq_ignore_ascii_case("X963KDF") => true,
                        other => {
                            return Err(Error::Unsupported(format!(
                                "the KDF \"{other}\" inside ECDH (X963KDF or none)"
                            )))
                        }
                    };
                }
                b"kdf-digest" => self.kdf.hash = Some(Hash::from_name(&p.utf8()?)?),
                b"kdf-outlen" => {
                    self.kdf.outlen = usize::try_from(p.int()?)
                        .map_err(|_| Error::BadInput("a negative KDF output length".into()))?;
                }
                b"kdf-ukm" => self.kdf.ukm = p.octets()?.to_vec(),
                _ => {}
            }
        }
        Ok(())
    }
}

unsafe fn ctx<'a>(p: *mut c_void) -> Result<&'a mut ExchangeCtx> {
    // SAFETY: p is a context this module created (the core passes it back).
    unsafe { opctx::borrow(p) }
}

unsafe extern "C" fn freectx(c: *mut c_void) {
    PEER_EXPECTED.with(|p| p.set(false));
    // SAFETY: the core frees each context it got from newctx once.
    unsafe { opctx::free::<ExchangeCtx>(c) }
}

unsafe extern "C" fn newctx(_provctx: *mut c_void) -> *mut c_void {
    opctx::into_raw(ExchangeCtx::default())
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
        c.kdf = X963::default();
        c.set_params(&params)?;
        PEER_EXPECTED.with(|p| p.set(true));
        Ok(())
    })
}

unsafe extern "C" fn set_peer(c: *mut c_void, peer: *mut c_void) -> c_int {
    guard_int("keyexch set_peer", || {
        PEER_EXPECTED.with(|p| p.set(false));
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
        let max = c.secret_len()?;
        // SAFETY: OpenSSL's buffer with its size.
        unsafe { answer(secret, secretlen, outlen, max, || c.derive()) }
    })
}

unsafe extern "C" fn set_ctx_params(c: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    guard_int("keyexch set_ctx_params", || {
        // SAFETY: our context; the core's terminated array.
        let (c, params) = unsafe { (ctx(c)?, Params::from_ptr(params)) };
        c.set_params(&params)
    })
}

static SETTABLE: ParamTable = ParamTable(&[
    describe(
        OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE,
        OSSL_PARAM_INTEGER,
    ),
    describe(OSSL_EXCHANGE_PARAM_KDF_TYPE, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_EXCHANGE_PARAM_KDF_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_EXCHANGE_PARAM_KDF_DIGEST_PROPS, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_EXCHANGE_PARAM_KDF_OUTLEN, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(OSSL_EXCHANGE_PARAM_KDF_UKM, OSSL_PARAM_OCTET_STRING),
    END,
]);

unsafe extern "C" fn settable_ctx_params(_c: *mut c_void, _p: *mut c_void) -> *const OSSL_PARAM {
    SETTABLE.as_ptr()
}

static FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_KEYEXCH_NEWCTX => newctx,
    OSSL_FUNC_KEYEXCH_FREECTX => freectx,
    OSSL_FUNC_KEYEXCH_DUPCTX => opctx::dupctx::<ExchangeCtx>,
    OSSL_FUNC_KEYEXCH_INIT => init,
    OSSL_FUNC_KEYEXCH_SET_PEER => set_peer,
    OSSL_FUNC_KEYEXCH_DERIVE => derive,
    OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS => set_ctx_params,
    OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS => settable_ctx_params,
];

pub(crate) static ALGORITHMS: [OSSL_ALGORITHM; 3] = [
    algorithm!(c"ECDH", PROPERTIES, FUNCTIONS),
    algorithm!(
        ephemeral_ec::NAME,
        PROPERTIES,
        ephemeral_ec::keyexch::FUNCTIONS
    ),
    OSSL_ALGORITHM::END,
];
