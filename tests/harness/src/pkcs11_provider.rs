//! latchset pkcs11-provider, the OpenSSL 3 provider that reaches PKCS#11 tokens by
//! `pkcs11:` URI, built from the source snapshot the project keeps beside the repository
//! (`../shared/peers/pkcs11-provider-acf46db.tar.gz`, or the file `PKCS11_PROVIDER_SOURCE`
//! names) into the build tree (`target/pkcs11-provider`), once: with meson and ninja, under
//! a file lock so that test binaries running at once build it one time.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The snapshot the tests are written against.
const SOURCE: &str = "pkcs11-provider-acf46db.tar.gz";

fn source() -> PathBuf {
    if let Some(path) = std::env::var_os("PKCS11_PROVIDER_SOURCE") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peers")
        .join(SOURCE)
}

/// The cargo target directory of the running test (target/<profile>/deps/<test>).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("tpmkey-testenv: no path for this test executable: {e}"));
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("tpmkey-testenv: {} is not in a target tree", exe.display()))
}

/// The path of pkcs11-provider's `pkcs11.so`, built on first use. Panics with the build's
/// output if it cannot be built (missing meson, ninja-build, libssl-dev, libp11-kit-dev:
/// `make deps`), so the test fails.
pub fn pkcs11_provider() -> PathBuf {
    let target = target_dir();
    let dir = target.join("pkcs11-provider");
    let built = dir.join("builddir/src/pkcs11.so");
    let lock_path = target.join("pkcs11-provider.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("tpmkey-testenv: {}: {e}", lock_path.display()));
    // SAFETY: flock on a descriptor this function owns and keeps open until it returns.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        panic!(
            "tpmkey-testenv: flock {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );
    }
    if built.is_file() {
        return built;
    }
    let source = source();
    assert!(
        source.is_file(),
        "tpmkey-testenv: the pkcs11-provider source {} is missing (set PKCS11_PROVIDER_SOURCE)",
        source.display()
    );
    // A build killed half-way leaves a tree without the library: start over.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("tpmkey-testenv: {}: {e}", dir.display()));
    }
    crate::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&source)
            .arg("-C")
            .arg(&target),
    );
    assert!(
        dir.is_dir(),
        "tpmkey-testenv: {} did not unpack to pkcs11-provider/",
        source.display()
    );
    crate::run(
        Command::new(crate::process::find_program("meson"))
            .args(["setup", "builddir"])
            .current_dir(&dir),
    );
    crate::run(
        Command::new(crate::process::find_program("meson"))
            .args(["compile", "-C", "builddir"])
            .current_dir(&dir),
    );
    assert!(
        built.is_file(),
        "tpmkey-testenv: meson built no {}",
        built.display()
    );
    built
}
