//! TPM2_Quote evidence: the quote file `tpmkey quote` writes, and its offline verification
//! against the verifier's nonce, the PCRs it asked for and the values it expects.
//!
//! Quote file format (version 1), all integers big-endian:
//!
//! ```text
//! u16 version = 1
//! TPM2B_ATTEST         quoted  (TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE)
//! u16 size || TPMT_SIGNATURE   (the AK's signature)
//! TPML_PCR_SELECTION   which PCR values follow
//! u32 count || count x TPM2B_DIGEST   the values, in selection order (banks in list
//!                      order, PCRs ascending within a bank), as TPM2_PCR_Read gave them
//! ```
//!
//! stored as PEM with the label "TPMKEY QUOTE"; the binary form is accepted too.

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::pem_encode;
use crate::wire::{Reader, Writer};

pub use super::attestation::PcrSelection;
use super::attestation::{bank_name, message, selection_text, AttestType, Attestation, Attested};
use super::certify::check_signed_attestation;
use super::signature::{AkPublic, TpmSignature};
use super::{evidence, parse_hex, pem_or_binary, read_version, truncated, Finding, Findings};

pub const PEM_LABEL: &str = "TPMKEY QUOTE";
const VERSION: u16 = 1;
/// More PCR values than banks x 256 PCRs cannot be meant.
const MAX_VALUES: u32 = 16 * 256;

/// One PCR's value in one bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrValue {
    pub hash: Hash,
    pub pcr: u8,
    pub value: Vec<u8>,
}

/// What TPM2_Quote produced, with the PCR values the device read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteFile {
    /// TPMS_ATTEST (without the TPM2B size).
    pub quoted: Vec<u8>,
    /// TPMT_SIGNATURE.
    pub signature: Vec<u8>,
    /// Values in selection order.
    pub pcrs: Vec<PcrValue>,
}

impl PcrValue {
    /// Pairs digests read from the TPM (TPM2_PCR_Read's values, in order) with the selection
    /// they answer, in selection order: banks in list order, PCRs ascending.
    pub fn from_selection(
        selection: &[PcrSelection],
        digests: &[Vec<u8>],
    ) -> Result<Vec<PcrValue>> {
        let slots: Vec<(Hash, u8)> = selection
            .iter()
            .flat_map(|s| s.pcrs.iter().map(move |&p| (s.hash, p)))
            .collect();
        if slots.len() != digests.len() {
            return Err(evidence(format!(
                "{} PCR values for the {} PCRs of {}",
                digests.len(),
                slots.len(),
                selection_text(selection)
            )));
        }
        slots
            .into_iter()
            .zip(digests)
            .map(|((hash, pcr), value)| {
                if value.len() == hash.len() {
                    Ok(PcrValue {
                        hash,
                        pcr,
                        value: value.clone(),
                    })
                } else {
                    Err(evidence(format!(
                        "PCR {}:{pcr} has {} bytes, not {}",
                        bank_name(hash),
                        value.len(),
                        hash.len()
                    )))
                }
            })
            .collect()
    }
}

/// The selection of `values`, grouped by bank in order of first appearance.
fn selection_of(values: &[PcrValue]) -> Vec<PcrSelection> {
    let mut list: Vec<PcrSelection> = Vec::new();
    for v in values {
        match list.iter_mut().find(|s| s.hash == v.hash) {
            Some(s) => s.pcrs.push(v.pcr),
            None => list.push(PcrSelection {
                hash: v.hash,
                pcrs: vec![v.pcr],
            }),
        }
    }
    list
}

