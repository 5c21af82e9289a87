//! tpmkey core: TPM-resident keys shared by the OpenSSL provider and the PKCS#11 module.
//!
//! Front ends use [`keys::TpmKey`], [`keyfile::KeyFile`], [`keys::random`] and
//! [`connection::configure`]; everything below them (commands, session, TCTI) is the
//! TPM path (`tpm/`), which never re-enters libcrypto.
//!
//! Unsafe code is denied in this crate except in the modules that are FFI: `tcti` (the
//! TCTI loader of tpm2-tss and the tabrmd socket), `tpm::exit_hook` (atexit and
//! pthread_atfork), `keep_lease` (an fcntl record lock), `store::files` (flock,
//! renameat2) and `effective_user` (geteuid).

#![deny(unsafe_code)]

pub mod attest;
pub mod attestation_key;
pub mod config;
pub mod dictionary_attack;
#[allow(unsafe_code)] // geteuid
mod effective_user;
pub mod endorsement;
pub mod envelope;
pub mod error;
pub mod hash;
pub mod hex;
pub mod implicit_rejection;
pub mod import;
pub mod key_policy;
pub mod keyfile;
pub mod keys;
pub mod log;
mod message_signing;
pub mod policy;
pub mod public_key;
pub mod rsa_padding;
pub mod storage_key_pin;
pub mod templates;
mod tpm;
pub mod tpm_identity;
mod tpm_pss;

pub use tpm::{commands, connection, response_code, session, session_crypto, tcti, wire};
pub(crate) use tpm::{keep_lease, policy_session};

pub use error::{Error, Result};
pub use keyfile::KeyFile;
pub use keys::{RsaPadding, SignScheme, Signature, TpmKey};
pub use templates::KeySpec;
pub mod sealed;
pub mod store;
