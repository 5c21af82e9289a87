//! PKCS#1 v1.5 decryption with implicit rejection for a TPM key, and the per-key secret
//! the synthetic messages derive from.
//!
//! OpenSSL keys the synthetic message with a hash of the private exponent, which the TPM
//! never reveals. The secret here is the next best thing: the key's own raw private
//! operation on a fixed, key-specific block (`0x00 0x03 || MGF1-SHA-256(label || Name)`),
//! hashed. Only the TPM key can produce it, and it is the same in every process that uses
//! the key, so a ciphertext decrypts to the same bytes wherever it is sent (a per-process
//! random secret would let an attacker tell rejected ciphertexts apart by sending one to
//! two workers). It costs one TPM command the first time a process decrypts with the key
//! and none afterwards: it is kept only in this process's memory (zeroizing), keyed by the
//! key's Name (a Name fixes the modulus, hence the private key). A TPM-side HMAC per decryption would double the TPM commands of every decryption.
//! The fixed block begins 0x00 0x03, which no signature padding (PKCS#1 v1.5 0x00 0x01,
//! PSS ...0xBC with the top bit clear, both built by tpmkey) produces, so signing never
//! reveals it; only a raw (no padding) decryption could, and that already decrypts anything.

use std::collections::HashMap;
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{RsaPadding, TpmKey};
use crate::public_key::PublicKey;
use crate::rsa_padding::{self, REJECTION_SECRET_LEN};
use crate::session_crypto::{SessionCrypto, CRYPTO};

type Secret = Zeroizing<[u8; REJECTION_SECRET_LEN]>;

static SECRETS: Mutex<Option<HashMap<Vec<u8>, Secret>>> = Mutex::new(None);

const LABEL: &[u8] = b"tpmkey PKCS#1 v1.5 implicit rejection\0";

/// The key's implicit-rejection secret: from this process's memory, or one raw RSA
/// operation in the TPM the first time.
fn secret(key: &TpmKey) -> Result<Secret> {
    let name = key.public().name.clone();
    if let Some(s) = SECRETS
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&name).cloned()))
    {
        return Ok(s);
    }
    let PublicKey::Rsa { modulus, .. } = &key.public().key else {
        return Err(Error::BadInput(
            "PKCS#1 v1.5 decryption with an EC key".into(),
        ));
    };
    let mut block = vec![0x00, 0x03];
    block.extend_from_slice(&rsa_padding::mgf1(
        crate::hash::Hash::Sha256,
        &[LABEL, &name].concat(),
        modulus.len().saturating_sub(2),
    )?);
    let signed = key.rsa_private(&block)?;
    let secret = Zeroizing::new(CRYPTO.sha256(&[LABEL, &signed]));
    if let Ok(mut m) = SECRETS.lock() {
        m.get_or_insert_with(HashMap::new)
            .insert(name, secret.clone());
    }
    Ok(secret)
}

/// RSAES-PKCS1-v1_5 decryption that never reports bad padding: a malformed block gives a
/// synthetic message derived from the ciphertext and the key's secret (see the module).
/// One TPM command (two the first time a process uses the key this way).
pub fn pkcs1_v15_decrypt(key: &TpmKey, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let secret = secret(key)?;
    let em = key.decrypt(RsaPadding::None, &[], ciphertext)?;
    rsa_padding::pkcs1_v15_decrypt_implicit(&em, ciphertext, secret.as_slice())
}
