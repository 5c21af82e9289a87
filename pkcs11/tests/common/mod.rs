//! The module tests' environment is the harness's `tpmkey_testenv::pkcs11_env` (which also
//! re-exports the harness items the tests name through `common::`).

#![allow(unused_imports)]

pub use tpmkey_testenv::pkcs11_env::*;
