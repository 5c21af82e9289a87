//! Secrets of any size kept by the TPM: up to 128 bytes in a TPM sealed data object itself;
//! beyond that (and always when the caller binds the value to a context, as the PKCS#11
//! token does) an envelope: a random 256-bit key in the sealed object and AES-256-GCM over
//! the data, both in one sealed-data key file (`keyfile::envelope` has the DER).
//!
//! The key crosses the TPM bus only inside the salted session's parameter encryption, at
//! TPM2_Create and at TPM2_Unseal (`crate::sealed`); the ciphertext never goes to the TPM.
//! The GCM additional data is the sealed object's Name (its public area: attributes and
//! authPolicy) and the caller's context, so a ciphertext moved to another sealed key, or a
//! value moved to another object of the token, fails authentication instead of decrypting.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyfile::envelope::{NONCE_LEN, TAG_LEN};
use crate::keyfile::{Envelope, KeyFile};
use crate::policy::Statement;
use crate::sealed::{SealedData, MAX_SEALED_LEN};
use crate::session_crypto::{SessionCrypto, CRYPTO};

/// The largest secret sealed here: far above any secret a user keeps, far below memory.
pub const MAX_SECRET_LEN: usize = 256 << 20;
const KEY_LEN: usize = 32;
const AAD_LABEL: &[u8] = b"tpmkey envelope v1\0";

/// A sealed secret: the TPM sealed object, with the envelope when the data is not in it.
#[derive(Clone, Debug)]
pub struct SealedSecret {
    sealed: SealedData,
    envelope: Option<Envelope>,
}

/// Data sealed directly in the object (the form of every value before envelopes).
impl From<SealedData> for SealedSecret {
    fn from(sealed: SealedData) -> SealedSecret {
        SealedSecret {
            sealed,
            envelope: None,
        }
    }
}

impl SealedSecret {
    /// Seals `data` (1 byte to [`MAX_SECRET_LEN`]): in the sealed object itself up to 128
    /// bytes, in an envelope beyond. `auth`, `da_protected`, `parent`: as
    /// [`SealedData::seal`].
    pub fn seal(
        data: &[u8],
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
    ) -> Result<SealedSecret> {
        Self::seal_with_policy(data, auth, da_protected, parent, Vec::new())
    }

    /// [`SealedSecret::seal`] with the sealed object bound to `statements` (none: no
    /// policy), as [`SealedData::seal_with_policy`].
    pub fn seal_with_policy(
        data: &[u8],
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
        statements: Vec<Statement>,
    ) -> Result<SealedSecret> {
        check_len(data)?;
        let seal_object =
            |value: &[u8]| seal_object(value, auth, da_protected, parent, &statements);
        if data.len() <= MAX_SEALED_LEN {
            return Ok(SealedSecret {
                sealed: seal_object(data)?,
                envelope: None,
            });
        }
        Self::envelope(data, &[], seal_object)
    }

    /// Seals `data` in an envelope whatever its size, authenticated together with
    /// `context` (which [`SealedSecret::unseal`] must be given again).
    pub fn seal_enveloped(
        data: &[u8],
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
        context: &[u8],
    ) -> Result<SealedSecret> {
        Self::seal_enveloped_with_policy(data, auth, da_protected, parent, context, Vec::new())
    }

    /// [`SealedSecret::seal_enveloped`] with the envelope's key sealed to `statements` (none:
    /// no policy), as [`SealedData::seal_with_policy`] binds them.
    pub fn seal_enveloped_with_policy(
        data: &[u8],
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
        context: &[u8],
        statements: Vec<Statement>,
    ) -> Result<SealedSecret> {
        check_len(data)?;
        Self::envelope(data, context, |key| {
            seal_object(key, auth, da_protected, parent, &statements)
        })
    }

