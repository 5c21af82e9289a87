//! RSA encodings done on the host around the TPM's raw private-key operation: EMSA-PSS
//! (so the salt is the digest length on every TPM, reference.md §2), EMSA-PKCS1-v1_5 for
//! caller-built DigestInfo, and OAEP / PKCS#1 v1.5 decryption (any label, any hash).

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::session_crypto::{SessionCrypto, CRYPTO};

fn mgf1(hash: Hash, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + hash.len());
    let mut counter: u32 = 0;
    while out.len() < len {
        out.extend_from_slice(&hash.digest(&[seed, &counter.to_be_bytes()]));
        counter += 1;
    }
    out.truncate(len);
    out
}

/// EMSA-PKCS1-v1_5 block of `k` bytes around `t` (a DigestInfo, or raw data for TLS 1.0 MD5+SHA1).
pub fn pkcs1_v15_sign_block(t: &[u8], k: usize) -> Result<Vec<u8>> {
    if t.len() + 11 > k {
        return Err(Error::BadInput(format!(
            "{} bytes are too long for a {}-bit RSA signature",
            t.len(),
            k * 8
        )));
    }
    let mut em = vec![0xFFu8; k];
    em[0] = 0;
    em[1] = 1;
    em[k - t.len() - 1] = 0;
    em[k - t.len()..].copy_from_slice(t);
    Ok(em)
}

/// EMSA-PSS-ENCODE (RFC 8017, 9.1.1) of a message digest; `mod_bits` of the key.
pub fn pss_encode(hash: Hash, m_hash: &[u8], salt_len: usize, mod_bits: u32) -> Result<Vec<u8>> {
    let h_len = hash.len();
    if m_hash.len() != h_len {
        return Err(Error::BadInput(format!(
            "digest is {} bytes, {} needs {h_len}",
            m_hash.len(),
            hash.name()
        )));
    }
    let em_bits = mod_bits as usize - 1;
    let em_len = em_bits.div_ceil(8);
    if em_len < h_len + salt_len + 2 {
        return Err(Error::BadInput(format!(
            "PSS salt of {salt_len} bytes does not fit a {mod_bits}-bit key"
        )));
    }
    let mut salt = vec![0u8; salt_len];
    CRYPTO.random(&mut salt);
    let h = hash.digest(&[&[0u8; 8], m_hash, &salt]);
    let db_len = em_len - h_len - 1;
    let mut db = vec![0u8; db_len];
    db[db_len - salt_len - 1] = 1;
    db[db_len - salt_len..].copy_from_slice(&salt);
    let mask = mgf1(hash, &h, db_len);
    for (d, m) in db.iter_mut().zip(mask) {
        *d ^= m;
    }
    db[0] &= 0xFF >> (8 * em_len - em_bits);
    let mut em = db;
    em.extend_from_slice(&h);
    em.push(0xBC);
    // The raw RSA operation takes k bytes; em_len is k - 1 when mod_bits % 8 == 1.
    let k = (mod_bits as usize).div_ceil(8);
    let mut block = vec![0u8; k - em_len];
    block.extend_from_slice(&em);
    Ok(block)
}

