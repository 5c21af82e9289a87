//! Signing and verification. Signatures come from the TPM (one TPM2_Sign, or one raw
//! TPM2_RSA_Decrypt around host-side PSS/PKCS#1 padding, when the key is loaded);
//! verification uses the public key in software. Multi-part operations collect the data
//! and hash it in software at the end.

use cryptoki_sys::*;
use tpmkey::hash::Hash;
use tpmkey::public_key::PublicKey;
use tpmkey::{SignScheme, Signature, TpmKey};

use crate::attributes::{class, get_bool, get_ulong, SecretAttributes};
use crate::error::{Error, Result};
use crate::mechanism::{self, hash_of, mgf_hash, prehash, Mechanism, Param};
use crate::operation;
use crate::public_key;
use crate::software;
use crate::state::{self, Module, ObjRef};

/// How a mechanism turns data into a signature, once the optional prehash is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Ecdsa,
    RsaPkcs,
    RsaPss {
        hash: Hash,
        mgf1: Hash,
        salt_len: usize,
    },
}

/// A mechanism resolved against a key: its scheme and the hash it applies first.
#[derive(Clone, Copy, Debug)]
pub struct Resolved {
    pub scheme: Scheme,
    pub prehash: Option<Hash>,
}

impl Resolved {
    /// Hashes `data` when the mechanism includes the hash; otherwise `data` is the input.
    pub fn input(&self, data: &[u8]) -> Vec<u8> {
        match self.prehash {
            Some(h) => h.digest(&[data]),
            None => data.to_vec(),
        }
    }
}

/// Resolves a signature mechanism for a key of `key_type` with `bits`.
pub fn resolve(mech: &Mechanism, key_type: CK_KEY_TYPE, bits: u32) -> Result<Resolved> {
    let pre = prehash(mech.kind);
    let scheme = match mech.kind {
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384 | CKM_ECDSA_SHA512 => {
            Scheme::Ecdsa
        }
        CKM_RSA_PKCS | CKM_SHA1_RSA_PKCS | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS => Scheme::RsaPkcs,
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            let Param::Pss {
                hash,
                mgf,
                salt_len,
            } = mech.param
            else {
                return Err(Error::new(
                    CKR_MECHANISM_PARAM_INVALID,
                    "PSS needs CK_RSA_PKCS_PSS_PARAMS",
                ));
            };
            let (Some(hash), Some(mgf1)) = (hash_of(hash), mgf_hash(mgf)) else {
                return Err(Error::new(CKR_MECHANISM_PARAM_INVALID, "PSS hash or MGF"));
            };
            let salt_len = salt_len as usize;
            if pre.is_some_and(|p| p != hash)
                || mgf1 != hash
                || salt_len > tpmkey::rsa_padding::pss_max_salt(hash, bits)
            {
                return Err(Error::new(
                    CKR_MECHANISM_PARAM_INVALID,
                    "PSS parameters: hash must match the mechanism and MGF1, salt must fit",
                ));
            }
            Scheme::RsaPss {
                hash,
                mgf1,
                salt_len,
            }
        }
        _ => {
            mechanism::info(mech.kind)?;
            return Err(Error::new(
                CKR_MECHANISM_INVALID,
                format!("0x{:x} is not a signature mechanism", mech.kind),
            ));
        }
    };
    if !matches!(scheme, Scheme::RsaPss { .. })
        && !matches!(&mech.param, Param::None)
        && !matches!(&mech.param, Param::Other(p) if p.is_empty())
    {
        return Err(Error::new(
            CKR_MECHANISM_PARAM_INVALID,
            "mechanism takes no parameter",
        ));
    }
    let wants = if scheme == Scheme::Ecdsa {
        CKK_EC
    } else {
        CKK_RSA
    };
    if key_type != wants {
        return Err(Error::new(
            CKR_KEY_TYPE_INCONSISTENT,
            "mechanism and key type differ",
        ));
    }
    Ok(Resolved {
        scheme,
        prehash: pre,
    })
}

/// An ECDSA input as the curve takes it: the leftmost bytes of a longer digest, a shorter
/// one left-padded (the same integer).
pub fn ecdsa_digest(input: &[u8], coordinate_len: usize) -> Vec<u8> {
    if input.len() >= coordinate_len {
        input[..coordinate_len].to_vec()
    } else {
        let mut out = vec![0u8; coordinate_len - input.len()];
        out.extend_from_slice(input);
        out
    }
}

