//! What guards the token secret under one role's PIN, in the form its PIN file records:
//! - a secret index read under the check of a PIN index ([`super::secret_index`]): tokens
//!   made since secret indices, and every PIN set or changed since on a token with PIN
//!   indices;
//! - a PIN object (the secret sealed under the PIN's authValue) checked first by a PIN index
//!   when its policy names one: tokens made before secret indices, or on a TPM whose NV
//!   memory had room for the PIN index but not for the secret index;
//! - a PIN object alone, checked by the TPM's dictionary-attack counter: tokens made before
//!   PIN indices, or on a TPM without room (or owner authorisation) for a PIN index.
//!
//! Each form keeps working as it is; a new PIN protection takes the first form the TPM
//! allows, and says in the log when it could not.

use zeroize::Zeroizing;

use super::nv_space;
use super::pin::TokenSecret;
use super::pin_index;
use super::pin_state::PIN_TRIES;
use super::secret_index;
use crate::connection::with_link;
use crate::error::Result;
use crate::sealed::SealedData;
use crate::wire::TPM_RH_OWNER;

#[derive(Debug)]
pub(crate) enum PinGuard {
    /// A PIN object, with or without a PIN index (as its policy says).
    Object(SealedData),
    /// A secret index (`secret`) checked by a PIN index (`pin`); `parent`: the storage key
    /// the token's objects are made under, whose Name tells whether this TPM is the token's.
    Index { pin: u32, secret: u32, parent: u32 },
}

/// The NV indices of a PIN protection, to define a new one at the same handles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Handles {
    pub pin: Option<u32>,
    pub secret: Option<u32>,
}

impl PinGuard {
    /// Guards `secret` under the PIN authValue `auth` in the first form this TPM allows,
    /// with its indices at the handles of `reuse` where given, else at free ones.
    pub(crate) fn make(secret: &TokenSecret, auth: &[u8], reuse: Handles) -> Result<PinGuard> {
        let parent = default_parent()?;
        let pin = match pin_index::define(auth, PIN_TRIES, reuse.pin) {
            Ok(pin) => pin,
            Err(e) => match nv_space::unavailable(&e) {
                Some(why) => {
                    log_fallback(&format!(
                        "PIN without a PIN index ({why}): the TPM's dictionary-attack counter \
                         bounds guessing, and wrong PINs count there"
                    ));
                    return Self::object_only(secret, auth);
                }
                None => return Err(e),
            },
        };
        let guarded = match secret_index::define(secret.bytes(), auth, pin, reuse.secret) {
            Ok(index) => Ok(PinGuard::Index {
                pin,
                secret: index,
                parent,
            }),
            Err(e) => match nv_space::unavailable(&e) {
                Some(why) => {
                    log_fallback(&format!(
                        "token secret in a PIN object, not in an NV index ({why}): each login \
                         costs two TPM commands more"
                    ));
                    SealedData::seal_with_policy(
                        secret.bytes(),
                        auth,
                        true,
                        None,
                        pin_index::policy(pin),
                    )
                    .map(PinGuard::Object)
                }
                None => Err(e),
            },
        };
        guarded.inspect_err(|_| {
            let _ = pin_index::undefine(pin);
        })
    }

    /// The form of tokens made before PIN indices (a PIN set on such a token keeps it: its
    /// wrong PINs are counted by the TPM's dictionary-attack counter).
    pub(crate) fn object_only(secret: &TokenSecret, auth: &[u8]) -> Result<PinGuard> {
        SealedData::seal(secret.bytes(), auth, true, None).map(PinGuard::Object)
    }

    /// The PIN index counting this PIN's wrong tries, if it has one.
    pub(crate) fn pin_index(&self) -> Option<u32> {
        match self {
            PinGuard::Object(sealed) => pin_index::of(sealed),
            PinGuard::Index { pin, .. } => Some(*pin),
        }
    }

    pub(crate) fn handles(&self) -> Handles {
        match self {
            PinGuard::Object(sealed) => Handles {
                pin: pin_index::of(sealed),
                secret: None,
            },
            PinGuard::Index { pin, secret, .. } => Handles {
                pin: Some(*pin),
                secret: Some(*secret),
            },
        }
    }

    /// The storage key under which the token was made.
    pub(crate) fn parent(&self) -> u32 {
        match self {
            PinGuard::Object(sealed) => sealed.key_file().parent,
            PinGuard::Index { parent, .. } => *parent,
        }
    }

    /// The token secret, given the PIN authValue `auth`: the TPM checks it (a wrong PIN is
    /// `Error::is_bad_auth`). Any session the check used is gone after.
    pub(crate) fn unseal(&self, auth: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            PinGuard::Object(sealed) => {
                let unsealed = sealed.unseal_once(auth);
                match pin_index::of(sealed) {
                    Some(_) => unsealed.map_err(pin_index::object_refusal),
                    None => unsealed,
                }
            }
            PinGuard::Index { pin, secret, .. } => secret_index::read(*secret, *pin, auth),
        }
    }

    /// Deletes the NV indices of this protection, except those `keep` names.
    pub(crate) fn release_except(&self, keep: Handles) -> Result<()> {
        let Handles { pin, secret } = self.handles();
        let kept = |h: Option<u32>| h.is_some() && (h == keep.pin || h == keep.secret);
        if let (Some(s), Some(p)) = (secret, pin) {
            if !kept(secret) {
                secret_index::undefine(s, p)?;
            }
        }
        if let Some(p) = pin.filter(|_| !kept(pin)) {
            pin_index::undefine(p)?;
        }
        Ok(())
    }

    /// Deletes the NV indices of this protection.
    pub(crate) fn release(&self) -> Result<()> {
        self.release_except(Handles::default())
    }
}

/// The storage key new objects are made under (the configured parent, else the storage
/// primary), as `SealedData::seal` chooses it.
fn default_parent() -> Result<u32> {
    with_link(|link| Ok(link.config().parent.unwrap_or(TPM_RH_OWNER)))
}

fn log_fallback(message: &str) {
    crate::log::write(crate::log::Level::Error, "tpmkey", message);
}
