//! Signatures with TPM keys through the `openssl` CLI; every one verified by OpenSSL's
//! default provider alone (a separate process without tpmkey).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{fails, run, stdout, Env, ORDERS};

#[test]
fn dgst_sign_ec_rsa_pss_both_orders() {
    let env = Env::new();
    let msg = env.write("msg", b"a message to sign\n");
    let sig = env.file("sig");
    for (name, kind) in [("ec", "EC"), ("p384", "P-384"), ("rsa", "RSA")] {
        let key = env.genkey(name, kind);
        let pubkey = env.file(&format!("{name}.pub"));
        for order in ORDERS {
            for digest in ["-sha1", "-sha256", "-sha384", "-sha512"] {
                env.dgst_sign(order, &key, &[digest], &sig, &msg);
                env.dgst_verify_default(&pubkey, &[digest], &sig, &msg);
                // The provider verifies its own signatures too.
                run(env.openssl(order, "dgst").args([
                    digest,
                    "-prverify",
                    &key,
                    "-signature",
                    &sig,
                    &msg,
                ]));
            }
            if kind != "RSA" {
                continue;
            }
            let pss = ["-sha256", "-sigopt", "rsa_padding_mode:pss"];
            env.dgst_sign(order, &key, &pss, &sig, &msg);
            // Salt = digest length by default: verification with a fixed salt of 32.
            let fixed = [&pss[..], &["-sigopt", "rsa_pss_saltlen:32"]].concat();
            env.dgst_verify_default(&pubkey, &fixed, &sig, &msg);
            let auto = [&pss[..], &["-sigopt", "rsa_pss_saltlen:auto"]].concat();
            for saltlen in ["max", "20", "digest"] {
                let salt = format!("rsa_pss_saltlen:{saltlen}");
                let opts = [&pss[..], &["-sigopt", &salt]].concat();
                env.dgst_sign(order, &key, &opts, &sig, &msg);
                env.dgst_verify_default(&pubkey, &auto, &sig, &msg);
            }
        }
    }
}

#[test]
fn pkeyutl_sign_and_verify_a_digest() {
    let env = Env::new();
    let msg = env.write("msg", b"to be hashed");
    run(env
        .plain("dgst")
        .args(["-sha256", "-binary", "-out", &env.file("md"), &msg]));
    for (name, kind) in [("ec", "EC"), ("rsa", "RSA")] {
        let key = env.genkey(name, kind);
        let pubkey = env.file(&format!("{name}.pub"));
        for order in ORDERS {
            let sig = env.file("sig");
            let mut sign = env.openssl(order, "pkeyutl");
            sign.args([
                "-sign",
                "-inkey",
                &key,
                "-in",
                &env.file("md"),
                "-out",
                &sig,
            ]);
            if kind == "RSA" {
                sign.args(["-pkeyopt", "digest:sha256"]);
            }
            run(&mut sign);
            let mut verify = env.plain("pkeyutl");
            verify.args([
                "-verify",
                "-pubin",
                "-inkey",
                &pubkey,
                "-in",
                &env.file("md"),
                "-sigfile",
                &sig,
            ]);
            if kind == "RSA" {
                verify.args(["-pkeyopt", "digest:sha256"]);
            }
            let out = stdout(&run(&mut verify));
            assert!(out.contains("Signature Verified Successfully"), "{out}");
            // Verification inside the provider: good and bad signatures.
            let mut own = env.openssl(order, "pkeyutl");
            own.args([
                "-verify",
                "-inkey",
                &key,
                "-in",
                &env.file("md"),
                "-sigfile",
                &sig,
            ]);
            if kind == "RSA" {
                own.args(["-pkeyopt", "digest:sha256"]);
            }
            run(&mut own);
            let mut bad = env.read("sig");
            let last = bad.len() - 2;
            bad[last] ^= 1;
            env.write("bad.sig", &bad);
            let mut own = env.openssl(order, "pkeyutl");
            own.args([
                "-verify",
                "-inkey",
                &key,
                "-in",
                &env.file("md"),
                "-sigfile",
                &env.file("bad.sig"),
            ]);
            if kind == "RSA" {
                own.args(["-pkeyopt", "digest:sha256"]);
            }
            let err = fails(&mut own);
            assert!(err.contains("Verification Failure"), "{err}");
        }
    }
}

