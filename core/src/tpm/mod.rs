//! The TPM path: everything that talks to the TPM, from the byte pipe up to the commands.
//! Nothing here re-enters libcrypto; the rest of the core reaches the TPM only through
//! [`connection`] (the process's one connection) and [`commands`] (one function per TPM
//! command).

pub mod commands;
pub mod connection;
pub mod keep_lease;
pub mod policy_session;
pub mod response_code;
pub mod session;
pub mod session_crypto;
pub mod tcti;
pub mod wire;
