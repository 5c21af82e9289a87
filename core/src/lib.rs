//! tpmkey core: TPM-resident keys shared by the OpenSSL provider and the PKCS#11 module.
//!
//! Front ends use [`keys::TpmKey`], [`keyfile::KeyFile`], [`keys::random`] and
//! [`connection::configure`]; everything below them (commands, session, TCTI) is the
//! TPM path, which never re-enters libcrypto.

pub mod attest;
pub mod attestation_key;
pub mod commands;
pub mod config;
pub mod connection;
pub mod dictionary_attack;
pub mod endorsement;
pub mod envelope;
pub mod error;
pub mod hash;
pub mod hex;
pub mod implicit_rejection;
pub mod import;
pub mod keep_lease;
pub mod key_policy;
pub mod keyfile;
pub mod keys;
pub mod log;
pub mod policy;
pub mod policy_session;
pub mod public_key;
pub mod response_code;
pub mod rsa_padding;
pub mod session;
pub mod session_crypto;
pub mod storage_key_pin;
pub mod tcti;
pub mod templates;
pub mod tpm_identity;
pub mod wire;

pub use error::{Error, Result};
pub use keyfile::KeyFile;
pub use keys::{RsaPadding, SignScheme, Signature, TpmKey};
pub use templates::KeySpec;
pub mod sealed;
pub mod store;