impl QuoteFile {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(VERSION).tpm2b(&self.quoted).tpm2b(&self.signature);
        PcrSelection::write_list(&mut w, &selection_of(&self.pcrs));
        w.u32(u32::try_from(self.pcrs.len()).unwrap_or(u32::MAX));
        for v in &self.pcrs {
            w.tpm2b(&v.value);
        }
        w.into_vec()
    }

    pub fn to_pem(&self) -> String {
        pem_encode(PEM_LABEL, &self.to_bytes())
    }

    pub fn from_bytes(data: &[u8]) -> Result<QuoteFile> {
        let t = |_| truncated("quote file");
        let mut r = Reader::new(data);
        read_version(&mut r, "quote file", VERSION)?;
        let quoted = r.tpm2b().map_err(t)?.to_vec();
        let signature = r.tpm2b().map_err(t)?.to_vec();
        let selection = PcrSelection::read_list(&mut r)
            .map_err(|e| evidence(format!("quote file PCR selection: {}", message(&e))))?;
        for (i, s) in selection.iter().enumerate() {
            if selection[..i].iter().any(|o| o.hash == s.hash) {
                return Err(evidence(format!(
                    "quote file selects bank {} twice",
                    bank_name(s.hash)
                )));
            }
        }
        let count = r.u32().map_err(t)?;
        if count > MAX_VALUES {
            return Err(evidence(format!("quote file claims {count} PCR values")));
        }
        let mut digests = Vec::new();
        for _ in 0..count {
            digests.push(r.tpm2b().map_err(t)?.to_vec());
        }
        let pcrs = PcrValue::from_selection(&selection, &digests)
            .map_err(|e| evidence(format!("quote file: {}", message(&e))))?;
        if !r.is_empty() {
            return Err(evidence("quote file has trailing bytes"));
        }
        Ok(QuoteFile {
            quoted,
            signature,
            pcrs,
        })
    }

    /// PEM ("TPMKEY QUOTE") or binary.
    pub fn decode(data: &[u8]) -> Result<QuoteFile> {
        Self::from_bytes(&pem_or_binary(data, PEM_LABEL)?)
    }
}

/// A value the verifier expects in one PCR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedPcr {
    pub hash: Hash,
    pub pcr: u8,
    pub value: Vec<u8>,
}

impl ExpectedPcr {
    /// `sha256:16=<hex>`.
    pub fn parse(text: &str) -> Result<ExpectedPcr> {
        let bad = |m: &str| Error::BadInput(format!("expected PCR \"{text}\": {m}"));
        let (bank, value) = text
            .split_once('=')
            .ok_or_else(|| bad("not BANK:PCR=HEX"))?;
        let (alg, pcr) = bank
            .split_once(':')
            .ok_or_else(|| bad("not BANK:PCR=HEX"))?;
        let hash = Hash::from_name(alg).map_err(|e| bad(&message(&e)))?;
        let pcr: u8 = pcr
            .trim()
            .parse()
            .map_err(|_| bad("the PCR index is not 0-255"))?;
        let value = parse_hex(value).map_err(|e| bad(&message(&e)))?;
        if value.len() != hash.len() {
            return Err(bad(&format!(
                "a {} value has {} bytes, not {}",
                bank_name(hash),
                value.len(),
                hash.len()
            )));
        }
        Ok(ExpectedPcr { hash, pcr, value })
    }
}

/// What the verifier asked for and expects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuoteRequest {
    pub nonce: Vec<u8>,
    /// The PCRs asked for; empty accepts whatever the quote covers.
    pub selection: Vec<PcrSelection>,
    pub expected: Vec<ExpectedPcr>,
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteReport {
    /// The parsed quote (None when it does not parse or is not a quote: see the findings).
    pub attestation: Option<Attestation>,
    /// The PCR selection the TPM signed.
    pub quoted_selection: Vec<PcrSelection>,
    pub findings: Findings,
}

