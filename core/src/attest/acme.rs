//! The ACME device-attest-01 attestation object of format "tpm"
//! (draft-ietf-acme-device-attest): a CBOR map
//! `{fmt: "tpm", attStmt: {ver: "2.0", alg, x5c: [AK cert, intermediates...], sig, certInfo,
//! pubArea}}` whose certInfo is a TPM2_Certify of the key the CSR names, signed by the AK in
//! x5c[0], with extraData = SHA-256(keyAuthorization). The verifier checks are those step-ca
//! applies; the chain of x5c to the attestation roots is the caller's (a PKI library).

use base64ct::{Base64UrlUnpadded, Encoding};

use crate::error::Result;
use crate::hash::Hash;
use crate::public_key::PublicKey;
use crate::wire::with_size_prefix;

use super::attestation::message;
use super::cbor::Value;
use super::certificate::{Certificate, OID_EKU_AIK_CERTIFICATE};
use super::certify::{verify_parts, CertifiedKey};
use super::signature::{key_description, AkPublic, TpmSignature};
use super::{evidence, Finding, Findings};

/// COSE algorithm identifiers step-ca accepts for the AK signature.
pub const COSE_ES256: i64 = -7;
pub const COSE_RS256: i64 = -257;
pub const COSE_RS1: i64 = -65535;

/// The attestation statement, fields as they travel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationObject {
    /// COSE algorithm of `sig`.
    pub alg: i64,
    /// DER certificates: the AK's first, then intermediates.
    pub x5c: Vec<Vec<u8>>,
    /// TPMT_SIGNATURE.
    pub sig: Vec<u8>,
    /// TPMS_ATTEST.
    pub cert_info: Vec<u8>,
    /// TPMT_PUBLIC of the attested key (no size prefix).
    pub pub_area: Vec<u8>,
}

/// certInfo.extraData the ACME server expects: SHA-256 of the key authorization
/// (token "." base64url(JWK thumbprint)).
pub fn key_authorization_digest(key_authorization: &str) -> Vec<u8> {
    Hash::Sha256.digest(&[key_authorization.as_bytes()])
}

/// The COSE algorithm of a TPM signature, if step-ca accepts it.
pub fn cose_alg(sig: &TpmSignature) -> Option<i64> {
    match sig {
        TpmSignature::Ecdsa {
            hash: Hash::Sha256, ..
        } => Some(COSE_ES256),
        TpmSignature::Rsassa {
            hash: Hash::Sha256, ..
        } => Some(COSE_RS256),
        TpmSignature::Rsassa {
            hash: Hash::Sha1, ..
        } => Some(COSE_RS1),
        _ => None,
    }
}

impl AttestationObject {
    pub fn to_cbor(&self) -> Vec<u8> {
        let statement = Value::Map(vec![
            (Value::text("ver"), Value::text("2.0")),
            (Value::text("alg"), Value::Int(i128::from(self.alg))),
            (
                Value::text("x5c"),
                Value::Array(self.x5c.iter().cloned().map(Value::Bytes).collect()),
            ),
            (Value::text("sig"), Value::Bytes(self.sig.clone())),
            (
                Value::text("certInfo"),
                Value::Bytes(self.cert_info.clone()),
            ),
            (Value::text("pubArea"), Value::Bytes(self.pub_area.clone())),
        ]);
        Value::Map(vec![
            (Value::text("fmt"), Value::text("tpm")),
            (Value::text("attStmt"), statement),
        ])
        .encode()
    }

    /// What the challenge response carries: `{"attObj": <this>}`.
    pub fn to_base64url(&self) -> String {
        Base64UrlUnpadded::encode_string(&self.to_cbor())
    }

    pub fn from_base64url(text: &str) -> Result<AttestationObject> {
        let cbor = Base64UrlUnpadded::decode_vec(text.trim())
            .map_err(|_| evidence("attestation object is not unpadded base64url"))?;
        Self::from_cbor(&cbor)
    }

