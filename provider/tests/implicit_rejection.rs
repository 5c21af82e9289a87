//! PKCS#1 v1.5 decryption is no padding oracle (issue 9, finding 4): a corrupt ciphertext
//! decrypts, as with OpenSSL 3.2+, to a synthetic message that is the same in every process
//! (derived from the ciphertext and a secret only the TPM key produces); the
//! `implicit-rejection` parameter set to 0 brings the error back.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{fails, run, Env, ORDERS};

#[test]
fn corrupt_ciphertext_gives_a_deterministic_synthetic_message() {
    let env = Env::new();
    let key = env.genkey("rsa.pem", "RSA");
    let plain = env.write("plain", b"the secret");
    run(env
        .plain("pkeyutl")
        .args(["-encrypt", "-pubin", "-inkey", &env.file("rsa.pem.pub")])
        .args(["-in", &plain, "-out", &env.file("ct")]));
    let mut corrupt = env.read("ct");
    corrupt[7] ^= 0x40;
    let corrupt = env.write("corrupt", &corrupt);
    let mut other = env.read("ct");
    other[100] ^= 0x01;
    let other = env.write("other", &other);
    for order in ORDERS {
        let decrypt = |ct: &str, opts: &[&str]| {
            let mut c = env.openssl(order, "pkeyutl");
            c.args(["-decrypt", "-inkey", &key, "-in", ct]).args(opts);
            c
        };
        assert_eq!(
            run(&mut decrypt(&env.file("ct"), &[])).stdout,
            b"the secret"
        );
        // Each run is a new process: the synthetic message does not depend on one.
        let first = run(&mut decrypt(&corrupt, &[])).stdout;
        let second = run(&mut decrypt(&corrupt, &[])).stdout;
        assert_eq!(first, second, "{order:?}");
        assert_ne!(first, b"the secret");
        assert_ne!(run(&mut decrypt(&other, &[])).stdout, first);
        let off = ["-pkeyopt", "implicit-rejection:0"];
        let err = fails(&mut decrypt(&corrupt, &off));
        assert!(
            err.contains("PKCS#1 v1.5 decryption failed"),
            "{order:?}: {err}"
        );
        assert_eq!(
            run(&mut decrypt(&env.file("ct"), &off)).stdout,
            b"the secret"
        );
    }
}
