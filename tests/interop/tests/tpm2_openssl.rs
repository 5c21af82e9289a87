//! Key files move between tpmkey and Debian's tpm2-openssl provider, both directions.

#![allow(clippy::unwrap_used, clippy::panic)]

use tpmkey_testenv::provider_env::{run, Env, Order};
use tpmkey_testenv::TpmEndpoint;

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

/// Key files with and without a password, EC and RSA, made by one provider and used by the
/// other. tpmkey writes emptyAuth explicitly (TRUE or FALSE): tpm2-openssl reads an absent
/// field as "no password" and failed with TPM_RC_AUTH_FAIL, a dictionary-attack count.
#[test]
fn password_keys_work_in_both_directions() {
    let env = Env::new();
    let msg = env.write("msg", b"interop with a password");
    let sig = env.file("sig");
    for (alg, opt) in [("EC", "group:P-256"), ("RSA", "bits:2048")] {
        for password in [None, Some("s3cret")] {
            let tag = format!("{alg}-{}", password.is_some());
            let auth: Vec<String> = password
                .map(|p| vec!["-passin".into(), format!("pass:{p}")])
                .unwrap_or_default();
            // Made by tpmkey, used by tpm2-openssl.
            let ours = env.file(&format!("ours-{tag}.pem"));
            let mut gen = env.tpmkey_only("genpkey");
            gen.args(["-algorithm", alg, "-pkeyopt", opt, "-out", &ours]);
            if let Some(p) = password {
                gen.args(["-pkeyopt", &format!("user-auth:{p}")]);
            }
            run(&mut gen);
            let ours_pub = env.file(&format!("ours-{tag}.pub"));
            run(env
                .openssl(Order::TpmkeyFirst, "pkey")
                .args(["-in", &ours, "-pubout", "-out", &ours_pub])
                .args(&auth));
            run(tpm2_openssl(&env, "dgst")
                .args(["-sha256", "-sign", &ours, "-out", &sig])
                .args(&auth)
                .arg(&msg));
            env.dgst_verify_default(&ours_pub, &["-sha256"], &sig, &msg);
            // Made by tpm2-openssl, used by tpmkey.
            let theirs = env.file(&format!("theirs-{tag}.pem"));
            let mut gen = tpm2_openssl(&env, "genpkey");
            gen.args(["-algorithm", alg, "-pkeyopt", opt, "-out", &theirs]);
            if let Some(p) = password {
                gen.args(["-pkeyopt", &format!("user-auth:{p}")]);
            }
            run(&mut gen);
            let theirs_pub = env.file(&format!("theirs-{tag}.pub"));
            run(tpm2_openssl(&env, "pkey")
                .args(["-in", &theirs, "-pubout", "-out", &theirs_pub])
                .args(&auth));
            run(env
                .openssl(Order::TpmkeyFirst, "dgst")
                .args(["-sha256", "-sign", &theirs, "-out", &sig])
                .args(&auth)
                .arg(&msg));
            env.dgst_verify_default(&theirs_pub, &["-sha256"], &sig, &msg);
        }
    }
    // No wrong password was ever tried.
    let out = run(env
        .tpm
        .tpm2_command("tpm2_getcap")
        .arg("properties-variable"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("TPM2_PT_LOCKOUT_COUNTER: 0x0"),
        "a dictionary-attack count was spent"
    );
}
