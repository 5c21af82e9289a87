//! Policy signer keys and their signatures on the TPM side: the public area an external
//! verification key is loaded with (TPM2_LoadExternal), its Name (which PolicyAuthorize
//! binds into a key's authPolicy), the PKCS#1 RSAPublicKey fingerprint systemd uses, and
//! TPMT_SIGNATURE for TPM2_VerifySignature and the PolicyAuthorize body.
//!
//! The public area is the one systemd and openssl_tpm2_engine build for a signer (so Names
//! agree with theirs): nameAlg SHA-256, attributes sign | decrypt | userWithAuth, no
//! symmetric, scheme NULL (the signature names its scheme), RSA exponent written out.

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::der::{
    self, Reader as DerReader, TAG_BIT_STRING, TAG_INTEGER, TAG_NULL, TAG_OID, TAG_SEQUENCE,
};
use crate::public_key::{oid, Curve, KeyPublic, PublicKey};
use crate::wire::{
    Reader, Writer, TPM_ALG_ECDSA, TPM_ALG_NULL, TPM_ALG_RSAPSS, TPM_ALG_RSASSA, TPM_ALG_SHA256,
};

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_ECC: u16 = 0x0023;
/// userWithAuth | decrypt | sign
const SIGNER_ATTRIBUTES: u32 = 0x0000_0040 | 0x0002_0000 | 0x0004_0000;

/// An external key whose signatures approve policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerKey {
    key: PublicKey,
}

fn bad_spki(e: Error) -> Error {
    match e {
        Error::KeyFile(m) | Error::BadInput(m) => {
            Error::BadInput(format!("policy signer public key: {m}"))
        }
        other => other,
    }
}

impl SignerKey {
    /// From a public key: RSA 2048/3072/4096 with e = 65537, or ECC P-256/P-384.
    pub fn new(key: PublicKey) -> Result<SignerKey> {
        match &key {
            PublicKey::Rsa { modulus, exponent } => {
                let bits = key.bits();
                if ![2048, 3072, 4096].contains(&bits) || modulus.len() * 8 != bits as usize {
                    return Err(Error::Unsupported(format!(
                        "policy signer RSA key of {bits} bits (use 2048, 3072 or 4096)"
                    )));
                }
                if *exponent != 65537 {
                    return Err(Error::Unsupported(format!(
                        "policy signer RSA exponent {exponent} (use 65537)"
                    )));
                }
            }
            PublicKey::Ec { curve, x, y } => {
                let n = curve.coordinate_len();
                if x.len() != n || y.len() != n {
                    return Err(Error::BadInput(format!(
                        "policy signer {} point coordinates must be {n} bytes",
                        curve.name()
                    )));
                }
            }
        }
        Ok(SignerKey { key })
    }

    /// From a SubjectPublicKeyInfo (DER), as `openssl pkey -pubout -outform der` writes it.
    pub fn from_spki_der(spki: &[u8]) -> Result<SignerKey> {
        let mut outer = DerReader::new(spki);
        let body = outer
            .read(TAG_SEQUENCE, "SubjectPublicKeyInfo SEQUENCE")
            .map_err(bad_spki)?;
        outer.finish("the SubjectPublicKeyInfo").map_err(bad_spki)?;
        let mut r = DerReader::new(body);
        let alg = r
            .read(TAG_SEQUENCE, "AlgorithmIdentifier SEQUENCE")
            .map_err(bad_spki)?;
        let bits = r
            .read(TAG_BIT_STRING, "subjectPublicKey BIT STRING")
            .map_err(bad_spki)?;
        r.finish("the SubjectPublicKeyInfo").map_err(bad_spki)?;
        let Some((&0, key_bytes)) = bits.split_first() else {
            return Err(bad_spki(der::malformed(
                "subjectPublicKey BIT STRING has unused bits or is empty",
            )));
        };
        let mut a = DerReader::new(alg);
        let algorithm = a.read(TAG_OID, "algorithm OID").map_err(bad_spki)?;
        let key = if algorithm == oid::RSA_ENCRYPTION {
            if !a.is_empty() {
                a.read(TAG_NULL, "rsaEncryption NULL parameters")
                    .map_err(bad_spki)?;
            }
            a.finish("the AlgorithmIdentifier").map_err(bad_spki)?;
            rsa_public_key_from_der(key_bytes).map_err(bad_spki)?
        } else if algorithm == oid::EC_PUBLIC_KEY {
            let curve_oid = a.read(TAG_OID, "namedCurve OID").map_err(bad_spki)?;
            a.finish("the AlgorithmIdentifier").map_err(bad_spki)?;
            let Some(curve) = Curve::from_oid(curve_oid) else {
                return Err(Error::Unsupported(format!(
                    "policy signer curve {} (use P-256 or P-384)",
                    der::oid_to_string(curve_oid).unwrap_or_else(|| "(malformed OID)".into())
                )));
            };
            let n = curve.coordinate_len();
            match key_bytes.split_first() {
                Some((&4, xy)) if xy.len() == 2 * n => {
                    let (x, y) = xy.split_at(n);
                    PublicKey::Ec {
                        curve,
                        x: x.to_vec(),
                        y: y.to_vec(),
                    }
                }
                _ => {
                    return Err(Error::BadInput(format!(
                        "policy signer public key: the {} point is not an uncompressed point \
                         of {} bytes",
                        curve.name(),
                        2 * n + 1
                    )))
                }
            }
        } else {
            return Err(Error::Unsupported(format!(
                "policy signer key algorithm {} (use RSA or ECC P-256/P-384)",
                der::oid_to_string(algorithm).unwrap_or_else(|| "(malformed OID)".into())
            )));
        };
        SignerKey::new(key)
    }