/// The largest PSS salt a key allows with this hash.
pub fn pss_max_salt(hash: Hash, mod_bits: u32) -> usize {
    let em_len = (mod_bits as usize - 1).div_ceil(8);
    em_len.saturating_sub(hash.len() + 2)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// EME-OAEP decoding (RFC 8017, 7.1.2) of the raw decryption `em` (k bytes).
pub fn oaep_decode(
    hash: Hash,
    mgf_hash: Hash,
    label: &[u8],
    em: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let h_len = hash.len();
    let k = em.len();
    let fail = || {
        Error::BadInput(
            "OAEP decoding failed: wrong key, hash or label, or corrupt ciphertext".into(),
        )
    };
    if k < 2 * h_len + 2 {
        return Err(fail());
    }
    let l_hash = hash.digest(&[label]);
    let (masked_seed, masked_db) = (&em[1..1 + h_len], &em[1 + h_len..]);
    let mut seed: Zeroizing<Vec<u8>> = Zeroizing::new(mgf1(mgf_hash, masked_db, h_len));
    for (s, m) in seed.iter_mut().zip(masked_seed) {
        *s ^= m;
    }
    let mut db: Zeroizing<Vec<u8>> = Zeroizing::new(mgf1(mgf_hash, &seed, k - h_len - 1));
    for (d, m) in db.iter_mut().zip(masked_db) {
        *d ^= m;
    }
    // Find the 0x01 separator without branching on secret data until the end.
    let mut good = u8::from(em[0] == 0) & u8::from(ct_eq(&db[..h_len], &l_hash));
    let mut found = 0u8;
    let mut index = 0usize;
    for (i, b) in db[h_len..].iter().enumerate() {
        let is_one = u8::from(*b == 1);
        let is_zero = u8::from(*b == 0);
        let first = is_one & (1 - found);
        index |= i * usize::from(first);
        found |= is_one;
        good &= found | is_zero;
    }
    good &= found;
    if good != 1 {
        return Err(fail());
    }
    Ok(Zeroizing::new(db[h_len + index + 1..].to_vec()))
}

/// RSAES-PKCS1-v1_5 decoding (RFC 8017, 7.2.2). For TLS key transport, callers use
/// implicit rejection instead of acting on this error.
pub fn pkcs1_v15_decrypt_decode(em: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let fail =
        || Error::BadInput("PKCS#1 v1.5 decryption failed: wrong key or corrupt ciphertext".into());
    if em.len() < 11 || em[0] != 0 || em[1] != 2 {
        return Err(fail());
    }
    let sep = em[2..].iter().position(|b| *b == 0).ok_or_else(fail)? + 2;
    if sep < 10 {
        return Err(fail());
    }
    Ok(Zeroizing::new(em[sep + 1..].to_vec()))
}

/// 1 when `b` is zero, else 0, without a branch.
fn ct_is_zero(b: u8) -> u8 {
    ((u32::from(b).wrapping_sub(1)) >> 31) as u8
}

/// 1 when `a == b`, else 0, without a branch.
fn ct_eq_u8(a: u8, b: u8) -> u8 {
    ct_is_zero(a ^ b)
}

/// The length of a TLS RSA pre-master secret.
pub const TLS_PREMASTER_LEN: usize = 48;

/// Decodes a TLS RSA key-transport block (the raw decryption `em`, k bytes) into the 48-byte
/// pre-master secret, with implicit rejection (RFC 5246, 7.4.7.1): on any padding, length or
/// version failure the result is a random secret, chosen without branching on secret data,
/// so the handshake fails later at Finished and no padding oracle exists. The version must
/// be `client_version`, or `alt_version` when given (clients with the rollback bug).
pub fn tls_premaster_decode(
    em: &[u8],
    client_version: u16,
    alt_version: Option<u16>,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; TLS_PREMASTER_LEN]);
    CRYPTO.random(&mut out);
    let k = em.len();
    // The modulus length is public: too short a key can never carry a pre-master secret.
    if k < TLS_PREMASTER_LEN + 11 {
        return out;
    }
    let zero_index = k - TLS_PREMASTER_LEN - 1;
    let mut good = ct_is_zero(em[0]) & ct_eq_u8(em[1], 2);
    for b in &em[2..zero_index] {
        good &= 1 ^ ct_is_zero(*b);
    }
    good &= ct_is_zero(em[zero_index]);
    let msg = &em[zero_index + 1..];
    let [major, minor] = client_version.to_be_bytes();
    let mut version = ct_eq_u8(msg[0], major) & ct_eq_u8(msg[1], minor);
    if let Some(alt) = alt_version {
        let [major, minor] = alt.to_be_bytes();
        version |= ct_eq_u8(msg[0], major) & ct_eq_u8(msg[1], minor);
    }
    good &= version;
    let mask = 0u8.wrapping_sub(good);
    for (o, m) in out.iter_mut().zip(msg) {
        *o = (m & mask) | (*o & !mask);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_block_shape() {
        let d = Hash::Sha256.digest(&[b"m"]);
        let em = pss_encode(Hash::Sha256, &d, 32, 2048).unwrap();
        assert_eq!(em.len(), 256);
        assert_eq!(em[255], 0xBC);
        assert!(em[0] & 0x80 == 0);
        assert_eq!(pss_max_salt(Hash::Sha256, 2048), 222);
    }

    #[test]
    fn pkcs1_rejects_garbage() {
        assert!(pkcs1_v15_decrypt_decode(&[0u8; 256]).is_err());
        let mut em = vec![0u8, 2];
        em.extend_from_slice(&[0x55; 10]);
        em.push(0);
        em.extend_from_slice(b"secret");
        assert_eq!(&pkcs1_v15_decrypt_decode(&em).unwrap()[..], b"secret");
        assert!(oaep_decode(Hash::Sha256, Hash::Sha256, b"", &[0u8; 256]).is_err());
    }

    #[test]
    fn tls_premaster_implicit_rejection() {
        let mut em = vec![0u8, 2];
        em.extend_from_slice(&[0x55; 256 - 2 - 49]);
        em.push(0);
        let mut secret = vec![0x03, 0x03];
        secret.extend_from_slice(&[0xAB; 46]);
        em.extend_from_slice(&secret);
        assert_eq!(em.len(), 256);
        assert_eq!(&tls_premaster_decode(&em, 0x0303, None)[..], &secret[..]);
        // Wrong version, wrong block type, a zero in the padding: random, never an error.
        for (i, v) in [(256 - 48, 0x02u8), (1, 1), (5, 0)] {
            let mut bad = em.clone();
            bad[i] = v;
            let out = tls_premaster_decode(&bad, 0x0303, None);
            assert_eq!(out.len(), 48);
            assert_ne!(&out[..], &secret[..]);
        }
        assert_eq!(
            &tls_premaster_decode(&em, 0x0301, Some(0x0303))[..],
            &secret[..]
        );
    }
}
