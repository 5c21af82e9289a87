//! `objects = keep` without a resource manager. There the TPM's three object and three
//! session slots are shared by every process, and processes that each keep a key and a
//! session loaded exhaust them and wait on each other for ever (two nginx workers managed 0
//! handshakes in 120 s). So one process at a time keeps its objects: it holds a lease, a
//! POSIX record lock on `<state>/keep-leases/<TPM>.lock`, for the life of its connection.
//! The others run `per-operation`: the keeper holds at most two objects (its key, and the
//! storage key until its next operation), so they find room. A POSIX lock (unlike flock) is
//! not inherited by a forked child, and the kernel drops it when its holder exits.

use std::fs::File;
use std::os::fd::AsRawFd;

use crate::config::Config;

pub const DIR: &str = "keep-leases";

#[derive(Debug)]
pub struct KeepLease {
    _file: File,
}

impl KeepLease {
    /// The lease for the TPM of `config`, if no other process holds it. `None` also when the
    /// lock file cannot be made: then this process does not keep (the safe side).
    pub fn try_acquire(config: &Config) -> Option<KeepLease> {
        let dir = config.state_dir().join(DIR);
        let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok();
        let name = crate::storage_key_pin::record_file_name(&config.tcti, bus.as_deref(), 0);
        let path = dir.join(format!("{name}.lock"));
        let opened = crate::store::files::create_dir(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| crate::store::files::open_lock_file(&path).map_err(|e| e.to_string()));
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                // Typically a server's workers running as another user than the master that
                // made the state directory: they work, but each operation loads its key.
                crate::log::write(
                    crate::log::Level::Error,
                    "tpmkey",
                    &format!(
                        "objects = keep: cannot open the keep lease {} ({e}); this process \
                         runs per-operation (give it a writable state directory)",
                        path.display()
                    ),
                );
                return None;
            }
        };
        // SAFETY: flock is plain data; all-zero is a valid starting value.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: fcntl on a descriptor we own, with a valid flock for F_SETLK (no wait).
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
        (rc == 0).then_some(KeepLease { _file: file })
    }
}