#[test]
fn req_x509_and_a_tpm_ca_signing_a_request() {
    let env = Env::new();
    let ca = env.genkey("ca.pem", "EC");
    let leaf = env.genkey("leaf.pem", "RSA");
    for order in ORDERS {
        run(env.openssl(order, "req").args([
            "-new",
            "-x509",
            "-key",
            &ca,
            "-subj",
            "/CN=TPM CA",
            "-days",
            "2",
            "-out",
            &env.file("ca.crt"),
        ]));
        run(env.openssl(order, "req").args([
            "-new",
            "-key",
            &leaf,
            "-subj",
            "/CN=leaf",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-out",
            &env.file("leaf.csr"),
        ]));
        run(env
            .plain("req")
            .args(["-verify", "-noout", "-in", &env.file("leaf.csr")]));
        run(env.openssl(order, "x509").args([
            "-req",
            "-in",
            &env.file("leaf.csr"),
            "-CA",
            &env.file("ca.crt"),
            "-CAkey",
            &ca,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &env.file("leaf.crt"),
        ]));
        let out = stdout(&run(env.plain("verify").args([
            "-CAfile",
            &env.file("ca.crt"),
            &env.file("leaf.crt"),
        ])));
        assert!(out.contains("OK"), "{out}");
        let text = stdout(&run(env.plain("x509").args([
            "-in",
            &env.file("leaf.crt"),
            "-noout",
            "-text",
        ])));
        assert!(text.contains("ecdsa-with-SHA256"), "{text}");
    }
}

#[test]
fn cms_sign_with_a_tpm_key() {
    let env = Env::new();
    let msg = env.write("msg.txt", b"signed content\n");
    for (name, kind) in [("ec.pem", "EC"), ("rsa.pem", "RSA")] {
        let key = env.genkey(name, kind);
        for order in ORDERS {
            run(env.openssl(order, "req").args([
                "-new",
                "-x509",
                "-key",
                &key,
                "-subj",
                "/CN=signer",
                "-days",
                "2",
                "-out",
                &env.file("signer.crt"),
            ]));
            run(env.openssl(order, "cms").args([
                "-sign",
                "-nodetach",
                "-in",
                &msg,
                "-signer",
                &env.file("signer.crt"),
                "-inkey",
                &key,
                "-outform",
                "PEM",
                "-out",
                &env.file("msg.cms"),
            ]));
            let out = run(env.plain("cms").args([
                "-verify",
                "-in",
                &env.file("msg.cms"),
                "-inform",
                "PEM",
                "-CAfile",
                &env.file("signer.crt"),
            ]));
            assert_eq!(out.stdout, b"signed content\r\n"); // S/MIME canonical text
        }
    }
}

/// Software keys keep working with tpmkey loaded: private keys stay with the default
/// provider (tpmkey refuses them quietly), public keys may be imported for verification.
#[test]
fn software_keys_still_work_with_tpmkey_loaded() {
    let env = Env::new();
    let msg = env.write("msg", b"software");
    let sig = env.file("sig");
    for (name, alg) in [("sw-ec", "EC"), ("sw-rsa", "RSA")] {
        let key = env.file(name);
        let mut gen = env.plain("genpkey");
        gen.args(["-algorithm", alg, "-out", &key]);
        if alg == "EC" {
            gen.args(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        run(&mut gen);
        let pubkey = env.file(&format!("{name}.pub"));
        run(env
            .plain("pkey")
            .args(["-in", &key, "-pubout", "-out", &pubkey]));
        for order in ORDERS {
            env.dgst_sign(order, &key, &["-sha256"], &sig, &msg);
            env.dgst_verify_default(&pubkey, &["-sha256"], &sig, &msg);
            let out = stdout(&run(env.openssl(order, "dgst").args([
                "-sha256",
                "-verify",
                &pubkey,
                "-signature",
                &sig,
                &msg,
            ])));
            assert!(out.contains("Verified OK"), "{order:?}: {out}");
        }
    }
}
