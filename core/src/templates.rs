//! Public-area templates for the objects tpmkey creates, built from tss-esapi's types and
//! marshalled by it into TPMT_PUBLIC bytes.

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::{AesKeyBits, RsaKeyBits};
use tss_esapi::structures::{
    Digest, EccParameter, EccPoint, EccScheme, KeyDerivationFunctionScheme, KeyedHashScheme,
    Public, PublicEccParameters, PublicKeyRsa, PublicKeyedHashParameters, PublicRsaParameters,
    RsaExponent, RsaScheme, SymmetricDefinitionObject,
};
use tss_esapi::traits::Marshall;

use crate::error::{Error, Result};

/// The algorithms and sizes tpmkey creates keys for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySpec {
    EcP256,
    EcP384,
    Rsa(u16),
}

impl KeySpec {
    pub fn parse(s: &str) -> Result<KeySpec> {
        match s.to_ascii_lowercase().as_str() {
            "ec" | "ecc" | "p-256" | "p256" | "prime256v1" | "secp256r1" | "ecc256" => {
                Ok(KeySpec::EcP256)
            }
            "p-384" | "p384" | "secp384r1" | "ecc384" => Ok(KeySpec::EcP384),
            "rsa" | "rsa2048" => Ok(KeySpec::Rsa(2048)),
            "rsa3072" => Ok(KeySpec::Rsa(3072)),
            other => Err(Error::Unsupported(format!(
                "key type \"{other}\" (use P-256, P-384, RSA 2048 or 3072)"
            ))),
        }
    }
}

fn tss(e: tss_esapi::Error) -> Error {
    Error::BadInput(format!("building a TPM template: {e}"))
}

/// The ECC P-256 storage root key template shared with tpm2-openssl, tpm2-tss-engine and
/// `tpm2_createprimary -G ecc256:null:aes128cfb`: identical, so their key files load here.
pub fn storage_key() -> Result<Vec<u8>> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(tss)?;
    let empty = EccParameter::try_from(Vec::new()).map_err(tss)?;
    Public::Ecc {
        object_attributes: attributes,
        name_hashing_algorithm: HashingAlgorithm::Sha256,
        auth_policy: Digest::default(),
        parameters: PublicEccParameters::new(
            SymmetricDefinitionObject::Aes {
                key_bits: AesKeyBits::Aes128,
                mode: tss_esapi::interface_types::algorithm::SymmetricMode::Cfb,
            },
            EccScheme::Null,
            EccCurve::NistP256,
            KeyDerivationFunctionScheme::Null,
        ),
        unique: EccPoint::new(empty.clone(), empty),
    }
    .marshall()
    .map_err(tss)
}

/// A key for signing, decryption and key agreement, scheme NULL so that every hash and
/// padding can be chosen per operation. Keys without a password are exempt from
/// dictionary-attack lockout (noDA); keys with one are protected by it.
pub fn key(spec: KeySpec, has_password: bool) -> Result<Vec<u8>> {
    key_with_policy(spec, has_password, &[])
}

/// [`key`] usable only through `auth_policy` when it is not empty: userWithAuth is then
/// clear, or the password alone would bypass the policy.
pub fn key_with_policy(spec: KeySpec, has_password: bool, auth_policy: &[u8]) -> Result<Vec<u8>> {
    let auth_policy = Digest::try_from(auth_policy.to_vec()).map_err(tss)?;
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(auth_policy.value().is_empty())
        .with_no_da(!has_password)
        .with_sign_encrypt(true)
        .with_decrypt(true)
        .build()
        .map_err(tss)?;
    let public = match spec {
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let curve = if spec == KeySpec::EcP256 {
                EccCurve::NistP256
            } else {
                EccCurve::NistP384
            };
            let empty = EccParameter::try_from(Vec::new()).map_err(tss)?;
            Public::Ecc {
                object_attributes: attributes,
                name_hashing_algorithm: HashingAlgorithm::Sha256,
                auth_policy: auth_policy.clone(),
                parameters: PublicEccParameters::new(
                    SymmetricDefinitionObject::Null,
                    EccScheme::Null,
                    curve,
                    KeyDerivationFunctionScheme::Null,
                ),
                unique: EccPoint::new(empty.clone(), empty),
            }
        }
        KeySpec::Rsa(bits) => {
            let key_bits = match bits {
                2048 => RsaKeyBits::Rsa2048,
                3072 => RsaKeyBits::Rsa3072,
                4096 => RsaKeyBits::Rsa4096,
                _ => {
                    return Err(Error::Unsupported(format!(
                        "RSA key size {bits} (use 2048, 3072 or 4096)"
                    )))
                }
            };
            Public::Rsa {
                object_attributes: attributes,
                name_hashing_algorithm: HashingAlgorithm::Sha256,
                auth_policy: auth_policy.clone(),
                parameters: PublicRsaParameters::new(
                    SymmetricDefinitionObject::Null,
                    RsaScheme::Null,
                    key_bits,
                    RsaExponent::default(),
                ),
                unique: PublicKeyRsa::default(),
            }
        }
    };
    public.marshall().map_err(tss)
}

/// A sealed data object: KEYEDHASH with scheme NULL holding caller-supplied bytes (so no
/// sensitiveDataOrigin), usable only through its authValue. `da_protected` clears noDA, for
/// authValues a person chooses (PINs); high-entropy authValues set noDA.
/// A sealed data object; with a non-empty `auth_policy` only a policy session satisfying it
/// unseals it (userWithAuth clear).
pub fn sealed_data(da_protected: bool, auth_policy: &[u8]) -> Result<Vec<u8>> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(auth_policy.is_empty())
        .with_no_da(!da_protected)
        .build()
        .map_err(tss)?;
    Public::KeyedHash {
        object_attributes: attributes,
        name_hashing_algorithm: HashingAlgorithm::Sha256,
        auth_policy: Digest::try_from(auth_policy.to_vec()).map_err(tss)?,
        parameters: PublicKeyedHashParameters::new(KeyedHashScheme::Null),
        unique: Digest::default(),
    }
    .marshall()
    .map_err(tss)
}
