//! PINs and the token secret. The TPM checks every PIN: the token secret (32 random bytes
//! from the TPM) is sealed twice, under SHA-256(salt || PIN) of the SO PIN and of the user
//! PIN, in dictionary-attack protected sealed objects, so guesses count toward the TPM's
//! lockout. Objects' authValues derive from the token secret, high-entropy, so the objects
//! themselves are noDA and a wrong PIN never locks a key.

use zeroize::Zeroizing;

use crate::session_crypto::{SessionCrypto, CRYPTO};

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
