//! Hash_DRBG with SHA-256 (NIST SP 800-90A rev. 1, 10.1.1): the deterministic generator
//! behind the provider's RAND "CTR-DRBG" stand-in (see `rand`). Pure state machine: the
//! entropy comes from the caller, which takes it from the TPM.

use tpmkey::hash::Hash;
use tpmkey::{Error, Result};
use zeroize::{Zeroize, Zeroizing};

/// seedlen for SHA-256 (SP 800-90A table 2): 440 bits.
const SEED_LEN: usize = 55;
/// Bytes of entropy taken per (re)seed: the 256-bit security strength.
pub(crate) const ENTROPY_LEN: usize = 32;
/// The nonce taken with the entropy at instantiation (half the strength, 8.6.7).
pub(crate) const NONCE_LEN: usize = 16;
/// The most bytes one request may ask for (2^19 bits).
pub(crate) const MAX_REQUEST: usize = 1 << 16;
/// Requests between reseeds; far below the 2^48 the standard allows, the TPM is cheap
/// at this rate (one GetRandom per 65,536 requests).
pub(crate) const RESEED_INTERVAL: u64 = 1 << 16;

type Seed = [u8; SEED_LEN];

pub(crate) struct HashDrbg {
    v: Seed,
    c: Seed,
    reseed_counter: u64,
}

impl std::fmt::Debug for HashDrbg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashDrbg")
            .field("reseed_counter", &self.reseed_counter)
            .finish()
    }
}

impl Drop for HashDrbg {
    fn drop(&mut self) {
        self.v.zeroize();
        self.c.zeroize();
    }
}

fn sha256(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(Hash::Sha256.digest(parts))
}

/// Hash_df (10.3.1) to seedlen bits.
fn hash_df(input: &[&[u8]]) -> Seed {
    let bits = ((SEED_LEN * 8) as u32).to_be_bytes();
    let mut out = [0u8; SEED_LEN];
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let counter = [i as u8 + 1];
        let mut parts: Vec<&[u8]> = vec![&counter, &bits];
        parts.extend_from_slice(input);
        let h = sha256(&parts);
        chunk.copy_from_slice(&h[..chunk.len()]);
    }
    out
}

/// `acc = (acc + add) mod 2^seedlen`, `add` right-aligned (big-endian).
fn add_into(acc: &mut Seed, add: &[u8]) {
    let mut carry = 0u16;
    let mut add = add.iter().rev();
    for byte in acc.iter_mut().rev() {
        let sum = u16::from(*byte) + u16::from(add.next().copied().unwrap_or(0)) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
}

impl HashDrbg {
    /// Instantiate (10.1.1.2).
    pub(crate) fn new(entropy: &[u8], nonce: &[u8], personalization: &[u8]) -> HashDrbg {
        let v = hash_df(&[entropy, nonce, personalization]);
        let c = hash_df(&[&[0], &v]);
        HashDrbg {
            v,
            c,
            reseed_counter: 1,
        }
    }

    /// Reseed (10.1.1.3).
    pub(crate) fn reseed(&mut self, entropy: &[u8], additional: &[u8]) {
        let v = hash_df(&[&[1], &self.v, entropy, additional]);
        self.c = hash_df(&[&[0], &v]);
        self.v = v;
        self.reseed_counter = 1;
    }

    /// True when the next request needs a reseed first.
    pub(crate) fn needs_reseed(&self) -> bool {
        self.reseed_counter > RESEED_INTERVAL
    }

    /// Generate (10.1.1.4); the caller reseeds when [`HashDrbg::needs_reseed`] says so.
    pub(crate) fn generate(&mut self, out: &mut [u8], additional: &[u8]) -> Result<()> {
        if out.len() > MAX_REQUEST {
            return Err(Error::BadInput(format!(
                "{} random bytes in one request (at most {MAX_REQUEST})",
                out.len()
            )));
        }
        if self.needs_reseed() {
            return Err(Error::Integrity("the DRBG needs a reseed".into()));
        }
        if !additional.is_empty() {
            let w = sha256(&[&[2], &self.v, additional]);
            add_into(&mut self.v, &w);
        }
        let mut data = Zeroizing::new(self.v);
        for chunk in out.chunks_mut(32) {
            let h = sha256(&[&data[..]]);
            chunk.copy_from_slice(&h[..chunk.len()]);
            add_into(&mut data, &[1]);
        }
        let h = sha256(&[&[3], &self.v]);
        let c = self.c;
        add_into(&mut self.v, &h);
        add_into(&mut self.v, &c);
        add_into(&mut self.v, &self.reseed_counter.to_be_bytes());
        self.reseed_counter += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        tpmkey::hex::unhex(s).unwrap()
    }

    /// NIST CAVP Hash_DRBG.rsp, [SHA-256], PredictionResistance = False, with a
    /// personalization string and a reseed: instantiate, reseed, generate twice (1024
    /// bits), the second output is the vector's ReturnedBits.
    #[test]
    fn cavp_sha256_with_reseed() {
        let mut d = HashDrbg::new(
            &hex("b87bb4de5c148d964fc0cb612d69295671780b4270fe32bf389b6f49488efe13"),
            &hex("27eb37a0c695c4ee3c9b70b7f6b33492"),
            &hex("52321406ac8a9c266b1f8d811bb871269e5824b59a0234f01d358193523bbb7c"),
        );
        d.reseed(
            &hex("7638267f534c4e6ee22cc6ca6ed824fd5d3d387c00b89dd791eb5ac9766385b8"),
            &[],
        );
        let mut out = [0u8; 128];
        d.generate(&mut out, &[]).unwrap();
        d.generate(&mut out, &[]).unwrap();
        assert_eq!(
            out.to_vec(),
            hex(concat!(
                "de01c061651bab3cef2fc4ea89a56b6e86e74b2e9fd11ed671c97c813778a06a",
                "2c1f41b41e754a5257750c6bde9601da9d67d8d9564f4a8538b92516a2dacc49",
                "6dee257b85393f2a01ad59aa3257f1b6da9566e3706d2d6d4a26e511b0c64d7d",
                "c223acb24827178afa43ca8d5a66f983d6929dc61564c4c14fc32d85765a23f7"
            ))
        );
    }

    #[test]
    fn refuses_oversized_requests_and_asks_for_reseed() {
        let mut d = HashDrbg::new(&[7; 32], &[8; 16], &[]);
        assert!(d.generate(&mut vec![0; MAX_REQUEST + 1], &[]).is_err());
        d.reseed_counter = RESEED_INTERVAL + 1;
        assert!(d.needs_reseed());
        assert!(d.generate(&mut [0; 4], &[]).is_err());
        d.reseed(&[9; 32], &[]);
        d.generate(&mut [0; 4], &[]).unwrap();
    }
}
