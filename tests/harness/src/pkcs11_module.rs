//! The workspace's PKCS#11 module for black-box tests.

use std::path::PathBuf;

/// `libtpmkey_pkcs11.so` as cargo built it for this test (see [`crate::cdylib`]).
pub fn module_path() -> PathBuf {
    crate::cdylib("tpmkey_pkcs11")
}
