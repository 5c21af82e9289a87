//! TPMT_SIGNATURE (Part 2, 11.3.4) and the attestation key's public key, with signature
//! verification in pure Rust (RustCrypto): ECDSA on P-256 / P-384, RSASSA-PKCS1-v1_5 and
//! RSA-PSS on RSA keys of 2048 bits and more. The AK signs H(certInfo) with the scheme's hash.

use p256::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::public_key::{Curve, KeyPublic, PublicKey};
use crate::wire::{Reader, Writer, TPM_ALG_ECDSA, TPM_ALG_RSAPSS, TPM_ALG_RSASSA};

use super::attestation::message;
use super::{evidence, pem_or_binary, truncated};

/// RSA keys below this size are refused as attestation keys.
const MIN_RSA_BITS: usize = 2048;

/// A TPMT_SIGNATURE of the schemes an attestation key uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmSignature {
    /// r and s as the TPM gave them (TPM2B_ECC_PARAMETER contents).
    Ecdsa {
        hash: Hash,
        r: Vec<u8>,
        s: Vec<u8>,
    },
    Rsassa {
        hash: Hash,
        sig: Vec<u8>,
    },
    Rsapss {
        hash: Hash,
        sig: Vec<u8>,
    },
}

impl TpmSignature {
    /// Parses a TPMT_SIGNATURE that fills `data` exactly.
    pub fn parse(data: &[u8]) -> Result<TpmSignature> {
        let mut r = Reader::new(data);
        let sig = Self::read(&mut r)?;
        if !r.is_empty() {
            return Err(evidence("signature (TPMT_SIGNATURE) has trailing bytes"));
        }
        Ok(sig)
    }

    /// Reads a TPMT_SIGNATURE from `r`.
    pub fn read(r: &mut Reader) -> Result<TpmSignature> {
        let t = |_| truncated("signature (TPMT_SIGNATURE)");
        let scheme = r.u16().map_err(t)?;
        let alg = r.u16().map_err(t)?;
        let hash = Hash::from_tpm_alg(alg)
            .ok_or_else(|| evidence(format!("signature hash algorithm 0x{alg:04x} is unknown")))?;
        match scheme {
            TPM_ALG_ECDSA => {
                let r_ = r.tpm2b().map_err(t)?.to_vec();
                let s = r.tpm2b().map_err(t)?.to_vec();
                Ok(TpmSignature::Ecdsa { hash, r: r_, s })
            }
            TPM_ALG_RSASSA | TPM_ALG_RSAPSS => {
                let sig = r.tpm2b().map_err(t)?.to_vec();
                Ok(if scheme == TPM_ALG_RSASSA {
                    TpmSignature::Rsassa { hash, sig }
                } else {
                    TpmSignature::Rsapss { hash, sig }
                })
            }
            other => Err(evidence(format!(
                "signature scheme 0x{other:04x} is not ECDSA, RSASSA or RSAPSS"
            ))),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            TpmSignature::Ecdsa { hash, r, s } => {
                w.u16(TPM_ALG_ECDSA).u16(hash.tpm_alg()).tpm2b(r).tpm2b(s);
            }
            TpmSignature::Rsassa { hash, sig } => {
                w.u16(TPM_ALG_RSASSA).u16(hash.tpm_alg()).tpm2b(sig);
            }
            TpmSignature::Rsapss { hash, sig } => {
                w.u16(TPM_ALG_RSAPSS).u16(hash.tpm_alg()).tpm2b(sig);
            }
        }
        w.into_vec()
    }

    pub fn hash(&self) -> Hash {
        match self {
            TpmSignature::Ecdsa { hash, .. }
            | TpmSignature::Rsassa { hash, .. }
            | TpmSignature::Rsapss { hash, .. } => *hash,
        }
    }

    pub fn scheme_name(&self) -> &'static str {
        match self {
            TpmSignature::Ecdsa { .. } => "ECDSA",
            TpmSignature::Rsassa { .. } => "RSASSA",
            TpmSignature::Rsapss { .. } => "RSAPSS",
        }
    }
}

