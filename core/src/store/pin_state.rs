//! Wrong-PIN counts of one token (its `pin-state` file): per role, the failed logins since
//! that role's last successful login, and the token's limit. They make the PKCS#11 PIN
//! flags describe this token alone (never the TPM's machine-wide counter) and let the token
//! refuse a PIN at its own limit without asking the TPM, so that one token's wrong PINs
//! stop before the TPM's dictionary-attack lockout, which would also lock its SO PIN and
//! every other password-protected key on the machine.
//!
//! The file is a courtesy to honest users, not the bound on guessing: whoever can write the
//! store can reset it. The bound is the TPM's: every PIN object stays dictionary-attack
//! protected, so an attacker with a copy of the store gets the TPM's lockout budget.
//! Written atomically under the token's write lock, and only at a login that changes it.

use std::path::Path;

use super::files;
use super::pin::Role;
use crate::error::Result;

pub(crate) const PIN_STATE_FILE: &str = "pin-state";

/// The token's limit unless the TPM allows fewer failures before its lockout.
pub const PIN_TRIES: u32 = 3;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinState {
    pub user_failures: u32,
    pub so_failures: u32,
    /// Wrong PINs (per role) after which the token refuses; fixed at the first failure.
    pub limit: u32,
}

impl PinState {
    pub fn failures(&self, role: Role) -> u32 {
        match role {
            Role::User => self.user_failures,
            Role::SecurityOfficer => self.so_failures,
        }
    }

    pub(crate) fn set_failures(&mut self, role: Role, n: u32) {
        match role {
            Role::User => self.user_failures = n,
            Role::SecurityOfficer => self.so_failures = n,
        }
    }

    /// The limit in force: the recorded one, else [`PIN_TRIES`].
    pub fn tries(&self) -> u32 {
        if self.limit == 0 {
            PIN_TRIES
        } else {
            self.limit
        }
    }

    pub fn is_locked(&self, role: Role) -> bool {
        self.failures(role) >= self.tries()
    }

    /// One try left before the token refuses.
    pub fn is_final_try(&self, role: Role) -> bool {
        self.failures(role).checked_add(1) == Some(self.tries())
    }

    pub(crate) fn encode(&self) -> String {
        format!(
            "user-failures={}\nso-failures={}\nlimit={}\n",
            self.user_failures, self.so_failures, self.limit
        )
    }

    pub(crate) fn decode(path: &Path, text: &str) -> Result<PinState> {
        let get = |key: &str| -> Result<u32> {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|l| l.strip_prefix('=')))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| files::corrupt(path, format!("no number on a \"{key}=\" line")))
        };
        Ok(PinState {
            user_failures: get("user-failures")?,
            so_failures: get("so-failures")?,
            limit: get("limit")?,
        })
    }

    /// The state in `dir`; a token without the file has had no wrong PIN.
    pub(crate) fn read(dir: &Path) -> Result<PinState> {
        let path = dir.join(PIN_STATE_FILE);
        match std::fs::read(&path) {
            Ok(data) => {
                let text =
                    String::from_utf8(data).map_err(|_| files::corrupt(&path, "not UTF-8 text"))?;
                Self::decode(&path, &text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PinState::default()),
            Err(e) => Err(crate::error::Error::io(path.display(), e)),
        }
    }

    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        files::write_atomic(&dir.join(PIN_STATE_FILE), self.encode().as_bytes())
    }
}

/// The limit for a token on this TPM: [`PIN_TRIES`], or fewer when the TPM locks out
/// sooner, keeping one failure of the TPM's budget for the SO after a user lockout.
pub(crate) fn limit_for_this_tpm() -> u32 {
    match crate::dictionary_attack::DictionaryAttack::read() {
        Ok(da) if da.max_failures > 0 => PIN_TRIES.min(da.max_failures.saturating_sub(1).max(1)),
        _ => PIN_TRIES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_failures_and_limit() {
        let mut s = PinState {
            limit: 3,
            ..PinState::default()
        };
        assert!(!s.is_locked(Role::User) && !s.is_final_try(Role::User));
        s.set_failures(Role::User, 2);
        assert!(s.is_final_try(Role::User) && !s.is_final_try(Role::SecurityOfficer));
        s.set_failures(Role::User, 3);
        assert!(s.is_locked(Role::User) && !s.is_locked(Role::SecurityOfficer));
        let path = Path::new("pin-state");
        assert_eq!(PinState::decode(path, &s.encode()).ok(), Some(s));
        assert!(PinState::decode(path, "user-failures=x\n").is_err());
    }
}
