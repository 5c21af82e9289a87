//! Encryption and decryption with RSA keys: CKM_RSA_PKCS and CKM_RSA_PKCS_OAEP (any label).
//! Decryption is the TPM's raw RSA operation with the padding removed on the host;
//! encryption uses the public key in software. Single-part only, as the mechanisms are.
//!
//! CKM_RSA_PKCS decryption does implicit rejection: a malformed block decrypts to a
//! synthetic message derived from the ciphertext and a secret only the key can produce
//! (`tpmkey::implicit_rejection`), with CKR_OK, never CKR_ENCRYPTED_DATA_INVALID. PKCS#11
//! asks for CKR_ENCRYPTED_DATA_INVALID only when a token "has determined" a ciphertext
//! invalid; one that does not determine it may return data, and that is the one behaviour
//! that is no padding oracle (and, as tpmkey's RSA keys also sign, no signature-forgery
//! oracle). The same ciphertext gives the same bytes in every process, so applications
//! that check what they decrypt (a key's length, a MAC) fail as for a wrong key.

use cryptoki_sys::*;
use tpmkey::public_key::PublicKey;
use tpmkey::{RsaPadding, TpmKey};
use zeroize::Zeroizing;

use crate::attributes::{class, get_bool, get_ulong};
use crate::error::{Error, Result};
use crate::key_ref::key_object;
use crate::mechanism::{self, hash_of, mgf_hash, Mechanism, Param};
use crate::operation;
use crate::public_key;
use crate::software::{self, Padding};
use crate::state::{self, Module};

fn padding(mech: &Mechanism) -> Result<Padding> {
    match (mech.kind, &mech.param) {
        (CKM_RSA_PKCS, Param::None) => Ok(Padding::Pkcs1),
        (CKM_RSA_PKCS, Param::Other(p)) if p.is_empty() => Ok(Padding::Pkcs1),
        (CKM_RSA_PKCS_OAEP, Param::Oaep { hash, mgf, label }) => {
            // Zero is no hash mechanism and no MGF: pkcs11-provider leaves the fields that
            // OpenSSL was not given at zero. They mean what OpenSSL means by unset: SHA-1
            // (PKCS #1's OAEP default) and MGF1 with the OAEP hash.
            let oaep_hash = if *hash == 0 {
                Some(tpmkey::hash::Hash::Sha1)
            } else {
                hash_of(*hash)
            };
            let mgf1 = if *mgf == 0 { oaep_hash } else { mgf_hash(*mgf) };
            let (Some(oaep_hash), Some(mgf1)) = (oaep_hash, mgf1) else {
                return Err(Error::new(
                    CKR_MECHANISM_PARAM_INVALID,
                    format!("OAEP hashAlg 0x{hash:x} or mgf 0x{mgf:x} is not supported"),
                ));
            };
            Ok(Padding::Oaep {
                hash: oaep_hash,
                mgf1,
                label: label.clone(),
            })
        }
        (CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP, _) => Err(Error::rv(CKR_MECHANISM_PARAM_INVALID)),
        _ => {
            mechanism::info(mech.kind)?;
            Err(Error::rv(CKR_MECHANISM_INVALID))
        }
    }
}

#[derive(Debug)]
pub(crate) struct EncryptOp {
    padding: Padding,
    modulus: Vec<u8>,
    exponent: u32,
}

pub(crate) fn encrypt_init(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    state::with(|m| {
        operation::begin(&m.session(session)?.encrypt)?;
        let (_, attrs) = key_object(m, session, key)?;
        mechanism::check(mech.kind, CKF_ENCRYPT)?;
        let padding = padding(mech)?;
        if class(&attrs) != Some(CKO_PUBLIC_KEY) || get_ulong(&attrs, CKA_KEY_TYPE) != Some(CKK_RSA)
        {
            return Err(Error::new(
                CKR_KEY_TYPE_INCONSISTENT,
                "encryption needs an RSA public key",
            ));
        }
        mechanism::allowed(&attrs, mech.kind)?;
        Module::check_usage(&attrs, CKA_ENCRYPT)?;
        let Some(PublicKey::Rsa { modulus, exponent }) = public_key::from_attributes(&attrs) else {
            return Err(Error::rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        m.session(session)?.encrypt = Some(EncryptOp {
            padding,
            modulus,
            exponent,
        });
        Ok(())
    })
}

pub(crate) fn encrypt(
    session: CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> Result<Vec<u8>> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.encrypt, |op| {
            let k = op.modulus.iter().skip_while(|b| **b == 0).count();
            operation::check_capacity(capacity, k)?;
            if data.len() > software::max_message(&op.padding, k) {
                return Err(Error::rv(CKR_DATA_LEN_RANGE));
            }
            software::encrypt(&op.modulus, op.exponent, &op.padding, data)
        })
    })
}

