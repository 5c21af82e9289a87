//! TPM2_Certify and TPM2_CertifyCreation evidence: the bundle `tpmkey attest` writes, and its
//! offline verification. A verified bundle proves that the TPM holding the AK also holds the
//! key whose public area is in the bundle; the report then says how that key may be used
//! (its attributes and authPolicy) and, for CertifyCreation, the PCRs and parent it was
//! created under.
//!
//! Bundle format (version 1), all integers big-endian:
//!
//! ```text
//! u16 version = 1
//! TPM2B_ATTEST    certInfo   (TPMS_ATTEST as the AK signed it)
//! u16 size || TPMT_SIGNATURE  (the AK's signature, sized so the parser can check it)
//! TPM2B_PUBLIC    pubArea    (the certified key's public area)
//! [TPM2B_CREATION_DATA]      (only with CertifyCreation: the key's creationData)
//! ```
//!
//! stored as PEM with the label "TPMKEY CERTIFY BUNDLE"; the binary form is accepted too.

use std::fmt;

use tss_esapi::structures::Public;
use tss_esapi::traits::UnMarshall;

use crate::error::Result;
use crate::hash::Hash;
use crate::keyfile::pem_encode;
use crate::public_key::{KeyPublic, PublicKey};
use crate::wire::{tpm2b_contents, Reader, Writer};

use super::attestation::{message, AttestType, Attestation, Attested, PcrSelection};
use super::signature::{AkPublic, TpmSignature};
use super::{evidence, hex, pem_or_binary, read_version, truncated, Finding, Findings};

pub const PEM_LABEL: &str = "TPMKEY CERTIFY BUNDLE";
const VERSION: u16 = 1;

/// What TPM2_Certify produced, with the certified key's public area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifyBundle {
    /// TPMS_ATTEST (without the TPM2B size).
    pub cert_info: Vec<u8>,
    /// TPMT_SIGNATURE.
    pub signature: Vec<u8>,
    /// TPM2B_PUBLIC of the certified key (with its size).
    pub public: Vec<u8>,
    /// TPMS_CREATION_DATA (without the TPM2B size), for CertifyCreation evidence.
    pub creation_data: Option<Vec<u8>>,
}

impl CertifyBundle {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(VERSION)
            .tpm2b(&self.cert_info)
            .tpm2b(&self.signature)
            .bytes(&self.public);
        if let Some(c) = &self.creation_data {
            w.tpm2b(c);
        }
        w.into_vec()
    }

    pub fn to_pem(&self) -> String {
        pem_encode(PEM_LABEL, &self.to_bytes())
    }

    /// Decodes the binary form; the fields' inner structure is checked by [`verify`].
    pub fn from_bytes(data: &[u8]) -> Result<CertifyBundle> {
        let t = |_| truncated("certify bundle");
        let mut r = Reader::new(data);
        read_version(&mut r, "certify bundle", VERSION)?;
        let cert_info = r.tpm2b().map_err(t)?.to_vec();
        let signature = r.tpm2b().map_err(t)?.to_vec();
        let public = r.tpm2b_raw().map_err(t)?.to_vec();
        let creation_data = if r.is_empty() {
            None
        } else {
            Some(r.tpm2b().map_err(t)?.to_vec())
        };
        if !r.is_empty() {
            return Err(evidence("certify bundle has trailing bytes"));
        }
        Ok(CertifyBundle {
            cert_info,
            signature,
            public,
            creation_data,
        })
    }

    /// PEM ("TPMKEY CERTIFY BUNDLE") or binary.
    pub fn decode(data: &[u8]) -> Result<CertifyBundle> {
        Self::from_bytes(&pem_or_binary(data, PEM_LABEL)?)
    }
}

/// The certified key's object attributes that matter to a verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAttributes {
    pub fixed_tpm: bool,
    pub fixed_parent: bool,
    /// Set when the TPM generated the sensitive part; clear for imported keys.
    pub sensitive_data_origin: bool,
    pub user_with_auth: bool,
    pub admin_with_policy: bool,
    pub no_da: bool,
    pub restricted: bool,
    pub decrypt: bool,
    pub sign: bool,
}

impl KeyAttributes {
    pub fn origin(&self) -> &'static str {
        if self.sensitive_data_origin {
            "generated in the TPM"
        } else {
            "imported"
        }
    }
}

