//! PINs and the token secret. The TPM checks every PIN: the token secret (32 random bytes
//! from the TPM) is sealed twice, under SHA-256(salt || PIN) of the SO PIN and of the user
//! PIN, in dictionary-attack protected sealed objects, so guesses count toward the TPM's
//! lockout. Objects' authValues derive from the token secret, high-entropy, so the objects
//! themselves are noDA and a wrong PIN never locks a key.
//!
//! A PIN file carries its own salt (a `pin-salt=` line before the PEM block), so the salt
//! and the sealed object it was made with are read together, in one atomic file: a process
//! never tries a PIN with a salt from another generation of the token (a wrong-salt try
//! would cost a dictionary-attack count). Files of older tokens without the line use the
//! salt of the token's description, which only re-initialisation changed, and
//! re-initialisation now writes the line.
//!
//! A PIN whose token secret is in a secret index ([`super::pin_guard`]) has a file of lines
//! alone: the salt, the PIN index, the secret index and the storage key the token's
//! objects are made under (`pin-index=`, `secret-index=`, `parent=`, in hex).

use std::path::Path;

use zeroize::Zeroizing;

use super::files;
use super::pin_guard::PinGuard;
use crate::error::Result;
use crate::keyfile::KeyFile;
use crate::sealed::SealedData;
use crate::session_crypto::{SessionCrypto, CRYPTO};

const SALT_LINE: &str = "pin-salt=";
const PIN_INDEX_LINE: &str = "pin-index=";
const SECRET_INDEX_LINE: &str = "secret-index=";
const PARENT_LINE: &str = "parent=";

/// Length of a PIN salt.
pub const SALT_LEN: usize = 16;

pub const SECRET_LEN: usize = 32;

/// Who a PIN belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    SecurityOfficer,
    User,
}

impl Role {
    /// The token file holding the token secret sealed under this role's PIN.
    pub(crate) fn file(self) -> &'static str {
        match self {
            Role::SecurityOfficer => "so-pin.tss",
            Role::User => "user-pin.tss",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::SecurityOfficer => "SO",
            Role::User => "user",
        }
    }

    /// What unlocks this role's PIN once its PIN index refuses it (tokens with PIN indices).
    pub(crate) fn remedy_in_tpm(self) -> &'static str {
        match self {
            Role::User => self.remedy(),
            Role::SecurityOfficer => {
                "nothing resets the SO PIN's count in the TPM but the right SO PIN, which it \
                 no longer accepts; the user PIN still works; to start over, remove the token \
                 (tpmkey token rm) and make a new one"
            }
        }
    }

    /// What unlocks this role's PIN once the token refuses it.
    pub(crate) fn remedy(self) -> &'static str {
        match self {
            Role::User => {
                "the SO sets a new user PIN (C_InitPIN, e.g. pkcs11-tool --init-pin --login \
                 --login-type so)"
            }
            Role::SecurityOfficer => {
                "the store's owner removes the token's pin-state file (guessing stays bounded \
                 by the TPM's dictionary-attack lockout)"
            }
        }
    }
}

/// The token secret, unsealed by a login; kept only in memory.
#[derive(Clone)]
pub struct TokenSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

