//! PCR selections (TPML_PCR_SELECTION) as policies name them: parsing from text
//! ("sha256:7,16+sha1:0") and from the wire with range checks, marshalling, and the PCR
//! digest PolicyPCR hashes (the PCR values concatenated in selection order).

use std::fmt;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::wire::{Reader, Writer};

/// PCRs of a PC-client TPM: indices 0..=23.
pub const PCR_COUNT: u8 = 24;
/// The select bitmap of 24 PCRs (TPM's PCR_SELECT_MIN); 4 is accepted on read.
const SIZE_OF_SELECT: u8 = 3;
/// TPML_PCR_SELECTION holds at most one entry per bank (HASH_COUNT); 16 is generous.
const MAX_BANKS: u32 = 16;

/// One TPMS_PCR_SELECTION: a bank and the PCRs selected in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    pub hash: Hash,
    /// Bitmap: bit n selects PCR n.
    pub pcrs: u32,
    /// Bytes of the select bitmap on the wire (3, or 4 as some writers use); part of the
    /// policy digest, so kept as read.
    pub size_of_select: u8,
}

/// A TPML_PCR_SELECTION with at least one PCR selected, every index below [`PCR_COUNT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrSelection {
    banks: Vec<PcrBank>,
}

fn hash_name(h: Hash) -> String {
    h.name().to_ascii_lowercase()
}

impl PcrSelection {
    /// A selection of `indices` in one bank.
    pub fn new(hash: Hash, indices: &[u8]) -> Result<PcrSelection> {
        let mut pcrs = 0u32;
        for &i in indices {
            if i >= PCR_COUNT {
                return Err(Error::BadInput(format!(
                    "PCR index {i} out of range (0-{})",
                    PCR_COUNT - 1
                )));
            }
            pcrs |= 1 << i;
        }
        PcrSelection::from_banks(vec![PcrBank {
            hash,
            pcrs,
            size_of_select: SIZE_OF_SELECT,
        }])
    }

    /// Checks and wraps banks: known hashes (by type), each bank once, indices in range,
    /// at least one PCR.
    pub fn from_banks(banks: Vec<PcrBank>) -> Result<PcrSelection> {
        let bad = |m: String| Error::BadInput(format!("PCR selection: {m}"));
        if banks.is_empty() || banks.len() > MAX_BANKS as usize {
            return Err(bad(format!("{} banks (1 to {MAX_BANKS})", banks.len())));
        }
        for (i, b) in banks.iter().enumerate() {
            if banks
                .get(..i)
                .unwrap_or_default()
                .iter()
                .any(|o| o.hash == b.hash)
            {
                return Err(bad(format!("bank {} selected twice", hash_name(b.hash))));
            }
            if !(3..=4).contains(&b.size_of_select) {
                return Err(bad(format!(
                    "bank {}: sizeofSelect {} out of range (3 or 4)",
                    hash_name(b.hash),
                    b.size_of_select
                )));
            }
            if let Some(i) = (PCR_COUNT..32).find(|i| b.pcrs & (1 << i) != 0) {
                return Err(bad(format!(
                    "bank {}: PCR index {i} out of range (0-{})",
                    hash_name(b.hash),
                    PCR_COUNT - 1
                )));
            }
        }
        if banks.iter().all(|b| b.pcrs == 0) {
            return Err(bad("no PCR selected".into()));
        }
        Ok(PcrSelection { banks })
    }

    /// Parses "bank:i,j,k-l" with banks joined by '+', as tpm2-tools and the engine write
    /// them ("sha256:7,16", "sha256:0-7+sha1:0"). A bare index list means sha256.
    pub fn parse(spec: &str) -> Result<PcrSelection> {
        let bad = |m: String| Error::BadInput(format!("PCR selection \"{spec}\": {m}"));
        let mut banks = Vec::new();
        for part in spec.split('+') {
            let (hash, list) = match part.split_once(':') {
                Some((bank, list)) => (
                    Hash::from_name(bank.trim()).map_err(|e| bad(e.to_string()))?,
                    list,
                ),
                None => (Hash::Sha256, part),
            };
            let mut pcrs = 0u32;
            for item in list.split(',') {
                let item = item.trim();
                let (lo, hi) = item.split_once('-').unwrap_or((item, item));
                let index = |s: &str| -> Result<u8> {
                    s.trim()
                        .parse::<u8>()
                        .ok()
                        .filter(|i| *i < PCR_COUNT)
                        .ok_or_else(|| {
                            bad(format!("\"{s}\" is not a PCR index (0-{})", PCR_COUNT - 1))
                        })
                };
                let (lo, hi) = (index(lo)?, index(hi)?);
                if lo > hi {
                    return Err(bad(format!("range {lo}-{hi} is backwards")));
                }
                for i in lo..=hi {
                    pcrs |= 1 << i;
                }
            }
            banks.push(PcrBank {
                hash,
                pcrs,
                size_of_select: SIZE_OF_SELECT,
            });
        }
        PcrSelection::from_banks(banks).map_err(|e| bad(e.to_string()))
    }

