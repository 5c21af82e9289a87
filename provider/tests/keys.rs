//! Key generation, loading and encoding through the real `openssl` CLI.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{run, stdout, Env, Order, ORDERS};

#[test]
fn provider_loads_and_reports_its_parameters() {
    let env = Env::new();
    for order in ORDERS {
        let out = stdout(&run(env.openssl(order, "list").arg("-providers")));
        assert!(
            out.contains("tpmkey") && out.contains("status: active"),
            "{out}"
        );
    }
}

#[test]
fn provider_loads_while_the_tpm_is_unreachable() {
    let mut env = Env::new();
    env.tcti = "swtpm:host=127.0.0.1,port=9".into();
    let out = stdout(&run(env
        .openssl(Order::TpmkeyFirst, "list")
        .arg("-providers")));
    assert!(out.contains("tpmkey"), "{out}");
}

#[test]
fn genpkey_ec_and_rsa_then_pubout_and_text() {
    let env = Env::new();
    for (name, kind, text) in [
        ("ec.pem", "EC", "TPM EC P-256 key, 256 bit"),
        ("p384.pem", "P-384", "TPM EC P-384 key, 384 bit"),
        ("rsa.pem", "RSA", "TPM RSA key, 2048 bit"),
        ("rsa3072.pem", "RSA3072", "TPM RSA key, 3072 bit"),
    ] {
        let key = env.genkey(name, kind);
        let pem = String::from_utf8(env.read(name)).unwrap();
        assert!(pem.starts_with("-----BEGIN TSS2 PRIVATE KEY-----"), "{pem}");
        // The public key is an ordinary SubjectPublicKeyInfo the default provider reads.
        let pubkey = env.file(&format!("{name}.pub"));
        let parsed = stdout(&run(env
            .plain("pkey")
            .args(["-pubin", "-in", &pubkey, "-text", "-noout"])));
        assert!(parsed.contains("Public-Key"), "{parsed}");
        for order in ORDERS {
            let out = stdout(&run(env
                .openssl(order, "pkey")
                .args(["-in", &key, "-text", "-noout"])));
            assert!(out.contains(text), "{order:?}: {out}");
            assert!(out.contains("parent: 0x40000001"), "{out}");
            assert!(out.contains("password: none"), "{out}");
            let pubout = stdout(&run(env
                .openssl(order, "pkey")
                .args(["-in", &key, "-pubout"])));
            assert_eq!(
                pubout.as_bytes(),
                env.read(&format!("{name}.pub")),
                "{order:?}"
            );
        }
    }
}

#[test]
fn key_file_round_trips_through_the_encoder() {
    let env = Env::new();
    let key = env.genkey("k.pem", "EC");
    // pkey re-encodes the private key: TSS2 again, identical bytes (strict DER in, out).
    let out = run(env.openssl(Order::DefaultFirst, "pkey").args([
        "-in",
        &key,
        "-out",
        &env.file("again.pem"),
    ]));
    assert!(out.status.success());
    assert_eq!(env.read("again.pem"), env.read("k.pem"));
    // DER form too.
    run(env.openssl(Order::TpmkeyFirst, "pkey").args([
        "-in",
        &key,
        "-outform",
        "DER",
        "-out",
        &env.file("k.der"),
    ]));
    let text = stdout(&run(env.openssl(Order::TpmkeyFirst, "pkey").args([
        "-inform",
        "DER",
        "-in",
        &env.file("k.der"),
        "-text",
        "-noout",
    ])));
    assert!(text.contains("TPM EC P-256 key"), "{text}");
}

#[test]
fn genpkey_with_password_asks_for_it() {
    let env = Env::new();
    run(env.tpmkey_only("genpkey").args([
        "-algorithm",
        "EC",
        "-pkeyopt",
        "group:P-256",
        "-pkeyopt",
        "user-auth:s3cret",
        "-out",
        &env.file("pw.pem"),
    ]));
    let text = stdout(&run(env.openssl(Order::TpmkeyFirst, "pkey").args([
        "-in",
        &env.file("pw.pem"),
        "-passin",
        "pass:s3cret",
        "-text",
        "-noout",
    ])));
    assert!(text.contains("password: required"), "{text}");
    env.write("msg", b"hello");
    let (key, sig, msg) = (env.file("pw.pem"), env.file("sig"), env.file("msg"));
    for order in ORDERS {
        env.dgst_sign(
            order,
            &key,
            &["-sha256", "-passin", "pass:s3cret"],
            &sig,
            &msg,
        );
    }
    run(env.openssl(Order::TpmkeyFirst, "pkey").args([
        "-in",
        &env.file("pw.pem"),
        "-passin",
        "pass:s3cret",
        "-pubout",
        "-out",
        &env.file("pw.pub"),
    ]));
    env.dgst_verify_default(&env.file("pw.pub"), &["-sha256"], &sig, &msg);
}
