//! The workspace's cdylibs (the OpenSSL provider, the PKCS#11 module) as cargo built them
//! for the running test executable. No test runs cargo: a test crate that loads a cdylib
//! lists its package as a dependency, so `cargo test` builds it before the tests.

use std::path::{Path, PathBuf};

/// `lib<name>.so` of the running test's build profile: target/<profile>/deps/ holds the one
/// cargo built for this test crate's dependencies (the copy in target/<profile>/ is
/// refreshed only by `cargo build`, and is the fallback). Panics naming both places when
/// neither holds it.
pub fn cdylib(name: &str) -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("tpmkey-testenv: no path for this test executable: {e}"));
    let deps = exe.parent().unwrap_or(Path::new("."));
    let profile = deps.parent().unwrap_or(deps);
    let file = format!("lib{name}.so");
    [deps, profile]
        .iter()
        .map(|dir| dir.join(&file))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tpmkey-testenv: {file} is in neither {} nor {}: the test crate must list the \
                 package that builds it among its [dev-dependencies] (or run `cargo build \
                 --release --workspace` first)",
                deps.display(),
                profile.display()
            )
        })
}