impl QuoteReport {
    pub fn is_verified(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The PCR digest TPM2_Quote signs: H(values in selection order), H the signing hash.
pub fn pcr_digest(hash: Hash, values: &[PcrValue]) -> Vec<u8> {
    let parts: Vec<&[u8]> = values.iter().map(|v| v.value.as_slice()).collect();
    hash.digest(&parts)
}

/// Verifies a quote: AK signature, type, nonce, the PCRs quoted against those asked, the
/// reported values against the signed PCR digest, and each expected value. Each failed check
/// is its own finding.
pub fn verify(quote: &QuoteFile, ak: &AkPublic, request: &QuoteRequest) -> QuoteReport {
    let mut findings = Findings::default();
    let attestation = check_signed_attestation(
        &quote.quoted,
        &quote.signature,
        ak,
        AttestType::Quote,
        &request.nonce,
        &mut findings,
    );
    let mut quoted_selection = Vec::new();
    if let Some(Attested::Quote {
        selection,
        pcr_digest: signed,
    }) = attestation.as_ref().map(|a| &a.attested)
    {
        quoted_selection.clone_from(selection);
        if !request.selection.is_empty() && !same_selection(selection, &request.selection) {
            findings.push(Finding::SelectionMismatch {
                asked: selection_text(&request.selection),
                quoted: selection_text(selection),
            });
        }
        let reported = selection_of(&quote.pcrs);
        if !same_order(selection, &reported) {
            findings.push(Finding::PcrValues(format!(
                "the file reports {} but the quote covers {}",
                selection_text(&reported),
                selection_text(selection)
            )));
        } else {
            // The quote's digest uses the signing scheme's hash.
            let hash = TpmSignature::parse(&quote.signature)
                .map(|s| s.hash())
                .or_else(|_| Hash::from_len(signed.len()))
                .unwrap_or(Hash::Sha256);
            let computed = pcr_digest(hash, &quote.pcrs);
            if computed != *signed {
                findings.push(Finding::PcrDigestMismatch {
                    quoted: signed.clone(),
                    computed,
                });
            }
        }
    }
    for e in &request.expected {
        match quote
            .pcrs
            .iter()
            .find(|v| v.hash == e.hash && v.pcr == e.pcr)
        {
            None => findings.push(Finding::PcrNotQuoted {
                hash: e.hash,
                pcr: e.pcr,
            }),
            Some(v) if v.value != e.value => findings.push(Finding::PcrDiffers {
                hash: e.hash,
                pcr: e.pcr,
                expected: e.value.clone(),
                got: v.value.clone(),
            }),
            Some(_) => {}
        }
    }
    QuoteReport {
        attestation,
        quoted_selection,
        findings,
    }
}

/// Same banks with the same PCRs, in any bank order (empty banks ignored).
fn same_selection(a: &[PcrSelection], b: &[PcrSelection]) -> bool {
    let norm = |l: &[PcrSelection]| {
        let mut v: Vec<(u16, Vec<u8>)> = l
            .iter()
            .filter(|s| !s.pcrs.is_empty())
            .map(|s| (s.hash.tpm_alg(), s.pcrs.clone()))
            .collect();
        v.sort();
        v
    };
    norm(a) == norm(b)
}

/// Same banks and PCRs in the same order: the order the PCR digest is computed in.
fn same_order(quoted: &[PcrSelection], reported: &[PcrSelection]) -> bool {
    let q: Vec<&PcrSelection> = quoted.iter().filter(|s| !s.pcrs.is_empty()).collect();
    q.len() == reported.len() && q.iter().zip(reported).all(|(a, b)| *a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<PcrValue> {
        [0u8, 7, 16]
            .iter()
            .map(|&pcr| PcrValue {
                hash: Hash::Sha256,
                pcr,
                value: vec![pcr; 32],
            })
            .collect()
    }

    #[test]
    fn file_round_trip_and_truncation() {
        let q = QuoteFile {
            quoted: vec![1, 2, 3],
            signature: vec![4, 5],
            pcrs: values(),
        };
        assert_eq!(QuoteFile::decode(q.to_pem().as_bytes()).unwrap(), q);
        let sel = PcrSelection::parse_list("sha256:0,7,16").unwrap();
        let digests: Vec<Vec<u8>> = values().into_iter().map(|v| v.value).collect();
        assert_eq!(PcrValue::from_selection(&sel, &digests).unwrap(), values());
        assert!(PcrValue::from_selection(&sel, &digests[..2]).is_err());
        let bytes = q.to_bytes();
        for n in 0..bytes.len() {
            assert!(QuoteFile::from_bytes(&bytes[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn zero_pcrs_digest_matches_swtpm() {
        // tpm2_quote sha256:0,7,16 on a fresh swtpm: calcDigest.
        let zero: Vec<PcrValue> = values()
            .into_iter()
            .map(|v| PcrValue {
                value: vec![0; 32],
                ..v
            })
            .collect();
        assert_eq!(
            super::super::hex(&pcr_digest(Hash::Sha256, &zero)),
            "2ea9ab9198d1638007400cd2c3bef1cc745b864b76011a0e1bc52180ac6452d4"
        );
    }

    #[test]
    fn expected_pcr_syntax() {
        let e = ExpectedPcr::parse(&format!("sha256:16={}", "ab".repeat(32))).unwrap();
        assert_eq!((e.hash, e.pcr), (Hash::Sha256, 16));
        assert!(ExpectedPcr::parse("sha256:16=abcd").is_err());
        assert!(ExpectedPcr::parse("sha256=00").is_err());
        assert!(ExpectedPcr::parse(&format!("sha256:300={}", "ab".repeat(32))).is_err());
    }
}
