//! The object file codec: the attributes of the one or two objects a record holds (a key
//! pair is one record, so it is written in one commit), which companion files it has, and a
//! SHA-256 over everything so a damaged file is detected, never half-used.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::session_crypto::{SessionCrypto, CRYPTO};
use crate::wire::Reader;

const MAGIC: &[u8] = b"tpmkey object 1\n";
const HAS_KEY: u8 = 1;
const HAS_SEALED: u8 = 2;

/// Attribute type to value, as the front end defines them (PKCS#11 numbering).
pub type Attributes = BTreeMap<u64, Vec<u8>>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// One object, or two for a key pair (public first).
    pub parts: Vec<Attributes>,
    /// A TSS2 PRIVATE KEY file goes with the record.
    pub has_key: bool,
    /// A sealed data file goes with the record (a secret value the TPM keeps).
    pub has_sealed: bool,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(self.parts.len() as u8);
        for part in &self.parts {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            for (t, v) in part {
                out.extend_from_slice(&t.to_be_bytes());
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
        let mut flags = 0;
        if self.has_key {
            flags |= HAS_KEY;
        }
        if self.has_sealed {
            flags |= HAS_SEALED;
        }
        out.push(flags);
        let sum = CRYPTO.sha256(&[&out]);
        out.extend_from_slice(&sum);
        out
    }

    /// Decodes a record; the error says what is wrong (the caller names the file).
    pub fn decode(data: &[u8]) -> std::result::Result<Record, String> {
        let body_len = data
            .len()
            .checked_sub(32)
            .ok_or("shorter than its checksum")?;
        let (body, sum) = data.split_at(body_len);
        if CRYPTO.sha256(&[body]).as_slice() != sum {
            return Err("checksum mismatch (damaged or truncated)".into());
        }
        let rest = body.strip_prefix(MAGIC).ok_or("not a tpmkey object file")?;
        Self::decode_body(rest).map_err(|e| format!("malformed: {e}"))
    }

    fn decode_body(rest: &[u8]) -> Result<Record> {
        let mut r = Reader::new(rest);
        let n = r.u8()?;
        let mut parts = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let count = r.u32()?;
            let mut attrs = Attributes::new();
            for _ in 0..count {
                let t = r.u64()?;
                let len = r.u32()? as usize;
                attrs.insert(t, r.take(len)?.to_vec());
            }
            parts.push(attrs);
        }
        let flags = r.u8()?;
        Ok(Record {
            parts,
            has_key: flags & HAS_KEY != 0,
            has_sealed: flags & HAS_SEALED != 0,
        })
    }
}
