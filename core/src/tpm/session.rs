//! The salted HMAC session with AES-128-CFB parameter encryption (TPM 2.0 Part 1, 19 and 21;
//! formulas in shared/tpm-sessions.md). One session, started once and reused for every
//! command, makes bus protection cost almost nothing.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::session_crypto::{kdfa, kdfe, SessionCrypto, CRYPTO};
use crate::wire::{Reader, Writer, TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_SHA256};

pub const ATTR_CONTINUE_SESSION: u8 = 0x01;
pub const ATTR_DECRYPT: u8 = 0x20;
pub const ATTR_ENCRYPT: u8 = 0x40;
const NONCE_SIZE: usize = 32;

/// The storage key's public point that salts the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaltKey {
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

/// A StartAuthSession in flight: the salt is known only to us and the TPM.
#[allow(missing_debug_implementations)] // holds the salt: never printed
pub struct PendingSession {
    salt: Zeroizing<Vec<u8>>,
    nonce_caller: [u8; NONCE_SIZE],
}

pub struct SaltedSession {
    pub handle: u32,
    key: Zeroizing<Vec<u8>>,
    nonce_tpm: Vec<u8>,
    /// A response HMAC has checked out: our session key is the TPM's.
    verified: bool,
}

impl std::fmt::Debug for SaltedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SaltedSession(0x{:08x})", self.handle)
    }
}

fn crypto() -> &'static dyn SessionCrypto {
    &CRYPTO
}

/// authValue with trailing zero bytes removed (Part 1, 19.6.5).
fn trimmed(auth: &[u8]) -> &[u8] {
    let n = auth.iter().rev().take_while(|b| **b == 0).count();
    &auth[..auth.len() - n]
}

/// The span of the first parameter's data when it is a TPM2B.
fn first_tpm2b(params: &[u8]) -> Result<std::ops::Range<usize>> {
    let mut r = Reader::new(params);
    let n = usize::from(r.u16()?);
    if 2 + n > params.len() {
        return Err(Error::Integrity(
            "first parameter shorter than its size".into(),
        ));
    }
    Ok(2..2 + n)
}

/// StartAuthSession parameters after the two handles, and what we keep to finish.
/// `session_type` is TPM_SE_HMAC or TPM_SE_POLICY: both are salted the same way and carry
/// the same parameter encryption.
pub fn start_params(salt_key: &SaltKey, session_type: u8) -> Result<(Vec<u8>, PendingSession)> {
    let c = crypto();
    let e = c.p256_ephemeral_ecdh(&salt_key.x, &salt_key.y)?;
    let qs_x = {
        let mut p = [0u8; 32];
        let x = &salt_key.x[salt_key.x.len().saturating_sub(32)..];
        p[32 - x.len()..].copy_from_slice(x);
        p
    };
    let salt = kdfe(c, &e.z[..], "SECRET", &e.x, &qs_x, 256);
    let mut nonce_caller = [0u8; NONCE_SIZE];
    c.random(&mut nonce_caller);
    let mut point = Writer::new();
    point.tpm2b(&e.x).tpm2b(&e.y);
    let mut w = Writer::new();
    w.tpm2b(&nonce_caller)
        .tpm2b(&point.into_vec())
        .u8(session_type)
        .u16(TPM_ALG_AES)
        .u16(128)
        .u16(TPM_ALG_CFB)
        .u16(TPM_ALG_SHA256);
    Ok((w.into_vec(), PendingSession { salt, nonce_caller }))
}

impl SaltedSession {
    /// The nonce the TPM gave last: PolicySecret of a policy session names it.
    pub fn nonce_tpm(&self) -> &[u8] {
        &self.nonce_tpm
    }

    pub fn established(pending: PendingSession, handle: u32, nonce_tpm: &[u8]) -> SaltedSession {
        let key = kdfa(
            crypto(),
            &pending.salt,
            "ATH",
            nonce_tpm,
            &pending.nonce_caller,
            256,
        );
        SaltedSession {
            handle,
            key,
            nonce_tpm: nonce_tpm.to_vec(),
            verified: false,
        }
    }

