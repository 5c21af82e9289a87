//! Keys with a password: persistent `handle:` keys that are DA-protected ask the
//! application's password callback (no `?pass` needed); a key whose password the
//! application cannot supply (no tty, EOF, no `-passin`) still shows its public half, and
//! private operations say "the key needs a password and none was supplied". The TPM sees
//! an authorisation failure only for a wrong password.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{auth_failures, fails, run, stdout, without_tty, Env, ORDERS};
use tpmkey_testenv::TpmEndpoint;

const NONE_SUPPLIED: &str = "the key needs a password and none was supplied";

/// TPM2_PT_LOCKOUT_COUNTER (the harness's swtpm forgives one failure per second).
fn lockout_counter(env: &Env) -> u32 {
    let out = env
        .tpm
        .tpm2_tools_ok(["tpm2_getcap", "properties-variable"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("TPM2_PT_LOCKOUT_COUNTER")?
                .strip_prefix(':')
        })
        .and_then(|v| u32::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| panic!("no lockout counter in:\n{text}"))
}

#[test]
fn da_protected_handle_asks_for_its_password() {
    let (env, tap) = Env::tapped();
    // A DA-protected persistent key (a password makes the core clear noDA).
    env.genkey_with(
        "k.pem",
        "EC",
        &["group:P-256", "user-auth:pw-da", "persist:0x81000030"],
    );
    let handle = "handle:0x81000030";
    let msg = env.write("msg", b"handle with a password");
    for order in ORDERS {
        tap.take_log();
        let before = lockout_counter(&env);
        // The public half needs no password, and the description says one is needed.
        let text = stdout(&run(&mut without_tty(
            env.openssl(order, "pkey")
                .args(["-in", handle, "-text", "-noout"]),
        )));
        assert!(text.contains("password: required"), "{order:?}: {text}");
        assert!(!text.contains("noDA"), "{order:?}: {text}");
        run(&mut without_tty(env.openssl(order, "pkey").args([
            "-in",
            handle,
            "-pubout",
            "-out",
            &env.file("h.pub"),
        ])));
        // -passin without ?pass: the right password signs.
        let sig = env.file("sig");
        env.dgst_sign(
            order,
            handle,
            &["-sha256", "-passin", "pass:pw-da"],
            &sig,
            &msg,
        );
        env.dgst_verify_default(&env.file("h.pub"), &["-sha256"], &sig, &msg);
        // No password to be had: a clear refusal, and nothing sent to the TPM as a guess.
        let err = fails(&mut without_tty(
            env.openssl(order, "dgst")
                .args(["-sha256", "-sign", handle, "-out", &sig, &msg]),
        ));
        assert!(err.contains(NONE_SUPPLIED), "{order:?}: {err}");
        assert_eq!(auth_failures(&tap.take_log()), 0, "{order:?}");
        assert!(lockout_counter(&env) <= before, "{order:?}");
        // A wrong password: the wrong-password error, one failure counted by the TPM.
        let err = fails(env.openssl(order, "dgst").args([
            "-sha256",
            "-passin",
            "pass:wrong",
            "-sign",
            handle,
            "-out",
            &sig,
            &msg,
        ]));
        assert!(err.contains("wrong key password"), "{order:?}: {err}");
        assert_eq!(auth_failures(&tap.take_log()), 1, "{order:?}");
    }
}

#[test]
fn no_da_handle_without_password_never_prompts() {
    let env = Env::new();
    env.genkey_with("k.pem", "EC", &["persist:0x81000031"]);
    let text = stdout(&run(&mut without_tty(env.tpmkey_only("pkey").args([
        "-in",
        "handle:0x81000031",
        "-text",
        "-noout",
    ]))));
    assert!(text.contains("password: none"), "{text}");
    let msg = env.write("msg", b"no password");
    run(&mut without_tty(env.openssl(ORDERS[0], "dgst").args([
        "-sha256",
        "-sign",
        "handle:0x81000031",
        "-out",
        &env.file("sig"),
        &msg,
    ])));
}

#[test]
fn key_file_without_its_password_shows_its_public_half_and_says_why_it_cannot_sign() {
    let (env, tap) = Env::tapped();
    for kind in ["EC", "RSA"] {
        let key = env.genkey_with(&format!("{kind}.pem"), kind, &["user-auth:file-pw"]);
        for order in ORDERS {
            tap.take_log();
            let pubout = run(&mut without_tty(
                env.openssl(order, "pkey").args(["-in", &key, "-pubout"]),
            ));
            assert!(
                stdout(&pubout).contains("BEGIN PUBLIC KEY"),
                "{kind} {order:?}"
            );
            let text = stdout(&run(&mut without_tty(
                env.openssl(order, "pkey")
                    .args(["-in", &key, "-text", "-noout"]),
            )));
            assert!(
                text.contains("password: required"),
                "{kind} {order:?}: {text}"
            );
            let msg = env.write("msg", b"no password at hand");
            let err = fails(&mut without_tty(env.openssl(order, "dgst").args([
                "-sha256",
                "-sign",
                &key,
                "-out",
                &env.file("sig"),
                &msg,
            ])));
            assert!(err.contains(NONE_SUPPLIED), "{kind} {order:?}: {err}");
            assert!(!err.contains("did not accept"), "{kind} {order:?}: {err}");
            assert_eq!(auth_failures(&tap.take_log()), 0, "{kind} {order:?}");
        }
    }
}
