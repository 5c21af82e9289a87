//! Configuration, highest first: values handed in by a front end (openssl.cnf section,
//! module config) > environment (`TPMKEY_TCTI`, `TPMKEY_OBJECTS`, `TPMKEY_SESSION`,
//! `TPMKEY_STORE`, `TPMKEY_STATE`, `TPMKEY_LOG`, `TPMKEY_TIMEOUT`) > the config file
//! (`TPMKEY_CONF`, default /etc/tpmkey/tpmkey.conf, `key = value` lines, `#` comments) >
//! defaults. tpm2-tss is never left to probe for a TPM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub const DEFAULT_CONF: &str = "/etc/tpmkey/tpmkey.conf";
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// Keys the config file, the environment and front ends may set.
pub const KEYS: &[&str] = &[
    "tcti",
    "session",
    "objects",
    "parent",
    "parent-auth",
    "storage-key-name",
    "store",
    "state",
    "log",
    "timeout",
];

/// How long to wait for one response by default: RSA key generation on a slow TPM takes
/// tens of seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a key stays loaded in the TPM's few object slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectPolicy {
    /// `keep` behind a resource manager, `per-operation` otherwise.
    Auto,
    /// A used key stays loaded: one TPM command per signature.
    Keep,
    /// Load from a saved context for the operation, flush right after: any number of
    /// processes share a TPM without a resource manager.
    PerOperation,
}

