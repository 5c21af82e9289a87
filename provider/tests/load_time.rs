//! A key that cannot work fails when it is opened, not at its first use: opening a key file
//! loads it into the TPM (the Load its first signature would have made), so `openssl pkey`
//! and server start-up refuse a key file that is corrupt or from another TPM, naming the
//! cause on stderr (OpenSSL 3.0's file store discards the provider's errors on that path).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{fails, Env, Order, ORDERS};

fn pubout(env: &Env, order: Order, key: &str) -> std::process::Command {
    let mut c = env.openssl(order, "pkey");
    c.args(["-in", key, "-pubout", "-out", &env.file("pub.pem")]);
    c
}

#[test]
fn key_from_another_tpm_fails_at_open() {
    let env = Env::new();
    let key = env.genkey("k.pem", "EC");
    let other = Env::new();
    for order in ORDERS {
        let err = fails(&mut pubout(&other, order, &key));
        assert!(
            err.contains("TPM2_Load") && err.contains("does not belong to this TPM"),
            "{order:?}: {err}"
        );
    }
}

#[test]
fn corrupt_private_blob_fails_at_open() {
    let env = Env::new();
    let key = env.genkey("k.pem", "RSA");
    let mut file = tpmkey::KeyFile::from_pem(&env.read("k.pem")).unwrap();
    let n = file.private.len();
    file.private[n - 5] ^= 0x40;
    let bad = env.write("bad.pem", file.to_pem().as_bytes());
    for order in ORDERS {
        let err = fails(&mut pubout(&env, order, &bad));
        assert!(err.contains("TPM2_Load"), "{order:?}: {err}");
    }
    // The intact key still opens.
    common::run(&mut pubout(&env, Order::TpmkeyFirst, &key));
}
