//! Decryption, ECDH, the handle: store, persistent keys and the TPM seed source, through the
//! `openssl` CLI against a real swtpm; results checked by the default provider alone.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{fails, run, stdout, Env, Order, WireTap, ORDERS};

#[test]
fn rsa_decrypt_oaep_with_labels_and_pkcs1_both_orders() {
    let env = Env::new();
    let key = env.genkey("rsa.pem", "RSA");
    let pubkey = env.file("rsa.pem.pub");
    let plain = env.write("plain", b"the secret");
    let options: [&[&str]; 4] = [
        &["-pkeyopt", "rsa_padding_mode:pkcs1"],
        &["-pkeyopt", "rsa_padding_mode:oaep"],
        &[
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
        &[
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_oaep_label:00112233445566",
        ],
    ];
    for order in ORDERS {
        for opts in options {
            // Encrypted by the default provider alone, decrypted by the TPM.
            run(env
                .plain("pkeyutl")
                .args(["-encrypt", "-pubin", "-inkey", &pubkey, "-in", &plain])
                .args(["-out", &env.file("ct")])
                .args(opts));
            let out = run(env
                .openssl(order, "pkeyutl")
                .args(["-decrypt", "-inkey", &key, "-in", &env.file("ct")])
                .args(opts));
            assert_eq!(out.stdout, b"the secret", "{order:?} {opts:?}");
            // Encrypted through the provider (public key in software), decrypted by the TPM.
            run(env
                .openssl(order, "pkeyutl")
                .args(["-encrypt", "-inkey", &key, "-in", &plain])
                .args(["-out", &env.file("ct2")])
                .args(opts));
            let out = run(env
                .openssl(order, "pkeyutl")
                .args(["-decrypt", "-inkey", &key, "-in", &env.file("ct2")])
                .args(opts));
            assert_eq!(out.stdout, b"the secret", "{order:?} {opts:?}");
        }
        // A wrong label is an error, never a wrong plaintext.
        run(env
            .plain("pkeyutl")
            .args(["-encrypt", "-pubin", "-inkey", &pubkey, "-in", &plain])
            .args(["-out", &env.file("ct"), "-pkeyopt", "rsa_padding_mode:oaep"])
            .args(["-pkeyopt", "rsa_oaep_label:01"]));
        let err = fails(
            env.openssl(order, "pkeyutl")
                .args(["-decrypt", "-inkey", &key, "-in", &env.file("ct")])
                .args([
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-pkeyopt",
                    "rsa_oaep_label:02",
                ]),
        );
        assert!(err.contains("OAEP decoding failed"), "{err}");
    }
}

#[test]
fn ecdh_derive_matches_software_and_refuses_another_curve() {
    let env = Env::new();
    let key = env.genkey("ec.pem", "EC");
    run(env.plain("genpkey").args([
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &env.file("peer.key"),
    ]));
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
        &env.file("ec.pem.pub"),
    ]))
    .stdout;
    assert_eq!(software.len(), 32);
    for order in ORDERS {
        let tpm = run(env.openssl(order, "pkeyutl").args([
            "-derive",
            "-inkey",
            &key,
            "-peerkey",
            &env.file("peer.pub"),
        ]))
        .stdout;
        assert_eq!(tpm, software, "{order:?}");
    }
    run(env.plain("genpkey").args([
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        &env.file("p384.key"),
    ]));
    run(env.plain("pkey").args([
        "-in",
        &env.file("p384.key"),
        "-pubout",
        "-out",
        &env.file("p384.pub"),
    ]));
    let err = fails(env.openssl(Order::TpmkeyFirst, "pkeyutl").args([
        "-derive",
        "-inkey",
        &key,
        "-peerkey",
        &env.file("p384.pub"),
    ]));
    assert!(
        err.contains("the peer key is on P-384 but the TPM key on P-256"),
        "{err}"
    );
}

