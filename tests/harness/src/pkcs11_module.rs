//! The workspace's PKCS#11 module for black-box tests: the cdylib beside the running test
//! executable (target/<profile>/), built once per process. `cargo test` builds no other
//! crate's cdylib and does not always relink it when only a dependency changed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `libtpmkey_pkcs11.so` of this build profile, built (`cargo build --lib -p
/// tpmkey-pkcs11`) on first use.
pub fn module_path() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe
                .parent()
                .and_then(|d| d.parent())
                .expect("target/<profile>/deps")
                .to_path_buf();
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .args(["build", "--lib", "-p", "tpmkey-pkcs11"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if dir.ends_with("release") {
                cargo.arg("--release");
            }
            crate::run(&mut cargo);
            let path = dir.join("libtpmkey_pkcs11.so");
            assert!(path.exists(), "{} not built", path.display());
            path
        })
        .clone()
}