    pub fn banks(&self) -> &[PcrBank] {
        &self.banks
    }

    /// (bank, index) of every selected PCR in selection order: banks as listed, indices
    /// ascending. PCR values are concatenated in this order.
    pub fn pcrs(&self) -> Vec<(Hash, u8)> {
        self.banks
            .iter()
            .flat_map(|b| {
                (0..PCR_COUNT)
                    .filter(move |i| b.pcrs & (1 << i) != 0)
                    .map(move |i| (b.hash, i))
            })
            .collect()
    }

    /// The marshalled TPML_PCR_SELECTION.
    pub fn marshal(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.marshal_into(&mut w);
        w.into_vec()
    }

    pub(crate) fn marshal_into(&self, w: &mut Writer) {
        w.u32(self.banks.len() as u32);
        for b in &self.banks {
            w.u16(b.hash.tpm_alg()).u8(b.size_of_select);
            let bytes = b.pcrs.to_le_bytes();
            w.bytes(bytes.get(..usize::from(b.size_of_select)).unwrap_or(&bytes));
        }
    }

    /// Reads a TPML_PCR_SELECTION; `what` names it in errors. Errors are `Error::BadInput`
    /// naming the bank or index at fault; running off the end is "truncated".
    pub(crate) fn unmarshal(r: &mut Reader, what: &str) -> Result<PcrSelection> {
        let truncated = |_| Error::BadInput(format!("{what}: truncated PCR selection"));
        let count = r.u32().map_err(truncated)?;
        if count == 0 || count > MAX_BANKS {
            return Err(Error::BadInput(format!(
                "{what}: PCR selection count {count} out of range (1 to {MAX_BANKS})"
            )));
        }
        let mut banks = Vec::new();
        for _ in 0..count {
            let alg = r.u16().map_err(truncated)?;
            let hash = Hash::from_tpm_alg(alg).ok_or_else(|| {
                Error::BadInput(format!(
                    "{what}: PCR bank 0x{alg:04x} out of range (sha1, sha256, sha384, sha512)"
                ))
            })?;
            let size = r.u8().map_err(truncated)?;
            if !(3..=4).contains(&size) {
                return Err(Error::BadInput(format!(
                    "{what}: bank {}: sizeofSelect {size} out of range (3 or 4)",
                    hash_name(hash)
                )));
            }
            let bitmap = r.take(usize::from(size)).map_err(truncated)?;
            let mut le = [0u8; 4];
            for (d, s) in le.iter_mut().zip(bitmap) {
                *d = *s;
            }
            banks.push(PcrBank {
                hash,
                pcrs: u32::from_le_bytes(le),
                size_of_select: size,
            });
        }
        PcrSelection::from_banks(banks).map_err(|e| match e {
            Error::BadInput(m) => Error::BadInput(format!("{what}: {m}")),
            other => other,
        })
    }

    /// Splits PCR values given concatenated in selection order (as `tpm2_pcrread -o`
    /// writes them) into one value per PCR, checking the total length.
    pub fn split_values(&self, concatenated: &[u8]) -> Result<Vec<Vec<u8>>> {
        let want: usize = self.pcrs().iter().map(|(h, _)| h.len()).sum();
        if concatenated.len() != want {
            return Err(Error::BadInput(format!(
                "PCR values for {self}: {} bytes given, {want} expected",
                concatenated.len()
            )));
        }
        let mut rest = concatenated;
        let mut out = Vec::new();
        for (h, _) in self.pcrs() {
            let (v, tail) = rest.split_at(h.len());
            out.push(v.to_vec());
            rest = tail;
        }
        Ok(out)
    }

