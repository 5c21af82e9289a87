//! OpenSSL 3 provider for TPM-resident keys (see issue 3).
