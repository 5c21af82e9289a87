//! PKCS#11 module backed by the TPM (see issue 4).
