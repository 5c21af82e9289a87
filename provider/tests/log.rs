//! The provider's side of the one log switch: `TPMKEY_LOG=debug,file=PATH` writes every
//! failure the provider reports, with the TPM's response code in words, to PATH and never
//! the password; without it, nothing is written.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{fails, Env, Order};
use tpmkey_testenv::TpmEndpoint;

#[test]
fn debug_log_names_the_tpm_answer_in_words_and_never_the_password() {
    let env = Env::new();
    let key = env.genkey_with("k.pem", "EC", &["group:P-256", "user-auth:right-pw"]);
    let msg = env.write("msg", b"logged");
    let log = env.path("tpmkey.log");
    let sign = |extra: &[(&str, String)]| {
        let mut cmd = env.openssl(Order::TpmkeyFirst, "dgst");
        cmd.args(["-sha256", "-passin", "pass:wrong-pw-0815", "-sign", &key])
            .args(["-out", &env.file("sig"), &msg])
            .env_remove("TPMKEY_LOG")
            .env_remove("TPMKEY_DEBUG");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        fails(&mut cmd)
    };
    sign(&[]);
    assert!(!log.exists());

    let out = sign(&[("TPMKEY_LOG", format!("debug,file={}", log.display()))]);
    assert!(!out.contains("tpmkey["), "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("tpmkey[") && text.contains("wrong password or PIN"),
        "{text}"
    );
    assert!(!text.contains("wrong-pw-0815"), "{text}");

    // The alias: debug lines on standard error.
    let out = sign(&[("TPMKEY_DEBUG", "1".into())]);
    assert!(
        out.contains("wrong password or PIN") && out.contains("tpmkey["),
        "{out}"
    );
}

/// A TPM in dictionary-attack lockout: the error names it and how the TPM recovers.
#[test]
fn a_tpm_lockout_says_how_to_recover() {
    let env = Env::new();
    env.tpm.tpm2_tools_ok([
        "tpm2_dictionarylockout",
        "-s",
        "-n",
        "2",
        "-t",
        "600",
        "-l",
        "600",
    ]);
    let key = env.genkey_with("k.pem", "EC", &["group:P-256", "user-auth:right-pw"]);
    let msg = env.write("msg", b"locked out");
    let sign = |password: &str| {
        fails(
            env.openssl(Order::TpmkeyFirst, "dgst")
                .args([
                    "-sha256",
                    "-passin",
                    &format!("pass:{password}"),
                    "-sign",
                    &key,
                ])
                .args(["-out", &env.file("sig"), &msg]),
        )
    };
    sign("wrong-1");
    sign("wrong-2");
    let out = sign("right-pw");
    assert!(
        out.contains("dictionary-attack lockout")
            && out.contains("600 s")
            && out.contains("tpm2_dictionarylockout -c"),
        "{out}"
    );
}

/// `objects = keep` on a TPM without a resource manager in a process that cannot write the
/// keep lease (a server's workers running as another user than the state directory's
/// owner): it still signs, per operation, and the log says why it does not keep.
#[test]
fn keep_without_a_writable_lease_says_so_and_still_signs() {
    let env = Env::new();
    let key = env.genkey("k.pem", "EC");
    let state = env.path("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("keep-leases"),
        b"a file where the directory goes",
    )
    .unwrap();
    let msg = env.write("msg", b"kept?");
    let out = env
        .openssl(Order::TpmkeyFirst, "dgst")
        .args(["-sha256", "-sign", &key, "-out", &env.file("sig"), &msg])
        .env("TPMKEY_OBJECTS", "keep")
        .env("TPMKEY_STATE", &state)
        .env("TPMKEY_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot open the keep lease") && stderr.contains("per-operation"),
        "{stderr}"
    );
}
