//! The verifier side of TPM attestation, in pure software: no TPM, no TCTI, no libcrypto.
//! A management system links this to check, from the outside, what a device's TPM proved:
//!
//! * [`certify`]: a key lives in the TPM (TPM2_Certify by an attestation key), with its
//!   attributes (fixedTPM, generated or imported, userWithAuth) and authPolicy;
//! * [`quote`]: the platform's PCRs now (TPM2_Quote with a fresh nonce);
//! * [`credential`]: MakeCredential, which proves an AK lives in the TPM of an EK;
//! * [`acme`]: the ACME device-attest-01 `tpm` attestation object;
//!
//! built on [`attestation`] (TPMS_ATTEST), [`signature`] (TPMT_SIGNATURE and the AK's
//! public key), [`certificate`] (the X.509 fields a verifier reads), [`chain`] (EK
//! certificate chains to the manufacturer's roots) and [`cbor`].
//!
//! Every check that fails is reported as its own [`Finding`]; malformed containers are an
//! [`Error::Evidence`]. Nothing here panics on input.
//!
//! ```no_run
//! use tpmkey::attest::{certify, quote, signature::AkPublic};
//! # fn main() -> tpmkey::Result<()> {
//! let ak = AkPublic::parse(&std::fs::read("ak.pem").unwrap())?;
//! let bundle = certify::CertifyBundle::decode(&std::fs::read("bundle.pem").unwrap())?;
//! let report = certify::verify(&bundle, &ak, b"my nonce");
//! if let Some(key) = &report.key {
//!     println!("{}", key.attributes);
//! }
//! report.findings.check()?; // Err lists every failed check
//!
//! let quote = quote::QuoteFile::decode(&std::fs::read("quote.pem").unwrap())?;
//! let request = quote::QuoteRequest {
//!     nonce: b"fresh nonce".to_vec(),
//!     selection: quote::PcrSelection::parse_list("sha256:0,7,16")?,
//!     expected: vec![quote::ExpectedPcr::parse(&format!("sha256:16={}", "00".repeat(32)))?],
//! };
//! quote::verify(&quote, &ak, &request).findings.check()?;
//! # Ok(()) }
//! ```

pub mod acme;
pub mod attestation;
pub mod cbor;
pub mod certificate;
pub mod certify;
pub mod chain;
pub mod creation;
pub mod credential;
pub mod quote;
pub mod signature;

use std::fmt;

use crate::error::{Error, Result};
use crate::hash::Hash;

pub use attestation::{AttestType, Attestation, Attested, PcrSelection};
pub use signature::{AkPublic, TpmSignature};

pub(crate) fn evidence(msg: impl Into<String>) -> Error {
    Error::Evidence(msg.into())
}

pub(crate) fn truncated(what: &str) -> Error {
    evidence(format!("{what} is truncated"))
}

pub(crate) use crate::hex::hex;

/// Parses hex (upper or lower case, no separators), for nonces and PCR values given as text.
pub fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    crate::hex::unhex(t).ok_or_else(|| Error::BadInput(format!("\"{t}\" is not hex")))
}