    /// From a PEM "PUBLIC KEY" (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &[u8]) -> Result<SignerKey> {
        let der = crate::keyfile::pem_decode(pem, "PUBLIC KEY").map_err(bad_spki)?;
        SignerKey::from_spki_der(&der)
    }

    /// From the TPM2B_PUBLIC carried in a PolicyAuthorize body.
    pub fn from_tpm2b_public(blob: &[u8]) -> Result<SignerKey> {
        SignerKey::new(KeyPublic::parse(blob)?.key)
    }

    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The TPMT_PUBLIC for TPM2_LoadExternal (no sensitive part).
    pub fn tpmt_public(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match &self.key {
            PublicKey::Rsa { modulus, exponent } => {
                w.u16(TPM_ALG_RSA)
                    .u16(TPM_ALG_SHA256)
                    .u32(SIGNER_ATTRIBUTES)
                    .tpm2b(&[])
                    .u16(TPM_ALG_NULL)
                    .u16(TPM_ALG_NULL)
                    .u16(self.key.bits() as u16)
                    .u32(*exponent)
                    .tpm2b(modulus);
            }
            PublicKey::Ec { curve, x, y } => {
                w.u16(TPM_ALG_ECC)
                    .u16(TPM_ALG_SHA256)
                    .u32(SIGNER_ATTRIBUTES)
                    .tpm2b(&[])
                    .u16(TPM_ALG_NULL)
                    .u16(TPM_ALG_NULL)
                    .u16(curve.tpm_id())
                    .u16(TPM_ALG_NULL)
                    .tpm2b(x)
                    .tpm2b(y);
            }
        }
        w.into_vec()
    }

    /// The TPM2B_PUBLIC (size-prefixed TPMT_PUBLIC), as PolicyAuthorize bodies carry it.
    pub fn tpm2b_public(&self) -> Vec<u8> {
        crate::wire::with_size_prefix(&self.tpmt_public())
    }

    /// The Name: nameAlg (SHA-256) ‖ SHA-256(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
        name.extend(Hash::Sha256.digest(&[&self.tpmt_public()]));
        name
    }

    /// PKCS#1 RSAPublicKey DER (RSA keys only).
    pub fn rsa_public_key_der(&self) -> Option<Vec<u8>> {
        self.key.rsa_public_key_der()
    }

    /// systemd's `pkfp`: SHA-256 of the PKCS#1 RSAPublicKey DER (RSA keys only).
    pub fn systemd_fingerprint(&self) -> Option<Vec<u8>> {
        self.rsa_public_key_der()
            .map(|d| Hash::Sha256.digest(&[&d]))
    }

    /// A signature as OpenSSL makes it, for this key: RSA PKCS#1 v1.5 bytes (as long as the
    /// modulus) or a DER ECDSA-Sig-Value; `hash` is the digest the signer used.
    pub fn signature(&self, signature: &[u8], hash: Hash) -> Result<TpmSignature> {
        match &self.key {
            PublicKey::Rsa { modulus, .. } => {
                if signature.len() != modulus.len() {
                    return Err(Error::BadInput(format!(
                        "RSA policy signature is {} bytes, the signer's modulus {}",
                        signature.len(),
                        modulus.len()
                    )));
                }
                Ok(TpmSignature::RsaSsa {
                    hash,
                    signature: signature.to_vec(),
                })
            }
            PublicKey::Ec { curve, .. } => {
                let (r, s) = ecdsa_from_der(signature, curve.coordinate_len())?;
                Ok(TpmSignature::Ecdsa { hash, r, s })
            }
        }
    }
}

