//! The TPM path, from the byte pipe up; nothing here re-enters libcrypto.
//!
//! * `tcti`: the byte pipe (tpm2-tss's TCTI loader, or tpm2-abrmd's socket natively);
//! * `wire`: marshalling (Reader, Writer), algorithm and handle constants, command codes;
//!   `response_code`: response codes in words;
//! * `session_crypto`, `session`: the salted HMAC session with parameter encryption;
//!   `policy_session`: policy sessions, and running a key's policy in one;
//! * `commands`: one function per TPM command, marshalling its parameters and parsing its
//!   response ([`commands::Tpm`]);
//! * `connection`: the process's one connection (lifecycle, fork guard, exit flush through
//!   `exit_hook`, retries classified by `retry`), which owns `loaded_objects` (what is in
//!   the TPM, and saved contexts), `storage_key` (the storage primary and persistent
//!   parents, pinned) and `keep_lease` (who may keep objects on a TPM without a resource
//!   manager).

pub mod commands;
pub mod connection;
#[allow(unsafe_code)] // atexit, pthread_atfork, dladdr/dlopen over libc
mod exit_hook;
#[allow(unsafe_code)] // fcntl record lock over libc
pub(crate) mod keep_lease;
mod loaded_objects;
pub(crate) mod policy_session;
pub mod response_code;
mod retry;
pub mod session;
pub mod session_crypto;
mod storage_key;
#[allow(unsafe_code)] // libtss2-tctildr, and the tabrmd socket's file-descriptor passing
pub mod tcti;
pub mod wire;
