//! The mechanisms the token offers, with their CK_MECHANISM_INFO, and the parameters a
//! caller hands in (copied out of its CK_MECHANISM by the FFI layer).

use cryptoki_sys::*;
use tpmkey::hash::Hash;

use crate::error::{Error, Result};

/// A mechanism as the caller asked for it.
#[derive(Clone, Debug)]
pub(crate) struct Mechanism {
    pub kind: CK_MECHANISM_TYPE,
    pub param: Param,
}

#[derive(Clone, Debug)]
pub(crate) enum Param {
    None,
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: CK_ULONG,
    },
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        label: Vec<u8>,
    },
    Ecdh {
        kdf: CK_EC_KDF_TYPE,
        shared_data: Vec<u8>,
        public_data: Vec<u8>,
    },
    /// Parameters of a mechanism that takes none, or of one we do not know.
    Other(Vec<u8>),
}

const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

/// (mechanism, min key size, max key size, flags). Key sizes in bits.
const MECHANISMS: &[(CK_MECHANISM_TYPE, CK_ULONG, CK_ULONG, CK_FLAGS)] = &[
    (
        CKM_EC_KEY_PAIR_GEN,
        256,
        384,
        CKF_HW | CKF_GENERATE_KEY_PAIR | EC_FLAGS,
    ),
    (
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        2048,
        3072,
        CKF_HW | CKF_GENERATE_KEY_PAIR,
    ),
    (
        CKM_ECDSA,
        256,
        384,
        CKF_HW | CKF_SIGN | CKF_VERIFY | EC_FLAGS,
    ),
    (
        CKM_ECDSA_SHA1,
        256,
        384,
        CKF_HW | CKF_SIGN | CKF_VERIFY | EC_FLAGS,
    ),
    (
        CKM_ECDSA_SHA256,
        256,
        384,
        CKF_HW | CKF_SIGN | CKF_VERIFY | EC_FLAGS,
    ),
    (
        CKM_ECDSA_SHA384,
        256,
        384,
        CKF_HW | CKF_SIGN | CKF_VERIFY | EC_FLAGS,
    ),
    (
        CKM_ECDSA_SHA512,
        256,
        384,
        CKF_HW | CKF_SIGN | CKF_VERIFY | EC_FLAGS,
    ),
    (
        CKM_RSA_PKCS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT,
    ),
    (
        CKM_SHA1_RSA_PKCS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA256_RSA_PKCS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA384_RSA_PKCS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA512_RSA_PKCS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (CKM_RSA_PKCS_PSS, 2048, 3072, CKF_HW | CKF_SIGN | CKF_VERIFY),
    (
        CKM_SHA1_RSA_PKCS_PSS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA256_RSA_PKCS_PSS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA384_RSA_PKCS_PSS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA512_RSA_PKCS_PSS,
        2048,
        3072,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_RSA_PKCS_OAEP,
        2048,
        3072,
        CKF_HW | CKF_ENCRYPT | CKF_DECRYPT,
    ),
    (CKM_ECDH1_DERIVE, 256, 384, CKF_HW | CKF_DERIVE | EC_FLAGS),
    (CKM_SHA_1, 0, 0, CKF_DIGEST),
    (CKM_SHA256, 0, 0, CKF_DIGEST),
    (CKM_SHA384, 0, 0, CKF_DIGEST),
    (CKM_SHA512, 0, 0, CKF_DIGEST),
];

pub(crate) fn list() -> Vec<CK_MECHANISM_TYPE> {
    MECHANISMS.iter().map(|m| m.0).collect()
}

pub(crate) fn info(kind: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    MECHANISMS
        .iter()
        .find(|m| m.0 == kind)
        .map(|&(_, min, max, flags)| CK_MECHANISM_INFO {
            ulMinKeySize: min,
            ulMaxKeySize: max,
            flags,
        })
        .ok_or_else(|| Error::new(CKR_MECHANISM_INVALID, format!("mechanism 0x{kind:x}")))
}

/// Whether `kind` is offered with the usage `flag` (CKF_SIGN, CKF_DECRYPT, ...).
pub(crate) fn check(kind: CK_MECHANISM_TYPE, flag: CK_FLAGS) -> Result<()> {
    if info(kind)?.flags & flag == 0 {
        return Err(Error::new(
            CKR_MECHANISM_INVALID,
            format!("mechanism 0x{kind:x} cannot do this operation"),
        ));
    }
    Ok(())
}

/// The digest mechanism CKM_SHA* as a hash.
pub(crate) fn hash_of(m: CK_MECHANISM_TYPE) -> Option<Hash> {
    match m {
        CKM_SHA_1 => Some(Hash::Sha1),
        CKM_SHA256 => Some(Hash::Sha256),
        CKM_SHA384 => Some(Hash::Sha384),
        CKM_SHA512 => Some(Hash::Sha512),
        _ => None,
    }
}

pub(crate) fn mgf_hash(mgf: CK_RSA_PKCS_MGF_TYPE) -> Option<Hash> {
    match mgf {
        CKG_MGF1_SHA1 => Some(Hash::Sha1),
        CKG_MGF1_SHA256 => Some(Hash::Sha256),
        CKG_MGF1_SHA384 => Some(Hash::Sha384),
        CKG_MGF1_SHA512 => Some(Hash::Sha512),
        _ => None,
    }
}

/// The hash a combined mechanism (CKM_ECDSA_SHA256, CKM_SHA256_RSA_PKCS_PSS, ...) applies.
pub(crate) fn prehash(m: CK_MECHANISM_TYPE) -> Option<Hash> {
    match m {
        CKM_ECDSA_SHA1 | CKM_SHA1_RSA_PKCS | CKM_SHA1_RSA_PKCS_PSS => Some(Hash::Sha1),
        CKM_ECDSA_SHA256 | CKM_SHA256_RSA_PKCS | CKM_SHA256_RSA_PKCS_PSS => Some(Hash::Sha256),
        CKM_ECDSA_SHA384 | CKM_SHA384_RSA_PKCS | CKM_SHA384_RSA_PKCS_PSS => Some(Hash::Sha384),
        CKM_ECDSA_SHA512 | CKM_SHA512_RSA_PKCS | CKM_SHA512_RSA_PKCS_PSS => Some(Hash::Sha512),
        _ => None,
    }
}

/// Whether the key's CKA_ALLOWED_MECHANISMS (if any) admits `kind`.
pub(crate) fn allowed(attrs: &tpmkey::store::Attributes, kind: CK_MECHANISM_TYPE) -> Result<()> {
    let Some(list) = attrs.get(&CKA_ALLOWED_MECHANISMS) else {
        return Ok(());
    };
    let n = std::mem::size_of::<CK_ULONG>();
    if list.is_empty()
        || list
            .chunks(n)
            .filter_map(crate::attributes::parse_ulong)
            .any(|m| m == kind)
    {
        return Ok(());
    }
    Err(Error::new(
        CKR_MECHANISM_INVALID,
        format!("mechanism 0x{kind:x} is not in the key's CKA_ALLOWED_MECHANISMS"),
    ))
}
