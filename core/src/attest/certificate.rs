//! The few fields of an X.509 certificate a TPM verifier reads: the subject public key (EK
//! and AK certificates), extended key usages (tcg-kp-EKCertificate 2.23.133.8.1,
//! tcg-kp-AIKCertificate 2.23.133.8.3), basicConstraints, whether the subject is empty, and
//! the PermanentIdentifier names of subjectAltName (RFC 4043, the ACME device identifier).
//! Chains and certificate signatures are checked by [`super::chain`] (for EK certificates)
//! or by the caller (a PKI library, `openssl verify`): this module does not decide trust.

use crate::error::{Error, Result};
use crate::keyfile::der::{self, Reader, TAG_BOOLEAN, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
use crate::public_key::PublicKey;

use super::{evidence, pem_or_binary, signature::public_key_from_spki};

pub const OID_EKU_EK_CERTIFICATE: &str = "2.23.133.8.1";
pub const OID_EKU_AIK_CERTIFICATE: &str = "2.23.133.8.3";
const OID_EXTENDED_KEY_USAGE: &str = "2.5.29.37";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_PERMANENT_IDENTIFIER: &str = "1.3.6.1.5.5.7.8.3";
/// GeneralName otherName: [0] IMPLICIT, constructed.
const TAG_OTHER_NAME: u8 = 0xA0;
const TAG_UTF8_STRING: u8 = 0x0C;

/// What a verifier reads from one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// Extended key usages as dotted OIDs (empty without the extension).
    pub extended_key_usages: Vec<String>,
    /// basicConstraints cA, None without the extension.
    pub is_ca: Option<bool>,
    /// True when the subject Name has no RDN (AK certificates per the EK profile).
    pub subject_empty: bool,
    /// identifierValue of each subjectAltName PermanentIdentifier (RFC 4043).
    pub permanent_identifiers: Vec<String>,
}

fn cert_error(e: Error) -> Error {
    match e {
        Error::KeyFile(m) => evidence(format!("certificate: {m}")),
        other => other,
    }
}

impl Certificate {
    /// A certificate in DER or PEM ("CERTIFICATE").
    pub fn parse(data: &[u8]) -> Result<Certificate> {
        Self::from_der(&pem_or_binary(data, "CERTIFICATE")?).map_err(cert_error)
    }

    fn from_der(data: &[u8]) -> Result<Certificate> {
        let mut outer = Reader::new(data);
        let cert = outer.read(TAG_SEQUENCE, "Certificate")?;
        outer.finish("the certificate")?;
        let mut c = Reader::new(cert);
        let tbs = c.read(TAG_SEQUENCE, "tbsCertificate")?;
        let mut t = Reader::new(tbs);
        if t.peek_tag() == Some(der::tag_explicit(0)) {
            t.read_any("version")?;
        }
        t.read_any("serialNumber")?;
        t.read(TAG_SEQUENCE, "signature algorithm")?;
        t.read(TAG_SEQUENCE, "issuer")?;
        t.read(TAG_SEQUENCE, "validity")?;
        let subject = t.read(TAG_SEQUENCE, "subject")?;
        let spki = der::tlv(TAG_SEQUENCE, t.read(TAG_SEQUENCE, "subjectPublicKeyInfo")?);
        let mut certificate = Certificate {
            spki,
            extended_key_usages: Vec::new(),
            is_ca: None,
            subject_empty: subject.is_empty(),
            permanent_identifiers: Vec::new(),
        };
        while let Some(tag) = t.peek_tag() {
            let (_, content) = t.read_any("optional tbsCertificate field")?;
            if tag == der::tag_explicit(3) {
                certificate.read_extensions(content)?;
            }
        }
        Ok(certificate)
    }

    fn read_extensions(&mut self, explicit: &[u8]) -> Result<()> {
        let list = der::read_single(explicit, TAG_SEQUENCE, "extensions [3]", "Extensions")?;
        let mut r = Reader::new(&list);
        while !r.is_empty() {
            let mut ext = Reader::new(r.read(TAG_SEQUENCE, "Extension")?);
            let oid = der::oid_to_string(ext.read(TAG_OID, "extnID")?).unwrap_or_default();
            if ext.peek_tag() == Some(TAG_BOOLEAN) {
                ext.read(TAG_BOOLEAN, "critical")?;
            }
            let value = ext.read(TAG_OCTET_STRING, "extnValue")?;
            match oid.as_str() {
                OID_EXTENDED_KEY_USAGE => {
                    let usages =
                        der::read_single(value, TAG_SEQUENCE, "extKeyUsage", "KeyPurposeIds")?;
                    let mut u = Reader::new(&usages);
                    while !u.is_empty() {
                        let purpose = u.read(TAG_OID, "KeyPurposeId")?;
                        self.extended_key_usages
                            .push(der::oid_to_string(purpose).unwrap_or_default());
                    }
                }
                OID_BASIC_CONSTRAINTS => {
                    let mut bc = Reader::new(value);
                    let mut inner = Reader::new(bc.read(TAG_SEQUENCE, "BasicConstraints")?);
                    let ca = if inner.peek_tag() == Some(TAG_BOOLEAN) {
                        der::decode_bool(inner.read(TAG_BOOLEAN, "cA")?, "cA")?
                    } else {
                        false
                    };
                    self.is_ca = Some(ca);
                }
                OID_SUBJECT_ALT_NAME => self.read_subject_alt_name(value)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// GeneralNames; only otherName PermanentIdentifier is kept.
    fn read_subject_alt_name(&mut self, value: &[u8]) -> Result<()> {
        let names = der::read_single(value, TAG_SEQUENCE, "subjectAltName", "GeneralNames")?;
        let mut r = Reader::new(&names);
        while !r.is_empty() {
            let (tag, name) = r.read_any("GeneralName")?;
            if tag != TAG_OTHER_NAME {
                continue;
            }
            let mut other = Reader::new(name);
            let oid = der::oid_to_string(other.read(TAG_OID, "otherName type-id")?);
            if oid.as_deref() != Some(OID_PERMANENT_IDENTIFIER) {
                continue;
            }
            let id = der::read_single(
                other.read(der::tag_explicit(0), "otherName value")?,
                TAG_SEQUENCE,
                "otherName value [0]",
                "PermanentIdentifier",
            )?;
            let mut fields = Reader::new(&id);
            if fields.peek_tag() == Some(TAG_UTF8_STRING) {
                let value = fields.read(TAG_UTF8_STRING, "identifierValue")?;
                self.permanent_identifiers
                    .push(String::from_utf8_lossy(value).into_owned());
            }
        }
        Ok(())
    }

    /// The subject public key (EC P-256 / P-384 or RSA).
    pub fn public_key(&self) -> Result<PublicKey> {
        public_key_from_spki(&self.spki)
    }

    pub fn has_extended_key_usage(&self, oid: &str) -> bool {
        self.extended_key_usages.iter().any(|u| u == oid)
    }
}
