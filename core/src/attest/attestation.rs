//! TPMS_ATTEST (TPM 2.0 Part 2, 10.12.12), the structure an attestation key signs, and the
//! TPML_PCR_SELECTION it carries in quotes. Parsing is strict: every size is checked against
//! the bytes present, trailing bytes are refused, and a wrong magic says the TPM did not
//! produce the structure.

use std::fmt;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::wire::{Reader, Writer};

use super::{evidence, truncated};

/// TPM_GENERATED_VALUE: TPMS_ATTEST starts with it when the TPM built the structure.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
pub const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
pub const TPM_ST_ATTEST_CREATION: u16 = 0x801A;

/// TPM2B_NAME holds at most a hash algorithm id and a SHA-512 digest.
const MAX_NAME: usize = 2 + 64;
/// TPM2B_DATA is sized by TPMT_HA.
const MAX_DATA: usize = 2 + 64;
/// HASH_COUNT is small on every TPM; this bound only keeps allocations sane.
const MAX_BANKS: u32 = 16;
/// 32 select bytes name PCRs 0..=255, the range of a u8 index.
const MAX_SELECT: u8 = 32;
/// A TPMS_PCR_SELECTION's select array has at least PCR_SELECT_MIN (3) bytes.
const MIN_SELECT: usize = 3;

/// The kinds of attestation a verifier handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttestType {
    Certify,
    Quote,
    Creation,
}

impl AttestType {
    pub fn tag(self) -> u16 {
        match self {
            AttestType::Certify => TPM_ST_ATTEST_CERTIFY,
            AttestType::Quote => TPM_ST_ATTEST_QUOTE,
            AttestType::Creation => TPM_ST_ATTEST_CREATION,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AttestType::Certify => "TPM_ST_ATTEST_CERTIFY",
            AttestType::Quote => "TPM_ST_ATTEST_QUOTE",
            AttestType::Creation => "TPM_ST_ATTEST_CREATION",
        }
    }
}

/// TPMS_CLOCK_INFO: lets a verifier notice reboots (resetCount) between two quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    pub safe: bool,
}

/// The attested union, for the types tpmkey verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attested {
    /// TPMS_CERTIFY_INFO: the certified object's Name and qualified Name.
    Certify {
        name: Vec<u8>,
        qualified_name: Vec<u8>,
    },
    /// TPMS_QUOTE_INFO: which PCRs, and the digest of their values.
    Quote {
        selection: Vec<PcrSelection>,
        pcr_digest: Vec<u8>,
    },
    /// TPMS_CREATION_INFO: the object's Name and H(TPMS_CREATION_DATA).
    Creation {
        object_name: Vec<u8>,
        creation_hash: Vec<u8>,
    },
}

/// A parsed TPMS_ATTEST whose magic is TPM_GENERATED_VALUE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub qualified_signer: Vec<u8>,
    pub extra_data: Vec<u8>,
    pub clock_info: ClockInfo,
    pub firmware_version: u64,
    pub attested: Attested,
}

impl Attestation {
    /// Parses a TPMS_ATTEST (the contents of TPM2B_ATTEST, without its size).
    pub fn parse(cert_info: &[u8]) -> Result<Attestation> {
        let t = |_| truncated("certInfo (TPMS_ATTEST)");
        let mut r = Reader::new(cert_info);
        let magic = r.u32().map_err(t)?;
        if magic != TPM_GENERATED_VALUE {
            return Err(evidence(format!(
                "certInfo magic is 0x{magic:08x}, not TPM_GENERATED_VALUE 0x{TPM_GENERATED_VALUE:08x}: \
                 the TPM did not produce this structure"
            )));
        }
        let tag = r.u16().map_err(t)?;
        let qualified_signer = bounded(&mut r, MAX_NAME, "qualifiedSigner")?;
        let extra_data = bounded(&mut r, MAX_DATA, "extraData")?;
        let clock = r.u64().map_err(t)?;
        let reset_count = r.u32().map_err(t)?;
        let restart_count = r.u32().map_err(t)?;
        let safe = match r.u8().map_err(t)? {
            0 => false,
            1 => true,
            v => {
                return Err(evidence(format!(
                    "certInfo clockInfo.safe is {v}, not a TPMI_YES_NO"
                )))
            }
        };
        let firmware_version = r.u64().map_err(t)?;
        let attested = match tag {
            TPM_ST_ATTEST_CERTIFY => Attested::Certify {
                name: bounded(&mut r, MAX_NAME, "certified name")?,
                qualified_name: bounded(&mut r, MAX_NAME, "certified qualifiedName")?,
            },
            TPM_ST_ATTEST_QUOTE => Attested::Quote {
                selection: PcrSelection::read_list(&mut r)
                    .map_err(|e| evidence(format!("certInfo quote: {}", message(&e))))?,
                pcr_digest: bounded(&mut r, 64, "pcrDigest")?,
            },
            TPM_ST_ATTEST_CREATION => Attested::Creation {
                object_name: bounded(&mut r, MAX_NAME, "objectName")?,
                creation_hash: bounded(&mut r, 64, "creationHash")?,
            },
            other => {
                return Err(evidence(format!(
                    "certInfo type 0x{other:04x} is not a certify, quote or creation attestation"
                )))
            }
        };
        if !r.is_empty() {
            return Err(evidence(format!(
                "certInfo has {} bytes after the attested structure",
                r.rest().len()
            )));
        }
        Ok(Attestation {
            qualified_signer,
            extra_data,
            clock_info: ClockInfo {
                clock,
                reset_count,
                restart_count,
                safe,
            },
            firmware_version,
            attested,
        })
    }

