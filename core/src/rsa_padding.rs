//! RSA encodings done on the host around the TPM's raw private-key operation: EMSA-PSS
//! (so the salt is the digest length on every TPM, reference.md §2), EMSA-PKCS1-v1_5 for
//! caller-built DigestInfo, and OAEP / PKCS#1 v1.5 decryption (any label, any hash).

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::session_crypto::{SessionCrypto, CRYPTO};

/// MGF1 (RFC 8017, B.2.1).
pub(crate) fn mgf1(hash: Hash, seed: &[u8], len: usize) -> Result<Vec<u8>> {
    let too_long = || Error::BadInput(format!("MGF1 output of {len} bytes is too long"));
    let mut out = Vec::with_capacity(len.checked_add(hash.len()).ok_or_else(too_long)?);
    let mut counter: u32 = 0;
    while out.len() < len {
        out.extend_from_slice(&hash.digest(&[seed, &counter.to_be_bytes()]));
        counter = counter.checked_add(1).ok_or_else(too_long)?;
    }
    out.truncate(len);
    Ok(out)
}

/// The encoded-message bits and bytes of a `mod_bits`-bit key (RFC 8017: emBits = modBits - 1).
fn em_size(mod_bits: u32) -> Result<(usize, usize)> {
    let em_bits = usize::try_from(mod_bits)
        .ok()
        .and_then(|b| b.checked_sub(1))
        .filter(|b| *b > 0)
        .ok_or_else(|| Error::BadInput(format!("a {mod_bits}-bit RSA key")))?;
    Ok((em_bits, em_bits.div_ceil(8)))
}

/// EMSA-PKCS1-v1_5 block of `k` bytes around `t` (a DigestInfo, or raw data for TLS 1.0 MD5+SHA1).
pub fn pkcs1_v15_sign_block(t: &[u8], k: usize) -> Result<Vec<u8>> {
    let pad_len = k
        .checked_sub(t.len())
        .and_then(|n| n.checked_sub(3))
        .filter(|n| *n >= 8)
        .ok_or_else(|| {
            Error::BadInput(format!(
                "{} bytes are too long for a {}-bit RSA signature",
                t.len(),
                k.saturating_mul(8)
            ))
        })?;
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0, 1]);
    em.resize(2 + pad_len, 0xFF);
    em.push(0);
    em.extend_from_slice(t);
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
    let (em_bits, em_len) = em_size(mod_bits)?;
    let db_len = em_len
        .checked_sub(h_len + 1)
        .filter(|db_len| salt_len.checked_add(1).is_some_and(|n| n <= *db_len))
        .ok_or_else(|| {
            Error::BadInput(format!(
                "PSS salt of {salt_len} bytes does not fit a {mod_bits}-bit key"
            ))
        })?;
    let mut salt = vec![0u8; salt_len];
    CRYPTO.random(&mut salt);
    let h = hash.digest(&[&[0u8; 8], m_hash, &salt]);
    let mut db = vec![0u8; db_len - salt_len - 1];
    db.push(1);
    db.extend_from_slice(&salt);
    let mask = mgf1(hash, &h, db_len)?;
    for (d, m) in db.iter_mut().zip(mask) {
        *d ^= m;
    }
    db[0] &= 0xFF >> (8 * em_len - em_bits);
    // The raw RSA operation takes k bytes; em_len is k - 1 when mod_bits % 8 == 1.
    let k = (em_bits + 1).div_ceil(8);
    let mut block = vec![0u8; k - em_len];
    block.extend_from_slice(&db);
    block.extend_from_slice(&h);
    block.push(0xBC);
    Ok(block)
}

/// EMSA-PSS-VERIFY (RFC 8017, 9.1.2) of `em` (the k-byte result of the RSA public
/// operation) against a message digest, with the salt length recovered from the encoding
/// rather than given: the length when `em` is a valid encoding of `m_hash`, else `None`.
pub fn pss_verify_salt_len(hash: Hash, m_hash: &[u8], em: &[u8], mod_bits: u32) -> Option<usize> {
    let h_len = hash.len();
    let (em_bits, em_len) = em_size(mod_bits).ok()?;
    // The raw operation gives k bytes; em_len is k - 1 when mod_bits % 8 == 1.
    let (lead, em) = em.split_at(em.len().checked_sub(em_len)?);
    if m_hash.len() != h_len || lead.iter().any(|b| *b != 0) || em.last() != Some(&0xBC) {
        return None;
    }
    let db_len = em_len.checked_sub(h_len + 1).filter(|n| *n > 0)?;
    let (masked_db, h) = (&em[..db_len], &em[db_len..em_len - 1]);
    let top_bits = 0xFFu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top_bits != 0 {
        return None;
    }
    let mut db = mgf1(hash, h, db_len).ok()?;
    for (d, m) in db.iter_mut().zip(masked_db) {
        *d ^= m;
    }
    db[0] &= top_bits;
    let separator = db.iter().position(|b| *b != 0)?;
    if db[separator] != 1 {
        return None;
    }
    let salt = &db[separator + 1..];
    (hash.digest(&[&[0u8; 8], m_hash, salt]) == h).then_some(salt.len())
}

