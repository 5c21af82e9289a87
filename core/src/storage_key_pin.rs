//! Trust on first use of the storage key that salts tpmkey's sessions.
//!
//! CreatePrimary and ReadPublic answers are not authenticated, so an active bus attacker
//! could hand tpmkey a salting key of their own and read every secret a session carries
//! (key passwords at creation, the token secret, PINs). The first Name seen for a TPM and
//! parent is recorded; afterwards any other Name is refused. `storage-key-name` in the
//! configuration overrides the record.
//!
//! Records live in `<state>/storage-keys/` (the state directory of the configuration, by
//! default `/var/lib/tpmkey` for root), one file per TPM and parent, named after the TCTI
//! (`swtpm_host=127.0.0.1,port=2321.40000001`) and holding the Name in hex. Behind a
//! session-bus tpm2-abrmd the bus address is part of the TPM's identity. After a TPM clear
//! the owner seed and so the Name change: delete the file named in the error to re-pin.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::hex::hex;
use crate::store;

pub const DIR: &str = "storage-keys";

/// What the TPM at `tcti` is called in a record's file name.
pub fn record_file_name(tcti: &str, dbus_session: Option<&str>, parent: u32) -> String {
    let mut identity = tcti.to_string();
    if tcti.starts_with("tabrmd") && !tcti.contains("bus_type=system") {
        if let Some(bus) = dbus_session {
            identity.push('@');
            identity.push_str(bus);
        }
    }
    let safe: String = identity
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '=' | ',' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    // File names are at most 255 bytes; keep room for the parent.
    let safe: String = safe.chars().take(200).collect();
    format!("{safe}.{parent:08x}")
}

/// The record for the TPM of `config` and `parent`.
pub fn record_path(config: &Config, parent: u32) -> PathBuf {
    let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok();
    config
        .state_dir()
        .join(DIR)
        .join(record_file_name(&config.tcti, bus.as_deref(), parent))
}

/// Accepts `name` as the Name of the storage key `parent`: equal to the configured
/// `storage-key-name`, or to the recorded Name, or recorded now when there is none yet.
/// A record that cannot be written (no store directory and no right to make it) leaves the
/// key unpinned rather than failing every operation.
pub fn check(config: &Config, parent: u32, name: &[u8]) -> Result<()> {
    if let Some(pinned) = &config.storage_key_name {
        if pinned.as_slice() != name {
            return Err(Error::Integrity(format!(
                "storage key Name {} does not match the pinned storage-key-name {}: refusing to salt the session",
                hex(name),
                hex(pinned)
            )));
        }
        return Ok(());
    }
    let path = record_path(config, parent);
    match std::fs::read_to_string(&path) {
        Ok(text) => compare(&path, text.trim(), name),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            record(&path, name);
            Ok(())
        }
        Err(e) => Err(Error::io(path.display(), e)),
    }
}

fn compare(path: &Path, recorded: &str, name: &[u8]) -> Result<()> {
    if recorded.eq_ignore_ascii_case(&hex(name)) {
        return Ok(());
    }
    Err(Error::Integrity(format!(
        "the TPM's storage key has Name {}, but {recorded} was recorded for this TPM in {}: \
         either the TPM was cleared (then delete that file to trust the new storage key) or \
         something between this machine and its TPM answers in its place; refusing to salt \
         the session",
        hex(name),
        path.display()
    )))
}

fn record(path: &Path, name: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if store::files::create_dir(dir).is_err() {
        return;
    }
    let _ = store::files::write_atomic(path, format!("{}\n", hex(name)).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_name_the_tpm() {
        assert_eq!(
            record_file_name("swtpm:host=127.0.0.1,port=4000", None, 0x4000_0001),
            "swtpm_host=127.0.0.1,port=4000.40000001"
        );
        assert_eq!(
            record_file_name("device:/dev/tpmrm0", None, 0x8100_0001),
            "device__dev_tpmrm0.81000001"
        );
        let a = record_file_name("tabrmd:bus_type=session", Some("unix:path=/a"), 1);
        let b = record_file_name("tabrmd:bus_type=session", Some("unix:path=/b"), 1);
        assert_ne!(a, b);
        assert!(!a.contains('/'));
        assert!(record_file_name(&"x".repeat(400), None, 1).len() < 255);
    }

    #[test]
    fn first_name_is_recorded_then_enforced() {
        let dir = std::env::temp_dir().join(format!("tpmkey-pin-{}", std::process::id()));
        let mut config = Config {
            state: Some(dir.clone()),
            tcti: "swtpm:host=127.0.0.1,port=1".into(),
            ..Config::default()
        };
        check(&config, 0x4000_0001, b"\x00\x0bfirst").unwrap();
        check(&config, 0x4000_0001, b"\x00\x0bfirst").unwrap();
        let e = check(&config, 0x4000_0001, b"\x00\x0bother").unwrap_err();
        assert!(e.to_string().contains("delete that file"), "{e}");
        // Another parent of the same TPM has its own record.
        check(&config, 0x8100_0001, b"\x00\x0bother").unwrap();
        // The explicit pin wins over the record.
        config.storage_key_name = Some(b"\x00\x0bother".to_vec());
        check(&config, 0x4000_0001, b"\x00\x0bother").unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
