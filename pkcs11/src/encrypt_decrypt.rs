//! Encryption and decryption with RSA keys: CKM_RSA_PKCS and CKM_RSA_PKCS_OAEP (any label).
//! Decryption is the TPM's raw RSA operation with the padding removed on the host;
//! encryption uses the public key in software. Single-part only, as the mechanisms are.

use cryptoki_sys::*;
use tpmkey::public_key::PublicKey;
use tpmkey::{RsaPadding, TpmKey};
use zeroize::Zeroizing;

use crate::attributes::{class, get_bool, get_ulong};
use crate::error::{Error, Result};
use crate::mechanism::{self, hash_of, mgf_hash, Mechanism, Param};
use crate::operation;
use crate::public_key;
use crate::sign_verify::key_object;
use crate::software::{self, Padding};
use crate::state::{self, Module};

fn padding(mech: &Mechanism) -> Result<Padding> {
    match (mech.kind, &mech.param) {
        (CKM_RSA_PKCS, Param::None) => Ok(Padding::Pkcs1),
        (CKM_RSA_PKCS, Param::Other(p)) if p.is_empty() => Ok(Padding::Pkcs1),
        (CKM_RSA_PKCS_OAEP, Param::Oaep { hash, mgf, label }) => {
            let (Some(hash), Some(mgf1)) = (hash_of(*hash), mgf_hash(*mgf)) else {
                return Err(Error::new(CKR_MECHANISM_PARAM_INVALID, "OAEP hash or MGF"));
            };
            let label = String::from_utf8(label.clone()).map_err(|_| {
                Error::new(
                    CKR_MECHANISM_PARAM_INVALID,
                    "OAEP labels must be UTF-8 here",
                )
            })?;
            Ok(Padding::Oaep { hash, mgf1, label })
        }
        (CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP, _) => Err(Error::rv(CKR_MECHANISM_PARAM_INVALID)),
        _ => {
            mechanism::info(mech.kind)?;
            Err(Error::rv(CKR_MECHANISM_INVALID))
        }
    }
}

/// OAEP labels are arbitrary bytes for decryption (the host removes the padding).
fn oaep_label(mech: &Mechanism) -> Vec<u8> {
    match &mech.param {
        Param::Oaep { label, .. } => label.clone(),
        _ => Vec::new(),
    }
}

#[derive(Debug)]
pub struct EncryptOp {
    padding: Padding,
    modulus: Vec<u8>,
    exponent: u32,
}

pub fn encrypt_init(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    state::with(|m| {
        if m.session(session)?.encrypt.is_some() {
            return Err(Error::rv(CKR_OPERATION_ACTIVE));
        }
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

pub fn encrypt(
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
pub struct DecryptOp {
    padding: RsaPadding,
    label: Vec<u8>,
    key: TpmKey,
    modulus_len: usize,
    /// A plaintext the caller's buffer was too short for, kept for the next call.
    pending: Option<Zeroizing<Vec<u8>>>,
    /// CKA_ALWAYS_AUTHENTICATE: a C_Login(CKU_CONTEXT_SPECIFIC) must come first.
    pub needs_login: bool,
}

pub fn decrypt_init(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    state::with(|m| {
        if m.session(session)?.decrypt.is_some() {
            return Err(Error::rv(CKR_OPERATION_ACTIVE));
        }
        let (r, attrs) = key_object(m, session, key)?;
        mechanism::check(mech.kind, CKF_DECRYPT)?;
        let padding = match padding(mech)? {
            Padding::Pkcs1 => RsaPadding::Pkcs1,
            Padding::Oaep { hash, mgf1, .. } => RsaPadding::Oaep { hash, mgf1 },
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
            label: oaep_label(mech),
            key,
            modulus_len,
            pending: None,
            needs_login: get_bool(&attrs, CKA_ALWAYS_AUTHENTICATE) == Some(true),
        });
        Ok(())
    })
}

pub fn decrypt(
    session: CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> Result<Vec<u8>> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.decrypt, |op| {
            if op.needs_login {
                return Err(Error::rv(CKR_USER_NOT_LOGGED_IN));
            }
            let Some(capacity) = capacity else {
                let n = op.pending.as_ref().map_or(op.modulus_len, |p| p.len());
                return Err(Error::buffer_too_small(n));
            };
            let plain = match op.pending.take() {
                Some(p) => p,
                None => {
                    if data.len() != op.modulus_len {
                        return Err(Error::rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
                    }
                    op.key
                        .decrypt(op.padding, &op.label, data)
                        .map_err(|e| match e {
                            tpmkey::Error::BadInput(m) => Error::new(CKR_ENCRYPTED_DATA_INVALID, m),
                            e => e.into(),
                        })?
                }
            };
            if plain.len() > capacity {
                let n = plain.len();
                op.pending = Some(plain);
                return Err(Error::buffer_too_small(n));
            }
            Ok(plain.to_vec())
        })
    })
}
