//! What tpmkey knows of a TPM object from its public area alone: algorithm, size, public
//! key, attributes and Name. Front ends answer key parameters from this, never the TPM.
//! The public key's encodings both front ends hand out live here once: the uncompressed EC
//! point, the namedCurve ECParameters, RSAPublicKey and SubjectPublicKeyInfo, with the OIDs
//! they carry.

use p256::elliptic_curve::sec1::FromEncodedPoint;
use tss_esapi::attributes::ObjectAttributes;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{EccScheme, HashScheme, Public, RsaScheme};
use tss_esapi::traits::UnMarshall;
use tss_esapi::tss2_esys::TPMI_RSA_KEY_BITS;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::der::{
    encode_u32, encode_unsigned, tlv, write_tlv, TAG_BIT_STRING, TAG_INTEGER, TAG_NULL, TAG_OID,
    TAG_SEQUENCE,
};
use crate::wire::{tpm2b_contents, TPM_ALG_ECDSA, TPM_ALG_RSAPSS, TPM_ALG_RSASSA, TPM_ALG_SHA256};

/// OBJECT IDENTIFIER contents (no tag, no length) of the public-key algorithms and curves.
pub mod oid {
    /// id-ecPublicKey, 1.2.840.10045.2.1
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    /// prime256v1 (P-256), 1.2.840.10045.3.1.7
    pub const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    /// secp384r1 (P-384), 1.3.132.0.34
    pub const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
    /// rsaEncryption, 1.2.840.113549.1.1.1
    pub const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    /// id-mgf1, 1.2.840.113549.1.1.8
    pub const MGF1: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08];
    /// id-RSASSA-PSS, 1.2.840.113549.1.1.10
    pub const RSASSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
}

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

    /// The curve's OBJECT IDENTIFIER contents.
    pub fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => oid::P256,
            Curve::P384 => oid::P384,
        }
    }

    /// The curve whose OBJECT IDENTIFIER contents these are.
    pub fn from_oid(oid: &[u8]) -> Option<Curve> {
        [Curve::P256, Curve::P384]
            .into_iter()
            .find(|c| c.oid() == oid)
    }

    /// ECParameters as a namedCurve (RFC 5480): the curve's OID element, as PKCS#11
    /// CKA_EC_PARAMS carries it.
    pub fn parameters_der(self) -> Vec<u8> {
        tlv(TAG_OID, self.oid())
    }

    /// The curve a namedCurve ECParameters names (exactly that DER, nothing around it).
    pub fn from_parameters_der(der: &[u8]) -> Option<Curve> {
        [Curve::P256, Curve::P384]
            .into_iter()
            .find(|c| c.parameters_der() == der)
    }
}

/// The uncompressed point 04 || x || y (SEC 1, 2.3.3), as X9.62 ECPoint content.
pub fn ec_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    point
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
    /// The SubjectPublicKeyInfo (DER), as `openssl pkey -pubin -outform DER` writes it:
    /// id-ecPublicKey with the named curve, or rsaEncryption with NULL parameters.
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Ec { curve, x, y } => {
                let mut algorithm = tlv(TAG_OID, oid::EC_PUBLIC_KEY);
                algorithm.extend(curve.parameters_der());
                spki(&algorithm, &ec_point(x, y))
            }
            PublicKey::Rsa { modulus, exponent } => {
                let mut algorithm = tlv(TAG_OID, oid::RSA_ENCRYPTION);
                write_tlv(&mut algorithm, TAG_NULL, &[]);
                spki(&algorithm, &rsa_public_key(modulus, *exponent))
            }
        }
    }

    /// The SubjectPublicKeyInfo of a key restricted to RSASSA-PSS: the id-RSASSA-PSS
    /// algorithm without parameters (RFC 4055, 1.2), as OpenSSL writes an RSA-PSS key. An
    /// EC key has no such form and gives [`spki_der`](Self::spki_der).
    pub fn spki_der_pss(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa { modulus, exponent } => spki(
                &tlv(TAG_OID, oid::RSASSA_PSS),
                &rsa_public_key(modulus, *exponent),
            ),
            PublicKey::Ec { .. } => self.spki_der(),
        }
    }

    /// The PKCS#1 RSAPublicKey (DER); None for an EC key.
    pub fn rsa_public_key_der(&self) -> Option<Vec<u8>> {
        match self {
            PublicKey::Rsa { modulus, exponent } => Some(rsa_public_key(modulus, *exponent)),
            PublicKey::Ec { .. } => None,
        }
    }

    /// The RSA public operation s^e mod n (RSAVP1, RFC 8017 5.2.2), left-padded to the
    /// modulus length: what checks a signature the TPM made.
    pub fn rsa_public_operation(&self, s: &[u8]) -> Result<Vec<u8>> {
        let PublicKey::Rsa { modulus, exponent } = self else {
            return Err(Error::BadInput("an RSA operation on an EC key".into()));
        };
        let n = rsa::BigUint::from_bytes_be(modulus);
        let s = rsa::BigUint::from_bytes_be(s);
        if s >= n {
            return Err(Error::BadInput(
                "RSA signature representative out of range (not below the modulus)".into(),
            ));
        }
        let m = s.modpow(&rsa::BigUint::from(*exponent), &n).to_bytes_be();
        let mut out = vec![0u8; modulus.len().saturating_sub(m.len())];
        out.extend_from_slice(&m);
        Ok(out)
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

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
fn rsa_public_key(modulus: &[u8], exponent: u32) -> Vec<u8> {
    let mut body = tlv(TAG_INTEGER, &encode_unsigned(modulus));
    write_tlv(&mut body, TAG_INTEGER, &encode_u32(exponent));
    tlv(TAG_SEQUENCE, &body)
}

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT
/// STRING }, from the AlgorithmIdentifier's contents and the key bytes.
fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bit_string = Vec::with_capacity(1 + key.len());
    bit_string.push(0); // no unused bits
    bit_string.extend_from_slice(key);
    let mut body = tlv(TAG_SEQUENCE, algorithm);
    write_tlv(&mut body, TAG_BIT_STRING, &bit_string);
    tlv(TAG_SEQUENCE, &body)
}