impl SignerKey {
    /// Checks in software that `signature` signs `digest` (an aHash), so that a policy
    /// signed offline is checked before it is added: ECDSA on P-256/P-384, RSASSA and
    /// RSA-PSS. A signature of a scheme this key cannot make is an error.
    pub fn verify_digest(&self, digest: &[u8], signature: &TpmSignature) -> Result<bool> {
        use crate::attest::signature::{self as check, TpmSignature as Checked};
        let checked = match signature {
            TpmSignature::Null => {
                return Err(Error::BadInput(
                    "the signed policy carries no signature".into(),
                ))
            }
            TpmSignature::RsaSsa { hash, signature } => Checked::Rsassa {
                hash: *hash,
                sig: signature.clone(),
            },
            TpmSignature::RsaPss { hash, signature } => Checked::Rsapss {
                hash: *hash,
                sig: signature.clone(),
            },
            TpmSignature::Ecdsa { hash, r, s } => Checked::Ecdsa {
                hash: *hash,
                r: r.clone(),
                s: s.clone(),
            },
        };
        let fits = matches!(
            (&self.key, &checked),
            (PublicKey::Ec { .. }, Checked::Ecdsa { .. })
                | (
                    PublicKey::Rsa { .. },
                    Checked::Rsassa { .. } | Checked::Rsapss { .. }
                )
        );
        if !fits {
            return Err(Error::BadInput(format!(
                "signed policy: a {} signature cannot come from the {} policy signer",
                checked.scheme_name(),
                check::key_description(&self.key)
            )));
        }
        Ok(check::verify_digest(&self.key, "policy signer", digest, &checked).is_ok())
    }
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
fn rsa_public_key_from_der(der_bytes: &[u8]) -> Result<PublicKey> {
    let mut outer = DerReader::new(der_bytes);
    let body = outer.read(TAG_SEQUENCE, "RSAPublicKey SEQUENCE")?;
    outer.finish("the RSAPublicKey")?;
    let mut r = DerReader::new(body);
    let n = r.read(TAG_INTEGER, "RSA modulus INTEGER")?;
    let e = r.read(TAG_INTEGER, "RSA publicExponent INTEGER")?;
    r.finish("the RSAPublicKey")?;
    let modulus = der::decode_unsigned(n, "RSA modulus")?.to_vec();
    let e = der::decode_unsigned(e, "RSA publicExponent")?;
    if e.len() > 4 {
        return Err(Error::Unsupported(
            "RSA public exponents above 32 bits".into(),
        ));
    }
    let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    Ok(PublicKey::Rsa { modulus, exponent })
}

/// r and s of a DER ECDSA-Sig-Value, left-padded to `n` bytes.
fn ecdsa_from_der(sig: &[u8], n: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    let bad = |e: Error| match e {
        Error::KeyFile(m) => Error::BadInput(format!("ECDSA policy signature: {m}")),
        other => other,
    };
    let mut outer = DerReader::new(sig);
    let body = outer
        .read(TAG_SEQUENCE, "ECDSA-Sig-Value SEQUENCE")
        .map_err(bad)?;
    outer.finish("the ECDSA-Sig-Value").map_err(bad)?;
    let mut r = DerReader::new(body);
    let mut int = |what: &str| -> Result<Vec<u8>> {
        let v = r.read(TAG_INTEGER, what).map_err(bad)?;
        let v = der::decode_unsigned(v, what).map_err(bad)?;
        if v.is_empty() || v.len() > n {
            return Err(Error::BadInput(format!(
                "ECDSA policy signature: {what} is zero or longer than the curve ({n} bytes)"
            )));
        }
        let mut out = vec![0u8; n - v.len()];
        out.extend_from_slice(v);
        Ok(out)
    };
    let rv = int("r INTEGER")?;
    let sv = int("s INTEGER")?;
    r.finish("the ECDSA-Sig-Value").map_err(bad)?;
    Ok((rv, sv))
}

/// A TPMT_SIGNATURE of the kinds a policy signer produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmSignature {
    /// sigAlg TPM_ALG_NULL: "no signature yet", as in the PolicyAuthorize of `policy [1]`.
    Null,
    RsaSsa {
        hash: Hash,
        signature: Vec<u8>,
    },
    RsaPss {
        hash: Hash,
        signature: Vec<u8>,
    },
    Ecdsa {
        hash: Hash,
        r: Vec<u8>,
        s: Vec<u8>,
    },
}

