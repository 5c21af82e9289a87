//! The digests tpmkey signs with: their TPM ids, sizes, DER DigestInfo prefixes, and
//! software hashing (messages are hashed on the host, never by the TPM).

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::error::{Error, Result};
use crate::wire::{TPM_ALG_SHA1, TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn tpm_alg(self) -> u16 {
        match self {
            Hash::Sha1 => TPM_ALG_SHA1,
            Hash::Sha256 => TPM_ALG_SHA256,
            Hash::Sha384 => TPM_ALG_SHA384,
            Hash::Sha512 => TPM_ALG_SHA512,
        }
    }

    /// By TPM_ALG_ID, as found in TPM structures.
    pub fn from_tpm_alg(alg: u16) -> Result<Hash> {
        match alg {
            TPM_ALG_SHA1 => Ok(Hash::Sha1),
            TPM_ALG_SHA256 => Ok(Hash::Sha256),
            TPM_ALG_SHA384 => Ok(Hash::Sha384),
            TPM_ALG_SHA512 => Ok(Hash::Sha512),
            _ => Err(Error::Unsupported(format!(
                "hash algorithm 0x{alg:04x} (TPM_ALG_ID)"
            ))),
        }
    }

    #[allow(clippy::len_without_is_empty)] // the digest size, never empty
    pub fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA1",
            Hash::Sha256 => "SHA256",
            Hash::Sha384 => "SHA384",
            Hash::Sha512 => "SHA512",
        }
    }

    /// By name as OpenSSL and users write it ("SHA256", "sha-256", "SHA2-256").
    pub fn from_name(name: &str) -> Result<Hash> {
        let n: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match n.as_str() {
            "sha1" => Ok(Hash::Sha1),
            "sha256" | "sha2256" => Ok(Hash::Sha256),
            "sha384" | "sha2384" => Ok(Hash::Sha384),
            "sha512" | "sha2512" => Ok(Hash::Sha512),
            _ => Err(Error::Unsupported(format!(
                "digest \"{name}\" (use SHA1, SHA256, SHA384 or SHA512)"
            ))),
        }
    }

    /// The digest algorithm whose output has this length.
    pub fn from_len(len: usize) -> Result<Hash> {
        match len {
            20 => Ok(Hash::Sha1),
            32 => Ok(Hash::Sha256),
            48 => Ok(Hash::Sha384),
            64 => Ok(Hash::Sha512),
            _ => Err(Error::BadInput(format!(
                "a digest of {len} bytes matches no supported hash"
            ))),
        }
    }

    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha1 => run::<Sha1>(parts),
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }

    /// DER of DigestInfo up to the digest bytes (RFC 8017, 9.2 note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}