    /// Whether a response has shown that the TPM holds the same session key (the
    /// StartAuthSession response that gave nonceTPM has no HMAC).
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    fn hmac_key(&self, auth_value: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut k = Zeroizing::new(Vec::with_capacity(self.key.len() + auth_value.len()));
        k.extend_from_slice(&self.key);
        k.extend_from_slice(trimmed(auth_value));
        k
    }

    fn cfb(
        &self,
        hmac_key: &[u8],
        newer: &[u8],
        older: &[u8],
        data: &mut [u8],
        encrypt: bool,
    ) -> Result<()> {
        let kiv = kdfa(crypto(), hmac_key, "CFB", newer, older, 256);
        crypto().aes128_cfb(&kiv[..16], &kiv[16..32], data, encrypt)
    }

    /// Encrypts the first parameter if asked and returns the command's authorisation area
    /// entry (without the authorizationSize field) plus the nonce the response must echo.
    pub fn authorize(
        &self,
        command_code: u32,
        names: &[&[u8]],
        params: &mut [u8],
        auth_value: &[u8],
        attrs: u8,
    ) -> Result<(Vec<u8>, [u8; NONCE_SIZE])> {
        let c = crypto();
        let mut nonce_caller = [0u8; NONCE_SIZE];
        c.random(&mut nonce_caller);
        let key = self.hmac_key(auth_value);
        if attrs & ATTR_DECRYPT != 0 {
            let span = first_tpm2b(params)?;
            self.cfb(
                &key,
                &nonce_caller,
                &self.nonce_tpm,
                &mut params[span],
                true,
            )?;
        }
        let mut cp = Vec::with_capacity(4 + names.iter().map(|n| n.len()).sum::<usize>());
        cp.extend_from_slice(&command_code.to_be_bytes());
        for n in names {
            cp.extend_from_slice(n);
        }
        let cp_hash = c.sha256(&[&cp, params]);
        let hmac = c.hmac_sha256(&key, &[&cp_hash, &nonce_caller, &self.nonce_tpm, &[attrs]]);
        let mut w = Writer::new();
        w.u32(self.handle)
            .tpm2b(&nonce_caller)
            .u8(attrs)
            .tpm2b(&hmac);
        Ok((w.into_vec(), nonce_caller))
    }

    /// Checks the response HMAC over the still-encrypted parameters, moves to the TPM's new
    /// nonce and decrypts the first parameter if it was encrypted.
    pub fn verify_response(
        &mut self,
        command_code: u32,
        params: &mut [u8],
        auth_area: &mut Reader<'_>,
        auth_value: &[u8],
        nonce_caller: &[u8],
        attrs_sent: u8,
    ) -> Result<()> {
        let c = crypto();
        let nonce_tpm = auth_area.tpm2b()?.to_vec();
        let attrs = auth_area.u8()?;
        let hmac = auth_area.tpm2b()?;
        let key = self.hmac_key(auth_value);
        let rp_hash = c.sha256(&[&0u32.to_be_bytes(), &command_code.to_be_bytes(), params]);
        let expect = c.hmac_sha256(&key, &[&rp_hash, &nonce_tpm, nonce_caller, &[attrs]]);
        if !constant_time_eq(hmac, &expect) {
            return Err(Error::Integrity(
                "response HMAC does not match: the response was altered on the way from the TPM"
                    .into(),
            ));
        }
        self.nonce_tpm = nonce_tpm;
        self.verified = true;
        if attrs_sent & ATTR_ENCRYPT != 0 {
            let span = first_tpm2b(params)?;
            self.cfb(
                &key,
                &self.nonce_tpm,
                nonce_caller,
                &mut params[span],
                false,
            )?;
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
