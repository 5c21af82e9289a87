//! Public-key operations done on the host in pure Rust (RustCrypto), so nothing re-enters
//! libcrypto inside hosts that load OpenSSL engines: signature verification and RSA
//! encryption with a token's public keys.

use cryptoki_sys::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPublicKey};
use tpmkey::hash::{Hash, Hasher};
use tpmkey::public_key::{ec_point, Curve, PublicKey};
use tpmkey::SignScheme;

use crate::error::{Error, Result};
use crate::sign_mechanism::ecdsa_digest;

fn invalid() -> Error {
    Error::rv(CKR_SIGNATURE_INVALID)
}

fn rsa_key(modulus: &[u8], exponent: u32) -> Result<RsaPublicKey> {
    RsaPublicKey::new(BigUint::from_bytes_be(modulus), BigUint::from(exponent))
        .map_err(|e| Error::new(CKR_KEY_TYPE_INCONSISTENT, format!("RSA public key: {e}")))
}

/// Verifies `signature` over `input` (the digest, or the raw data of CKM_RSA_PKCS).
pub(crate) fn verify(
    public: &PublicKey,
    scheme: SignScheme,
    input: &[u8],
    signature: &[u8],
) -> Result<()> {
    match (public, scheme) {
        (PublicKey::Ec { curve, x, y }, SignScheme::Ecdsa(_)) => {
            let n = curve.coordinate_len();
            if signature.len() != 2 * n {
                return Err(Error::rv(CKR_SIGNATURE_LEN_RANGE));
            }
            let point = ec_point(x, y);
            let digest = ecdsa_digest(input, n);
            let ok = match curve {
                Curve::P256 => {
                    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| Error::rv(CKR_KEY_TYPE_INCONSISTENT))?;
                    let sig =
                        p256::ecdsa::Signature::from_slice(signature).map_err(|_| invalid())?;
                    key.verify_prehash(&digest, &sig).is_ok()
                }
                Curve::P384 => {
                    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| Error::rv(CKR_KEY_TYPE_INCONSISTENT))?;
                    let sig =
                        p384::ecdsa::Signature::from_slice(signature).map_err(|_| invalid())?;
                    key.verify_prehash(&digest, &sig).is_ok()
                }
            };
            if ok {
                Ok(())
            } else {
                Err(invalid())
            }
        }
        (PublicKey::Rsa { modulus, exponent }, scheme) => {
            let k = modulus.iter().skip_while(|b| **b == 0).count();
            if signature.len() != k {
                return Err(Error::rv(CKR_SIGNATURE_LEN_RANGE));
            }
            let key = rsa_key(modulus, *exponent)?;
            let result = match scheme {
                SignScheme::RsaPkcs1(h) => {
                    let padding = Pkcs1v15Sign {
                        hash_len: Some(h.len()),
                        prefix: h.digest_info_prefix().into(),
                    };
                    key.verify(padding, input, signature)
                }
                SignScheme::RsaPkcs1Raw => {
                    key.verify(Pkcs1v15Sign::new_unprefixed(), input, signature)
                }
                SignScheme::RsaPss { hash, salt_len, .. } => {
                    if input.len() != hash.len() {
                        return Err(Error::rv(CKR_DATA_LEN_RANGE));
                    }
                    let padding = Pss {
                        blinded: false,
                        digest: Box::new(Hasher::new(hash)),
                        salt_len,
                    };
                    key.verify(padding, input, signature)
                }
                SignScheme::Ecdsa(_) => return Err(Error::rv(CKR_KEY_TYPE_INCONSISTENT)),
            };
            result.map_err(|_| invalid())
        }
        _ => Err(Error::rv(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// RSA padding for encryption.
#[derive(Clone, Debug)]
pub(crate) enum Padding {
    Pkcs1,
    Oaep {
        hash: Hash,
        mgf1: Hash,
        label: Vec<u8>,
    },
}

/// The longest message `padding` fits in a `k`-byte modulus.
pub(crate) fn max_message(padding: &Padding, k: usize) -> usize {
    match padding {
        Padding::Pkcs1 => k.saturating_sub(11),
        Padding::Oaep { hash, .. } => k.saturating_sub(2 * hash.len() + 2),
    }
}

pub(crate) fn encrypt(
    modulus: &[u8],
    exponent: u32,
    padding: &Padding,
    data: &[u8],
) -> Result<Vec<u8>> {
    let key = rsa_key(modulus, exponent)?;
    let mut rng = rand_core::OsRng;
    let out = match padding {
        Padding::Pkcs1 => key.encrypt(&mut rng, Pkcs1v15Encrypt, data),
        // The core's encoding: OAEP labels are any bytes (the rsa crate takes only UTF-8).
        Padding::Oaep { hash, mgf1, label } => {
            let k = modulus.iter().skip_while(|b| **b == 0).count();
            let em = tpmkey::rsa_padding::oaep_encode(*hash, *mgf1, label, data, k)
                .map_err(|e| Error::new(CKR_DATA_LEN_RANGE, e.to_string()))?;
            let c = BigUint::from_bytes_be(&em).modpow(key.e(), key.n());
            let mut out = vec![0u8; k];
            let c = c.to_bytes_be();
            out[k - c.len()..].copy_from_slice(&c);
            return Ok(out);
        }
    };
    out.map_err(|e| Error::new(CKR_DATA_LEN_RANGE, format!("RSA encryption: {e}")))
}