impl fmt::Display for KeyAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |b: bool| u8::from(b);
        write!(
            f,
            "fixedTPM={} fixedParent={} sensitiveDataOrigin={} ({}) userWithAuth={} \
             adminWithPolicy={} noDA={} restricted={} decrypt={} sign={}",
            flag(self.fixed_tpm),
            flag(self.fixed_parent),
            flag(self.sensitive_data_origin),
            self.origin(),
            flag(self.user_with_auth),
            flag(self.admin_with_policy),
            flag(self.no_da),
            flag(self.restricted),
            flag(self.decrypt),
            flag(self.sign),
        )
    }
}

/// The certified key as its public area describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedKey {
    /// nameAlg || H(TPMT_PUBLIC).
    pub name: Vec<u8>,
    pub name_alg: Hash,
    pub attributes: KeyAttributes,
    /// The authPolicy digest (empty: no policy).
    pub auth_policy: Vec<u8>,
    /// The public key, for ECC P-256/P-384 and RSA keys with a SHA-256 name.
    pub key: Option<PublicKey>,
}

/// How the key's authPolicy compares with a policy digest the verifier expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyCheck {
    Match,
    Mismatch { expected: Vec<u8>, got: Vec<u8> },
}

impl CertifiedKey {
    /// Reads a TPM2B_PUBLIC (with its size) and computes its Name with its own nameAlg.
    pub fn parse(tpm2b_public: &[u8]) -> Result<CertifiedKey> {
        let tpmt = tpm2b_contents(tpm2b_public)
            .map_err(|_| evidence("pubArea: the TPM2B_PUBLIC size does not match its bytes"))?;
        let public = Public::unmarshall(tpmt)
            .map_err(|e| evidence(format!("pubArea does not parse: {e}")))?;
        let alg = u16::from_be_bytes([*tpmt.get(2).unwrap_or(&0), *tpmt.get(3).unwrap_or(&0)]);
        let name_alg = Hash::from_tpm_alg(alg)
            .ok_or_else(|| evidence(format!("pubArea nameAlg 0x{alg:04x} is not a hash")))?;
        let mut name = alg.to_be_bytes().to_vec();
        name.extend_from_slice(&name_alg.digest(&[tpmt]));
        let a = public.object_attributes();
        Ok(CertifiedKey {
            name,
            name_alg,
            attributes: KeyAttributes {
                fixed_tpm: a.fixed_tpm(),
                fixed_parent: a.fixed_parent(),
                sensitive_data_origin: a.sensitive_data_origin(),
                user_with_auth: a.user_with_auth(),
                admin_with_policy: a.admin_with_policy(),
                no_da: a.no_da(),
                restricted: a.restricted(),
                decrypt: a.decrypt(),
                sign: a.sign_encrypt(),
            },
            auth_policy: public.auth_policy().value().to_vec(),
            key: KeyPublic::parse(tpm2b_public).ok().map(|k| k.key),
        })
    }

    pub fn auth_policy_hex(&self) -> String {
        hex(&self.auth_policy)
    }

    /// Compares the authPolicy with the digest of the policy the verifier approves (computed
    /// by the policy engine from the expected PCR values or signer).
    pub fn check_policy(&self, expected: &[u8]) -> PolicyCheck {
        if self.auth_policy == expected {
            PolicyCheck::Match
        } else {
            PolicyCheck::Mismatch {
                expected: expected.to_vec(),
                got: self.auth_policy.clone(),
            }
        }
    }
}

/// TPMS_CREATION_DATA (Part 2, 15.1): the state the TPM recorded when it created the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreationData {
    /// The PCRs selected at creation, and the digest of their values then.
    pub pcr_selection: Vec<PcrSelection>,
    pub pcr_digest: Vec<u8>,
    pub locality: u8,
    pub parent_name_alg: u16,
    pub parent_name: Vec<u8>,
    pub parent_qualified_name: Vec<u8>,
    pub outside_info: Vec<u8>,
}

impl CreationData {
    /// Parses TPMS_CREATION_DATA (without the TPM2B size).
    pub fn parse(data: &[u8]) -> Result<CreationData> {
        let t = |_| truncated("creationData (TPMS_CREATION_DATA)");
        let mut r = Reader::new(data);
        let pcr_selection = PcrSelection::read_list(&mut r)
            .map_err(|e| evidence(format!("creationData: {}", message(&e))))?;
        let c = CreationData {
            pcr_selection,
            pcr_digest: r.tpm2b().map_err(t)?.to_vec(),
            locality: r.u8().map_err(t)?,
            parent_name_alg: r.u16().map_err(t)?,
            parent_name: r.tpm2b().map_err(t)?.to_vec(),
            parent_qualified_name: r.tpm2b().map_err(t)?.to_vec(),
            outside_info: r.tpm2b().map_err(t)?.to_vec(),
        };
        if !r.is_empty() {
            return Err(evidence("creationData has trailing bytes"));
        }
        Ok(c)
    }
}

