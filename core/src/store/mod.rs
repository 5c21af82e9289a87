//! The token store of the PKCS#11 module: a directory per token, a file per object, keys as
//! TSS2 PRIVATE KEY files (usable by the OpenSSL provider too). Every write is atomic and
//! serialised between processes by a file lock; readers never see half-written objects;
//! files are 0600 and directories 0700. See [`token`] for the layout of one token.
//!
//! Where: `store` from the configuration (environment `TPMKEY_STORE` > config file
//! `store =`), else `/var/lib/tpmkey` for root and `$XDG_DATA_HOME/tpmkey` (or
//! `~/.local/share/tpmkey`) for other users.

#[allow(unsafe_code)] // flock and renameat2 over libc
pub(crate) mod files;
pub(crate) mod nv_space;
pub mod objects;
pub mod pin;
pub(crate) mod pin_guard;
pub(crate) mod pin_index;
pub mod pin_state;
pub mod record;
pub(crate) mod secret_index;
pub mod token;

use std::path::{Path, PathBuf};

pub use objects::Objects;
pub use pin::{Role, TokenSecret};
pub use pin_state::PinState;
pub use record::{Attributes, Record};
pub use token::Token;

use crate::config::Config;
use crate::error::{Error, Result};

pub const ROOT_STORE: &str = "/var/lib/tpmkey";

/// The store directory for `config` and the user running this process.
pub fn default_root(config: &Config) -> PathBuf {
    if let Some(dir) = &config.store {
        return dir.clone();
    }
    if crate::effective_user::is_root() {
        return PathBuf::from(ROOT_STORE);
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("tpmkey"),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share/tpmkey")
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Serial numbers of the tokens in the store, sorted; a missing store has none. A token
    /// directory whose description is missing is listed too (its [`Store::open`] fails with
    /// the cause): a damaged token is reported, never taken for an empty slot.
    pub fn serials(&self) -> Result<Vec<String>> {
        let entries = match files::list(&self.root) {
            Ok(e) => e,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        let mut serials: Vec<String> = entries
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| {
                let dir = self.root.join(name);
                let made_here = name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit());
                !name.starts_with(files::TEMP_PREFIX)
                    && (dir.join("token").is_file() || (made_here && dir.is_dir()))
            })
            .collect();
        serials.sort();
        Ok(serials)
    }

    pub fn open(&self, serial: &str) -> Result<Token> {
        if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::BadInput(format!("token serial {serial:?}")));
        }
        Token::open(&self.root.join(serial))
    }

    /// Deletes the token `serial`: its NV indices in the TPM, then its directory.
    pub fn remove_token(&self, serial: &str) -> Result<()> {
        self.open(serial)?.delete()
    }

    /// Creates a token (C_InitToken on the empty slot) with a new 16-digit serial number.
    pub fn create_token(&self, label: &str, so_pin: &[u8]) -> Result<Token> {
        self.create_token_with_policy(label, so_pin, None)
    }

    /// [`Store::create_token`] for a token whose keys and private values are bound to
    /// `platform_policy` (`tpmkey token init --pcr`): the module creates them with it.
    pub fn create_token_with_policy(
        &self,
        label: &str,
        so_pin: &[u8],
        platform_policy: Option<&[crate::policy::Statement]>,
    ) -> Result<Token> {
        let serial = files::random_hex(8);
        Token::create(&self.root.join(serial), label, so_pin, platform_policy)
    }
}
