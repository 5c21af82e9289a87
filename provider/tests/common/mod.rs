//! The provider tests' environment is the harness's `tpmkey_testenv::provider_env`
//! (which also re-exports the harness items the tests name through `common::`).

#![allow(unused_imports, dead_code)]

use std::path::PathBuf;

pub use tpmkey_testenv::provider_env::*;

/// The provider cdylib cargo built for these tests.
pub fn cdylib() -> PathBuf {
    tpmkey_testenv::cdylib("tpmkey_provider")
}
