//! tpmkey-interop-tests: other programs using tpmkey's two front ends, as a user runs them
//! (nginx, Apache httpd and curl, Debian's tpm2-openssl through the OpenSSL provider;
//! OpenSSH, strongSwan pki and IKEv2, the libp11 engine, latchset pkcs11-provider, p11-kit
//! and GnuTLS's p11tool through the PKCS#11 module), each against a real swtpm. The tests
//! are in `tests/`, one program each; their environment is the harness's
//! (`tpmkey_testenv::provider_env`, `tpmkey_testenv::pkcs11_env`). This library is empty.
