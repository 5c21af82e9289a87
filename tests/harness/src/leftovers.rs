//! Transient objects and sessions left in a swtpm, asked of and flushed on swtpm directly
//! (never through a tap or a resource manager): without a resource manager, whatever a
//! process leaves loaded blocks every later user.

use crate::{Swtpm, TpmEndpoint};

/// Handles of the given capability (`handles-transient`, `handles-loaded-session`,
/// `handles-saved-session`).
pub fn handles(tpm: &Swtpm, capability: &str) -> Vec<String> {
    let out = tpm.tpm2_tools_ok(["tpm2_getcap", capability]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(str::to_owned)
        .collect()
}

/// The NV indices of the owner range (0x01800000-0x01BFFFFF) the TPM holds: where tokens'
/// PIN and secret indices live.
pub fn owner_nv_indices(tpm: &Swtpm) -> Vec<u32> {
    handles(tpm, "handles-nv-index")
        .iter()
        .filter_map(|h| u32::from_str_radix(h.trim().trim_start_matches("0x"), 16).ok())
        .filter(|h| (0x0180_0000..0x01C0_0000).contains(h))
        .collect()
}

/// Transient objects and sessions (loaded or saved) in the TPM, each as `CAPABILITY
/// HANDLE`: empty when nothing is left.
pub fn leftovers(tpm: &Swtpm) -> Vec<String> {
    let mut all = Vec::new();
    for cap in [
        "handles-transient",
        "handles-loaded-session",
        "handles-saved-session",
    ] {
        all.extend(handles(tpm, cap).into_iter().map(|h| format!("{cap} {h}")));
    }
    all
}

/// Flushes every transient object and session (loaded or saved), as an administrator
/// would after a killed process, so that the next step starts from an empty TPM.
pub fn flush_leftovers(tpm: &Swtpm) {
    for what in ["-t", "-l", "-s"] {
        tpm.tpm2_tools_ok(["tpm2_flushcontext", what]);
    }
}