#[derive(Debug)]
pub(crate) struct DecryptOp {
    padding: RsaPadding,
    label: Vec<u8>,
    key: TpmKey,
    modulus_len: usize,
    /// A plaintext the caller's buffer was too short for, kept for the next call with the
    /// same ciphertext (another ciphertext is decrypted afresh).
    pending: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    /// CKA_ALWAYS_AUTHENTICATE: a C_Login(CKU_CONTEXT_SPECIFIC) must come first.
    pub needs_login: bool,
}

pub(crate) fn decrypt_init(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    state::with(|m| {
        operation::begin(&m.session(session)?.decrypt)?;
        let (r, attrs) = key_object(m, session, key)?;
        mechanism::check(mech.kind, CKF_DECRYPT)?;
        let (padding, label) = match padding(mech)? {
            Padding::Pkcs1 => (RsaPadding::Pkcs1, Vec::new()),
            Padding::Oaep { hash, mgf1, label } => (RsaPadding::Oaep { hash, mgf1 }, label),
        };
        if class(&attrs) != Some(CKO_PRIVATE_KEY)
            || get_ulong(&attrs, CKA_KEY_TYPE) != Some(CKK_RSA)
        {
            return Err(Error::new(
                CKR_KEY_TYPE_INCONSISTENT,
                "decryption needs an RSA private key",
            ));
        }
        mechanism::allowed(&attrs, mech.kind)?;
        Module::check_usage(&attrs, CKA_DECRYPT)?;
        let key = m.tpm_key(&r)?;
        let modulus_len = match &key.public().key {
            PublicKey::Rsa { modulus, .. } => modulus.len(),
            PublicKey::Ec { .. } => return Err(Error::rv(CKR_KEY_TYPE_INCONSISTENT)),
        };
        m.session(session)?.decrypt = Some(DecryptOp {
            padding,
            label,
            key,
            modulus_len,
            pending: None,
            needs_login: get_bool(&attrs, CKA_ALWAYS_AUTHENTICATE) == Some(true),
        });
        Ok(())
    })
}

pub(crate) fn decrypt(
    session: CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> Result<Zeroizing<Vec<u8>>> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.decrypt, |op| {
            if op.needs_login {
                return Err(Error::rv(CKR_USER_NOT_LOGGED_IN));
            }
            let pending = op.pending.take().filter(|(c, _)| c.as_slice() == data);
            let Some(capacity) = capacity else {
                let n = pending.as_ref().map_or(op.modulus_len, |(_, p)| p.len());
                op.pending = pending;
                return Err(Error::buffer_too_small(n));
            };
            let plain = match pending {
                Some((_, p)) => p,
                None => decrypt_once(op, data)?,
            };
            if plain.len() > capacity {
                let n = plain.len();
                op.pending = Some((data.to_vec(), plain));
                return Err(Error::buffer_too_small(n));
            }
            Ok(plain)
        })
    })
}

/// One decryption in the TPM, the padding removed (PKCS#1 v1.5 with implicit rejection).
fn decrypt_once(op: &DecryptOp, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if data.len() != op.modulus_len {
        return Err(Error::rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
    }
    let plain = match op.padding {
        RsaPadding::Pkcs1 => tpmkey::implicit_rejection::pkcs1_v15_decrypt(&op.key, data),
        padding => op.key.decrypt(padding, &op.label, data),
    };
    plain.map_err(|e| match e {
        tpmkey::Error::BadInput(m) => Error::new(CKR_ENCRYPTED_DATA_INVALID, m),
        e => crate::error::key_use(&op.key, e),
    })
}
