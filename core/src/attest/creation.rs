//! What TPM2_Create returned about a key's creation, kept beside the key file so that the
//! key can later be certified with TPM2_CertifyCreation: the creation data (parent Name,
//! PCRs selected and their digest, locality), its hash and the TPM's creation ticket. The
//! ticket is an HMAC the TPM made over the key's Name and creationHash: a record of
//! another key, or an altered one, is refused by the TPM (TPM_RC_TICKET).
//!
//! Creation file (version 1), PEM "TPMKEY CREATION DATA":
//!
//! ```text
//! u16 version = 1
//! TPM2B_CREATION_DATA   creationData
//! TPM2B_DIGEST          creationHash
//! TPMT_TK_CREATION      creationTicket (tag, hierarchy, TPM2B_DIGEST)
//! ```

use crate::error::Result;
use crate::keyfile::pem_encode;
use crate::wire::{Reader, Writer};

use super::{evidence, pem_or_binary, read_version, truncated};

pub const PEM_LABEL: &str = "TPMKEY CREATION DATA";
const VERSION: u16 = 1;

/// The creation outputs of TPM2_Create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreationRecord {
    /// TPMS_CREATION_DATA (without the TPM2B size).
    pub creation_data: Vec<u8>,
    /// H_nameAlg(creationData), as the TPM computed it.
    pub creation_hash: Vec<u8>,
    /// TPMT_TK_CREATION as marshalled by the TPM.
    pub ticket: Vec<u8>,
}

impl CreationRecord {
    /// Reads the creation outputs of a TPM2_Create response, starting at
    /// TPM2B_CREATION_DATA (after outPrivate and outPublic).
    pub(crate) fn read(r: &mut Reader) -> Result<CreationRecord> {
        Ok(CreationRecord {
            creation_data: r.tpm2b()?.to_vec(),
            creation_hash: r.tpm2b()?.to_vec(),
            ticket: read_ticket(r)?,
        })
    }

    pub fn to_pem(&self) -> String {
        let mut w = Writer::new();
        w.u16(VERSION)
            .tpm2b(&self.creation_data)
            .tpm2b(&self.creation_hash)
            .bytes(&self.ticket);
        pem_encode(PEM_LABEL, &w.into_vec())
    }

    /// PEM ("TPMKEY CREATION DATA") or its binary body.
    pub fn decode(data: &[u8]) -> Result<CreationRecord> {
        let body = pem_or_binary(data, PEM_LABEL)?;
        let t = |_| truncated("creation file");
        let mut r = Reader::new(&body);
        read_version(&mut r, "creation file", VERSION)?;
        let creation_data = r.tpm2b().map_err(t)?.to_vec();
        let creation_hash = r.tpm2b().map_err(t)?.to_vec();
        let ticket = read_ticket(&mut r).map_err(t)?;
        if !r.is_empty() {
            return Err(evidence("creation file has trailing bytes"));
        }
        Ok(CreationRecord {
            creation_data,
            creation_hash,
            ticket,
        })
    }
}

/// TPMT_TK_CREATION: tag, hierarchy, TPM2B_DIGEST; returned marshalled.
fn read_ticket(r: &mut Reader) -> Result<Vec<u8>> {
    let tag = r.u16()?;
    let hierarchy = r.u32()?;
    let digest = r.tpm2b()?;
    let mut w = Writer::new();
    w.u16(tag).u32(hierarchy).tpm2b(digest);
    Ok(w.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_truncation() {
        let record = CreationRecord {
            creation_data: vec![1, 2, 3],
            creation_hash: vec![4; 32],
            ticket: vec![0x80, 0x21, 0x40, 0, 0, 1, 0, 2, 9, 9],
        };
        let pem = record.to_pem();
        assert_eq!(CreationRecord::decode(pem.as_bytes()).unwrap(), record);
        let body = pem_or_binary(pem.as_bytes(), PEM_LABEL).unwrap();
        for n in 0..body.len() {
            assert!(CreationRecord::decode(&body[..n]).is_err(), "{n}");
        }
    }
}