/// The public key of an attestation key, from SubjectPublicKeyInfo (DER or PEM "PUBLIC KEY")
/// or from the TPM2B_PUBLIC the TPM returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AkPublic {
    pub key: PublicKey,
    /// The AK's Name, when it was given as TPM2B_PUBLIC.
    pub name: Option<Vec<u8>>,
}

impl AkPublic {
    /// PEM "PUBLIC KEY", SubjectPublicKeyInfo DER, or TPM2B_PUBLIC, told apart by content.
    pub fn parse(data: &[u8]) -> Result<AkPublic> {
        if data.trim_ascii_start().starts_with(b"-----BEGIN ") {
            return Self::from_spki_der(&pem_or_binary(data, "PUBLIC KEY")?);
        }
        // SPKI starts with a SEQUENCE tag; a TPM2B_PUBLIC with a size of 0x30xx would be
        // over 12 kB, more than any public area.
        if data.first() == Some(&0x30) {
            return Self::from_spki_der(data);
        }
        Self::from_tpm2b_public(data)
    }

    pub fn from_spki_der(der: &[u8]) -> Result<AkPublic> {
        Ok(AkPublic {
            key: public_key_from_spki(der)?,
            name: None,
        })
    }

    pub fn from_tpm2b_public(blob: &[u8]) -> Result<AkPublic> {
        let public = KeyPublic::parse(blob)
            .map_err(|e| evidence(format!("AK public area: {}", message(&e))))?;
        Ok(AkPublic {
            key: public.key,
            name: Some(public.name),
        })
    }

    /// Verifies `sig` over `message`; the error text says why it does not verify.
    pub fn verify(&self, message: &[u8], sig: &TpmSignature) -> std::result::Result<(), String> {
        verify_digest(&self.key, "AK", &sig.hash().digest(&[message]), sig)
    }
}

/// Verifies `sig` over `digest` (already hashed with the signature's hash) with `key`, the
/// `role`'s key ("AK", "policy signer") as the error text names it.
pub(crate) fn verify_digest(
    key: &PublicKey,
    role: &str,
    digest: &[u8],
    sig: &TpmSignature,
) -> std::result::Result<(), String> {
    let hash = sig.hash();
    match (key, sig) {
        (PublicKey::Ec { curve, x, y }, TpmSignature::Ecdsa { r, s, .. }) => {
            verify_ecdsa(*curve, x, y, digest, r, s)
        }
        (PublicKey::Rsa { modulus, exponent }, TpmSignature::Rsassa { sig, .. }) => {
            let key = rsa_key(modulus, *exponent)?;
            key.verify(pkcs1v15(hash), digest, sig)
                .map_err(|_| "RSASSA signature does not match".to_string())
        }
        (PublicKey::Rsa { modulus, exponent }, TpmSignature::Rsapss { sig, .. }) => {
            let key = rsa_key(modulus, *exponent)?;
            // TPMs salt PSS with the digest length, or with the largest salt that fits
            // (Part 1, B.7): accept either, nothing else.
            let em_len = key.size();
            let max_salt = em_len.saturating_sub(hash.len() + 2);
            [hash.len(), max_salt]
                .iter()
                .any(|&salt| key.verify(pss(hash, salt), digest, sig).is_ok())
                .then_some(())
                .ok_or_else(|| "RSA-PSS signature does not match".to_string())
        }
        (key, sig) => Err(format!(
            "a {} signature cannot come from the {} {role}",
            sig.scheme_name(),
            key_description(key)
        )),
    }
}

pub(crate) fn key_description(key: &PublicKey) -> String {
    match key {
        PublicKey::Ec { curve, .. } => format!("ECC {}", curve.name()),
        PublicKey::Rsa { .. } => format!("RSA-{}", key.bits()),
    }
}

fn pkcs1v15(hash: Hash) -> Pkcs1v15Sign {
    match hash {
        Hash::Sha1 => Pkcs1v15Sign::new::<Sha1>(),
        Hash::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
        Hash::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
        Hash::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
    }
}

fn pss(hash: Hash, salt: usize) -> Pss {
    match hash {
        Hash::Sha1 => Pss::new_with_salt::<Sha1>(salt),
        Hash::Sha256 => Pss::new_with_salt::<Sha256>(salt),
        Hash::Sha384 => Pss::new_with_salt::<Sha384>(salt),
        Hash::Sha512 => Pss::new_with_salt::<Sha512>(salt),
    }
}

