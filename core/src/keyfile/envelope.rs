//! The `envelope [16]` field of a sealed-data key file (a tpmkey extension of the draft):
//! data too large for one TPM sealed object (more than 128 bytes), encrypted with
//! AES-256-GCM under the 256-bit key that the file's sealed object holds. The ASN.1 level
//! only; the sealing and the cipher are `crate::envelope`.
//!
//! ```text
//! TPMKey ::= SEQUENCE {                    -- OID 2.23.133.10.1.5 (sealed data)
//!   ... the draft's fields [0]-[5] ...     -- policy [1] / authPolicy [3] bind the key
//!   envelope [16] EXPLICIT TPMEnvelope OPTIONAL,
//!   parent INTEGER, pubkey OCTET STRING, privkey OCTET STRING }
//! TPMEnvelope ::= SEQUENCE {
//!   algorithm  OBJECT IDENTIFIER,          -- id-aes256-GCM 2.16.840.1.101.3.4.1.46
//!   nonce      OCTET STRING,               -- 12 bytes, random per file
//!   ciphertext OCTET STRING }              -- AES-256-GCM(data) || 16-byte tag
//! ```
//!
//! Tag [16] stays clear of the fields later drafts add after rsaParent [5]. Readers that
//! know only the draft refuse the file, which is right: they could unseal only the key.

use super::der::{self, malformed, Reader, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
use crate::error::Result;

/// The context tag number of the field.
pub const ENVELOPE_TAG: u8 = 16;
/// id-aes256-GCM (NIST, 2.16.840.1.101.3.4.1.46), content octets.
const OID_AES256_GCM_DER: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2E];
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// An AES-256-GCM ciphertext with its nonce, as the file holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    pub nonce: [u8; NONCE_LEN],
    /// The encrypted data followed by the 16-byte authentication tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

impl Envelope {
    /// Reads the content of `[16] EXPLICIT TPMEnvelope`.
    pub(super) fn read(content: &[u8], field: &str) -> Result<Envelope> {
        let seq = der::read_single(content, TAG_SEQUENCE, field, "TPMEnvelope SEQUENCE")?;
        let mut r = Reader::new(&seq);
        let oid = r.read(TAG_OID, "TPMEnvelope algorithm OBJECT IDENTIFIER")?;
        if oid != OID_AES256_GCM_DER {
            let name = der::oid_to_string(oid).unwrap_or_else(|| der::hex_prefix(oid, 16));
            return Err(malformed(format!(
                "{field}: cipher {name} (only id-aes256-GCM 2.16.840.1.101.3.4.1.46)"
            )));
        }
        let nonce = r.read(TAG_OCTET_STRING, "TPMEnvelope nonce OCTET STRING")?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| {
            malformed(format!(
                "{field}: nonce of {} bytes (AES-256-GCM here uses {NONCE_LEN})",
                nonce.len()
            ))
        })?;
        let ciphertext = r.read(TAG_OCTET_STRING, "TPMEnvelope ciphertext OCTET STRING")?;
        if ciphertext.len() <= TAG_LEN {
            return Err(malformed(format!(
                "{field}: ciphertext of {} bytes holds no data after the {TAG_LEN}-byte tag",
                ciphertext.len()
            )));
        }
        r.finish("the TPMEnvelope SEQUENCE")?;
        Ok(Envelope {
            nonce,
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// The content of `[16] EXPLICIT TPMEnvelope`, in DER.
    pub(super) fn write(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.ciphertext.len() + 40);
        der::write_tlv(&mut body, TAG_OID, OID_AES256_GCM_DER);
        der::write_tlv(&mut body, TAG_OCTET_STRING, &self.nonce);
        der::write_tlv(&mut body, TAG_OCTET_STRING, &self.ciphertext);
        der::tlv(TAG_SEQUENCE, &body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::{KeyFile, KeyFileType};
    use super::*;

    fn sealed_file(envelope: Option<Envelope>) -> KeyFile {
        KeyFile {
            key_type: KeyFileType::Sealed,
            empty_auth: true,
            policy: None,
            secret: None,
            auth_policy: None,
            envelope,
            parent: 0x8100_0001,
            public: vec![0, 2, 0xAA, 0xBB],
            private: vec![0, 1, 0xCC],
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let envelope = Envelope {
            nonce: [9; NONCE_LEN],
            ciphertext: vec![7; 300],
        };
        let file = sealed_file(Some(envelope.clone()));
        let der = file.to_der();
        assert_eq!(KeyFile::from_der(&der).unwrap(), file);
        // [16] EXPLICIT (0xB0) before the parent INTEGER, holding SEQUENCE { OID, nonce, ct }.
        let at = der.windows(2).position(|w| w == [0xB0, 0x82]).unwrap();
        assert_eq!(
            &der[at + 4..at + 10 + OID_AES256_GCM_DER.len()],
            &[
                [0x30, 0x82, 0x01, 0x49, 0x06, 0x09].as_slice(),
                OID_AES256_GCM_DER
            ]
            .concat()[..]
        );
        assert_eq!(
            KeyFile::from_der(&sealed_file(None).to_der())
                .unwrap()
                .envelope,
            None
        );
    }

    #[test]
    fn bad_envelopes_are_refused_by_name() {
        let body = |oid: &[u8], nonce: &[u8], ct: &[u8]| {
            let mut b = der::tlv(TAG_OID, oid);
            b.extend(der::tlv(TAG_OCTET_STRING, nonce));
            b.extend(der::tlv(TAG_OCTET_STRING, ct));
            der::tlv(TAG_SEQUENCE, &b)
        };
        let cases = [
            (body(&[0x2A, 0x03], &[0; 12], &[1; 20]), "cipher 1.2.3"),
            (body(OID_AES256_GCM_DER, &[0; 16], &[1; 20]), "nonce of 16"),
            (
                body(OID_AES256_GCM_DER, &[0; 12], &[1; 16]),
                "holds no data",
            ),
        ];
        for (content, want) in cases {
            let e = Envelope::read(&content, "envelope [16]").unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        // Only sealed data may carry one.
        let mut file = sealed_file(Some(Envelope {
            nonce: [0; NONCE_LEN],
            ciphertext: vec![1; 20],
        }));
        file.key_type = KeyFileType::Loadable;
        let e = KeyFile::from_der(&file.to_der()).unwrap_err();
        assert!(e.to_string().contains("envelope [16]"), "{e}");
    }
}