/// A signing scheme fixed in a key's public area: the only one the TPM signs with for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedScheme {
    /// TPM_ALG_RSASSA, TPM_ALG_RSAPSS or TPM_ALG_ECDSA.
    pub alg: u16,
    pub hash: Hash,
}

impl FixedScheme {
    /// As tpm2-tools writes it: `RSAPSS-SHA256`.
    pub fn name(&self) -> String {
        let alg = match self.alg {
            TPM_ALG_RSASSA => "RSASSA",
            TPM_ALG_RSAPSS => "RSAPSS",
            _ => "ECDSA",
        };
        format!("{alg}-{}", self.hash.name())
    }

    fn from_hash_scheme(alg: u16, scheme: &HashScheme) -> Option<FixedScheme> {
        let hash = Hash::from_tpm_alg(scheme.hashing_algorithm().into())?;
        Some(FixedScheme { alg, hash })
    }
}

#[derive(Clone, Debug)]
pub struct KeyPublic {
    pub key: PublicKey,
    pub can_sign: bool,
    pub can_decrypt: bool,
    pub restricted: bool,
    /// The signing scheme the public area fixes (None: TPM_ALG_NULL, or not a signing one).
    pub sign_scheme: Option<FixedScheme>,
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
        let mut sign_scheme = None;
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
                if let EccScheme::EcDsa(h) = parameters.ecc_scheme() {
                    sign_scheme = FixedScheme::from_hash_scheme(TPM_ALG_ECDSA, &h);
                }
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
                sign_scheme = match parameters.rsa_scheme() {
                    RsaScheme::RsaSsa(h) => FixedScheme::from_hash_scheme(TPM_ALG_RSASSA, &h),
                    RsaScheme::RsaPss(h) => FixedScheme::from_hash_scheme(TPM_ALG_RSAPSS, &h),
                    _ => None,
                };
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
            sign_scheme,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, PointConversionForm};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;

    #[test]
    fn ec_spki_point_and_parameters_are_what_openssl_writes() {
        for (nid, curve) in [
            (Nid::X9_62_PRIME256V1, Curve::P256),
            (Nid::SECP384R1, Curve::P384),
        ] {
            let group = EcGroup::from_curve_name(nid).unwrap();
            let key = EcKey::generate(&group).unwrap();
            let mut ctx = BigNumContext::new().unwrap();
            let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
            key.public_key()
                .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
                .unwrap();
            let n = curve.coordinate_len() as i32;
            let (x, y) = (x.to_vec_padded(n).unwrap(), y.to_vec_padded(n).unwrap());
            let point = key
                .public_key()
                .to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)
                .unwrap();
            assert_eq!(ec_point(&x, &y), point);
            let public = PublicKey::Ec { curve, x, y };
            assert_eq!(public.spki_der(), key.public_key_to_der().unwrap());
            assert_eq!(public.spki_der_pss(), public.spki_der());
            assert_eq!(public.rsa_public_key_der(), None);
            assert_eq!(
                Curve::from_parameters_der(&curve.parameters_der()),
                Some(curve)
            );
        }
        // RFC 5480 namedCurve encodings.
        assert_eq!(
            crate::hex::hex(&Curve::P256.parameters_der()),
            "06082a8648ce3d030107"
        );
        assert_eq!(
            crate::hex::hex(&Curve::P384.parameters_der()),
            "06052b81040022"
        );
        assert_eq!(Curve::from_parameters_der(&[0x06, 0x05]), None);
        assert_eq!(Curve::from_oid(oid::P384), Some(Curve::P384));
    }

    #[test]
    fn rsa_spki_and_rsa_public_key_are_what_openssl_writes() {
        let rsa = Rsa::generate(2048).unwrap();
        let public = PublicKey::Rsa {
            modulus: rsa.n().to_vec(),
            exponent: 65537,
        };
        assert_eq!(public.spki_der(), rsa.public_key_to_der().unwrap());
        assert_eq!(
            public.rsa_public_key_der().unwrap(),
            rsa.public_key_to_der_pkcs1().unwrap()
        );
        // A leading zero byte in the modulus is not part of the INTEGER.
        let padded = PublicKey::Rsa {
            modulus: [&[0u8][..], &rsa.n().to_vec()].concat(),
            exponent: 65537,
        };
        assert_eq!(padded.spki_der(), public.spki_der());
    }

    /// `openssl pkey -pubout -outform DER` of an RSA-PSS key, against `spki_der_pss`.
    #[test]
    fn rsa_pss_spki_is_what_openssl_pkey_writes() {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                "openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 \
                 | openssl pkey -pubout -outform DER",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl: {:?}", out);
        let der = out.stdout;
        let pkey = PKey::public_key_from_der(&der).unwrap();
        let rsa = pkey.rsa().unwrap();
        let public = PublicKey::Rsa {
            modulus: rsa.n().to_vec(),
            exponent: rsa.e().to_dec_str().unwrap().parse().unwrap(),
        };
        assert_eq!(public.spki_der_pss(), der);
    }
}
