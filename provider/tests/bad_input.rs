//! Bad input never crashes or hangs: a non-zero exit and OpenSSL's error queue naming the
//! cause (tpmkey's text, the TPM cause in words).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{fails, run, Env, Order, WireTap, ORDERS};

fn sign(env: &Env, order: Order, key: &str) -> std::process::Command {
    sign_with(env, order, key, &[])
}

fn sign_with(env: &Env, order: Order, key: &str, extra: &[&str]) -> std::process::Command {
    let msg = env.write("msg", b"x");
    let mut c = env.openssl(order, "dgst");
    c.args(["-sha256", "-sign", key, "-out", &env.file("sig")])
        .args(extra)
        .arg(msg);
    c
}

#[test]
fn corrupt_truncated_and_garbage_key_files() {
    let env = Env::new();
    env.genkey("good.pem", "EC");
    let good = String::from_utf8(env.read("good.pem")).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    // Base64 that decodes to a broken structure.
    let corrupt = format!(
        "{}\nMIIBAgEAAgEAAgEAAgEAAgEAAgEAAgEAAgEA\n{}\n",
        lines[0],
        lines[lines.len() - 1]
    );
    let corrupt = env.write("corrupt.pem", corrupt.as_bytes());
    // The first half of a real key file, armour intact.
    let mut truncated: Vec<&str> = lines[..lines.len() / 2].to_vec();
    truncated.push(lines[lines.len() - 1]);
    let truncated = env.write("truncated.pem", truncated.join("\n").as_bytes());
    let garbage = env.write("garbage.pem", &[0x30, 0x82, 0xFF, 0xFF, 0x06, 0x06, 0x67]);
    for order in ORDERS {
        for (file, cause) in [
            (&corrupt, "tpmkey"),
            (&truncated, "tpmkey"),
            (&garbage, "Could not read"),
        ] {
            let err = fails(&mut sign(&env, order, file));
            assert!(err.contains(cause), "{order:?} {file}: {err}");
        }
    }
}

#[test]
fn key_from_another_tpm() {
    let env = Env::new();
    let key = env.genkey("k.pem", "EC");
    let other = Env::new();
    let err = fails(&mut sign(&other, Order::TpmkeyFirst, &key));
    assert!(err.contains("tpmkey"), "{err}");
    assert!(
        err.contains("TPM2_Load") || err.contains("integrity"),
        "{err}"
    );
}

#[test]
fn missing_persistent_handle_and_malformed_uri() {
    let env = Env::new();
    for order in ORDERS {
        let err = fails(&mut sign(&env, order, "handle:0x81000099"));
        assert!(err.contains("TPM_RC_HANDLE"), "{err}");
        let err = fails(&mut sign(&env, order, "handle:0x81zz"));
        assert!(err.contains("expected handle:0x81xxxxxx"), "{err}");
        let err = fails(&mut sign(&env, order, "handle:0x01000000"));
        assert!(err.contains("not a persistent handle"), "{err}");
    }
}

#[test]
fn wrong_password_is_one_clear_failure() {
    let mut env = Env::new();
    run(env.tpmkey_only("genpkey").args([
        "-algorithm",
        "EC",
        "-pkeyopt",
        "user-auth:right",
        "-out",
        &env.file("pw.pem"),
    ]));
    let tap = WireTap::start(env.tpm.port());
    env.tcti = tap.tcti();
    let key = env.file("pw.pem");
    let err = fails(&mut sign_with(
        &env,
        Order::TpmkeyFirst,
        &key,
        &["-passin", "pass:wrong"],
    ));
    assert!(err.contains("wrong key password"), "{err}");
    // One authorisation failure on the wire: no retry storm against the lockout counter.
    let failures = tap
        .take_log()
        .iter()
        .filter(|(_, rsp)| {
            rsp.len() >= 10
                && (u32::from_be_bytes([rsp[6], rsp[7], rsp[8], rsp[9]]) & 0x8BF) == 0x88E
        })
        .count();
    assert_eq!(failures, 1);
    run(&mut sign_with(
        &env,
        Order::TpmkeyFirst,
        &key,
        &["-passin", "pass:right"],
    ));
}

#[test]
fn unreachable_tpm_names_the_tcti() {
    let mut env = Env::new();
    let key = env.genkey("k.pem", "EC");
    env.tcti = "swtpm:host=127.0.0.1,port=9".into();
    for order in ORDERS {
        let err = fails(&mut sign(&env, order, &key));
        assert!(err.contains("port=9"), "{order:?}: {err}");
    }
}
