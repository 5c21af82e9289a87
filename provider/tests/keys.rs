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

/// genpkey's `parent` and `parent-auth` (tpm2-openssl's option names): the authorization
/// is used for that generation only; a wrong one is a clear failure.
#[test]
fn genpkey_under_a_persistent_parent_with_parent_auth() {
    let env = Env::new();
    tpmkey_testenv::StoragePrimary {
        auth: Some("parent-pw"),
        ..tpmkey_testenv::StoragePrimary::SRK
    }
    .persist(&env.tpm, "0x81000010");
    let genpkey = |auth: &str, out: &str| {
        let mut c = env.tpmkey_only("genpkey");
        c.args(["-algorithm", "EC", "-pkeyopt", "parent:0x81000010"])
            .args(["-pkeyopt", &format!("parent-auth:{auth}"), "-out", out]);
        c
    };
    let failure = common::fails(&mut genpkey("wrong-pw", &env.file("bad.pem")));
    assert!(
        failure.contains("password") || failure.contains("auth"),
        "{failure}"
    );
    run(&mut genpkey("parent-pw", &env.file("k.pem")));
    let text = stdout(&run(env.openssl(Order::TpmkeyFirst, "pkey").args([
        "-in",
        &env.file("k.pem"),
        "-text",
        "-noout",
    ])));
    assert!(text.contains("parent: 0x81000010"), "{text}");
    // Using the key later needs the parent's authorization from the configuration.
    let conf = env.write(
        "tpmkey.conf",
        b"parent = 0x81000010\nparent-auth = parent-pw\n",
    );
    let msg = env.write("msg", b"under a persistent parent");
    run(env
        .openssl(Order::TpmkeyFirst, "dgst")
        .env("TPMKEY_CONF", &conf)
        .args([
            "-sha256",
            "-sign",
            &env.file("k.pem"),
            "-out",
            &env.file("sig"),
            &msg,
        ]));
    run(env.openssl(Order::DefaultFirst, "pkey").args([
        "-in",
        &env.file("k.pem"),
        "-pubout",
        "-out",
        &env.file("k.pub"),
    ]));
    env.dgst_verify_default(&env.file("k.pub"), &["-sha256"], &env.file("sig"), &msg);
}

/// `genpkey -algorithm RSA-PSS` makes a TPM RSA key; a certificate signed with RSASSA-PSS by
/// it (req -x509) and by it as CA (x509 -req) verifies with the default provider alone.
#[test]
fn genpkey_rsa_pss_then_pss_certificates() {
    let env = Env::new();
    run(env.tpmkey_only("genpkey").args([
        "-algorithm",
        "RSA-PSS",
        "-pkeyopt",
        "bits:2048",
        "-out",
        &env.file("pss.pem"),
    ]));
    let pss = [
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:digest",
    ];
    for order in ORDERS {
        run(env
            .openssl(order, "req")
            .args([
                "-new",
                "-x509",
                "-key",
                &env.file("pss.pem"),
                "-subj",
                "/CN=pss-ca",
            ])
            .args(pss)
            .args(["-out", &env.file("ca.crt")]));
        let text = stdout(&run(env.plain("x509").args([
            "-in",
            &env.file("ca.crt"),
            "-noout",
            "-text",
        ])));
        assert!(text.contains("Signature Algorithm: rsassaPss"), "{text}");
        run(env
            .plain("verify")
            .args(["-CAfile", &env.file("ca.crt"), &env.file("ca.crt")]));
        // A leaf certificate for a software key, issued by the TPM key.
        run(env.plain("req").args([
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &env.file("leaf.key"),
            "-subj",
            "/CN=leaf",
            "-out",
            &env.file("leaf.csr"),
        ]));
        run(env
            .openssl(order, "x509")
            .args([
                "-req",
                "-in",
                &env.file("leaf.csr"),
                "-CA",
                &env.file("ca.crt"),
            ])
            .args(["-CAkey", &env.file("pss.pem"), "-CAcreateserial"])
            .args(pss)
            .args(["-out", &env.file("leaf.crt")]));
        run(env
            .plain("verify")
            .args(["-CAfile", &env.file("ca.crt"), &env.file("leaf.crt")]));
    }
}

/// `openssl pkey -check` / `-pubcheck` on TPM keys: the public half is checked in software.
#[test]
fn pkey_check_on_tpm_keys() {
    let env = Env::new();
    for kind in ["EC", "P-384", "RSA"] {
        let key = env.genkey(&format!("{kind}.pem"), kind);
        for order in ORDERS {
            for check in ["-check", "-pubcheck"] {
                let out = run(env
                    .openssl(order, "pkey")
                    .args(["-in", &key, check, "-noout"]));
                let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
                assert!(
                    said.contains("Key is valid"),
                    "{kind} {order:?} {check}: {said}"
                );
            }
        }
    }
}
