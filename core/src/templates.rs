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

/// The endorsement keys of the TCG EK Credential Profile's default templates (low range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EkType {
    /// Template L-1: RSA 2048, certificate at NV 0x01c00002.
    Rsa2048,
    /// Template L-2: ECC NIST P-256, certificate at NV 0x01c0000a.
    EccP256,
}

/// PolicySecret(TPM_RH_ENDORSEMENT): the authPolicy of the default EK templates, so that
/// only whoever knows the endorsement authorisation can use the EK.
pub const EK_AUTH_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

/// The EK template of `kind`: a restricted decryption key usable only through its policy,
/// with the zero-filled unique field that makes every TPM derive the key its manufacturer
/// certified.
pub fn endorsement_key(kind: EkType) -> Result<Vec<u8>> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_admin_with_policy(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(tss)?;
    let policy = Digest::try_from(EK_AUTH_POLICY.to_vec()).map_err(tss)?;
    let aes128_cfb = SymmetricDefinitionObject::Aes {
        key_bits: AesKeyBits::Aes128,
        mode: tss_esapi::interface_types::algorithm::SymmetricMode::Cfb,
    };
    let public = match kind {
        EkType::Rsa2048 => Public::Rsa {
            object_attributes: attributes,
            name_hashing_algorithm: HashingAlgorithm::Sha256,
            auth_policy: policy,
            parameters: PublicRsaParameters::new(
                aes128_cfb,
                RsaScheme::Null,
                RsaKeyBits::Rsa2048,
                RsaExponent::default(),
            ),
            unique: PublicKeyRsa::try_from(vec![0u8; 256]).map_err(tss)?,
        },
        EkType::EccP256 => {
            let zero = EccParameter::try_from(vec![0u8; 32]).map_err(tss)?;
            Public::Ecc {
                object_attributes: attributes,
                name_hashing_algorithm: HashingAlgorithm::Sha256,
                auth_policy: policy,
                parameters: PublicEccParameters::new(
                    aes128_cfb,
                    EccScheme::Null,
                    EccCurve::NistP256,
                    KeyDerivationFunctionScheme::Null,
                ),
                unique: EccPoint::new(zero.clone(), zero),
            }
        }
    };
    public.marshall().map_err(tss)
}

/// An attestation key (AK): restricted signing, ECDSA P-256 or RSASSA 2048 with SHA-256, so
/// it signs only what the TPM itself produced (quotes, certifications). Its authValue is
/// empty (noDA). `unique` makes each AK created as a primary its own key.
pub fn attestation_key(spec: KeySpec, unique: &[u8]) -> Result<Vec<u8>> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()
        .map_err(tss)?;
    let public = match spec {
        KeySpec::EcP256 => Public::Ecc {
            object_attributes: attributes,
            name_hashing_algorithm: HashingAlgorithm::Sha256,
            auth_policy: Digest::default(),
            parameters: PublicEccParameters::new(
                SymmetricDefinitionObject::Null,
                EccScheme::EcDsa(tss_esapi::structures::HashScheme::new(
                    HashingAlgorithm::Sha256,
                )),
                EccCurve::NistP256,
                KeyDerivationFunctionScheme::Null,
            ),
            unique: EccPoint::new(
                EccParameter::try_from(unique.to_vec()).map_err(tss)?,
                EccParameter::try_from(Vec::new()).map_err(tss)?,
            ),
        },
        KeySpec::Rsa(2048) => Public::Rsa {
            object_attributes: attributes,
            name_hashing_algorithm: HashingAlgorithm::Sha256,
            auth_policy: Digest::default(),
            parameters: PublicRsaParameters::new(
                SymmetricDefinitionObject::Null,
                RsaScheme::RsaSsa(tss_esapi::structures::HashScheme::new(
                    HashingAlgorithm::Sha256,
                )),
                RsaKeyBits::Rsa2048,
                RsaExponent::default(),
            ),
            unique: PublicKeyRsa::try_from(unique.to_vec()).map_err(tss)?,
        },
        other => {
            return Err(Error::Unsupported(format!(
                "{other:?} attestation keys (use P-256 or RSA 2048)"
            )))
        }
    };
    public.marshall().map_err(tss)
}