pub(crate) fn rsa_key(modulus: &[u8], exponent: u32) -> std::result::Result<RsaPublicKey, String> {
    let key = RsaPublicKey::new(BigUint::from_bytes_be(modulus), BigUint::from(exponent))
        .map_err(|e| format!("RSA public key is not usable: {e}"))?;
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA key of {bits} bits is too small (at least {MIN_RSA_BITS})"
        ));
    }
    Ok(key)
}

fn verify_ecdsa(
    curve: Curve,
    x: &[u8],
    y: &[u8],
    digest: &[u8],
    r: &[u8],
    s: &[u8],
) -> std::result::Result<(), String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let n = curve.coordinate_len();
    let scalars = [r, s]
        .iter()
        .map(|v| {
            let v = &v[v.iter().take_while(|b| **b == 0).count()..];
            if v.len() > n {
                return Err(format!("ECDSA r or s is longer than {}", curve.name()));
            }
            let mut out = vec![0u8; n - v.len()];
            out.extend_from_slice(v);
            Ok(out)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?
        .concat();
    let mut point = vec![4u8];
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    let bad_key = |_| format!("AK public key is not a point on {}", curve.name());
    let bad_sig = |_| "ECDSA r or s is zero or not below the group order".to_string();
    let mismatch = |_| "ECDSA signature does not match".to_string();
    match curve {
        Curve::P256 => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(bad_key)?;
            let sig = p256::ecdsa::Signature::from_slice(&scalars).map_err(bad_sig)?;
            key.verify_prehash(digest, &sig).map_err(mismatch)
        }
        Curve::P384 => {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(bad_key)?;
            let sig = p384::ecdsa::Signature::from_slice(&scalars).map_err(bad_sig)?;
            key.verify_prehash(digest, &sig).map_err(mismatch)
        }
    }
}

/// The public key of a SubjectPublicKeyInfo: EC P-256 / P-384 or RSA.
pub fn public_key_from_spki(der: &[u8]) -> Result<PublicKey> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
        let p = k.to_encoded_point(false);
        return ec_key(Curve::P256, p.x(), p.y());
    }
    if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
        let p = k.to_encoded_point(false);
        return ec_key(Curve::P384, p.x(), p.y());
    }
    if let Ok(k) = RsaPublicKey::from_public_key_der(der) {
        let e = k.e().to_bytes_be();
        if e.len() > 4 {
            return Err(Error::Unsupported(
                "RSA public exponents that do not fit 32 bits".into(),
            ));
        }
        let exponent = e.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b));
        return Ok(PublicKey::Rsa {
            modulus: k.n().to_bytes_be(),
            exponent,
        });
    }
    Err(evidence(
        "public key is not a SubjectPublicKeyInfo of an EC P-256, P-384 or RSA key",
    ))
}

fn ec_key<L>(
    curve: Curve,
    x: Option<&p256::elliptic_curve::generic_array::GenericArray<u8, L>>,
    y: Option<&p256::elliptic_curve::generic_array::GenericArray<u8, L>>,
) -> Result<PublicKey>
where
    L: p256::elliptic_curve::generic_array::ArrayLength<u8>,
{
    match (x, y) {
        (Some(x), Some(y)) => Ok(PublicKey::Ec {
            curve,
            x: x.to_vec(),
            y: y.to_vec(),
        }),
        _ => Err(evidence("EC public key is the point at infinity")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_truncation() {
        let sig = TpmSignature::Ecdsa {
            hash: Hash::Sha256,
            r: vec![1; 32],
            s: vec![2; 32],
        };
        let bytes = sig.to_bytes();
        assert_eq!(TpmSignature::parse(&bytes).unwrap(), sig);
        for n in 0..bytes.len() {
            assert!(TpmSignature::parse(&bytes[..n]).is_err());
        }
        let mut unknown = bytes.clone();
        unknown[1] = 0x99;
        assert!(message(&TpmSignature::parse(&unknown).unwrap_err()).contains("scheme"));
    }

    #[test]
    fn garbage_is_not_a_public_key() {
        assert!(AkPublic::parse(b"").is_err());
        assert!(AkPublic::parse(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(
            AkPublic::parse(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }
}