    /// A fresh key sealed by `seal_object`, and `data` encrypted under it.
    fn envelope(
        data: &[u8],
        context: &[u8],
        seal_object: impl Fn(&[u8]) -> Result<SealedData>,
    ) -> Result<SealedSecret> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        CRYPTO.random(key.as_mut_slice());
        let mut nonce = [0u8; NONCE_LEN];
        CRYPTO.random(&mut nonce);
        let sealed = seal_object(key.as_slice())?;
        let aad = additional_data(&sealed, context);
        let ciphertext = cipher(key.as_slice())?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: data,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Integrity("AES-256-GCM encryption failed".into()))?;
        Ok(SealedSecret {
            sealed,
            envelope: Some(Envelope { nonce, ciphertext }),
        })
    }

    /// Reads a sealed-data key file (no TPM command).
    pub fn from_key_file(file: &KeyFile) -> Result<SealedSecret> {
        Ok(SealedSecret {
            sealed: SealedData::from_key_file(file)?,
            envelope: file.envelope.clone(),
        })
    }

    pub fn key_file(&self) -> KeyFile {
        KeyFile {
            envelope: self.envelope.clone(),
            ..self.sealed.key_file()
        }
    }

    /// True when the data is in an envelope (the sealed object holds its key).
    pub fn is_enveloped(&self) -> bool {
        self.envelope.is_some()
    }

    pub fn sealed_object(&self) -> &SealedData {
        &self.sealed
    }

    /// The secret: TPM2_Unseal (the data itself, or the envelope's key), then for an
    /// envelope AES-256-GCM decryption with `context` (ignored for data sealed directly).
    /// A wrong `auth` is `Error::is_bad_auth`; an envelope that does not authenticate is
    /// `Error::Integrity`.
    pub fn unseal(&self, auth: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let unsealed = self.sealed.unseal(auth)?;
        let Some(envelope) = &self.envelope else {
            return Ok(unsealed);
        };
        if unsealed.len() != KEY_LEN {
            return Err(Error::Integrity(format!(
                "the sealed object of an envelope holds {} bytes, not a {KEY_LEN}-byte key",
                unsealed.len()
            )));
        }
        let aad = additional_data(&self.sealed, context);
        let plain = cipher(&unsealed)?
            .decrypt(
                Nonce::from_slice(&envelope.nonce),
                Payload {
                    msg: &envelope.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                Error::Integrity(
                    "sealed data envelope does not authenticate (altered, or moved from another \
                     object or file)"
                        .into(),
                )
            })?;
        Ok(Zeroizing::new(plain))
    }

    /// Length of the sealed secret, known without the TPM for an envelope.
    pub fn envelope_data_len(&self) -> Option<usize> {
        self.envelope
            .as_ref()
            .map(|e| e.ciphertext.len().saturating_sub(TAG_LEN))
    }
}

/// The sealed object: bound to `statements`, or with none plain.
fn seal_object(
    value: &[u8],
    auth: &[u8],
    da_protected: bool,
    parent: Option<u32>,
    statements: &[Statement],
) -> Result<SealedData> {
    if statements.is_empty() {
        SealedData::seal(value, auth, da_protected, parent)
    } else {
        SealedData::seal_with_policy(value, auth, da_protected, parent, statements.to_vec())
    }
}

fn check_len(data: &[u8]) -> Result<()> {
    if data.is_empty() {
        return Err(Error::BadInput(
            "nothing to seal: the secret is empty (0 bytes)".into(),
        ));
    }
    if data.len() > MAX_SECRET_LEN {
        return Err(Error::BadInput(format!(
            "secret of {} bytes is larger than the {MAX_SECRET_LEN} bytes sealed here",
            data.len()
        )));
    }
    Ok(())
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(key)
        .map_err(|_| Error::Integrity("AES-256-GCM key is not 32 bytes".into()))
}

/// label ‖ Name of the sealed key ‖ context.
fn additional_data(sealed: &SealedData, context: &[u8]) -> Vec<u8> {
    [AAD_LABEL, sealed.name(), context].concat()
}
