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
use crate::hash::Hash;

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

/// The endorsement keys of the TCG EK Credential Profile's default templates: the low range
/// (L-1, L-2) and the high range (H-1 to H-3, profile 2.3 and later).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EkType {
    /// Template L-1: RSA 2048, certificate at NV 0x01c00002.
    Rsa2048,
    /// Template L-2: ECC NIST P-256, certificate at NV 0x01c0000a.
    EccP256,
    /// Template H-1: RSA 2048, certificate at NV 0x01c00012.
    Rsa2048High,
    /// Template H-2: ECC NIST P-256, certificate at NV 0x01c00014.
    EccP256High,
    /// Template H-3: ECC NIST P-384 with nameAlg SHA-384, certificate at NV 0x01c00016.
    EccP384High,
}

impl EkType {
    /// The high-range templates: userWithAuth set, unique empty, authPolicy PolicyB.
    pub fn is_high_range(self) -> bool {
        !matches!(self, EkType::Rsa2048 | EkType::EccP256)
    }

    /// The nameAlg of the template, which is also the hash of the policy session that
    /// satisfies its authPolicy.
    pub fn name_alg(self) -> Hash {
        match self {
            EkType::EccP384High => Hash::Sha384,
            _ => Hash::Sha256,
        }
    }

    /// The template's authPolicy: PolicyA for the low range, PolicyB for the high range.
    pub fn auth_policy(self) -> &'static [u8] {
        match self {
            EkType::Rsa2048 | EkType::EccP256 => &EK_AUTH_POLICY,
            EkType::Rsa2048High | EkType::EccP256High => &EK_POLICY_B_SHA256,
            EkType::EccP384High => &EK_POLICY_B_SHA384,
        }
    }

    /// The PolicyOR branches whose OR is the high-range authPolicy (PolicyB): PolicyA
    /// (PolicySecret(TPM_RH_ENDORSEMENT)) and PolicyC (PolicyAuthorizeNV of the
    /// profile's policy index), in the session hash; None for the low range, whose
    /// authPolicy is PolicyA itself.
    pub fn policy_or_branches(self) -> Option<[&'static [u8]; 2]> {
        match self {
            EkType::Rsa2048 | EkType::EccP256 => None,
            EkType::Rsa2048High | EkType::EccP256High => {
                Some([&EK_AUTH_POLICY, &EK_POLICY_C_SHA256])
            }
            EkType::EccP384High => Some([&EK_POLICY_A_SHA384, &EK_POLICY_C_SHA384]),
        }
    }
}

/// PolicySecret(TPM_RH_ENDORSEMENT): the authPolicy of the default EK templates, so that
/// only whoever knows the endorsement authorisation can use the EK ("PolicyA", SHA-256).
pub const EK_AUTH_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

/// PolicyA in SHA-384.
pub const EK_POLICY_A_SHA384: [u8; 48] = [
    0x8b, 0xbf, 0x22, 0x66, 0x53, 0x7c, 0x17, 0x1c, 0xb5, 0x6e, 0x40, 0x3c, 0x4d, 0xc1, 0xd4, 0xb6,
    0x4f, 0x43, 0x26, 0x11, 0xdc, 0x38, 0x6e, 0x6f, 0x53, 0x20, 0x50, 0xc3, 0x27, 0x8c, 0x93, 0x0e,
    0x14, 0x3e, 0x8b, 0xb1, 0x13, 0x38, 0x24, 0xcc, 0xb4, 0x31, 0x05, 0x38, 0x71, 0xc6, 0xdb, 0x53,
];

/// "PolicyC": PolicyAuthorizeNV of the profile's EK policy index 0x01c07f01 (SHA-256).
pub const EK_POLICY_C_SHA256: [u8; 32] = [
    0x37, 0x67, 0xe2, 0xed, 0xd4, 0x3f, 0xf4, 0x5a, 0x3a, 0x7e, 0x1e, 0xae, 0xfc, 0xef, 0x78, 0x64,
    0x3d, 0xca, 0x96, 0x46, 0x32, 0xe7, 0xaa, 0xd8, 0x2c, 0x67, 0x3a, 0x30, 0xd8, 0x63, 0x3f, 0xde,
];

