//! tpmkey core: TPM-resident keys shared by the OpenSSL provider and the PKCS#11 module.

pub mod error;
pub mod keyfile;
pub mod response_code;

pub use error::{Error, Result};
