//! TPM2_MakeCredential in software (TPM 2.0 Part 1, 24; Part 3, 12.6): wraps a secret so that
//! only the TPM holding the EK, and only for an object with the given Name (the AK), can
//! recover it with TPM2_ActivateCredential. A verifier that gets the secret back knows the AK
//! lives in the same TPM as the EK.
//!
//! seed: RSA EK: random, RSA-OAEP(SHA-256, label "IDENTITY\0"); ECC P-256 EK: ephemeral
//! ECDH, seed = KDFe(Z, "IDENTITY", ephemeral.x, ek.x). Then symKey = KDFa(seed, "STORAGE",
//! name, "", 128), encIdentity = AES-128-CFB(symKey, IV 0, TPM2B(secret)), HMAC key =
//! KDFa(seed, "INTEGRITY", "", "", 256), credentialBlob = TPM2B(HMAC(encIdentity || name))
//! || encIdentity. The EK must use the TCG default templates' nameAlg SHA-256 and AES-128-CFB.

use rand_core::OsRng;
use rsa::Oaep;
use sha2::Sha256;
use tss_esapi::structures::{Public, SymmetricDefinitionObject};
use tss_esapi::traits::UnMarshall;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::public_key::{Curve, KeyPublic, PublicKey};
use crate::session_crypto::{kdfa, kdfe, SessionCrypto, CRYPTO};
use crate::wire::{tpm2b_contents, Reader, Writer};

use super::attestation::message;
use super::certificate::Certificate;
use super::signature::{public_key_from_spki, rsa_key};
use super::{evidence, truncated};

/// tpm2-tools' file header for credentials (`tpm2_makecredential -o`).
const TOOLS_MAGIC: u32 = 0xBADC_C0DE;
const TOOLS_VERSION: u32 = 1;
/// The seed and the HMAC key have the size of the EK's nameAlg digest (SHA-256).
const SEED_LEN: usize = 32;
const SYM_KEY_BITS: u32 = 128;
/// A credential is a TPM2B_DIGEST: the EK nameAlg's digest size is accepted by every TPM.
pub const MAX_SECRET: usize = 32;

/// The endorsement key's public part, as MakeCredential needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EkPublic {
    pub key: PublicKey,
}

impl EkPublic {
    /// TPM2B_PUBLIC (`tpm2_createek -u`, `tpm2_readpublic -o`), a certificate (PEM or DER),
    /// or a PEM / DER SubjectPublicKeyInfo: told apart by content. Keys from certificates and
    /// SPKI are assumed to follow the TCG default EK templates (SHA-256, AES-128-CFB).
    pub fn parse(data: &[u8]) -> Result<EkPublic> {
        let text = data.trim_ascii_start();
        if text.starts_with(b"-----BEGIN CERTIFICATE-----") {
            return Self::from_certificate(data);
        }
        if text.starts_with(b"-----BEGIN ") {
            let der = super::pem_or_binary(data, "PUBLIC KEY")?;
            return Self::from_key(public_key_from_spki(&der)?);
        }
        if data.first() == Some(&0x30) {
            return match public_key_from_spki(data) {
                Ok(k) => Self::from_key(k),
                Err(_) => Self::from_certificate(data),
            };
        }
        Self::from_tpm2b_public(data)
    }

    pub fn from_certificate(data: &[u8]) -> Result<EkPublic> {
        Self::from_key(Certificate::parse(data)?.public_key()?)
    }

