//! KEYEXCH TPMKEY-EPHEMERAL-EC: ECDH between two ephemeral keys of the same curve, in
//! software (the TLS ECDHE shared secret; no TPM command).

use std::ffi::{c_int, c_uchar, c_void};

use tpmkey::{Error, Result};

use super::EphemeralKey;
use crate::buffer::answer;
use crate::error::guard_int;
use crate::ffi::*;
use crate::{dispatch_table, opctx};

#[derive(Clone, Debug, Default)]
struct ExchangeCtx {
    key: Option<EphemeralKey>,
    peer: Option<EphemeralKey>,
}

impl ExchangeCtx {
    fn key(&self) -> Result<&EphemeralKey> {
        self.key
            .as_ref()
            .ok_or_else(|| Error::BadInput("ECDH not initialised".into()))
    }
}

unsafe fn ctx<'a>(p: *mut c_void) -> Result<&'a mut ExchangeCtx> {
    // SAFETY: p is a context this module created (the core passes it back).
    unsafe { opctx::borrow(p) }
}

/// # Safety
/// `p` is NULL or keydata of the TPMKEY-EPHEMERAL-EC key management.
unsafe fn keydata<'a>(p: *mut c_void) -> Result<&'a EphemeralKey> {
    // SAFETY: caller's contract.
    unsafe { opctx::borrow::<EphemeralKey>(p) }.map(|k| &*k)
}

unsafe extern "C" fn newctx(_provctx: *mut c_void) -> *mut c_void {
    opctx::into_raw(ExchangeCtx::default())
}

unsafe extern "C" fn init(c: *mut c_void, k: *mut c_void, _params: *const OSSL_PARAM) -> c_int {
    guard_int("ephemeral keyexch init", || {
        // SAFETY: our context and keydata of our key management.
        let (c, k) = unsafe { (ctx(c)?, keydata(k)?) };
        if !k.has_private() {
            return Err(Error::BadInput(
                "ECDH with an ephemeral key that has no private part".into(),
            ));
        }
        c.key = Some(k.clone());
        c.peer = None;
        Ok(())
    })
}

unsafe extern "C" fn set_peer(c: *mut c_void, peer: *mut c_void) -> c_int {
    guard_int("ephemeral keyexch set_peer", || {
        // SAFETY: our context; the peer is keydata of our key management.
        let (c, peer) = unsafe { (ctx(c)?, keydata(peer)?) };
        if peer.curve()? != c.key()?.curve()? {
            return Err(Error::BadInput(format!(
                "the peer key is on {} but ours on {}",
                peer.curve()?.name(),
                c.key()?.curve()?.name()
            )));
        }
        c.peer = Some(peer.public_only());
        Ok(())
    })
}

unsafe extern "C" fn derive(
    c: *mut c_void,
    secret: *mut c_uchar,
    secretlen: *mut usize,
    outlen: usize,
) -> c_int {
    guard_int("ephemeral keyexch derive", || {
        // SAFETY: our context.
        let c = unsafe { ctx(c) }?;
        let key = c.key()?;
        let max = key.curve()?.coordinate_len();
        // SAFETY: OpenSSL's buffer with its size.
        unsafe {
            answer(secret, secretlen, outlen, max, || {
                let peer = c
                    .peer
                    .as_ref()
                    .ok_or_else(|| Error::BadInput("ECDH without a peer key".into()))?;
                key.derive(peer)
            })
        }
    })
}

pub(crate) static FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_KEYEXCH_NEWCTX => newctx,
    OSSL_FUNC_KEYEXCH_FREECTX => opctx::freectx::<ExchangeCtx>,
    OSSL_FUNC_KEYEXCH_DUPCTX => opctx::dupctx::<ExchangeCtx>,
    OSSL_FUNC_KEYEXCH_INIT => init,
    OSSL_FUNC_KEYEXCH_SET_PEER => set_peer,
    OSSL_FUNC_KEYEXCH_DERIVE => derive,
];