/// The outcome of [`verify`]: what the evidence says, and every check that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifyReport {
    /// The parsed certInfo (None when it does not parse: see the findings).
    pub attestation: Option<Attestation>,
    /// The certified key (None when its public area does not parse).
    pub key: Option<CertifiedKey>,
    /// The key's creation data, verified against creationHash (CertifyCreation only).
    pub creation: Option<CreationData>,
    pub findings: Findings,
}

impl CertifyReport {
    pub fn is_verified(&self) -> bool {
        self.findings.is_empty()
    }

    /// Adds a finding when the key's authPolicy is not `expected`.
    pub fn expect_policy(&mut self, expected: &[u8]) {
        if let Some(PolicyCheck::Mismatch { expected, got }) =
            self.key.as_ref().map(|k| k.check_policy(expected))
        {
            self.findings
                .push(Finding::PolicyMismatch { expected, got });
        }
    }
}

/// Verifies a certify bundle against the AK and the verifier's nonce: the AK signature over
/// certInfo, its magic and type (certify, or creation when the bundle holds creation data),
/// extraData == nonce, Name(pubArea) == the certified Name, and for CertifyCreation
/// creationHash == H(creationData). Every failed check is a finding.
pub fn verify(bundle: &CertifyBundle, ak: &AkPublic, nonce: &[u8]) -> CertifyReport {
    verify_parts(
        &bundle.cert_info,
        &bundle.signature,
        &bundle.public,
        bundle.creation_data.as_deref(),
        ak,
        nonce,
    )
}

/// [`verify`] on the fields as they travel (TPM2B_PUBLIC with its size).
pub(crate) fn verify_parts(
    cert_info: &[u8],
    signature: &[u8],
    public: &[u8],
    creation_data: Option<&[u8]>,
    ak: &AkPublic,
    nonce: &[u8],
) -> CertifyReport {
    let mut findings = Findings::default();
    let want = if creation_data.is_some() {
        AttestType::Creation
    } else {
        AttestType::Certify
    };
    let attestation =
        check_signed_attestation(cert_info, signature, ak, want, nonce, &mut findings);
    let key = match CertifiedKey::parse(public) {
        Ok(k) => Some(k),
        Err(e) => {
            findings.push(Finding::Malformed(message(&e)));
            None
        }
    };
    let mut creation = None;
    if let (Some(a), Some(k)) = (&attestation, &key) {
        let certified = match &a.attested {
            Attested::Certify { name, .. } => Some(name),
            Attested::Creation {
                object_name,
                creation_hash,
            } => {
                creation = creation_data
                    .and_then(|data| check_creation(data, k, creation_hash, &mut findings));
                Some(object_name)
            }
            // check_signed_attestation returned no attestation of another type.
            Attested::Quote { .. } => None,
        };
        if let Some(certified) = certified.filter(|c| **c != k.name) {
            findings.push(Finding::NameMismatch {
                certified: certified.clone(),
                computed: k.name.clone(),
            });
        }
    }
    CertifyReport {
        attestation,
        key,
        creation,
        findings,
    }
}

/// creationHash == H_nameAlg(creationData), then the creation data parsed.
fn check_creation(
    data: &[u8],
    key: &CertifiedKey,
    creation_hash: &[u8],
    findings: &mut Findings,
) -> Option<CreationData> {
    let computed = key.name_alg.digest(&[data]);
    if computed != creation_hash {
        findings.push(Finding::CreationHashMismatch {
            certified: creation_hash.to_vec(),
            computed,
        });
        return None;
    }
    match CreationData::parse(data) {
        Ok(c) => Some(c),
        Err(e) => {
            findings.push(Finding::Malformed(message(&e)));
            None
        }
    }
}

/// The checks every signed attestation gets: the AK signature over the exact certInfo
/// bytes, the magic, the type and extraData == `nonce`. Returns the parsed certInfo when
/// it parses and has the wanted type.
pub(crate) fn check_signed_attestation(
    cert_info: &[u8],
    signature: &[u8],
    ak: &AkPublic,
    want: AttestType,
    nonce: &[u8],
    findings: &mut Findings,
) -> Option<Attestation> {
    match TpmSignature::parse(signature) {
        Ok(sig) => {
            if let Err(why) = ak.verify(cert_info, &sig) {
                findings.push(Finding::BadSignature(why));
            }
        }
        Err(e) => findings.push(Finding::BadSignature(message(&e))),
    }
    let attestation = match Attestation::parse(cert_info) {
        Ok(a) => a,
        Err(e) => {
            findings.push(Finding::Malformed(message(&e)));
            return None;
        }
    };
    if attestation.kind() != want {
        findings.push(Finding::WrongType {
            expected: want,
            got: attestation.kind(),
        });
        return None;
    }
    if attestation.extra_data != nonce {
        findings.push(Finding::NonceMismatch {
            expected: nonce.to_vec(),
            got: attestation.extra_data.clone(),
        });
    }
    Some(attestation)
}