    /// The pcrDigest of TPM2_PolicyPCR: H(value_1 ‖ ... ‖ value_n) with the session's
    /// hash, values in selection order, each as long as its bank's digest.
    pub fn pcr_digest(&self, values: &[Vec<u8>], session_hash: Hash) -> Result<Vec<u8>> {
        let pcrs = self.pcrs();
        if values.len() != pcrs.len() {
            return Err(Error::BadInput(format!(
                "PCR values for {self}: {} given, {} expected",
                values.len(),
                pcrs.len()
            )));
        }
        for ((h, i), v) in pcrs.iter().zip(values) {
            if v.len() != h.len() {
                return Err(Error::BadInput(format!(
                    "PCR value {}:{i} is {} bytes, the bank's digest is {}",
                    hash_name(*h),
                    v.len(),
                    h.len()
                )));
            }
        }
        let parts: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        Ok(session_hash.digest(&parts))
    }
}

impl fmt::Display for PcrSelection {
    /// "sha256:7,16+sha1:0"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, b) in self.banks.iter().enumerate() {
            if n > 0 {
                f.write_str("+")?;
            }
            let list: Vec<String> = (0..32u8)
                .filter(|i| b.pcrs & (1 << i) != 0)
                .map(|i| i.to_string())
                .collect();
            write!(f, "{}:{}", hash_name(b.hash), list.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_marshal() {
        let s = PcrSelection::parse("sha256:7,16").unwrap();
        assert_eq!(s.to_string(), "sha256:7,16");
        assert_eq!(s.marshal(), [0, 0, 0, 1, 0x00, 0x0B, 3, 0x80, 0x00, 0x01]);
        let s = PcrSelection::parse("sha256:0-2,23+sha1:1").unwrap();
        assert_eq!(s.to_string(), "sha256:0,1,2,23+sha1:1");
        assert_eq!(
            s.pcrs(),
            [
                (Hash::Sha256, 0),
                (Hash::Sha256, 1),
                (Hash::Sha256, 2),
                (Hash::Sha256, 23),
                (Hash::Sha1, 1)
            ]
        );
        let again = PcrSelection::unmarshal(&mut Reader::new(&s.marshal()), "x").unwrap();
        assert_eq!(again, s);
        assert_eq!(PcrSelection::parse("16").unwrap().to_string(), "sha256:16");
    }

    #[test]
    fn out_of_range_is_named() {
        for (spec, want) in [
            ("sha256:24", "\"24\" is not a PCR index (0-23)"),
            ("md5:1", "digest \"md5\""),
            ("sha256:5-3", "backwards"),
            ("sha256:1+sha256:2", "bank sha256 selected twice"),
        ] {
            let e = PcrSelection::parse(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        let wire = |b: &[u8]| PcrSelection::unmarshal(&mut Reader::new(b), "PolicyPCR");
        let e = wire(&[0, 0, 0, 1, 0x00, 0x12, 3, 0, 0, 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("PCR bank 0x0012 out of range"), "{e}");
        let e = wire(&[0, 0, 0, 1, 0x00, 0x0B, 4, 0, 0, 0, 0x08])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bank sha256: PCR index 27 out of range (0-23)"),
            "{e}"
        );
        let e = wire(&[0, 0, 0, 1, 0x00, 0x0B, 9, 0, 0, 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sizeofSelect 9 out of range"), "{e}");
        let e = wire(&[0, 0, 0, 0]).unwrap_err().to_string();
        assert!(e.contains("count 0 out of range"), "{e}");
        let e = wire(&[0, 0, 0, 1, 0x00, 0x0B, 3, 0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = wire(&[0, 0, 0, 1, 0x00, 0x0B, 3, 0, 0, 0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no PCR selected"), "{e}");
        // sizeofSelect 4 with indices < 24 is read and kept (it is part of the digest).
        let s = wire(&[0, 0, 0, 1, 0x00, 0x0B, 4, 0, 0, 1, 0]).unwrap();
        assert_eq!(s.banks()[0].size_of_select, 4);
        assert_eq!(s.marshal(), [0, 0, 0, 1, 0x00, 0x0B, 4, 0, 0, 1, 0]);
    }

    #[test]
    fn values_split_and_digest() {
        let s = PcrSelection::parse("sha256:16+sha1:0").unwrap();
        let vals = s
            .split_values(&[[1u8; 32].as_slice(), &[2u8; 20]].concat())
            .unwrap();
        assert_eq!(vals, [vec![1u8; 32], vec![2u8; 20]]);
        assert!(s.split_values(&[0; 51]).is_err());
        let d = s.pcr_digest(&vals, Hash::Sha256).unwrap();
        assert_eq!(d, Hash::Sha256.digest(&[&[1u8; 32], &[2u8; 20]]));
        let e = s
            .pcr_digest(&[vec![1; 32], vec![2; 32]], Hash::Sha256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PCR value sha1:0 is 32 bytes"), "{e}");
    }
}