    pub fn from_tpm2b_public(blob: &[u8]) -> Result<EkPublic> {
        let tpmt = tpm2b_contents(blob)
            .map_err(|_| evidence("EK public area: the TPM2B size does not match its bytes"))?;
        let public = Public::unmarshall(tpmt)
            .map_err(|e| evidence(format!("EK public area does not parse: {e}")))?;
        let symmetric = match &public {
            Public::Rsa { parameters, .. } => parameters.symmetric_definition_object(),
            Public::Ecc { parameters, .. } => parameters.symmetric_definition_object(),
            _ => {
                return Err(Error::Unsupported(
                    "EKs that are not RSA or ECC keys".into(),
                ))
            }
        };
        if symmetric != SymmetricDefinitionObject::AES_128_CFB {
            return Err(Error::Unsupported(format!(
                "EK with symmetric algorithm {symmetric:?} (only AES-128-CFB, the TCG default)"
            )));
        }
        let key = KeyPublic::parse(blob)
            .map_err(|e| evidence(format!("EK public area: {}", message(&e))))?;
        if !key.restricted || !key.can_decrypt {
            return Err(evidence(
                "EK public area is not a restricted decryption key",
            ));
        }
        Self::from_key(key.key)
    }

    fn from_key(key: PublicKey) -> Result<EkPublic> {
        match &key {
            PublicKey::Ec { curve, .. } if *curve != Curve::P256 => Err(Error::Unsupported(
                format!("MakeCredential for an ECC {} EK (only P-256)", curve.name()),
            )),
            _ => Ok(EkPublic { key }),
        }
    }
}

/// The two outputs of MakeCredential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// TPM2B_ID_OBJECT contents: TPM2B_DIGEST integrityHMAC || encIdentity.
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents: the OAEP ciphertext or the marshalled ephemeral point.
    pub secret: Vec<u8>,
}

impl Credential {
    /// The file `tpm2_makecredential -o` writes and `tpm2_activatecredential -i` reads:
    /// magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
    pub fn to_tpm2_tools(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(TOOLS_MAGIC)
            .u32(TOOLS_VERSION)
            .tpm2b(&self.credential_blob)
            .tpm2b(&self.secret);
        w.into_vec()
    }

    pub fn from_tpm2_tools(data: &[u8]) -> Result<Credential> {
        let t = |_| truncated("credential file");
        let mut r = Reader::new(data);
        let magic = r.u32().map_err(t)?;
        let version = r.u32().map_err(t)?;
        if magic != TOOLS_MAGIC || version != TOOLS_VERSION {
            return Err(evidence(format!(
                "credential file starts with {magic:08x} version {version}, not the tpm2-tools \
                 header {TOOLS_MAGIC:08x} version {TOOLS_VERSION}"
            )));
        }
        let credential_blob = r.tpm2b().map_err(t)?.to_vec();
        let secret = r.tpm2b().map_err(t)?.to_vec();
        if !r.is_empty() {
            return Err(evidence("credential file has trailing bytes"));
        }
        Ok(Credential {
            credential_blob,
            secret,
        })
    }
}

/// Wraps `secret` (1 to 32 bytes) for the object `name` (nameAlg || digest, e.g. the AK's
/// Name) in the TPM that holds `ek`.
pub fn make_credential(ek: &EkPublic, name: &[u8], secret: &[u8]) -> Result<Credential> {
    if secret.is_empty() || secret.len() > MAX_SECRET {
        return Err(Error::BadInput(format!(
            "a credential secret has 1 to {MAX_SECRET} bytes, not {}",
            secret.len()
        )));
    }
    check_name(name)?;
    let (seed, encrypted_seed) = seed_for(&ek.key, "IDENTITY")?;
    let sym_key = kdfa(&CRYPTO, &seed, "STORAGE", name, &[], SYM_KEY_BITS);
    let mut enc_identity = Zeroizing::new(Vec::with_capacity(secret.len() + 2));
    enc_identity.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    enc_identity.extend_from_slice(secret);
    CRYPTO.aes128_cfb(&sym_key, &[0u8; 16], &mut enc_identity, true)?;
    let hmac_key = kdfa(&CRYPTO, &seed, "INTEGRITY", &[], &[], 8 * SEED_LEN as u32);
    let integrity = CRYPTO.hmac_sha256(&hmac_key, &[&enc_identity, name]);
    let mut blob = Writer::new();
    blob.tpm2b(&integrity).bytes(&enc_identity);
    Ok(Credential {
        credential_blob: blob.into_vec(),
        secret: encrypted_seed,
    })
}