/// PolicyC in SHA-384 (policy index 0x01c07f02).
pub const EK_POLICY_C_SHA384: [u8; 48] = [
    0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6, 0xa3, 0x32, 0x37, 0xef,
    0x2b, 0x6a, 0x16, 0xf4, 0x29, 0x3c, 0x22, 0xb4, 0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5,
    0xb4, 0x94, 0x7c, 0x2d, 0x73, 0xe6, 0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65,
];

/// "PolicyB" = PolicyOR(PolicyA, PolicyC): the authPolicy of templates H-1 and H-2.
pub const EK_POLICY_B_SHA256: [u8; 32] = [
    0xca, 0x3d, 0x0a, 0x99, 0xa2, 0xb9, 0x39, 0x06, 0xf7, 0xa3, 0x34, 0x24, 0x14, 0xef, 0xcf, 0xb3,
    0xa3, 0x85, 0xd4, 0x4c, 0xd1, 0xfd, 0x45, 0x90, 0x89, 0xd1, 0x9b, 0x50, 0x71, 0xc0, 0xb7, 0xa0,
];

/// PolicyB in SHA-384: the authPolicy of template H-3.
pub const EK_POLICY_B_SHA384: [u8; 48] = [
    0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
    0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
    0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
];

/// The EK template of `kind`: a restricted decryption key usable only through its policy
/// (the high range also with its authValue, userWithAuth set). The low range has a
/// zero-filled unique field, the high range an empty one: either way every TPM derives the
/// key its manufacturer certified.
pub fn endorsement_key(kind: EkType) -> Result<Vec<u8>> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(kind.is_high_range())
        .with_admin_with_policy(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(tss)?;
    let policy = Digest::try_from(kind.auth_policy().to_vec()).map_err(tss)?;
    let aes_cfb = |key_bits| SymmetricDefinitionObject::Aes {
        key_bits,
        mode: tss_esapi::interface_types::algorithm::SymmetricMode::Cfb,
    };
    let unique_len = |len: usize| if kind.is_high_range() { 0 } else { len };
    let ecc = |curve, coordinate: usize, name_alg, sym| -> Result<Public> {
        let zero = EccParameter::try_from(vec![0u8; unique_len(coordinate)]).map_err(tss)?;
        Ok(Public::Ecc {
            object_attributes: attributes,
            name_hashing_algorithm: name_alg,
            auth_policy: policy.clone(),
            parameters: PublicEccParameters::new(
                sym,
                EccScheme::Null,
                curve,
                KeyDerivationFunctionScheme::Null,
            ),
            unique: EccPoint::new(zero.clone(), zero),
        })
    };
    let public = match kind {
        EkType::Rsa2048 | EkType::Rsa2048High => Public::Rsa {
            object_attributes: attributes,
            name_hashing_algorithm: HashingAlgorithm::Sha256,
            auth_policy: policy.clone(),
            parameters: PublicRsaParameters::new(
                aes_cfb(AesKeyBits::Aes128),
                RsaScheme::Null,
                RsaKeyBits::Rsa2048,
                RsaExponent::default(),
            ),
            unique: PublicKeyRsa::try_from(vec![0u8; unique_len(256)]).map_err(tss)?,
        },
        EkType::EccP256 | EkType::EccP256High => ecc(
            EccCurve::NistP256,
            32,
            HashingAlgorithm::Sha256,
            aes_cfb(AesKeyBits::Aes128),
        )?,
        EkType::EccP384High => ecc(
            EccCurve::NistP384,
            48,
            HashingAlgorithm::Sha384,
            aes_cfb(AesKeyBits::Aes256),
        )?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::handle_name;
    use crate::policy::PolicyDigest;
    use crate::wire::TPM_RH_ENDORSEMENT;

    #[test]
    fn high_range_policies_are_policy_secret_or_policy_c() {
        for kind in [EkType::EccP256High, EkType::EccP384High] {
            let mut a = PolicyDigest::new(kind.name_alg());
            a.policy_secret(&handle_name(TPM_RH_ENDORSEMENT), &[]);
            let [policy_a, policy_c] = kind.policy_or_branches().unwrap();
            assert_eq!(a.value(), policy_a, "{kind:?}");
            let mut b = PolicyDigest::new(kind.name_alg());
            b.policy_or(&[policy_a.to_vec(), policy_c.to_vec()])
                .unwrap();
            assert_eq!(b.value(), kind.auth_policy(), "{kind:?}");
        }
    }
}