impl ObjectPolicy {
    fn parse(v: &str) -> Option<Self> {
        match v {
            "auto" => Some(Self::Auto),
            "keep" => Some(Self::Keep),
            "per-operation" => Some(Self::PerOperation),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Config {
    pub tcti: String,
    pub session: bool,
    pub objects: ObjectPolicy,
    /// A persistent storage key (0x81xxxxxx) to use instead of the transient primary.
    pub parent: Option<u32>,
    pub parent_auth: Zeroizing<Vec<u8>>,
    /// The pinned Name of the storage key that salts the session (hex in the file).
    pub storage_key_name: Option<Vec<u8>>,
    pub store: Option<PathBuf>,
    /// tpmkey's own state (the storage keys pinned on first use); see [`Config::state_dir`].
    pub state: Option<PathBuf>,
    /// The log's level and destination (`TPMKEY_LOG`); see [`crate::log`].
    pub log: Option<crate::log::LogSpec>,
    /// How long to wait for one TPM response before the connection counts as broken.
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("tcti", &self.tcti)
            .field("session", &self.session)
            .field("objects", &self.objects)
            .field("parent", &self.parent)
            .field(
                "parent_auth",
                &if self.parent_auth.is_empty() {
                    "none"
                } else {
                    "(set)"
                },
            )
            .field("store", &self.store)
            .field("state", &self.state)
            .field("log", &self.log)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tcti: DEFAULT_TCTI.into(),
            session: true,
            objects: ObjectPolicy::Auto,
            parent: None,
            parent_auth: Zeroizing::new(Vec::new()),
            storage_key_name: None,
            store: None,
            state: None,
            log: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

pub fn parse_handle(v: &str) -> Option<u32> {
    let v = v.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

impl Config {
    /// The configuration for this process: `explicit` from the front end, then the
    /// environment, then the config file.
    pub fn load(explicit: &[(&str, &str)]) -> Result<Config> {
        let mut c = Config::default();
        let conf_env = std::env::var("TPMKEY_CONF").ok();
        let path = conf_env.clone().unwrap_or_else(|| DEFAULT_CONF.into());
        match std::fs::read_to_string(&path) {
            Ok(text) => c.apply_file(Path::new(&path), &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && conf_env.is_none() => {}
            Err(e) => return Err(Error::Config(format!("{path}: {e}"))),
        }
        for (var, key) in [
            ("TPMKEY_TCTI", "tcti"),
            ("TPMKEY_OBJECTS", "objects"),
            ("TPMKEY_SESSION", "session"),
            ("TPMKEY_STORE", "store"),
            ("TPMKEY_STATE", "state"),
            ("TPMKEY_LOG", "log"),
            ("TPMKEY_TIMEOUT", "timeout"),
        ] {
            if let Ok(v) = std::env::var(var) {
                c.set(key, &v)
                    .map_err(|m| Error::Config(format!("environment {var}: {m}")))?;
            }
        }
        for (k, v) in explicit {
            c.set(k, v)
                .map_err(|m| Error::Config(format!("{k}: {m}")))?;
        }
        Ok(c)
    }

    /// The configuration a file's `text` gives over the defaults (nothing else read).
    pub fn from_file_text(path: &Path, text: &str) -> Result<Config> {
        let mut c = Config::default();
        c.apply_file(path, text)?;
        Ok(c)
    }

    fn apply_file(&mut self, path: &Path, text: &str) -> Result<()> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || format!("{}, line {}", path.display(), i + 1);
            // The line itself is not echoed: it may hold a secret (`parent-auth`).
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| Error::Config(format!("{}: expected `key = value`", at())))?;
            self.set(k.trim(), v.trim())
                .map_err(|m| Error::Config(format!("{}: {m}", at())))?;
        }
        Ok(())
    }

    /// Sets one key; the error text names the key and the bad value.
    pub fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        let bad = |what: &str| format!("{key} = \"{value}\": {what}");
        match key {
            "tcti" => {
                if value.trim().is_empty() {
                    return Err(bad("empty TCTI (tpmkey never lets tpm2-tss probe)"));
                }
                self.tcti = value.trim().into();
            }
            "session" => {
                self.session = match value {
                    "on" | "yes" | "true" | "1" => true,
                    "off" | "no" | "false" | "0" => false,
                    _ => return Err(bad("expected on or off")),
                }
            }
            "objects" => {
                self.objects = ObjectPolicy::parse(value)
                    .ok_or_else(|| bad("expected auto, keep or per-operation"))?
            }
            "parent" => {
                let h = parse_handle(value)
                    .ok_or_else(|| bad("expected a handle such as 0x81000001"))?;
                self.parent = match h {
                    0x4000_0001 => None,
                    0x8100_0000..=0x81FF_FFFF => Some(h),
                    _ => return Err(bad(
                        "expected the owner hierarchy 0x40000001 or a persistent handle 0x81xxxxxx",
                    )),
                };
            }
            "parent-auth" => self.parent_auth = Zeroizing::new(value.as_bytes().to_vec()),
            "storage-key-name" => {
                self.storage_key_name =
                    Some(crate::hex::unhex(value.trim()).ok_or_else(|| bad("expected hex"))?);
            }
            "store" => self.store = Some(PathBuf::from(value)),
            "state" => self.state = Some(PathBuf::from(value)),
            "log" => self.log = Some(crate::log::LogSpec::parse(value).map_err(|m| bad(&m))?),
            "timeout" => {
                self.timeout = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| bad("expected whole seconds from 1 to 3600"))?
            }
            _ => {
                return Err(format!(
                    "unknown key \"{key}\" (known: {})",
                    KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// tpmkey's state directory: `state`, else `/var/lib/tpmkey` for root and
    /// `$XDG_STATE_HOME/tpmkey` (or `~/.local/state/tpmkey`) for other users.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state {
            return dir.clone();
        }
        if crate::effective_user::is_root() {
            return PathBuf::from("/var/lib/tpmkey");
        }
        match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d).join("tpmkey"),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".local/state/tpmkey"),
        }
    }

    /// The object policy with `auto` resolved from the TCTI.
    pub fn object_policy(&self) -> ObjectPolicy {
        match self.objects {
            ObjectPolicy::Auto if behind_resource_manager(&self.tcti) => ObjectPolicy::Keep,
            ObjectPolicy::Auto => ObjectPolicy::PerOperation,
            p => p,
        }
    }
}

/// /dev/tpmrm0 and tpm2-abrmd give each connection its own object slots.
pub fn behind_resource_manager(tcti: &str) -> bool {
    tcti.starts_with("tabrmd") || tcti.starts_with("device:/dev/tpmrm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_name_file_and_line() {
        let mut c = Config::default();
        let e = c
            .apply_file(
                Path::new("/x.conf"),
                "# c\ntcti = swtpm:port=1\nbogus = 1\n",
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("/x.conf, line 3") && e.to_string().contains("unknown key"),
            "{e}"
        );
        let e = c
            .apply_file(Path::new("/x.conf"), "tcti swtpm\n")
            .unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = c
            .apply_file(Path::new("/x.conf"), "parent-auth: s3cret\n")
            .unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "a secret echoed: {e}");
        assert_eq!(c.tcti, "swtpm:port=1");
    }

    #[test]
    fn timeout_is_whole_seconds_within_an_hour() {
        let mut c = Config::default();
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        c.set("timeout", "5").unwrap();
        assert_eq!(c.timeout, Duration::from_secs(5));
        for bad in ["0", "3601", "1.5", "-1", ""] {
            let e = c.set("timeout", bad).unwrap_err();
            assert!(e.contains("timeout") && e.contains("seconds"), "{e}");
        }
        assert_eq!(c.timeout, Duration::from_secs(5));
    }

    #[test]
    fn auto_policy_follows_tcti() {
        let mut c = Config::default();
        assert_eq!(c.object_policy(), ObjectPolicy::Keep);
        c.set("tcti", "swtpm:host=127.0.0.1,port=5000").unwrap();
        assert_eq!(c.object_policy(), ObjectPolicy::PerOperation);
        c.set("tcti", "tabrmd:bus_type=session").unwrap();
        assert_eq!(c.object_policy(), ObjectPolicy::Keep);
        c.set("objects", "per-operation").unwrap();
        assert_eq!(c.object_policy(), ObjectPolicy::PerOperation);
        assert!(c.set("objects", "sometimes").is_err());
        assert!(c.set("tcti", "").is_err());
        assert!(c.set("parent", "0x12").is_err());
    }
}
