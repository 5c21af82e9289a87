//! p11-kit finds the module through the module file `conf/tpmkey.module`.
//!
//! How this is tested: p11-kit ignores user configuration (`~/.config/pkcs11/modules`,
//! `P11_KIT_*` overrides of the config paths) when it runs as root, which is how the tests
//! run. So the test installs the real `conf/tpmkey.module` into p11-kit's system module
//! directory (`pkg-config --variable=p11_module_configs p11-kit-1`, /usr/share/p11-kit/modules)
//! under a name unique to this process and moment, with its `module:` line pointing at the
//! built library (the shipped file names the library relative to p11-kit's module path,
//! where `make install` puts it), and removes it on drop, also when the test fails. Unique
//! names keep parallel runs apart; while the file exists, other p11-kit users on the machine
//! could see the module, which is harmless (`critical: no`, and it only reaches a swtpm on a
//! private port).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use tpmkey_testenv::pkcs11_env::*;

/// A module file installed for the length of a test.
struct InstalledModule {
    name: String,
    path: PathBuf,
}

impl InstalledModule {
    fn install() -> InstalledModule {
        let dir = tpmkey_testenv::run(
            std::process::Command::new("pkg-config")
                .args(["--variable=p11_module_configs", "p11-kit-1"]),
        );
        let dir = PathBuf::from(String::from_utf8(dir.stdout).unwrap().trim());
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../conf/tpmkey.module"
        ))
        .unwrap();
        let mut replaced = false;
        let text: String = shipped
            .lines()
            .map(|l| {
                if l.starts_with("module:") {
                    replaced = true;
                    format!("module: {}\n", module_path().display())
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert!(replaced, "conf/tpmkey.module has no module: line");
        let name = format!(
            "tpmkey-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let path = dir.join(format!("{name}.module"));
        std::fs::write(&path, text).unwrap();
        InstalledModule { name, path }
    }
}

impl Drop for InstalledModule {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn p11_kit_lists_the_registered_module_and_its_token() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("p11-kit");
    let module = InstalledModule::install();
    // tpm2-pkcs11's module file is installed too (Debian libtpm2-pkcs11-1): without a TCTI
    // it would probe the default TPM ports, so it gets one that fails at once.
    let out = tpmkey_testenv::run(
        command(&env, "p11-kit")
            .arg("list-modules")
            .env("TPM2_PKCS11_TCTI", "device:/nonexistent"),
    );
    let listing = text(&out);
    // "NAME: PATH" lines, each followed by its indented details.
    let header = format!("{}: {}", module.name, module_path().display());
    let ours: String = listing
        .lines()
        .skip_while(|l| *l != header)
        .take_while(|l| *l == header || l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!ours.is_empty(), "{header} not listed:\n{listing}");
    assert!(ours.contains("library-manufacturer: tpmkey"), "{ours}");
    assert!(ours.contains(&format!("token: {}", keys.label)), "{ours}");
    assert!(ours.contains("manufacturer: TPM IBM"), "{ours}");
    assert!(ours.contains("token-initialized"), "{ours}");
}