/// One check of a verification that failed, with its own message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// The AK's signature over certInfo does not verify (or cannot be checked: the reason).
    BadSignature(String),
    /// certInfo or the key's public area does not parse (wrong magic, truncated, ...).
    Malformed(String),
    /// certInfo is another kind of attestation than the one being verified.
    WrongType {
        expected: AttestType,
        got: AttestType,
    },
    /// extraData is not the verifier's nonce (or the ACME key authorisation digest).
    NonceMismatch { expected: Vec<u8>, got: Vec<u8> },
    /// Name(pubArea) is not the Name the TPM certified.
    NameMismatch {
        certified: Vec<u8>,
        computed: Vec<u8>,
    },
    /// CertifyCreation: the creation data is not what the TPM hashed.
    CreationHashMismatch {
        certified: Vec<u8>,
        computed: Vec<u8>,
    },
    /// The key's authPolicy is not the expected policy digest.
    PolicyMismatch { expected: Vec<u8>, got: Vec<u8> },
    /// The quote covers other PCRs or banks than the verifier asked for.
    SelectionMismatch { asked: String, quoted: String },
    /// The reported PCR values do not match what the quote selected.
    PcrValues(String),
    /// The PCR digest in the quote is not the digest of the reported values.
    PcrDigestMismatch { quoted: Vec<u8>, computed: Vec<u8> },
    /// A PCR's value is not the expected one.
    PcrDiffers {
        hash: Hash,
        pcr: u8,
        expected: Vec<u8>,
        got: Vec<u8>,
    },
    /// An expected value was given for a PCR the quote does not cover.
    PcrNotQuoted { hash: Hash, pcr: u8 },
    /// An ACME attestation statement field is wrong (fmt, ver, alg, x5c).
    Statement(String),
    /// The attested key is not the key the verifier expected (e.g. the CSR's key).
    KeyMismatch(String),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::BadSignature(why) => {
                write!(f, "AK signature over certInfo does not verify: {why}")
            }
            Finding::Malformed(m) => write!(f, "{m}"),
            Finding::WrongType { expected, got } => write!(
                f,
                "certInfo is a {} attestation, expected {}",
                got.name(),
                expected.name()
            ),
            Finding::NonceMismatch { expected, got } => write!(
                f,
                "nonce mismatch: certInfo extraData is {}, expected {}",
                hex(got),
                hex(expected)
            ),
            Finding::NameMismatch {
                certified,
                computed,
            } => write!(
                f,
                "name mismatch: the TPM certified {}, the public area's Name is {}",
                hex(certified),
                hex(computed)
            ),
            Finding::CreationHashMismatch {
                certified,
                computed,
            } => write!(
                f,
                "creation data mismatch: the TPM certified creationHash {}, the bundle's \
                 creationData hashes to {}",
                hex(certified),
                hex(computed)
            ),
            Finding::PolicyMismatch { expected, got } => write!(
                f,
                "authPolicy mismatch: the key's policy is {}, expected {}",
                if got.is_empty() {
                    "empty".to_string()
                } else {
                    hex(got)
                },
                hex(expected)
            ),
            Finding::SelectionMismatch { asked, quoted } => write!(
                f,
                "quote for other PCRs than asked: it covers {quoted}, the verifier asked for {asked}"
            ),
            Finding::PcrValues(m) => write!(f, "PCR values: {m}"),
            Finding::PcrDigestMismatch { quoted, computed } => write!(
                f,
                "PCR digest mismatch: the quote signs {}, the reported PCR values hash to {}",
                hex(quoted),
                hex(computed)
            ),
            Finding::PcrDiffers {
                hash,
                pcr,
                expected,
                got,
            } => write!(
                f,
                "PCR {}:{pcr} differs: expected {} got {}",
                attestation::bank_name(*hash),
                hex(expected),
                hex(got)
            ),
            Finding::PcrNotQuoted { hash, pcr } => write!(
                f,
                "PCR {}:{pcr} has an expected value but is not in the quote",
                attestation::bank_name(*hash)
            ),
            Finding::Statement(m) => write!(f, "attestation statement: {m}"),
            Finding::KeyMismatch(m) => write!(f, "attested key mismatch: {m}"),
        }
    }
}

/// The failed checks of one verification; empty when everything verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, f: Finding) {
        self.0.push(f);
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Finding> {
        self.0.iter()
    }

    /// Ok when every check passed, else `Error::Evidence` listing every failure.
    pub fn check(&self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(evidence(self.to_string()))
        }
    }
}

impl fmt::Display for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "all checks passed");
        }
        let all: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", all.join("; "))
    }
}

/// Reads the u16 format version that starts tpmkey's evidence files.
pub(crate) fn read_version(r: &mut crate::wire::Reader, what: &str, version: u16) -> Result<()> {
    let found = r.u16().map_err(|_| truncated(what))?;
    if found != version {
        return Err(evidence(format!("{what} version {found} is not {version}")));
    }
    Ok(())
}

/// Decodes `data` as the PEM block `label`, or returns it unchanged when it is not PEM.
pub(crate) fn pem_or_binary(data: &[u8], label: &str) -> Result<Vec<u8>> {
    if !data.trim_ascii_start().starts_with(b"-----BEGIN ") {
        return Ok(data.to_vec());
    }
    let (found, body) = pem_rfc7468::decode_vec(data.trim_ascii())
        .map_err(|e| evidence(format!("{label}: PEM does not decode: {e}")))?;
    if found != label {
        return Err(evidence(format!(
            "PEM label is \"{found}\", expected \"{label}\""
        )));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(parse_hex("00ff55AA").unwrap(), vec![0, 0xff, 0x55, 0xaa]);
        assert_eq!(hex(&[0, 0xff]), "00ff");
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("é1").is_err());
    }

    #[test]
    fn pem_label_checked() {
        let pem = crate::keyfile::pem_encode("TPMKEY QUOTE", b"abc");
        assert_eq!(
            pem_or_binary(pem.as_bytes(), "TPMKEY QUOTE").unwrap(),
            b"abc"
        );
        assert!(pem_or_binary(pem.as_bytes(), "PUBLIC KEY").is_err());
        assert_eq!(pem_or_binary(b"\x00\x01", "X").unwrap(), vec![0, 1]);
    }
}