/// A Name is nameAlg || H(...) with the digest size of nameAlg.
fn check_name(name: &[u8]) -> Result<()> {
    let bad = |m: String| Error::BadInput(format!("object name: {m}"));
    let Some((alg, digest)) = name.split_first_chunk::<2>() else {
        return Err(bad("shorter than a hash algorithm id".into()));
    };
    let hash = Hash::from_tpm_alg(u16::from_be_bytes(*alg)).ok_or_else(|| {
        bad(format!(
            "starts with 0x{:02x}{:02x}, not a hash algorithm",
            alg[0], alg[1]
        ))
    })?;
    if digest.len() != hash.len() {
        return Err(bad(format!(
            "a {} name has {} digest bytes, not {}",
            hash.name(),
            hash.len(),
            digest.len()
        )));
    }
    Ok(())
}

/// A fresh seed and its encryption to a TPM storage key or EK `key` (TPM2B_ENCRYPTED_SECRET
/// contents): RSA-OAEP(SHA-256) with label `label` and its NUL, or for P-256 an ephemeral
/// ECDH whose Z gives the seed by KDFe(Z, `label`, ephemeral.x, key.x). Labels: "IDENTITY"
/// (MakeCredential), "DUPLICATE" (import, TPM 2.0 Part 1, 23).
pub(crate) fn seed_for(key: &PublicKey, label: &str) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    match key {
        PublicKey::Rsa { modulus, exponent } => {
            let key = rsa_key(modulus, *exponent)
                .map_err(|m| Error::BadInput(format!("RSA storage key: {m}")))?;
            let mut seed = Zeroizing::new(vec![0u8; SEED_LEN]);
            CRYPTO.random(&mut seed);
            let encrypted = key
                .encrypt(
                    &mut OsRng,
                    Oaep::new_with_label::<Sha256, _>(format!("{label}\0")),
                    &seed,
                )
                .map_err(|e| Error::BadInput(format!("RSA-OAEP to the storage key failed: {e}")))?;
            Ok((seed, encrypted))
        }
        PublicKey::Ec { curve, x, y } => {
            if *curve != Curve::P256 {
                return Err(Error::Unsupported(format!(
                    "seeds for an ECC {} key (only P-256)",
                    curve.name()
                )));
            }
            let e = CRYPTO.p256_ephemeral_ecdh(x, y)?;
            let seed = kdfe(&CRYPTO, &e.z[..], label, &e.x, x, 8 * SEED_LEN as u32);
            let mut point = Writer::new();
            point.tpm2b(&e.x).tpm2b(&e.y);
            Ok((seed, point.into_vec()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_file_round_trip() {
        let c = Credential {
            credential_blob: vec![1; 68],
            secret: vec![2; 256],
        };
        let bytes = c.to_tpm2_tools();
        assert_eq!(bytes.len(), 336);
        assert_eq!(Credential::from_tpm2_tools(&bytes).unwrap(), c);
        for n in 0..bytes.len() {
            assert!(Credential::from_tpm2_tools(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn names_and_secrets_are_checked() {
        let ek = EkPublic {
            key: PublicKey::Ec {
                curve: Curve::P256,
                x: vec![0; 32],
                y: vec![0; 32],
            },
        };
        let name = [&[0x00, 0x0b][..], &[7; 32]].concat();
        assert!(make_credential(&ek, &name, &[]).is_err());
        assert!(make_credential(&ek, &name, &[1; 33]).is_err());
        assert!(make_credential(&ek, &name[..20], &[1; 16]).is_err());
        // (0, 0) is not on P-256.
        assert!(make_credential(&ek, &name, &[1; 16]).is_err());
    }
}
