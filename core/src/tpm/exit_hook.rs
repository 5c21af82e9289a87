//! The process hooks of the connection, over libc: a flush at process exit and a hook in the
//! parent after fork. Hosts do not always tear the provider or module down (the Rust
//! `openssl` crate, for one, initialises libcrypto without atexit cleanup), and without a
//! resource manager whatever a process leaves loaded blocks every other process. glibc would
//! also run an atexit handler of a shared library inside its dlclose, under the loader lock,
//! where TPM I/O can deadlock (no thread can start); so the library is pinned first and the
//! handler runs at process exit only.

/// Registers `at_exit` (atexit) and `after_fork_in_parent` (pthread_atfork), once per
/// process, after pinning the shared object that holds this code. Both must be plain
/// functions that never unwind.
pub(crate) fn register(at_exit: extern "C" fn(), after_fork_in_parent: extern "C" fn()) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        pin_this_library();
        // SAFETY: `at_exit` is a plain extern "C" fn that never unwinds (the caller's promise).
        unsafe { libc::atexit(at_exit) };
        // SAFETY: as above, for `after_fork_in_parent`.
        unsafe { libc::pthread_atfork(None, Some(after_fork_in_parent), None) };
    });
}

/// Marks the shared object holding this code RTLD_NODELETE (a no-op in an executable).
fn pin_this_library() {
    let addr = pin_this_library as fn() as *const libc::c_void;
    // SAFETY: Dl_info is plain data filled by dladdr; dli_fname is checked for NULL and is
    // valid while the object is loaded, which it is during this call.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr, &mut info) != 0 && !info.dli_fname.is_null() {
            libc::dlopen(
                info.dli_fname,
                libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
            );
        }
    }
}
