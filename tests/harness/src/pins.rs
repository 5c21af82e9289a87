//! tpmkey records the Name of each TPM's storage key on first use, in
//! `<state>/storage-keys/`, one file per TPM named after its TCTI (see the core's
//! `storage_key_pin`). A test TPM's TCTI names a loopback port that a later test reuses for a
//! different swtpm, whose storage key tpmkey would then rightly refuse; so the harness forgets
//! the records of its TPMs when it starts and stops them.

use std::path::PathBuf;

/// The state directory tpmkey uses when a test configures none.
fn default_state() -> PathBuf {
    if let Some(dir) = std::env::var_os("TPMKEY_STATE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/tpmkey");
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("tpmkey"),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share/tpmkey")
        }
    }
}

/// Removes the storage-key records whose file name contains `marker` (a TCTI's port or
/// unique bus name, as it appears in the file name).
pub(crate) fn forget(marker: &str) {
    let dir = default_state().join("storage-keys");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().contains(marker) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes the records of the TPM reached on loopback `port` (a swtpm or a wire tap).
pub(crate) fn forget_port(port: u16) {
    forget(&format!("port={port}."));
}