impl TokenSecret {
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> TokenSecret {
        TokenSecret(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The authValue of the object `uid`: HMAC-SHA256(token secret, label || uid).
    pub fn object_auth(&self, uid: &str) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(
            CRYPTO
                .hmac_sha256(&self.0, &[b"tpmkey object auth\0", uid.as_bytes()])
                .to_vec(),
        )
    }
}

/// The authValue of a PIN's sealed object: SHA-256(salt || PIN). The salt keeps equal PINs
/// of different tokens apart; the TPM's lockout is what stops guessing.
pub fn pin_auth(salt: &[u8], pin: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(CRYPTO.sha256(&[salt, pin]).to_vec())
}

/// A PIN file: the salt line, then the sealed token secret as a TSS2 key file (text before
/// the PEM block is allowed there), or the lines naming its indices.
pub(crate) fn encode_pin_file(salt: &[u8], guard: &PinGuard) -> String {
    let salt = crate::hex::hex(salt);
    match guard {
        PinGuard::Object(sealed) => format!("{SALT_LINE}{salt}\n{}", sealed.key_file().to_pem()),
        PinGuard::Index {
            pin,
            secret,
            parent,
        } => format!(
            "{SALT_LINE}{salt}\n{PIN_INDEX_LINE}{pin:08x}\n{SECRET_INDEX_LINE}{secret:08x}\n\
             {PARENT_LINE}{parent:08x}\n"
        ),
    }
}

/// The salt (None for a file written before PIN files carried it) and what guards the
/// token secret, of a PIN file; a damaged file is an error naming it.
pub(crate) fn decode_pin_file(path: &Path, data: &[u8]) -> Result<(Option<Vec<u8>>, PinGuard)> {
    let salt = match data.strip_prefix(SALT_LINE.as_bytes()) {
        Some(rest) => {
            let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
            let salt = std::str::from_utf8(line)
                .ok()
                .and_then(crate::hex::unhex)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| files::corrupt(path, "the pin-salt line is not hex"))?;
            Some(salt)
        }
        None => None,
    };
    if let Some(guard) = decode_index_lines(path, data)? {
        if salt.is_none() {
            return Err(files::corrupt(path, "no pin-salt line"));
        }
        return Ok((salt, guard));
    }
    let file = KeyFile::from_pem(data).map_err(|e| files::corrupt(path, e))?;
    let sealed = SealedData::from_key_file(&file).map_err(|e| files::corrupt(path, e))?;
    Ok((salt, PinGuard::Object(sealed)))
}

/// The indices a PIN file of the secret-index form names; None for another form.
fn decode_index_lines(path: &Path, data: &[u8]) -> Result<Option<PinGuard>> {
    let text = String::from_utf8_lossy(data);
    let line = |key: &str| text.lines().find_map(|l| l.strip_prefix(key));
    let Some(secret) = line(SECRET_INDEX_LINE) else {
        return Ok(None);
    };
    let handle = |key: &str, value: Option<&str>| {
        value
            .and_then(|v| u32::from_str_radix(v, 16).ok())
            .ok_or_else(|| files::corrupt(path, format!("no hex handle on a \"{key}\" line")))
    };
    Ok(Some(PinGuard::Index {
        pin: handle(PIN_INDEX_LINE, line(PIN_INDEX_LINE))?,
        secret: handle(SECRET_INDEX_LINE, Some(secret))?,
        parent: handle(PARENT_LINE, line(PARENT_LINE))?,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::pin_guard::Handles;

    #[test]
    fn a_pin_file_of_the_secret_index_form_round_trips_and_damage_is_named() {
        let path = Path::new("user-pin.tss");
        let guard = PinGuard::Index {
            pin: 0x0180_0010,
            secret: 0x01BF_0002,
            parent: 0x4000_0001,
        };
        let text = encode_pin_file(&[0xA5; SALT_LEN], &guard);
        assert_eq!(
            text,
            "pin-salt=a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5\npin-index=01800010\n\
             secret-index=01bf0002\nparent=40000001\n"
        );
        let (salt, back) = decode_pin_file(path, text.as_bytes()).unwrap();
        assert_eq!(salt.unwrap(), vec![0xA5; SALT_LEN]);
        assert_eq!(
            back.handles(),
            Handles {
                pin: Some(0x0180_0010),
                secret: Some(0x01BF_0002)
            }
        );
        assert_eq!(back.parent(), 0x4000_0001);

        let no_pin_index = text.replace("pin-index=01800010\n", "");
        let e = decode_pin_file(path, no_pin_index.as_bytes()).unwrap_err();
        assert!(
            e.is_damaged_store() && e.to_string().contains("pin-index="),
            "{e}"
        );
        let not_hex = text.replace("secret-index=01bf0002", "secret-index=zz");
        assert!(decode_pin_file(path, not_hex.as_bytes())
            .unwrap_err()
            .is_damaged_store());
        let no_salt = text.replace("pin-salt=a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5\n", "");
        assert!(decode_pin_file(path, no_salt.as_bytes())
            .unwrap_err()
            .is_damaged_store());
    }
}