impl TpmSignature {
    pub fn marshal(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            TpmSignature::Null => {
                w.u16(TPM_ALG_NULL);
            }
            TpmSignature::RsaSsa { hash, signature } => {
                w.u16(TPM_ALG_RSASSA).u16(hash.tpm_alg()).tpm2b(signature);
            }
            TpmSignature::RsaPss { hash, signature } => {
                w.u16(TPM_ALG_RSAPSS).u16(hash.tpm_alg()).tpm2b(signature);
            }
            TpmSignature::Ecdsa { hash, r, s } => {
                w.u16(TPM_ALG_ECDSA).u16(hash.tpm_alg()).tpm2b(r).tpm2b(s);
            }
        }
        w.into_vec()
    }

    /// Reads a TPMT_SIGNATURE; `what` names it in errors.
    pub(crate) fn unmarshal(r: &mut Reader, what: &str) -> Result<TpmSignature> {
        let truncated = |_| Error::BadInput(format!("{what}: truncated TPMT_SIGNATURE"));
        let alg = r.u16().map_err(truncated)?;
        if alg == TPM_ALG_NULL {
            return Ok(TpmSignature::Null);
        }
        let hash_alg = r.u16().map_err(truncated)?;
        let hash = Hash::from_tpm_alg(hash_alg).ok_or_else(|| {
            Error::BadInput(format!(
                "{what}: signature hash 0x{hash_alg:04x} is not a known hash"
            ))
        })?;
        match alg {
            TPM_ALG_RSASSA | TPM_ALG_RSAPSS => {
                let signature = r.tpm2b().map_err(truncated)?.to_vec();
                Ok(if alg == TPM_ALG_RSASSA {
                    TpmSignature::RsaSsa { hash, signature }
                } else {
                    TpmSignature::RsaPss { hash, signature }
                })
            }
            TPM_ALG_ECDSA => {
                let rv = r.tpm2b().map_err(truncated)?.to_vec();
                let sv = r.tpm2b().map_err(truncated)?.to_vec();
                Ok(TpmSignature::Ecdsa { hash, r: rv, s: sv })
            }
            other => Err(Error::Unsupported(format!(
                "{what}: signature scheme 0x{other:04x} (RSASSA, RSAPSS or ECDSA)"
            ))),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, TpmSignature::Null)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::hex;

    /// Test vectors of systemd's test-tpm2.c (tpm2b_public_from_openssl_pkey): PEM public
    /// keys (hex of the PEM text) and the Names and fingerprints systemd computes.
    const SYSTEMD_EC_PEM: &str = "2d2d2d2d2d424547494e205055424c4943204b45592d2d2d2d2d0a4d466b77457759484b6f5a497a6a3043415159494b6f5a497a6a30444151634451674145726a6e4575424c73496c3972687068777976584e50686a346a426e500a44586e794a304b395579724e6764365335413532542b6f5376746b436a365a726c34685847337741515558706f426c532b7448717452714c35513d3d0a2d2d2d2d2d454e44205055424c4943204b45592d2d2d2d2d0a";
    const SYSTEMD_RSA_PEM: &str = "2d2d2d2d2d424547494e205055424c4943204b45592d2d2d2d2d0a4d494942496a414e42676b71686b6947397730424151454641414f43415138414d49494243674b4341514541795639434950652f505852337a436f63787045300a6a575262546c3568585844436b472f584b79374b6d2f4439584942334b734f5a31436a5937375571372f674359363170697838697552756a73413464503165380a593445336c68556d374a332b6473766b626f4b64553243626d52494c2f6675627771694c4d587a41673342575278747234547545443533527a373634554650640a307a70304b68775231496230444c67772f344e67566f314146763378784b4d6478774d45683567676b73733038326332706c354a504e32587677426f744e6b4d0a5471526c745a4a35355244436170696e7153334577376675646c4e735851357746766c7432377a7637344b585165616d704c59433037584f6761304c676c536b0a79754774586b6a50542f735542544a705374615769674d5a6f714b7479563463515a58436b4a52684459614c47587673504233687a766d5671636e6b47654e540a65774944415141420a2d2d2d2d2d454e44205055424c4943204b45592d2d2d2d2d0a";

    #[test]
    fn names_match_systemd() {
        let ec = SignerKey::from_pem(&hex(SYSTEMD_EC_PEM)).unwrap();
        assert_eq!(
            ec.name(),
            hex("000b5c127e4dbaf8fb7bac641e8db25a84a48db876ca7ee3bd317ae1a4554ff72f17")
        );
        assert_eq!(ec.systemd_fingerprint(), None);
        let rsa = SignerKey::from_pem(&hex(SYSTEMD_RSA_PEM)).unwrap();
        assert_eq!(
            rsa.name(),
            hex("000be1bd75c7976e7a30e9e82223b81a9eff0d42c30618e588db592ed5da94455e81")
        );
        assert_eq!(
            rsa.systemd_fingerprint().unwrap(),
            hex("d9186d13a7fd5b3644cee05448f49ad3574e82a2942ff93cf89598d36cca78a9")
        );
        // The TPM2B_PUBLIC parses back to the same key.
        assert_eq!(
            SignerKey::from_tpm2b_public(&rsa.tpm2b_public()).unwrap(),
            rsa
        );
        assert_eq!(
            SignerKey::from_tpm2b_public(&ec.tpm2b_public()).unwrap(),
            ec
        );
    }

    #[test]
    fn signatures_marshal_and_read_back() {
        let ec = SignerKey::from_pem(&hex(SYSTEMD_EC_PEM)).unwrap();
        // r with a leading 0x00 (high bit set), s short (31 bytes): both padded to 32.
        let mut der_sig = vec![0x30, 0x44, 0x02, 0x21, 0x00];
        der_sig.extend([0x80; 32]);
        der_sig.extend([0x02, 0x1F]);
        der_sig.extend([0x11; 31]);
        let sig = ec.signature(&der_sig, Hash::Sha256).unwrap();
        let mut s = vec![0u8];
        s.extend([0x11; 31]);
        assert_eq!(
            sig,
            TpmSignature::Ecdsa {
                hash: Hash::Sha256,
                r: vec![0x80; 32],
                s
            }
        );
        let wire = sig.marshal();
        assert_eq!(wire.get(..6).unwrap(), [0x00, 0x18, 0x00, 0x0B, 0x00, 0x20]);
        assert_eq!(
            TpmSignature::unmarshal(&mut Reader::new(&wire), "x").unwrap(),
            sig
        );
        assert_eq!(TpmSignature::Null.marshal(), [0x00, 0x10]);
        for bad in [&der_sig[..10], &[0x30, 0x00][..], &[0x02, 0x01, 0x01][..]] {
            assert!(ec.signature(bad, Hash::Sha256).is_err());
        }
        let rsa = SignerKey::from_pem(&hex(SYSTEMD_RSA_PEM)).unwrap();
        let e = rsa
            .signature(&[1; 255], Hash::Sha256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("255 bytes"), "{e}");
        let sig = rsa.signature(&[1; 256], Hash::Sha256).unwrap();
        assert_eq!(
            sig.marshal().get(..6).unwrap(),
            [0x00, 0x14, 0x00, 0x0B, 0x01, 0x00]
        );
    }

    #[test]
    fn bad_keys_are_refused_clearly() {
        let e = SignerKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x00])
            .unwrap_err()
            .to_string();
        assert!(e.contains("policy signer public key"), "{e}");
        let e =
            SignerKey::from_pem(b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("PUBLIC KEY"), "{e}");
        let e = SignerKey::new(PublicKey::Rsa {
            modulus: vec![0xFF; 128],
            exponent: 65537,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("1024 bits"), "{e}");
        let e = SignerKey::new(PublicKey::Rsa {
            modulus: vec![0xFF; 256],
            exponent: 3,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("exponent 3"), "{e}");
    }
}
