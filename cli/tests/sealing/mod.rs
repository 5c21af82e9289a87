//! Shared by the sealing tests: the TPM's dictionary-attack counter, a persistent storage
//! key, PCR 16 moved on, and the engine's swtpm state.

#![allow(clippy::unwrap_used, clippy::panic)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tpmkey_testenv::{Swtpm, TpmEndpoint};

/// What `tpm2_pcrextend` adds to PCR 16 in these tests.
pub const EXTEND: &str = "0000000000000000000000000000000000000000000000000000000000000001";

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// TPM_PT_LOCKOUT_COUNTER, as `tpm2_getcap properties-variable` reports it.
pub fn lockout_counter(swtpm: &Swtpm) -> u64 {
    let out = swtpm.tpm2_tools_ok(["tpm2_getcap", "properties-variable"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("TPM2_PT_LOCKOUT_COUNTER"))
        .unwrap_or_else(|| panic!("no lockout counter in:\n{text}"));
    let value = line.split(':').nth(1).unwrap().trim();
    u64::from_str_radix(value.trim_start_matches("0x"), 16).unwrap()
}

pub fn extend_pcr16(swtpm: &Swtpm) {
    swtpm.tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={EXTEND}")]);
}

/// A persistent storage key at 0x81000001, as the kernel needs one.
pub fn persistent_parent(swtpm: &Swtpm, _dir: &Path) {
    tpmkey_testenv::StoragePrimary::TOOLS_DEFAULT.persist(swtpm, "0x81000001");
}

/// The openssl_tpm2_engine golden vectors (a copy of the shared peer material).
pub fn engine_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/data/engine-golden")
        .join(name)
}

/// A swtpm running on the engine's state (its owner seed made the golden files).
pub fn engine_tpm() -> Swtpm {
    let mut swtpm = Swtpm::start();
    swtpm.stop();
    std::fs::copy(
        engine_file("tpm/tpm2-00.permall"),
        swtpm.state_dir().join("tpm2-00.permall"),
    )
    .unwrap();
    swtpm.restart();
    swtpm
}