    pub fn kind(&self) -> AttestType {
        match self.attested {
            Attested::Certify { .. } => AttestType::Certify,
            Attested::Quote { .. } => AttestType::Quote,
            Attested::Creation { .. } => AttestType::Creation,
        }
    }
}

/// A TPM2B field of certInfo, refused when larger than its TPM type allows.
fn bounded(r: &mut Reader, max: usize, what: &str) -> Result<Vec<u8>> {
    let v = r
        .tpm2b()
        .map_err(|_| truncated(&format!("certInfo {what}")))?;
    if v.len() > max {
        return Err(evidence(format!(
            "certInfo {what} has {} bytes, more than the {max} its type holds",
            v.len()
        )));
    }
    Ok(v.to_vec())
}

/// The text of an error without its category prefix, to nest it in another message.
pub(super) fn message(e: &Error) -> String {
    match e {
        Error::Evidence(m) | Error::BadInput(m) | Error::Unsupported(m) => m.clone(),
        other => other.to_string(),
    }
}

/// One bank of a TPML_PCR_SELECTION: a hash algorithm and PCR indices in ascending order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrSelection {
    pub hash: Hash,
    pub pcrs: Vec<u8>,
}

impl PcrSelection {
    /// Reads a TPML_PCR_SELECTION.
    pub fn read_list(r: &mut Reader) -> Result<Vec<PcrSelection>> {
        let t = |_| truncated("TPML_PCR_SELECTION");
        let count = r.u32().map_err(t)?;
        if count > MAX_BANKS {
            return Err(evidence(format!(
                "TPML_PCR_SELECTION claims {count} banks (at most {MAX_BANKS})"
            )));
        }
        let mut list = Vec::new();
        for _ in 0..count {
            let alg = r.u16().map_err(t)?;
            let hash = Hash::from_tpm_alg(alg).ok_or_else(|| {
                evidence(format!("PCR bank with unknown hash algorithm 0x{alg:04x}"))
            })?;
            let size = r.u8().map_err(t)?;
            if size > MAX_SELECT {
                return Err(evidence(format!(
                    "PCR selection of {size} bytes (at most {MAX_SELECT})"
                )));
            }
            let select = r.take(usize::from(size)).map_err(t)?;
            let pcrs = select
                .iter()
                .enumerate()
                .flat_map(|(byte, bits)| {
                    (0..8u8).filter_map(move |bit| {
                        // byte < MAX_SELECT (32), so the index fits a u8.
                        let index = u8::try_from(byte * 8).ok()? + bit;
                        (bits & (1 << bit) != 0).then_some(index)
                    })
                })
                .collect();
            list.push(PcrSelection { hash, pcrs });
        }
        Ok(list)
    }

    /// Writes a TPML_PCR_SELECTION (select arrays of at least 3 bytes, as TPMs expect).
    pub fn write_list(w: &mut Writer, list: &[PcrSelection]) {
        w.u32(u32::try_from(list.len()).unwrap_or(u32::MAX));
        for s in list {
            let highest = s.pcrs.iter().copied().max().map_or(0, usize::from);
            let size = (highest / 8 + 1).max(MIN_SELECT);
            let mut select = vec![0u8; size];
            for &p in &s.pcrs {
                select[usize::from(p / 8)] |= 1 << (p % 8);
            }
            w.u16(s.hash.tpm_alg()).u8(size as u8).bytes(&select);
        }
    }

