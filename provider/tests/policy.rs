//! Keys bound to the platform state through `openssl genpkey -pkeyopt pcr:…` (and
//! `pcr-values:`, `policy-signer:`, combined with `user-auth:`): they sign, decrypt and
//! derive in the approved state, fail with the policy message after a PCR is extended, and
//! work again after a reboot into the state. Results are checked by the default provider.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{fails, run, Env, Order};
use tpmkey_testenv::TpmEndpoint;

fn extend_pcr16(env: &Env) {
    env.tpm.tpm2_tools_ok([
        "tpm2_pcrextend",
        "16:sha256=0000000000000000000000000000000000000000000000000000000000000001",
    ]);
}

fn export_public(env: &Env, key: &str) -> String {
    let out = format!("{key}.pub");
    run(env
        .openssl(Order::TpmkeyFirst, "pkey")
        .args(["-in", key, "-pubout", "-out", &out]));
    out
}

fn sign(env: &Env, key: &str, extra: &[&str]) -> Result<(), String> {
    let msg = env.write("msg", b"platform-bound");
    let mut cmd = env.openssl(Order::DefaultFirst, "dgst");
    cmd.args(["-sha256"])
        .args(extra)
        .args(["-sign", key, "-out", &env.file("sig"), &msg]);
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    env.dgst_verify_default(
        &export_public(env, key),
        &["-sha256"],
        &env.file("sig"),
        &msg,
    );
    Ok(())
}

#[test]
fn pcr_bound_ec_key_signs_and_derives_only_in_the_state() {
    let mut env = Env::new();
    let key = env.genkey_with("ec.pem", "EC", &["group:P-256", "pcr:sha256:16"]);
    sign(&env, &key, &[]).unwrap();

    run(env
        .plain("genpkey")
        .args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-out", &env.file("peer.key")]));
    run(env.plain("pkey").args([
        "-in",
        &env.file("peer.key"),
        "-pubout",
        "-out",
        &env.file("peer.pub"),
    ]));
    let software = run(env.plain("pkeyutl").args([
        "-derive",
        "-inkey",
        &env.file("peer.key"),
        "-peerkey",
        &export_public(&env, &key),
    ]))
    .stdout;
    let derive = |env: &Env| {
        env.openssl(Order::TpmkeyFirst, "pkeyutl")
            .args(["-derive", "-inkey", &key, "-peerkey", &env.file("peer.pub")])
            .output()
            .unwrap()
    };
    assert_eq!(derive(&env).stdout, software);

    extend_pcr16(&env);
    let err = sign(&env, &key, &[]).unwrap_err();
    assert!(
        err.contains("policy not satisfied") && err.contains("sha256:16"),
        "{err}"
    );
    assert!(!derive(&env).status.success());

    env.tpm.reboot();
    sign(&env, &key, &[]).unwrap();
    assert_eq!(derive(&env).stdout, software);
}

#[test]
fn pcr_bound_rsa_key_with_a_password_decrypts() {
    let env = Env::new();
    let key = env.genkey_with(
        "rsa.pem",
        "RSA",
        &["bits:2048", "pcr:sha256:16", "user-auth:s3cret"],
    );
    let public = export_public(&env, &key);
    let plain = env.write("plain", b"sealed to the state");
    run(env
        .plain("pkeyutl")
        .args(["-encrypt", "-pubin", "-inkey", &public, "-in", &plain])
        .args(["-out", &env.file("ct"), "-pkeyopt", "rsa_padding_mode:oaep"]));
    let decrypt = |pass: &str| {
        env.openssl(Order::TpmkeyFirst, "pkeyutl")
            .args(["-decrypt", "-inkey", &key, "-passin", pass])
            .args(["-in", &env.file("ct"), "-pkeyopt", "rsa_padding_mode:oaep"])
            .output()
            .unwrap()
    };
    assert_eq!(decrypt("pass:s3cret").stdout, b"sealed to the state");
    let wrong = decrypt("pass:wrong");
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("wrong key password"), "{stderr}");

    extend_pcr16(&env);
    let out = decrypt("pass:s3cret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("sha256:16"),
        "{stderr}"
    );
}

#[test]
fn pcr_values_from_a_file_and_bad_options() {
    let env = Env::new();
    // Predicted values: PCR 16 after one extend of 32 bytes of 0x01 from zero.
    let predicted = openssl::sha::sha256(&[[0u8; 32], [1u8; 32]].concat());
    let values = env.write(
        "pcrs.txt",
        format!("sha256:16={}\n", hex(&predicted)).as_bytes(),
    );
    let key = env.genkey_with(
        "ec.pem",
        "EC",
        &["group:P-256", &format!("pcr-values:{values}")],
    );
    let err = sign(&env, &key, &[]).unwrap_err();
    assert!(
        err.contains("sha256:16"),
        "not yet in the predicted state: {err}"
    );
    env.tpm
        .tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={}", "01".repeat(32))]);
    sign(&env, &key, &[]).unwrap();

    for (opt, expect) in [
        ("pcr:sha256:24", "not a PCR index"),
        ("pcr:md5:1", "md5"),
        ("pcr-values:/nonexistent", "/nonexistent"),
        ("policy-signer:/nonexistent", "/nonexistent"),
        ("policy-ref:maybe", "policy-ref:maybe"),
    ] {
        let err = fails(
            env.tpmkey_only("genpkey")
                .args(["-algorithm", "EC", "-pkeyopt", opt])
                .args(["-out", &env.file("bad.pem")]),
        );
        assert!(err.contains(expect), "{opt}: {err}");
    }
}

#[test]
fn signed_policy_key_needs_a_signed_policy() {
    let env = Env::new();
    run(env
        .plain("genpkey")
        .args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-out", &env.file("signer.key")]));
    run(env.plain("pkey").args([
        "-in",
        &env.file("signer.key"),
        "-pubout",
        "-out",
        &env.file("signer.pub"),
    ]));
    let key = env.genkey_with(
        "ec.pem",
        "EC",
        &[
            "group:P-256",
            &format!("policy-signer:{}", env.file("signer.pub")),
        ],
    );
    let err = sign(&env, &key, &[]).unwrap_err();
    assert!(err.contains("no signed policy"), "{err}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
