//! What tpmkey knows of a TPM object from its public area alone: algorithm, size, public
//! key, attributes and Name. Front ends answer key parameters from this, never the TPM.

use p256::elliptic_curve::sec1::FromEncodedPoint;
use tss_esapi::attributes::ObjectAttributes;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::Public;
use tss_esapi::traits::UnMarshall;
use tss_esapi::tss2_esys::TPMI_RSA_KEY_BITS;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::wire::{tpm2b_contents, TPM_ALG_SHA256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    pub fn bits(self) -> u32 {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
        }
    }
    pub fn coordinate_len(self) -> usize {
        self.bits() as usize / 8
    }
    pub fn tpm_id(self) -> u16 {
        match self {
            Curve::P256 => crate::wire::TPM_ECC_NIST_P256,
            Curve::P384 => crate::wire::TPM_ECC_NIST_P384,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// Coordinates left-padded to the curve size.
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Rsa {
        modulus: Vec<u8>,
        exponent: u32,
    },
}

impl PublicKey {
    /// The SubjectPublicKeyInfo (DER), as `openssl pkey -pubin` reads it.
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        use p256::pkcs8::EncodePublicKey;
        let bad = |e: p256::pkcs8::spki::Error| {
            Error::BadInput(format!("public key cannot be encoded: {e}"))
        };
        let der = match self {
            PublicKey::Ec { curve, x, y } => {
                let mut point = vec![4u8];
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                let off_curve = |_| Error::BadInput(format!("point is not on {}", curve.name()));
                match curve {
                    Curve::P256 => p256::PublicKey::from_sec1_bytes(&point)
                        .map_err(off_curve)?
                        .to_public_key_der(),
                    Curve::P384 => p384::PublicKey::from_sec1_bytes(&point)
                        .map_err(off_curve)?
                        .to_public_key_der(),
                }
            }
            PublicKey::Rsa { modulus, exponent } => rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(modulus),
                rsa::BigUint::from(*exponent),
            )
            .map_err(|e| Error::BadInput(format!("RSA public key: {e}")))?
            .to_public_key_der(),
        };
        Ok(der.map_err(bad)?.into_vec())
    }

    /// Key size in bits (modulus bits or curve size).
    pub fn bits(&self) -> u32 {
        match self {
            PublicKey::Ec { curve, .. } => curve.bits(),
            PublicKey::Rsa { modulus, .. } => {
                let m = &modulus[modulus.iter().take_while(|b| **b == 0).count()..];
                (m.len() as u32 * 8).saturating_sub(m.first().map_or(8, |b| b.leading_zeros()))
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct KeyPublic {
    pub key: PublicKey,
    pub can_sign: bool,
    pub can_decrypt: bool,
    pub restricted: bool,
    pub no_da: bool,
    pub user_with_auth: bool,
    pub has_policy: bool,
    /// The authPolicy digest (empty when the key has none).
    pub auth_policy: Vec<u8>,
    /// TPM2B_PUBLIC as the TPM gave it, with its size prefix.
    pub blob: Vec<u8>,
    /// nameAlg || H(TPMT_PUBLIC).
    pub name: Vec<u8>,
}

fn pad(v: &[u8], len: usize) -> Result<Vec<u8>> {
    let v = &v[v.iter().take_while(|b| **b == 0).count()..];
    if v.len() > len {
        return Err(Error::KeyFile("EC coordinate longer than the curve".into()));
    }
    let mut out = vec![0u8; len - v.len()];
    out.extend_from_slice(v);
    Ok(out)
}

/// RSA key sizes tpmkey takes. 1024-bit keys are refused (below the 112-bit security level
/// that NIST SP 800-131A allows); 4096 is taken for TPMs that make such keys (every
/// padding routine works on any modulus length).
const RSA_KEY_BITS: [u32; 3] = [2048, 3072, 4096];

/// An RSA public area is used only when its modulus has exactly the declared keyBits: a
/// hostile key file with a short or empty modulus would otherwise reach the padding code.
fn check_rsa(key: &PublicKey, key_bits: RsaKeyBits) -> Result<()> {
    let PublicKey::Rsa { modulus, exponent } = key else {
        return Ok(());
    };
    let bits = u32::from(TPMI_RSA_KEY_BITS::from(key_bits));
    if !RSA_KEY_BITS.contains(&bits) {
        return Err(Error::Unsupported(format!(
            "{bits}-bit RSA keys (tpmkey takes 2048, 3072 and 4096 bits)"
        )));
    }
    if modulus.len() != bits as usize / 8 || key.bits() != bits {
        return Err(Error::KeyFile(format!(
            "RSA public area: the modulus is {} bytes ({} bits), its keyBits say {bits}",
            modulus.len(),
            key.bits()
        )));
    }
    if exponent % 2 == 0 || *exponent < 3 {
        return Err(Error::KeyFile(format!(
            "RSA public area: exponent {exponent} is not an odd number above 1"
        )));
    }
    Ok(())
}

/// An EC public point must lie on its curve (a point that does not is a hostile or
/// damaged key file, and software verification or ECDH must never see it).
fn check_on_curve(curve: Curve, x: &[u8], y: &[u8]) -> Result<()> {
    let on_curve = match curve {
        Curve::P256 => {
            let point = p256::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
            bool::from(p256::PublicKey::from_encoded_point(&point).is_some())
        }
        Curve::P384 => {
            let point = p384::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
            bool::from(p384::PublicKey::from_encoded_point(&point).is_some())
        }
    };
    if !on_curve {
        return Err(Error::KeyFile(format!(
            "EC public area: the point is not on {}",
            curve.name()
        )));
    }
    Ok(())
}

impl KeyPublic {
    /// Parses a TPM2B_PUBLIC (with size prefix) of an object with nameAlg SHA-256, the
    /// only one tpmkey's sessions and key files handle.
    pub fn parse(tpm2b_public: &[u8]) -> Result<KeyPublic> {
        let tpmt = tpm2b_contents(tpm2b_public)
            .map_err(|_| Error::KeyFile("public area: bad TPM2B size".into()))?;
        // TPMT_PUBLIC starts with type, then nameAlg.
        let name_alg = tpmt.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]));
        if name_alg != Some(TPM_ALG_SHA256) {
            return Err(Error::Unsupported(
                "objects whose name algorithm is not SHA-256".into(),
            ));
        }
        Self::parse_any_name_alg(tpm2b_public)
    }

    /// [`KeyPublic::parse`] for any hash as nameAlg, for public keys that are only read
    /// (the high-range P-384 EK's nameAlg is SHA-384).
    pub fn parse_any_name_alg(tpm2b_public: &[u8]) -> Result<KeyPublic> {
        let tpmt = tpm2b_contents(tpm2b_public)
            .map_err(|_| Error::KeyFile("public area: bad TPM2B size".into()))?;
        let public = Public::unmarshall(tpmt)
            .map_err(|e| Error::KeyFile(format!("public area does not parse: {e}")))?;
        let alg = tpmt
            .get(2..4)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let name_alg = Hash::from_tpm_alg(alg).ok_or_else(|| {
            Error::Unsupported(format!(
                "objects whose name algorithm 0x{alg:04x} is not a hash"
            ))
        })?;
        let mut name = alg.to_be_bytes().to_vec();
        name.extend_from_slice(&name_alg.digest(&[tpmt]));
        let attrs: ObjectAttributes = public.object_attributes();
        let key = match &public {
            Public::Ecc {
                parameters, unique, ..
            } => {
                let curve = match parameters.ecc_curve() {
                    EccCurve::NistP256 => Curve::P256,
                    EccCurve::NistP384 => Curve::P384,
                    other => return Err(Error::Unsupported(format!("ECC curve {other:?}"))),
                };
                let n = curve.coordinate_len();
                let (x, y) = (pad(unique.x().value(), n)?, pad(unique.y().value(), n)?);
                check_on_curve(curve, &x, &y)?;
                PublicKey::Ec { curve, x, y }
            }
            Public::Rsa {
                parameters, unique, ..
            } => {
                let e = parameters.exponent().value();
                let key = PublicKey::Rsa {
                    modulus: unique.value().to_vec(),
                    exponent: if e == 0 { 65537 } else { e },
                };
                check_rsa(&key, parameters.key_bits())?;
                key
            }
            _ => {
                return Err(Error::Unsupported(
                    "objects that are not ECC or RSA keys".into(),
                ))
            }
        };
        Ok(KeyPublic {
            key,
            can_sign: attrs.sign_encrypt(),
            can_decrypt: attrs.decrypt(),
            restricted: attrs.restricted(),
            no_da: attrs.no_da(),
            user_with_auth: attrs.user_with_auth(),
            has_policy: !public.auth_policy().value().is_empty(),
            auth_policy: public.auth_policy().value().to_vec(),
            blob: tpm2b_public.to_vec(),
            name,
        })
    }

    /// Key size in bits (modulus bits or curve size).
    pub fn bits(&self) -> u32 {
        self.key.bits()
    }

    pub fn is_rsa(&self) -> bool {
        matches!(self.key, PublicKey::Rsa { .. })
    }
}
