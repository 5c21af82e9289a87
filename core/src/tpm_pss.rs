//! A TPM's own RSA-PSS signature (TPM2_Sign with scheme RSAPSS), checked on the host before
//! it is used: it must verify with the key's public key and carry the salt length asked
//! for. The TPM chooses the salt (Part 1, B.7): swtpm the digest length, many hardware TPMs
//! the largest that fits, which TLS 1.3 peers refuse (RFC 8446, 4.2.3: salt = digest length).

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::public_key::PublicKey;
use crate::rsa_padding::{pss_max_salt, pss_verify_salt_len};

/// Refuses, before the TPM is asked, an RSA-PSS that a TPM does not make (`key`: which key,
/// for the message): MGF1 with another hash than the message's, or a salt that is neither
/// the digest length (swtpm) nor the maximum (many hardware TPMs).
pub(crate) fn tpm_can_make(
    hash: Hash,
    mgf1: Hash,
    salt_len: usize,
    bits: u32,
    key: &str,
) -> Result<()> {
    let max_salt = pss_max_salt(hash, bits);
    if mgf1 == hash && (salt_len == hash.len() || salt_len == max_salt) {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "PSS with MGF1-{} and a {salt_len}-byte salt on {key}: the TPM signs PSS with MGF1-{} \
         and a salt of the digest length ({}) or, on some TPMs, the maximum ({max_salt})",
        mgf1.name(),
        hash.name(),
        hash.len()
    )))
}

/// `sig`, the TPM's RSA-PSS signature over `digest` with `hash` (MGF1 with the same hash),
/// once it verifies with `key` with a salt of `salt_len` bytes; every TPM-made PSS
/// signature passes through here. A caller asking for the maximum salt gets the signature
/// of a TPM that salts so.
pub(crate) fn checked_tpm_pss(
    key: &PublicKey,
    hash: Hash,
    digest: &[u8],
    salt_len: usize,
    sig: Vec<u8>,
) -> Result<Vec<u8>> {
    let wrong = || {
        Error::Integrity(
            "TPM2_Sign returned an RSA-PSS signature that does not verify with the key's public \
             key (altered on the way, or a faulty TPM); it was not used"
                .into(),
        )
    };
    // A verifier takes exactly the modulus length: a value with zeros added or stripped on
    // the way is the same integer, so the public operation alone would pass it.
    let k = usize::try_from(key.bits().div_ceil(8)).map_err(|_| wrong())?;
    if sig.len() != k {
        return Err(wrong());
    }
    let em = key.rsa_public_operation(&sig).map_err(|_| wrong())?;
    let made = pss_verify_salt_len(hash, digest, &em, key.bits()).ok_or_else(wrong)?;
    if made == salt_len {
        return Ok(sig);
    }
    let asked = if salt_len == hash.len() {
        " (the digest length, as TLS 1.3 needs)"
    } else if salt_len == pss_max_salt(hash, key.bits()) {
        " (the maximum)"
    } else {
        ""
    };
    Err(Error::Unsupported(format!(
        "the TPM signed RSA-PSS with a {made}-byte salt; {salt_len} was asked for{asked}. This \
         key lacks the decrypt attribute, so the TPM chooses the salt; keys made with the \
         decrypt attribute (tpmkey's default) get PSS encoded on the host with the salt asked for"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::PublicKeyParts;

    /// A signature the TPM might send: software RSA-PSS with `salt` bytes of salt.
    fn signed(salt: usize) -> (PublicKey, Vec<u8>, Vec<u8>) {
        let mut rng = rand_core::OsRng;
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        assert_eq!(private.e().to_bytes_be(), [1, 0, 1]);
        let digest = Hash::Sha256.digest(&[b"tpm pss"]);
        let sig = private
            .sign_with_rng(
                &mut rng,
                rsa::Pss::new_with_salt::<sha2::Sha256>(salt),
                &digest,
            )
            .unwrap();
        let public = PublicKey::Rsa {
            modulus: private.n().to_bytes_be(),
            exponent: 65537,
        };
        (public, digest, sig)
    }

    #[test]
    fn only_a_whole_signature_with_the_salt_asked_for_passes() {
        let (key, digest, sig) = signed(32);
        let check = |sig: Vec<u8>, salt| checked_tpm_pss(&key, Hash::Sha256, &digest, salt, sig);
        assert_eq!(check(sig.clone(), 32).unwrap(), sig);
        let e = check(sig.clone(), 222).unwrap_err().to_string();
        assert!(e.contains("32-byte salt; 222 was asked for"), "{e}");
        // The same integer with a zero byte added is no signature a verifier takes.
        let longer = [&[0u8][..], &sig].concat();
        assert!(matches!(check(longer, 32), Err(Error::Integrity(_))));
        let mut altered = sig.clone();
        altered[100] ^= 1;
        assert!(matches!(check(altered, 32), Err(Error::Integrity(_))));
        assert!(matches!(
            check(sig[1..].to_vec(), 32),
            Err(Error::Integrity(_))
        ));
    }
}