#[derive(Debug)]
pub struct SignOp {
    resolved: Resolved,
    key: TpmKey,
    data: Vec<u8>,
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

/// The key object behind `h` for an operation: invalid handles are KEY_HANDLE_INVALID.
pub fn key_object(
    m: &mut Module,
    session: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
) -> Result<(ObjRef, SecretAttributes)> {
    m.object(session, h).map_err(|e| {
        if e.code() == CKR_OBJECT_HANDLE_INVALID {
            Error::new(CKR_KEY_HANDLE_INVALID, e.cause())
        } else {
            e
        }
    })
}

pub fn sign_init(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    state::with(|m| {
        if m.session(session)?.sign.is_some() {
            return Err(Error::rv(CKR_OPERATION_ACTIVE));
        }
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
            data: Vec::new(),
            needs_login: get_bool(&attrs, CKA_ALWAYS_AUTHENTICATE) == Some(true),
        });
        Ok(())
    })
}

fn compute(op: &SignOp, data: &[u8]) -> Result<Vec<u8>> {
    let input = op.resolved.input(data);
    let public = &op.key.public().key;
    let scheme = match (op.resolved.scheme, public) {
        (Scheme::Ecdsa, PublicKey::Ec { curve, .. }) => {
            if input.is_empty() {
                return Err(Error::rv(CKR_DATA_LEN_RANGE));
            }
            let n = curve.coordinate_len();
            let digest = ecdsa_digest(&input, n);
            return signature_bytes(
                op.key
                    .sign(SignScheme::Ecdsa(Hash::from_len(n)?), &digest)
                    .map_err(|e| crate::error::key_use(&op.key, e))?,
            );
        }
        (Scheme::RsaPkcs, PublicKey::Rsa { modulus, .. }) => match op.resolved.prehash {
            Some(h) => SignScheme::RsaPkcs1(h),
            None if input.len() + 11 <= modulus.len() => SignScheme::RsaPkcs1Raw,
            None => return Err(Error::rv(CKR_DATA_LEN_RANGE)),
        },
        (
            Scheme::RsaPss {
                hash,
                mgf1,
                salt_len,
            },
            PublicKey::Rsa { .. },
        ) => {
            if input.len() != hash.len() {
                return Err(Error::new(CKR_DATA_LEN_RANGE, "PSS input must be a digest"));
            }
            SignScheme::RsaPss {
                hash,
                mgf1,
                salt_len,
            }
        }
        _ => return Err(Error::rv(CKR_KEY_TYPE_INCONSISTENT)),
    };
    signature_bytes(
        op.key
            .sign(scheme, &input)
            .map_err(|e| crate::error::key_use(&op.key, e))?,
    )
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
            compute(op, data.unwrap_or(&op.data))
        })
    })
}

pub fn sign(session: CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> Result<Vec<u8>> {
    finish(session, Some(data), capacity)
}

pub fn sign_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::active(&mut m.session(session)?.sign)?
            .data
            .extend_from_slice(part);
        Ok(())
    })
}

pub fn sign_final(session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Vec<u8>> {
    finish(session, None, capacity)
}

#[derive(Debug)]
pub struct VerifyOp {
    resolved: Resolved,
    public: PublicKey,
    data: Vec<u8>,
}

pub fn verify_init(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    state::with(|m| {
        if m.session(session)?.verify.is_some() {
            return Err(Error::rv(CKR_OPERATION_ACTIVE));
        }
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
            data: Vec::new(),
        });
        Ok(())
    })
}

fn verify_with(op: &VerifyOp, data: &[u8], signature: &[u8]) -> Result<()> {
    let input = op.resolved.input(data);
    software::verify(&op.public, op.resolved, &input, signature)
}

pub fn verify(session: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.verify, |op| {
            verify_with(op, data, signature)
        })
    })
}

pub fn verify_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::active(&mut m.session(session)?.verify)?
            .data
            .extend_from_slice(part);
        Ok(())
    })
}

pub fn verify_final(session: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.verify, |op| {
            verify_with(op, &op.data, signature)
        })
    })
}
