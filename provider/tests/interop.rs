//! Key files move between tpmkey and Debian's tpm2-openssl provider, both directions.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{run, Env, Order};

/// `openssl <sub>` with tpm2-openssl's provider (`tpm2`) and the default provider, with the
/// property query tpm2-openssl needs (without it its keys fail "missing private key").
fn tpm2_openssl(env: &Env, sub: &str) -> std::process::Command {
    let mut c = env.plain(sub);
    c.env("TPM2OPENSSL_TCTI", env.tpm.tcti())
        .args(["-provider", "tpm2", "-provider", "default"])
        .args(["-propquery", "?provider=tpm2"]);
    c
}

#[test]
fn tpm2_openssl_keys_work_in_tpmkey_and_back() {
    let env = Env::new();
    let msg = env.write("msg", b"interop");
    let sig = env.file("sig");
    // Made by tpm2-openssl, used by tpmkey.
    run(tpm2_openssl(&env, "genpkey")
        .args(["-algorithm", "EC"])
        .args(["-pkeyopt", "group:P-256", "-out", &env.file("theirs.pem")]));
    run(env
        .openssl(Order::TpmkeyFirst, "pkey")
        .args(["-in", &env.file("theirs.pem"), "-pubout"])
        .args(["-out", &env.file("theirs.pub")]));
    env.dgst_sign(
        Order::DefaultFirst,
        &env.file("theirs.pem"),
        &["-sha256"],
        &sig,
        &msg,
    );
    env.dgst_verify_default(&env.file("theirs.pub"), &["-sha256"], &sig, &msg);
    // Made by tpmkey, used by tpm2-openssl.
    let ours = env.genkey("ours.pem", "EC");
    run(tpm2_openssl(&env, "dgst").args(["-sha256", "-sign", &ours, "-out", &sig, &msg]));
    env.dgst_verify_default(&env.file("ours.pem.pub"), &["-sha256"], &sig, &msg);
}
