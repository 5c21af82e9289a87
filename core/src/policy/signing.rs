//! Signing a policy as its publisher does, offline and without a TPM: a software private
//! key (PEM: PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY"; P-256, P-384 or
//! RSA) signs SHA-256(approvedPolicy ‖ policyRef) with ECDSA or RSASSA-PKCS1-v1_5, the
//! forms TPM2_VerifySignature checks. Keys that live in an HSM sign the bytes of
//! [`super::signed_message`] themselves; [`super::SignerKey::signature`] takes the result.

use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::DecodePrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

use super::signed::authorization_hash;
use super::signer::{SignerKey, TpmSignature};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::pem_decode;
use crate::public_key::{Curve, PublicKey};

/// A publisher's policy signing key.
pub enum PolicySigningKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl std::fmt::Debug for PolicySigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicySigningKey::P256(_) => "PolicySigningKey(P-256)",
            PolicySigningKey::P384(_) => "PolicySigningKey(P-384)",
            PolicySigningKey::Rsa(_) => "PolicySigningKey(RSA)",
        })
    }
}

fn bad(what: &str) -> Error {
    Error::BadInput(format!(
        "policy signing key: {what} (use an unencrypted PEM P-256, P-384 or RSA private key)"
    ))
}

impl PolicySigningKey {
    pub fn from_pem(pem: &[u8]) -> Result<PolicySigningKey> {
        if let Ok(der) = pem_decode(pem, "PRIVATE KEY") {
            let der = Zeroizing::new(der);
            if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(&der) {
                return Ok(PolicySigningKey::P256(k));
            }
            if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_der(&der) {
                return Ok(PolicySigningKey::P384(k));
            }
            if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(&der) {
                return Ok(PolicySigningKey::Rsa(Box::new(k)));
            }
            return Err(bad("a PKCS#8 key of another algorithm"));
        }
        if let Ok(der) = pem_decode(pem, "EC PRIVATE KEY") {
            let der = Zeroizing::new(der);
            if let Ok(k) = p256::SecretKey::from_sec1_der(&der) {
                return Ok(PolicySigningKey::P256(k.into()));
            }
            if let Ok(k) = p384::SecretKey::from_sec1_der(&der) {
                return Ok(PolicySigningKey::P384(k.into()));
            }
            return Err(bad("an EC key on another curve"));
        }
        if let Ok(der) = pem_decode(pem, "RSA PRIVATE KEY") {
            let der = Zeroizing::new(der);
            let k = rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| bad("a bad RSA key"))?;
            return Ok(PolicySigningKey::Rsa(Box::new(k)));
        }
        Err(bad("no private key found"))
    }

    /// The public half, as a policy signer the TPM loads.
    pub fn signer(&self) -> Result<SignerKey> {
        let key = match self {
            PolicySigningKey::P256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                PublicKey::Ec {
                    curve: Curve::P256,
                    x: p.x().map(|v| v.to_vec()).unwrap_or_default(),
                    y: p.y().map(|v| v.to_vec()).unwrap_or_default(),
                }
            }
            PolicySigningKey::P384(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                PublicKey::Ec {
                    curve: Curve::P384,
                    x: p.x().map(|v| v.to_vec()).unwrap_or_default(),
                    y: p.y().map(|v| v.to_vec()).unwrap_or_default(),
                }
            }
            PolicySigningKey::Rsa(k) => PublicKey::Rsa {
                modulus: k.n().to_bytes_be(),
                exponent: k
                    .e()
                    .to_bytes_be()
                    .iter()
                    .try_fold(0u32, |acc, b| {
                        acc.checked_mul(256).map(|v| v | u32::from(*b))
                    })
                    .ok_or_else(|| bad("an RSA exponent that does not fit 32 bits"))?,
            },
        };
        SignerKey::new(key)
    }

    /// Signs the approval of `approved_policy` for `policy_ref`.
    pub fn sign_policy(&self, approved_policy: &[u8], policy_ref: &[u8]) -> Result<TpmSignature> {
        let a_hash = authorization_hash(approved_policy, policy_ref);
        let failed =
            |e: &dyn std::fmt::Display| Error::BadInput(format!("signing the policy: {e}"));
        Ok(match self {
            PolicySigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature =
                    k.sign_prehash(&a_hash).map_err(|e| failed(&e))?;
                let (r, s) = sig.split_bytes();
                TpmSignature::Ecdsa {
                    hash: Hash::Sha256,
                    r: r.to_vec(),
                    s: s.to_vec(),
                }
            }
            PolicySigningKey::P384(k) => {
                let sig: p384::ecdsa::Signature =
                    k.sign_prehash(&a_hash).map_err(|e| failed(&e))?;
                let (r, s) = sig.split_bytes();
                TpmSignature::Ecdsa {
                    hash: Hash::Sha256,
                    r: r.to_vec(),
                    s: s.to_vec(),
                }
            }
            PolicySigningKey::Rsa(k) => TpmSignature::RsaSsa {
                hash: Hash::Sha256,
                signature: k
                    .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &a_hash)
                    .map_err(|e| failed(&e))?,
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_the_signer() {
        let p256 = p256::SecretKey::random(&mut rand_core::OsRng);
        let pem = p256.to_pkcs8_pem(Default::default()).unwrap();
        let key = PolicySigningKey::from_pem(pem.as_bytes()).unwrap();
        let approved = [7u8; 32];
        let sig = key.sign_policy(&approved, b"ref").unwrap();
        let signer = key.signer().unwrap();
        assert!(signer
            .verify_digest(&authorization_hash(&approved, b"ref"), &sig)
            .unwrap());
        assert!(!signer
            .verify_digest(&authorization_hash(&approved, b"other"), &sig)
            .unwrap());
        assert!(PolicySigningKey::from_pem(
            b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
    }

    use p256::pkcs8::EncodePrivateKey;
}
