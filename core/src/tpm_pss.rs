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