    /// Decodes the object and checks its shape: fmt "tpm", ver "2.0", every field present
    /// with its CBOR type.
    pub fn from_cbor(cbor: &[u8]) -> Result<AttestationObject> {
        let obj = Value::decode(cbor)?;
        match obj.get("fmt") {
            Some(Value::Text(f)) if f == "tpm" => {}
            Some(Value::Text(f)) => {
                return Err(evidence(format!(
                    "attestation object fmt is \"{f}\", not \"tpm\""
                )))
            }
            _ => return Err(evidence("attestation object has no text field fmt")),
        }
        let Some(st) = obj.get("attStmt") else {
            return Err(evidence("attestation object has no attStmt"));
        };
        match st.get("ver") {
            Some(Value::Text(v)) if v == "2.0" => {}
            _ => return Err(evidence("attStmt ver is not \"2.0\"")),
        }
        let alg = match st.get("alg") {
            Some(Value::Int(a)) => {
                i64::try_from(*a).map_err(|_| evidence("attStmt alg is out of range"))?
            }
            _ => return Err(evidence("attStmt has no integer alg")),
        };
        let bytes = |key: &str| match st.get(key) {
            Some(Value::Bytes(b)) => Ok(b.clone()),
            _ => Err(evidence(format!("attStmt has no byte string {key}"))),
        };
        let x5c = match st.get("x5c") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|c| match c {
                    Value::Bytes(b) => Ok(b.clone()),
                    _ => Err(evidence("attStmt x5c holds a non-byte-string")),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(evidence("attStmt x5c is not a non-empty array")),
        };
        Ok(AttestationObject {
            alg,
            x5c,
            sig: bytes("sig")?,
            cert_info: bytes("certInfo")?,
            pub_area: bytes("pubArea")?,
        })
    }
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeReport {
    /// x5c[0], the AK certificate (None when it does not parse).
    pub ak_certificate: Option<Certificate>,
    /// The attested key (None when pubArea does not parse).
    pub key: Option<CertifiedKey>,
    pub findings: Findings,
}

impl AcmeReport {
    pub fn is_verified(&self) -> bool {
        self.findings.is_empty()
    }
}

/// What the ACME server knows of the challenge it sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// token "." base64url(JWK thumbprint).
    pub key_authorization: &'a str,
    /// The public key of the order's CSR, when the order has one.
    pub csr_key: Option<&'a PublicKey>,
    /// The permanent-identifier being validated, when the order names one.
    pub permanent_identifier: Option<&'a str>,
}

/// step-ca's checks of a "tpm" statement: alg accepted and matching sig; x5c[0] an AK
/// certificate (EKU tcg-kp-AIKCertificate 2.23.133.8.3, not a CA) whose key verifies sig over
/// certInfo; certInfo a TPM-generated certify of pubArea; extraData ==
/// SHA-256(keyAuthorization); when the AK certificate names PermanentIdentifiers, one of them
/// is the challenged identifier; and, when given, pubArea's key == the CSR's key.
pub fn verify(obj: &AttestationObject, challenge: &Challenge) -> AcmeReport {
    let mut findings = Findings::default();
    if ![COSE_ES256, COSE_RS256, COSE_RS1].contains(&obj.alg) {
        findings.push(Finding::Statement(format!(
            "alg {} is not ES256 (-7), RS256 (-257) or RS1 (-65535)",
            obj.alg
        )));
    } else if let Ok(sig) = TpmSignature::parse(&obj.sig) {
        if cose_alg(&sig) != Some(obj.alg) {
            findings.push(Finding::Statement(format!(
                "alg {} does not match the {} {} signature",
                obj.alg,
                sig.scheme_name(),
                sig.hash().name()
            )));
        }
    }
    let ak_certificate = match obj.x5c.first().map(|c| Certificate::parse(c)) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            findings.push(Finding::Statement(format!("x5c[0]: {}", message(&e))));
            None
        }
        None => {
            findings.push(Finding::Statement("x5c is empty".into()));
            None
        }
    };
    let ak = match &ak_certificate {
        Some(cert) => {
            if !cert.has_extended_key_usage(OID_EKU_AIK_CERTIFICATE) {
                findings.push(Finding::Statement(format!(
                    "x5c[0] lacks the extended key usage tcg-kp-AIKCertificate \
                     {OID_EKU_AIK_CERTIFICATE} (it has: {})",
                    if cert.extended_key_usages.is_empty() {
                        "none".to_string()
                    } else {
                        cert.extended_key_usages.join(", ")
                    }
                )));
            }
            if let Some(id) = challenge.permanent_identifier {
                if !cert.permanent_identifiers.is_empty()
                    && !cert.permanent_identifiers.iter().any(|p| p == id)
                {
                    findings.push(Finding::Statement(format!(
                        "x5c[0] PermanentIdentifier {} is not the challenged \"{id}\"",
                        cert.permanent_identifiers.join(", ")
                    )));
                }
            }
            if cert.is_ca == Some(true) {
                findings.push(Finding::Statement(
                    "x5c[0] is a CA certificate, not an AK certificate".into(),
                ));
            }
            match cert.public_key() {
                Ok(key) => Some(AkPublic { key, name: None }),
                Err(e) => {
                    findings.push(Finding::Statement(format!(
                        "x5c[0] public key: {}",
                        message(&e)
                    )));
                    None
                }
            }
        }
        None => None,
    };
    let nonce = key_authorization_digest(challenge.key_authorization);
    let key = match &ak {
        Some(ak) => {
            let report = verify_parts(
                &obj.cert_info,
                &obj.sig,
                &with_size_prefix(&obj.pub_area),
                None,
                ak,
                &nonce,
            );
            findings.0.extend(report.findings.0);
            report.key
        }
        None => CertifiedKey::parse(&with_size_prefix(&obj.pub_area)).ok(),
    };
    if let (Some(want), Some(k)) = (challenge.csr_key, &key) {
        match &k.key {
            Some(got) if got == want => {}
            Some(got) => findings.push(Finding::KeyMismatch(format!(
                "pubArea holds an {} key that is not the CSR's {} key",
                key_description(got),
                key_description(want)
            ))),
            None => findings.push(Finding::KeyMismatch(
                "pubArea's key cannot be compared with the CSR's".into(),
            )),
        }
    }
    AcmeReport {
        ak_certificate,
        key,
        findings,
    }
}