#[cfg(test)]
mod tests {
    use super::super::parse_hex;
    use super::*;

    // tpm2_certify on swtpm: an ECC P-256 key certified by an ECDSA P-256 AK, nonce 00ff55aa.
    const CERT_INFO: &str = "ff54434780170022000bcca2684d84bb882a3167eaec19152f0f9571451782c40affb4479286125baac6000400ff55aa000000000000187800000001000000000120191023001636360022000b54a8ab4843248b2fe0db59f4f6cb08abfd6bdeff65840057d3c29ee721646dff0022000bc3376cb6d7227bdb6312c0da213e1b50f03e872e18f7feafedcd30d557861362";
    const SIGNATURE: &str = "0018000b0020b361a5f448ec69d4659903a7880c69d3d0af3a52d0d57226d57050b7c8d7b95b002037eddfb9c005dc2c7237f646c62b7bfe78cd20a0e65a64a4a91dbb3e5eb490fb";
    const PUBLIC: &str = "00560023000b00060072000000100010000300100020be226b393a3061e55da15cf6b7da391f4a86abcf1af6882df0d8ee4b5a73ba27002000c72d2b4be2f1b332526661ba0a873051aaa0a87cce7a3062b474cdf7cf98c2";
    const AK_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJCyaGBpWDkzDD7ZPJVW1yXb4Oe4W\ndMwA9WaUx0Xiu/OIMMW0oqOD1j5mcNtieu/fmbqwtxs9gUQ9tvu/zHOfCQ==\n-----END PUBLIC KEY-----\n";

    fn bundle() -> CertifyBundle {
        CertifyBundle {
            cert_info: parse_hex(CERT_INFO).unwrap(),
            signature: parse_hex(SIGNATURE).unwrap(),
            public: parse_hex(PUBLIC).unwrap(),
            creation_data: None,
        }
    }

    #[test]
    fn swtpm_bundle_verifies_offline() {
        let ak = AkPublic::parse(AK_PEM.as_bytes()).unwrap();
        let b = CertifyBundle::decode(bundle().to_pem().as_bytes()).unwrap();
        assert_eq!(b, bundle());
        let report = verify(&b, &ak, &[0, 0xff, 0x55, 0xaa]);
        assert!(report.is_verified(), "{}", report.findings);
        let key = report.key.unwrap();
        assert!(key.attributes.fixed_tpm && key.attributes.sensitive_data_origin);
        assert!(key.attributes.user_with_auth);
        assert!(key.auth_policy.is_empty());
        assert!(key.key.is_some());
    }

    #[test]
    fn each_tampering_has_its_own_finding() {
        let ak = AkPublic::parse(AK_PEM.as_bytes()).unwrap();
        let nonce = [0, 0xff, 0x55, 0xaa];
        let mut b = bundle();
        b.cert_info[60] ^= 1;
        let f = verify(&b, &ak, &nonce).findings;
        assert!(matches!(f.0.as_slice(), [Finding::BadSignature(_)]), "{f}");
        let mut b = bundle();
        b.public[30] ^= 1;
        let f = verify(&b, &ak, &nonce).findings;
        assert!(
            matches!(f.0.as_slice(), [Finding::NameMismatch { .. }]),
            "{f}"
        );
        let f = verify(&bundle(), &ak, b"other").findings;
        assert!(
            matches!(f.0.as_slice(), [Finding::NonceMismatch { .. }]),
            "{f}"
        );
        let mut r = verify(&bundle(), &ak, &nonce);
        r.expect_policy(&[1; 32]);
        let want = Finding::PolicyMismatch {
            expected: vec![1; 32],
            got: vec![],
        };
        assert_eq!(r.findings.0, vec![want]);
    }

    #[test]
    fn truncated_bundles_are_errors() {
        let bytes = bundle().to_bytes();
        for n in 0..bytes.len() {
            assert!(CertifyBundle::from_bytes(&bytes[..n]).is_err(), "{n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(CertifyBundle::from_bytes(&longer).is_err());
    }
}