    /// Parses the tpm2-tools syntax: `sha256:0,7,16` or `sha1:0+sha256:0,7` (banks joined by
    /// `+`); PCRs are sorted, duplicates refused.
    pub fn parse_list(text: &str) -> Result<Vec<PcrSelection>> {
        let bad = |m: String| Error::BadInput(format!("PCR selection \"{text}\": {m}"));
        let mut list: Vec<PcrSelection> = Vec::new();
        for bank in text.split('+') {
            let Some((alg, pcrs)) = bank.split_once(':') else {
                return Err(bad(format!("\"{bank}\" is not BANK:PCR,PCR,...")));
            };
            let hash = Hash::from_name(alg).map_err(|e| bad(message(&e)))?;
            if list.iter().any(|s| s.hash == hash) {
                return Err(bad(format!("bank {alg} given twice")));
            }
            let mut indices = Vec::new();
            for p in pcrs.split(',') {
                let i: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("\"{p}\" is not a PCR index (0-255)")))?;
                if indices.contains(&i) {
                    return Err(bad(format!("PCR {i} given twice")));
                }
                indices.push(i);
            }
            indices.sort_unstable();
            list.push(PcrSelection {
                hash,
                pcrs: indices,
            });
        }
        Ok(list)
    }
}

/// A bank name as tpm2-tools writes it: `sha256`.
pub fn bank_name(hash: Hash) -> String {
    hash.name().to_ascii_lowercase()
}

impl fmt::Display for PcrSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pcrs: Vec<String> = self.pcrs.iter().map(u8::to_string).collect();
        write!(f, "{}:{}", bank_name(self.hash), pcrs.join(","))
    }
}

/// A selection list as text: `sha256:0,7,16+sha1:0`.
pub fn selection_text(list: &[PcrSelection]) -> String {
    if list.is_empty() {
        return "no PCRs".into();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// certInfo of `tpm2_certify` on swtpm (facts file 4.3 layout).
    const CERTIFY: &str = "ff54434780170022000bcca2684d84bb882a3167eaec19152f0f9571451782c40affb4479286125baac6000400ff55aa00000000000018680000000100000000012019102300163636\
        0022000b54a8ab4843248b2fe0db59f4f6cb08abfd6bdeff65840057d3c29ee721646dff0022000bc3376cb6d7227bdb6312c0da213e1b50f03e872e18f7feafedcd30d557861362";

    use crate::hex::from_spaced as hex;

    #[test]
    fn parses_certify_from_swtpm() {
        let a = Attestation::parse(&hex(CERTIFY)).unwrap();
        assert_eq!(a.kind(), AttestType::Certify);
        assert_eq!(a.extra_data, vec![0x00, 0xff, 0x55, 0xaa]);
        assert_eq!(a.clock_info.reset_count, 1);
        assert!(a.clock_info.safe);
        let Attested::Certify { name, .. } = &a.attested else {
            panic!("not certify")
        };
        assert_eq!(name.len(), 34);
        assert_eq!(&name[..2], &[0x00, 0x0b]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = hex(CERTIFY);
        for n in 0..full.len() {
            let e = Attestation::parse(&full[..n]).unwrap_err();
            assert!(matches!(e, Error::Evidence(_)), "{n}: {e}");
        }
        let mut longer = full.clone();
        longer.push(0);
        assert!(message(&Attestation::parse(&longer).unwrap_err()).contains("after"));
        let mut magic = full;
        magic[0] ^= 1;
        assert!(message(&Attestation::parse(&magic).unwrap_err()).contains("TPM_GENERATED_VALUE"));
    }

    #[test]
    fn pcr_selection_round_trip() {
        let list = PcrSelection::parse_list("sha256:16,0,7+sha1:23").unwrap();
        assert_eq!(selection_text(&list), "sha256:0,7,16+sha1:23");
        let mut w = Writer::new();
        PcrSelection::write_list(&mut w, &list);
        let bytes = w.into_vec();
        assert_eq!(bytes, hex("00000002000b03810001000403000080"));
        let back = PcrSelection::read_list(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(back, list);
        assert!(PcrSelection::parse_list("sha256:0,0").is_err());
        assert!(PcrSelection::parse_list("md5:0").is_err());
        assert!(PcrSelection::parse_list("sha256:256").is_err());
    }
}
