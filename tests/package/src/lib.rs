//! Tests of how tpmkey is installed (no library code): `tests/deb.rs` builds the Debian
//! package and takes it through install, use and purge in a fresh Debian 12 root;
//! `tests/install.rs` checks `make install`/`make uninstall`, the man pages and the
//! example systemd unit. The shell halves live next to this crate (`debian-root.sh`,
//! `in-root.sh`).
