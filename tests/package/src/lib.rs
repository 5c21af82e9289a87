//! Tests of how tpmkey is installed (no library code): `tests/deb.rs` builds the Debian
//! package and takes it through install, use and purge in a fresh Debian 12 root;
//! `tests/install.rs` checks `make install`/`make uninstall`, the man pages and the
//! example systemd unit. The shell halves live next to this crate (`debian-root.sh`,
//! `in-root.sh`).

use std::path::{Path, PathBuf};

/// The workspace root (this crate is tests/package).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// A program's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
