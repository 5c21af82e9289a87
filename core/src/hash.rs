//! The digests tpmkey signs with: their TPM ids, sizes, DER DigestInfo prefixes, and
//! software hashing, one-shot or streaming (messages are hashed on the host, never by the
//! TPM). Both front ends hash through [`Hasher`].

use sha1::Sha1;
use sha2::digest::{DynDigest, InvalidBufferSize};
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

    /// The hash a TPM_ALG_ID names, if tpmkey knows it.
    pub fn from_tpm_alg(alg: u16) -> Option<Hash> {
        [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512]
            .into_iter()
            .find(|h| h.tpm_alg() == alg)
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
        let mut hasher = Hasher::new(self);
        for p in parts {
            hasher.update(p);
        }
        hasher.finish()
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

/// A running digest: the message goes in part by part (multi-part signing, verifying and
/// hashing), and the digest equals [`Hash::digest`] of the parts joined. It is also a
/// `DynDigest`, for the RustCrypto padding code that takes one.
#[derive(Clone, Debug)]
pub struct Hasher {
    hash: Hash,
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(hash: Hash) -> Hasher {
        let state = match hash {
            Hash::Sha1 => State::Sha1(Sha1::new()),
            Hash::Sha256 => State::Sha256(Sha256::new()),
            Hash::Sha384 => State::Sha384(Sha384::new()),
            Hash::Sha512 => State::Sha512(Sha512::new()),
        };
        Hasher { hash, state }
    }

    /// The algorithm this digest runs.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    pub fn update(&mut self, data: &[u8]) {
        DynDigest::update(self.engine(), data);
    }

    /// The digest of everything given so far.
    pub fn finish(mut self) -> Vec<u8> {
        self.engine().finalize_reset().into_vec()
    }

    /// The digest so far, leaving the hasher to take more.
    pub fn digest_so_far(&self) -> Vec<u8> {
        self.clone().finish()
    }

    /// The one dispatch on the algorithm; everything else goes through it.
    fn engine(&mut self) -> &mut dyn DynDigest {
        match &mut self.state {
            State::Sha1(d) => d,
            State::Sha256(d) => d,
            State::Sha384(d) => d,
            State::Sha512(d) => d,
        }
    }
}

impl DynDigest for Hasher {
    fn update(&mut self, data: &[u8]) {
        Hasher::update(self, data);
    }

    fn finalize_into(mut self, buf: &mut [u8]) -> std::result::Result<(), InvalidBufferSize> {
        self.engine().finalize_into_reset(buf)
    }

    fn finalize_into_reset(
        &mut self,
        out: &mut [u8],
    ) -> std::result::Result<(), InvalidBufferSize> {
        self.engine().finalize_into_reset(out)
    }

    fn reset(&mut self) {
        self.engine().reset();
    }

    fn output_size(&self) -> usize {
        self.hash.len()
    }

    fn box_clone(&self) -> Box<dyn DynDigest> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALL: [Hash; 4] = [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512];

    #[test]
    fn multi_part_equals_one_shot() {
        let message: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for hash in ALL {
            let one_shot = hash.digest(&[&message]);
            assert_eq!(one_shot.len(), hash.len());
            for part in [1, 63, 64, 65, 128, 999, 1000] {
                let mut h = Hasher::new(hash);
                for chunk in message.chunks(part) {
                    h.update(chunk);
                }
                assert_eq!(
                    h.digest_so_far(),
                    one_shot,
                    "{} in {part}-byte parts",
                    hash.name()
                );
                assert_eq!(h.finish(), one_shot);
            }
        }
    }

    #[test]
    fn known_vectors_and_continuing_after_digest_so_far() {
        // FIPS 180-2 "abc".
        let mut h = Hasher::new(Hash::Sha256);
        h.update(b"a");
        assert_eq!(h.digest_so_far(), Hash::Sha256.digest(&[b"a"]));
        h.update(b"bc");
        assert_eq!(
            crate::hex::hex(&h.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            crate::hex::hex(&Hash::Sha1.digest(&[b"ab", b"c"])),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn as_dyn_digest() {
        for hash in ALL {
            let mut d: Box<dyn DynDigest + Send + Sync> = Box::new(Hasher::new(hash));
            assert_eq!(d.output_size(), hash.len());
            d.update(b"abc");
            let copy = d.box_clone();
            assert_eq!(d.finalize_reset().into_vec(), hash.digest(&[b"abc"]));
            d.update(b"abc");
            assert_eq!(d.finalize().into_vec(), copy.finalize().into_vec());
        }
    }
}
