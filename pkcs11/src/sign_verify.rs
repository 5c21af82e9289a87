//! Signing and verification. Signatures come from the TPM (one TPM2_Sign, or one raw
//! TPM2_RSA_Decrypt around host-side PSS/PKCS#1 padding, when the key is loaded);
//! verification uses the public key in software. Multi-part operations hash the data in
//! software as it arrives (mechanisms that take raw input collect it).

use cryptoki_sys::*;
use tpmkey::public_key::PublicKey;
use tpmkey::{SignScheme, Signature, TpmKey};

use crate::attributes::{class, get_bool, get_ulong};
use crate::error::{Error, Result};
use crate::key_ref::key_object;
use crate::mechanism::{self, Mechanism};
use crate::operation;
use crate::public_key;
use crate::sign_mechanism::{ecdsa_digest, resolve, Message, Resolved};
use crate::software;
use crate::state::{self, Module};

#[derive(Debug)]
pub(crate) struct SignOp {
    resolved: Resolved,
    key: TpmKey,
    message: Message,
    signature_len: usize,
    /// CKA_ALWAYS_AUTHENTICATE: a C_Login(CKU_CONTEXT_SPECIFIC) must come first.
    pub needs_login: bool,
}

fn signature_len(public: &PublicKey) -> usize {
    match public {
        PublicKey::Ec { curve, .. } => 2 * curve.coordinate_len(),
        PublicKey::Rsa { modulus, .. } => modulus.len(),
    }
}

pub(crate) fn sign_init(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    state::with(|m| {
        operation::begin(&m.session(session)?.sign)?;
        let (r, attrs) = key_object(m, session, key)?;
        mechanism::check(mech.kind, CKF_SIGN)?;
        if class(&attrs) != Some(CKO_PRIVATE_KEY) {
            return Err(Error::new(
                CKR_KEY_TYPE_INCONSISTENT,
                "signing needs a private key",
            ));
        }
        let tpm_key = m.tpm_key(&r)?;
        let key_type = get_ulong(&attrs, CKA_KEY_TYPE).unwrap_or(CK_UNAVAILABLE_INFORMATION);
        let resolved = resolve(mech, key_type, tpm_key.public().bits())?;
        mechanism::allowed(&attrs, mech.kind)?;
        Module::check_usage(&attrs, CKA_SIGN)?;
        m.session(session)?.sign = Some(SignOp {
            resolved,
            signature_len: signature_len(&tpm_key.public().key),
            key: tpm_key,
            message: resolved.message(),
            needs_login: get_bool(&attrs, CKA_ALWAYS_AUTHENTICATE) == Some(true),
        });
        Ok(())
    })
}

/// Signs the input of the scheme (the digest, or CKM_RSA_PKCS's raw bytes).
fn compute(op: &SignOp, input: &[u8]) -> Result<Vec<u8>> {
    let scheme = op.resolved.scheme;
    let signed = match (scheme, &op.key.public().key) {
        (SignScheme::Ecdsa(_), PublicKey::Ec { curve, .. }) => {
            if input.is_empty() {
                return Err(Error::rv(CKR_DATA_LEN_RANGE));
            }
            op.key
                .sign(scheme, &ecdsa_digest(input, curve.coordinate_len()))
        }
        (SignScheme::RsaPkcs1(_), PublicKey::Rsa { .. }) => op.key.sign(scheme, input),
        (SignScheme::RsaPkcs1Raw, PublicKey::Rsa { modulus, .. }) => {
            if input.len() + 11 > modulus.len() {
                return Err(Error::rv(CKR_DATA_LEN_RANGE));
            }
            op.key.sign(scheme, input)
        }
        (SignScheme::RsaPss { hash, .. }, PublicKey::Rsa { .. }) => {
            if input.len() != hash.len() {
                return Err(Error::new(CKR_DATA_LEN_RANGE, "PSS input must be a digest"));
            }
            op.key.sign(scheme, input)
        }
        _ => return Err(Error::rv(CKR_KEY_TYPE_INCONSISTENT)),
    };
    signature_bytes(signed.map_err(|e| crate::error::key_use(&op.key, e))?)
}

fn signature_bytes(sig: Signature) -> Result<Vec<u8>> {
    Ok(match sig {
        Signature::Ecdsa { r, s } => [r, s].concat(),
        Signature::Rsa(v) => v,
    })
}

/// Runs the session's signing operation to its end, keeping it only for a missing or
/// short output buffer (`capacity` None or too small).
fn finish(
    session: CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    capacity: Option<usize>,
) -> Result<Vec<u8>> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.sign, |op| {
            if op.needs_login {
                return Err(Error::new(
                    CKR_USER_NOT_LOGGED_IN,
                    "the key needs C_Login(CKU_CONTEXT_SPECIFIC) first",
                ));
            }
            operation::check_capacity(capacity, op.signature_len)?;
            let input = match data {
                Some(data) => op.resolved.input(data),
                None => op.message.input(),
            };
            compute(op, &input)
        })
    })
}

pub(crate) fn sign(
    session: CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> Result<Vec<u8>> {
    finish(session, Some(data), capacity)
}

pub(crate) fn sign_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::active(&mut m.session(session)?.sign)?
            .message
            .update(part);
        Ok(())
    })
}

pub(crate) fn sign_final(session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Vec<u8>> {
    finish(session, None, capacity)
}

#[derive(Debug)]
pub(crate) struct VerifyOp {
    resolved: Resolved,
    public: PublicKey,
    message: Message,
}

pub(crate) fn verify_init(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    state::with(|m| {
        operation::begin(&m.session(session)?.verify)?;
        let (_, attrs) = key_object(m, session, key)?;
        mechanism::check(mech.kind, CKF_VERIFY)?;
        let public = match class(&attrs) {
            Some(CKO_PUBLIC_KEY) | Some(CKO_PRIVATE_KEY) => public_key::from_attributes(&attrs),
            _ => None,
        }
        .ok_or_else(|| Error::new(CKR_KEY_TYPE_INCONSISTENT, "verification needs a public key"))?;
        let key_type = get_ulong(&attrs, CKA_KEY_TYPE).unwrap_or(CK_UNAVAILABLE_INFORMATION);
        let bits = public.bits();
        let resolved = resolve(mech, key_type, bits)?;
        mechanism::allowed(&attrs, mech.kind)?;
        if class(&attrs) == Some(CKO_PUBLIC_KEY) {
            Module::check_usage(&attrs, CKA_VERIFY)?;
        }
        m.session(session)?.verify = Some(VerifyOp {
            resolved,
            public,
            message: resolved.message(),
        });
        Ok(())
    })
}

pub(crate) fn verify(session: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.verify, |op| {
            let input = op.resolved.input(data);
            software::verify(&op.public, op.resolved.scheme, &input, signature)
        })
    })
}

pub(crate) fn verify_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::active(&mut m.session(session)?.verify)?
            .message
            .update(part);
        Ok(())
    })
}

pub(crate) fn verify_final(session: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.verify, |op| {
            software::verify(
                &op.public,
                op.resolved.scheme,
                &op.message.input(),
                signature,
            )
        })
    })
}
