//! The effective user of this process (geteuid): root's store and state live under
//! `/var/lib/tpmkey`, other users' under their home.

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