/// The largest PSS salt a key allows with this hash (0 for a key too small for any).
pub fn pss_max_salt(hash: Hash, mod_bits: u32) -> usize {
    em_size(mod_bits).map_or(0, |(_, em_len)| em_len.saturating_sub(hash.len() + 2))
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// EME-OAEP encoding (RFC 8017, 7.1.1) of `msg` into a `k`-byte block for the raw public
/// operation; the label is any bytes.
pub fn oaep_encode(
    hash: Hash,
    mgf_hash: Hash,
    label: &[u8],
    msg: &[u8],
    k: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let h_len = hash.len();
    let ps_len = k
        .checked_sub(msg.len())
        .and_then(|n| n.checked_sub(2 * h_len + 2))
        .ok_or_else(|| {
            Error::BadInput(format!(
                "{} bytes are too long for OAEP with {} and a {k}-byte modulus",
                msg.len(),
                hash.name()
            ))
        })?;
    let mut db = Zeroizing::new(hash.digest(&[label]));
    db.resize(h_len + ps_len, 0);
    db.push(1);
    db.extend_from_slice(msg);
    let mut seed = Zeroizing::new(vec![0u8; h_len]);
    CRYPTO.random(&mut seed);
    for (d, m) in db.iter_mut().zip(mgf1(mgf_hash, &seed, k - h_len - 1)?) {
        *d ^= m;
    }
    for (s, m) in seed.iter_mut().zip(mgf1(mgf_hash, &db, h_len)?) {
        *s ^= m;
    }
    let mut em = Zeroizing::new(Vec::with_capacity(k));
    em.push(0);
    em.extend_from_slice(&seed);
    em.extend_from_slice(&db);
    Ok(em)
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
    let mut seed: Zeroizing<Vec<u8>> = Zeroizing::new(mgf1(mgf_hash, masked_db, h_len)?);
    for (s, m) in seed.iter_mut().zip(masked_seed) {
        *s ^= m;
    }
    let mut db: Zeroizing<Vec<u8>> = Zeroizing::new(mgf1(mgf_hash, &seed, k - h_len - 1)?);
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

/// 1 when `b` is zero, else 0, without a branch.
fn ct_is_zero(b: u8) -> u8 {
    ((u32::from(b).wrapping_sub(1)) >> 31) as u8
}

/// 1 when `a == b`, else 0, without a branch.
fn ct_eq_u8(a: u8, b: u8) -> u8 {
    ct_is_zero(a ^ b)
}

/// All ones when `bit` is 1, zero when it is 0; hidden from the optimiser so that selects
/// built on it stay branch-free.
fn ct_mask(bit: u8) -> usize {
    std::hint::black_box(0usize.wrapping_sub(usize::from(bit & 1)))
}

/// 1 when `a < b` (both below 2^(usize::BITS - 1)), else 0, without a branch.
fn ct_lt(a: usize, b: usize) -> u8 {
    (a.wrapping_sub(b) >> (usize::BITS - 1)) as u8
}

fn ct_select(bit: u8, a: usize, b: usize) -> usize {
    let m = ct_mask(bit);
    (a & m) | (b & !m)
}

/// Checks an EME-PKCS1-v1_5 block in time independent of its content: (1 when well
/// formed, else 0; the index where the message starts, meaningful only when well formed).
fn pkcs1_v15_check(em: &[u8]) -> (u8, usize) {
    let k = em.len();
    if k < 11 {
        return (0, k);
    }
    let mut good = ct_is_zero(em[0]) & ct_eq_u8(em[1], 2);
    let mut found = 0u8;
    let mut zero_index = 0usize;
    for (i, b) in em.iter().enumerate().skip(2) {
        let first_zero = ct_is_zero(*b) & (1 ^ found);
        zero_index = ct_select(first_zero, i, zero_index);
        found |= first_zero;
    }
    // At least eight padding bytes: the separator is at index 10 or later.
    good &= found & (1 ^ ct_lt(zero_index, 10));
    (good, zero_index + 1)
}

/// The bytes of `buf` from `start` on, moved to the front in time that does not depend on
/// `start` (a shift by each bit of `start`), then cut to length: only the length shows.
fn ct_take_from(mut buf: Zeroizing<Vec<u8>>, start: usize) -> Zeroizing<Vec<u8>> {
    let k = buf.len();
    let mut shift = 1usize;
    while shift < k {
        let m = ct_mask(u8::from(start & shift != 0)) as u8;
        for i in 0..k - shift {
            buf[i] = (buf[i + shift] & m) | (buf[i] & !m);
        }
        shift <<= 1;
    }
    buf.truncate(k - start.min(k));
    buf
}

/// RSAES-PKCS1-v1_5 decoding (RFC 8017, 7.2.2), constant-time up to the one error at the
/// end. Callers that face an attacker use [`pkcs1_v15_decrypt_implicit`] instead.
pub fn pkcs1_v15_decrypt_decode(em: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let (good, start) = pkcs1_v15_check(em);
    let out = ct_take_from(Zeroizing::new(em.to_vec()), start);
    if good != 1 {
        return Err(Error::BadInput(
            "PKCS#1 v1.5 decryption failed: wrong key or corrupt ciphertext".into(),
        ));
    }
    Ok(out)
}

/// Length of the per-key implicit-rejection secret.
pub const REJECTION_SECRET_LEN: usize = 32;

/// The key-derived PRF of the implicit-rejection scheme (draft-irtf-cfrg-rsa-guidance):
/// HMAC-SHA256(kdk, i || label || bit length) for i = 0, 1, ..., concatenated.
fn rejection_prf(kdk: &[u8], label: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let bits = u16::try_from(len.saturating_mul(8))
        .map_err(|_| Error::BadInput(format!("implicit rejection for a {len}-byte modulus")))?;
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut i: u16 = 0;
    while out.len() < len {
        out.extend_from_slice(
            &CRYPTO.hmac_sha256(kdk, &[&i.to_be_bytes(), label, &bits.to_be_bytes()]),
        );
        i = i.wrapping_add(1);
    }
    out.truncate(len);
    Ok(out)
}

/// RSAES-PKCS1-v1_5 decoding with implicit rejection: a malformed block yields a synthetic
/// message, never an error, so no padding oracle exists. The synthetic message (length and
/// bytes) is a deterministic function of the ciphertext and `secret`, a per-key secret only
/// the private key can produce, so the same ciphertext always decrypts to the same bytes,
/// in every process; like OpenSSL 3.2+, the key derivation key is HMAC-SHA256 keyed with a
/// hash of the key secret over the ciphertext, and the length is the last of 128 16-bit
/// candidates (masked to the bit size of k - 10) below k - 10.
pub fn pkcs1_v15_decrypt_implicit(
    em: &[u8],
    ciphertext: &[u8],
    secret: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let k = em.len();
    if ciphertext.len() > k || k < 11 {
        return Err(Error::BadInput(format!(
            "a {}-byte ciphertext for a {k}-byte modulus",
            ciphertext.len()
        )));
    }
    let mut c = vec![0u8; k - ciphertext.len()];
    c.extend_from_slice(ciphertext);
    let kdk = Zeroizing::new(CRYPTO.hmac_sha256(&CRYPTO.sha256(&[secret]), &[&c]));
    let candidates = rejection_prf(kdk.as_slice(), b"length", 256)?;
    let synthetic = rejection_prf(kdk.as_slice(), b"message", k)?;
    let max_len = k - 10;
    let mask = usize::MAX >> max_len.leading_zeros();
    let mut synthetic_len = 0usize;
    for pair in candidates.chunks_exact(2) {
        let candidate = usize::from(u16::from_be_bytes([pair[0], pair[1]])) & mask;
        synthetic_len = ct_select(ct_lt(candidate, max_len), candidate, synthetic_len);
    }
    let (good, start) = pkcs1_v15_check(em);
    let start = ct_select(good, start, k - synthetic_len);
    let byte_mask = ct_mask(good) as u8;
    let buf: Vec<u8> = em
        .iter()
        .zip(synthetic.iter())
        .map(|(e, s)| (e & byte_mask) | (s & !byte_mask))
        .collect();
    Ok(ct_take_from(Zeroizing::new(buf), start))
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

    /// The salt comes back out of an encoding of every length that fits; any other digest
    /// or an altered byte gives none.
    #[test]
    fn pss_salt_length_is_recovered() {
        let d = Hash::Sha256.digest(&[b"m"]);
        for bits in [2048, 2049, 3072] {
            for salt in [0, 20, 32, pss_max_salt(Hash::Sha256, bits)] {
                let em = pss_encode(Hash::Sha256, &d, salt, bits).unwrap();
                assert_eq!(pss_verify_salt_len(Hash::Sha256, &d, &em, bits), Some(salt));
                let other = Hash::Sha256.digest(&[b"n"]);
                assert_eq!(pss_verify_salt_len(Hash::Sha256, &other, &em, bits), None);
                for i in [0, 1, 100, em.len() - 2, em.len() - 1] {
                    let mut bad = em.clone();
                    bad[i] ^= 0x40;
                    assert_eq!(
                        pss_verify_salt_len(Hash::Sha256, &d, &bad, bits),
                        None,
                        "{i}"
                    );
                }
            }
        }
        assert_eq!(pss_verify_salt_len(Hash::Sha256, &d, &[], 2048), None);
        assert_eq!(
            pss_verify_salt_len(Hash::Sha256, &d, &[0xBC; 40], 263),
            None
        );
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

    #[test]
    fn hostile_sizes_are_errors_not_panics() {
        let d = Hash::Sha256.digest(&[b"m"]);
        for bits in [0, 1, 8, 100, 263] {
            assert!(pss_encode(Hash::Sha256, &d, 32, bits).is_err(), "{bits}");
            assert!(pss_max_salt(Hash::Sha256, bits) < 300);
        }
        assert!(pss_encode(Hash::Sha256, &d, usize::MAX, 2048).is_err());
        assert!(pss_encode(Hash::Sha256, &d, usize::MAX - 1, 2048).is_err());
        assert_eq!(pss_encode(Hash::Sha256, &d, 0, 2049).unwrap().len(), 257);
        assert!(pkcs1_v15_sign_block(&[1; 10], 20).is_err());
        assert_eq!(pkcs1_v15_sign_block(&[1; 9], 20).unwrap().len(), 20);
        assert!(pkcs1_v15_sign_block(&[1; 10], 0).is_err());
        assert!(oaep_encode(Hash::Sha256, Hash::Sha256, b"", &[1; 190], 256).is_ok());
        assert!(oaep_encode(Hash::Sha256, Hash::Sha256, b"", &[1; 190], 10).is_err());
        assert!(oaep_encode(Hash::Sha256, Hash::Sha256, b"", &[1; 191], 256).is_err());
        assert!(pkcs1_v15_decrypt_decode(&[]).is_err());
        assert!(pkcs1_v15_decrypt_implicit(&[0; 5], &[], b"k").is_err());
    }

    #[test]
    fn oaep_round_trip_with_binary_label() {
        let label = [0xFFu8, 0x00, 0xC3];
        let em = oaep_encode(Hash::Sha256, Hash::Sha1, &label, b"msg", 256).unwrap();
        assert_eq!(em.len(), 256);
        let out = oaep_decode(Hash::Sha256, Hash::Sha1, &label, &em).unwrap();
        assert_eq!(&out[..], b"msg");
        assert!(oaep_decode(Hash::Sha256, Hash::Sha1, b"", &em).is_err());
    }

    fn pkcs1_block(msg: &[u8], k: usize) -> Vec<u8> {
        let mut em = vec![0u8, 2];
        em.resize(k - msg.len() - 1, 0x55);
        em.push(0);
        em.extend_from_slice(msg);
        em
    }

    #[test]
    fn pkcs1_decode_every_message_length() {
        for len in 0..=245 {
            let msg: Vec<u8> = (0..len).map(|i| i as u8 | 1).collect();
            let em = pkcs1_block(&msg, 256);
            assert_eq!(&pkcs1_v15_decrypt_decode(&em).unwrap()[..], &msg[..]);
            assert_eq!(
                &pkcs1_v15_decrypt_implicit(&em, &[7; 256], b"key").unwrap()[..],
                &msg[..]
            );
        }
        // Seven padding bytes are too few.
        let mut em = pkcs1_block(b"x", 256);
        em[9] = 0;
        assert!(pkcs1_v15_decrypt_decode(&em).is_err());
    }

    #[test]
    fn implicit_rejection_is_deterministic_and_keyed() {
        let good = pkcs1_block(b"secret", 256);
        let mut bad_blocks = Vec::new();
        for (i, v) in [(0usize, 1u8), (1, 1), (5, 0), (2, 0)] {
            let mut bad = good.clone();
            bad[i] = v;
            bad_blocks.push(bad);
        }
        bad_blocks.push(vec![0u8; 256]);
        for bad in &bad_blocks {
            let c1 = [1u8; 256];
            let a = pkcs1_v15_decrypt_implicit(bad, &c1, b"key").unwrap();
            let b = pkcs1_v15_decrypt_implicit(bad, &c1, b"key").unwrap();
            assert_eq!(a, b, "deterministic");
            assert!(a.len() < 246);
            assert_ne!(&a[..], b"secret");
            let other_key = pkcs1_v15_decrypt_implicit(bad, &c1, b"other").unwrap();
            assert_ne!(a, other_key);
            let other_ct = pkcs1_v15_decrypt_implicit(bad, &[2u8; 256], b"key").unwrap();
            assert_ne!(a, other_ct);
        }
    }
}