#[test]
fn persist_and_handle_store_with_and_without_password() {
    let env = Env::new();
    run(env.tpmkey_only("genpkey").args([
        "-algorithm",
        "EC",
        "-pkeyopt",
        "group:P-256",
        "-pkeyopt",
        "persist:0x81000020",
        "-out",
        &env.file("k.pem"),
    ]));
    run(env.tpmkey_only("genpkey").args([
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "bits:2048",
        "-pkeyopt",
        "user-auth:pw123",
        "-pkeyopt",
        "persist:0x81000021",
        "-out",
        &env.file("r.pem"),
    ]));
    let msg = env.write("msg", b"persistent");
    for order in ORDERS {
        let text = stdout(&run(env.openssl(order, "pkey").args([
            "-in",
            "handle:0x81000020",
            "-text",
            "-noout",
        ])));
        assert!(text.contains("persistent handle: 0x81000020"), "{text}");
        run(env.openssl(order, "pkey").args([
            "-in",
            "handle:0x81000020",
            "-pubout",
            "-out",
            &env.file("h.pub"),
        ]));
        let from_file =
            run(env
                .openssl(order, "pkey")
                .args(["-in", &env.file("k.pem"), "-pubout"]))
            .stdout;
        assert_eq!(env.read("h.pub"), from_file);
        let sig = env.file("sig");
        env.dgst_sign(order, "handle:0x81000020", &["-sha256"], &sig, &msg);
        env.dgst_verify_default(&env.file("h.pub"), &["-sha256"], &sig, &msg);
        let pass = ["-passin", "pass:pw123"];
        run(env
            .openssl(order, "pkey")
            .args(["-in", "handle:0x81000021?pass"])
            .args(pass)
            .args(["-pubout", "-out", &env.file("r.pub")]));
        let opts = [&["-sha256"][..], &pass[..]].concat();
        env.dgst_sign(order, "handle:0x81000021?pass", &opts, &sig, &msg);
        env.dgst_verify_default(&env.file("r.pub"), &["-sha256"], &sig, &msg);
    }
}

/// openssl.cnf activating default and tpmkey, the tpmkey section giving `tcti`, and
/// optionally the `[random]` section seeding the default DRBG from the TPM.
fn openssl_cnf(env: &Env, tcti: &str, seed: bool) -> String {
    let mut cnf = format!(
        "openssl_conf = init\n[init]\nproviders = provs\n{}\
         [provs]\ndefault = dflt\ntpmkey = tpmk\n[dflt]\nactivate = 1\n\
         [tpmk]\nmodule = {}\nactivate = 1\ntcti = {tcti}\n",
        if seed { "random = rnd\n" } else { "" },
        env.modules.join("tpmkey.so").display()
    );
    if seed {
        cnf.push_str("[rnd]\nseed = TPM-SEED\nseed_properties = provider=tpmkey\n");
    }
    env.write("openssl.cnf", cnf.as_bytes())
}

#[test]
fn seed_source_feeds_the_default_drbg_from_the_tpm() {
    let env = Env::new();
    let tap = WireTap::start(env.tpm.port());
    let cnf = openssl_cnf(&env, &tap.tcti(), true);
    let out = stdout(&run(env
        .plain("rand")
        .env("OPENSSL_CONF", &cnf)
        .env("TPMKEY_CONF", "/dev/null")
        .args(["-hex", "32"])));
    assert_eq!(out.trim().len(), 64, "{out}");
    let codes = tap.take_codes();
    assert!(
        codes.contains(&0x17B),
        "no TPM2_GetRandom on the wire: {codes:x?}"
    );
    // Without the [random] section the TPM is never touched by `openssl rand`.
    let cnf = openssl_cnf(&env, &tap.tcti(), false);
    run(env
        .plain("rand")
        .env("OPENSSL_CONF", &cnf)
        .env("TPMKEY_CONF", "/dev/null")
        .args(["-hex", "32"]));
    assert_eq!(tap.take_codes(), Vec::<u32>::new());
}

#[test]
fn openssl_cnf_section_configures_the_provider_over_the_environment() {
    let env = Env::new();
    let key = env.genkey("k.pem", "EC");
    let cnf = openssl_cnf(&env, &env.tpm.tcti(), false);
    let msg = env.write("msg", b"configured");
    // The environment names an unreachable TPM; the openssl.cnf section wins.
    run(env
        .plain("dgst")
        .env("OPENSSL_CONF", &cnf)
        .env("TPMKEY_CONF", "/dev/null")
        .env("TPMKEY_TCTI", "swtpm:host=127.0.0.1,port=9")
        .args(["-sha256", "-sign", &key, "-out", &env.file("sig"), &msg]));
    env.dgst_verify_default(&env.file("k.pem.pub"), &["-sha256"], &env.file("sig"), &msg);
}

#[test]
fn unknown_key_in_the_openssl_cnf_section_refuses_the_provider() {
    let env = Env::new();
    let key = env.genkey("k.pem", "EC");
    let good = openssl_cnf(&env, &env.tpm.tcti(), false);
    let text = String::from_utf8(env.read("openssl.cnf")).unwrap();
    let bad = env.write("bad.cnf", text.replace("tcti = ", "tcit = ").as_bytes());
    let err = fails(
        env.plain("pkey")
            .env("OPENSSL_CONF", &bad)
            .env("TPMKEY_CONF", "/dev/null")
            .args(["-in", &key, "-pubout"]),
    );
    assert!(
        err.contains("section [tpmk]: unknown key \"tcit\"") && err.contains("bad.cnf"),
        "{err}"
    );
    // The same section spelt right loads.
    run(env
        .plain("pkey")
        .env("OPENSSL_CONF", &good)
        .env("TPMKEY_CONF", "/dev/null")
        .args(["-in", &key, "-pubout"]));
}
