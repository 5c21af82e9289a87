//! A signature mechanism resolved against a key: the core's `SignScheme` it signs and
//! verifies with, the hash it applies to the data first, and the message of a multi-part
//! operation (hashed as it arrives when the mechanism hashes).

use cryptoki_sys::*;
use tpmkey::hash::{Hash, Hasher};
use tpmkey::SignScheme;

use crate::error::{Error, Result};
use crate::mechanism::{self, hash_of, mgf_hash, prehash, Mechanism, Param};

/// A mechanism resolved against a key: its scheme and the hash it applies first. For
/// `SignScheme::RsaPkcs1(h)` the prehash is `h` (the PKCS#1 mechanisms with a hash), for
/// `RsaPkcs1Raw` none (CKM_RSA_PKCS signs caller-built bytes); an ECDSA scheme's hash is the
/// one of the curve's size, whatever hash the data went through.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resolved {
    pub scheme: SignScheme,
    pub prehash: Option<Hash>,
}

impl Resolved {
    /// Hashes `data` when the mechanism includes the hash; otherwise `data` is the input.
    pub(crate) fn input(&self, data: &[u8]) -> Vec<u8> {
        match self.prehash {
            Some(h) => h.digest(&[data]),
            None => data.to_vec(),
        }
    }

    /// An empty message for a multi-part operation of this mechanism.
    pub(crate) fn message(&self) -> Message {
        match self.prehash {
            Some(h) => Message::Hashing(Box::new(Hasher::new(h))),
            None => Message::Raw(Vec::new()),
        }
    }
}

/// The data of a multi-part sign or verify: hashed part by part when the mechanism hashes,
/// kept whole when the mechanism takes raw input (CKM_ECDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS).
#[derive(Debug)]
pub(crate) enum Message {
    Hashing(Box<Hasher>),
    Raw(Vec<u8>),
}

impl Message {
    pub(crate) fn update(&mut self, part: &[u8]) {
        match self {
            Message::Hashing(h) => h.update(part),
            Message::Raw(data) => data.extend_from_slice(part),
        }
    }

    /// The input the scheme signs: the digest of the parts, or the parts joined. The
    /// message stays (a C_SignFinal answered CKR_BUFFER_TOO_SMALL is called again).
    pub(crate) fn input(&self) -> Vec<u8> {
        match self {
            Message::Hashing(h) => h.digest_so_far(),
            Message::Raw(data) => data.clone(),
        }
    }
}

/// Resolves a signature mechanism for a key of `key_type` with `bits`.
pub(crate) fn resolve(mech: &Mechanism, key_type: CK_KEY_TYPE, bits: u32) -> Result<Resolved> {
    let pre = prehash(mech.kind);
    // ECDSA's scheme is known once the key is known to be an EC key (below).
    let rsa_scheme = match mech.kind {
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384 | CKM_ECDSA_SHA512 => None,
        CKM_RSA_PKCS | CKM_SHA1_RSA_PKCS | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS => Some(match pre {
            Some(h) => SignScheme::RsaPkcs1(h),
            None => SignScheme::RsaPkcs1Raw,
        }),
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
            Some(SignScheme::RsaPss {
                hash,
                mgf1,
                salt_len,
            })
        }
        _ => {
            mechanism::info(mech.kind)?;
            return Err(Error::new(
                CKR_MECHANISM_INVALID,
                format!("0x{:x} is not a signature mechanism", mech.kind),
            ));
        }
    };
    if !matches!(rsa_scheme, Some(SignScheme::RsaPss { .. }))
        && !matches!(&mech.param, Param::None)
        && !matches!(&mech.param, Param::Other(p) if p.is_empty())
    {
        return Err(Error::new(
            CKR_MECHANISM_PARAM_INVALID,
            "mechanism takes no parameter",
        ));
    }
    let wants = if rsa_scheme.is_some() {
        CKK_RSA
    } else {
        CKK_EC
    };
    if key_type != wants {
        return Err(Error::new(
            CKR_KEY_TYPE_INCONSISTENT,
            "mechanism and key type differ",
        ));
    }
    let scheme = match rsa_scheme {
        Some(scheme) => scheme,
        // The digest is cut or padded to the curve size, and signed as a digest of that size.
        None => SignScheme::Ecdsa(
            Hash::from_len(bits as usize / 8)
                .map_err(|e| Error::new(CKR_KEY_TYPE_INCONSISTENT, format!("ECDSA key: {e}")))?,
        ),
    };
    Ok(Resolved {
        scheme,
        prehash: pre,
    })
}

/// An ECDSA input as the curve takes it: the leftmost bytes of a longer digest, a shorter
/// one left-padded (the same integer).
pub(crate) fn ecdsa_digest(input: &[u8], coordinate_len: usize) -> Vec<u8> {
    if input.len() >= coordinate_len {
        input[..coordinate_len].to_vec()
    } else {
        let mut out = vec![0u8; coordinate_len - input.len()];
        out.extend_from_slice(input);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mech(kind: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism {
            kind,
            param: Param::None,
        }
    }

    #[test]
    fn multi_part_message_equals_single_part_input() {
        let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        for (kind, key_type, bits) in [
            (CKM_ECDSA_SHA384, CKK_EC, 256),
            (CKM_SHA256_RSA_PKCS, CKK_RSA, 2048),
            (CKM_ECDSA, CKK_EC, 384),
            (CKM_RSA_PKCS, CKK_RSA, 2048),
        ] {
            let resolved = resolve(&mech(kind), key_type, bits).unwrap();
            let mut message = resolved.message();
            for part in data.chunks(7) {
                message.update(part);
            }
            assert_eq!(
                message.input(),
                resolved.input(&data),
                "mechanism 0x{kind:x}"
            );
            // The message stays for a call repeated after CKR_BUFFER_TOO_SMALL.
            assert_eq!(message.input(), resolved.input(&data));
        }
    }

    #[test]
    fn schemes_are_the_cores() {
        let ecdsa = resolve(&mech(CKM_ECDSA_SHA256), CKK_EC, 384).unwrap();
        assert_eq!(ecdsa.scheme, SignScheme::Ecdsa(Hash::Sha384));
        assert_eq!(ecdsa.prehash, Some(Hash::Sha256));
        let raw = resolve(&mech(CKM_RSA_PKCS), CKK_RSA, 2048).unwrap();
        assert_eq!((raw.scheme, raw.prehash), (SignScheme::RsaPkcs1Raw, None));
        let err = resolve(&mech(CKM_ECDSA), CKK_RSA, 2048).unwrap_err();
        assert_eq!(err.code(), CKR_KEY_TYPE_INCONSISTENT);
        let err = resolve(
            &Mechanism {
                kind: CKM_ECDSA,
                param: Param::Other(vec![1]),
            },
            CKK_RSA,
            2048,
        )
        .unwrap_err();
        assert_eq!(err.code(), CKR_MECHANISM_PARAM_INVALID);
    }
}
