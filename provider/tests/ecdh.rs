//! ECDH with a TPM key the ways applications drive it: with a software peer that is a
//! full key pair (`EVP_PKEY_derive_set_peer` exports the private half too), and as a CMS
//! (RFC 5753) recipient, where `openssl cms -decrypt` sets the cofactor mode and the X9.63
//! KDF. Each result is compared with OpenSSL's default provider alone.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{run, stdout, Env, Order, ORDERS};

/// Builds the test program `name` (tests/programs/NAME.c) against libcrypto.
fn program(env: &Env, name: &str) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{name}.c"));
    let exe = env.path(name);
    run(Command::new("cc")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg("-lcrypto"));
    exe
}

#[test]
fn derive_with_a_software_peer_key_pair_matches_software() {
    let env = Env::new();
    let derive_peer = program(&env, "derive_peer");
    for (kind, group) in [("EC", "P-256"), ("P-384", "P-384")] {
        let key = env.genkey(&format!("{kind}.pem"), kind);
        let peer = env.file(&format!("peer-{kind}.pem"));
        run(env
            .plain("genpkey")
            .args(["-algorithm", "EC", "-pkeyopt", &format!("group:{group}")])
            .args(["-out", &peer]));
        // Software: the peer's private key with the TPM key's public key.
        let expected = env.file("expected");
        run(env.plain("pkeyutl").args([
            "-derive",
            "-inkey",
            &peer,
            "-peerkey",
            &format!("{key}.pub"),
            "-out",
            &expected,
        ]));
        for order in ORDERS {
            let got = env.file("got");
            let _ = std::fs::remove_file(&got);
            run(Command::new(&derive_peer)
                .env("TPMKEY_TCTI", &env.tcti)
                .env("TPMKEY_CONF", "/dev/null")
                .env_remove("OPENSSL_CONF")
                .arg(&env.modules)
                .arg(match order {
                    Order::TpmkeyFirst => "tpmkey-first",
                    Order::DefaultFirst => "default-first",
                })
                .args([&key, &peer, &got]));
            assert_eq!(env.read("got"), env.read("expected"), "{kind} {order:?}");
        }
    }
}

/// A software key pair still derives in software with tpmkey loaded first (the peer
/// exception in the key management does not take in other key pairs).
#[test]
fn software_ecdh_still_works_with_tpmkey_first() {
    let env = Env::new();
    let derive_peer = program(&env, "derive_peer");
    for name in ["a.pem", "b.pem"] {
        run(env.plain("genpkey").args([
            "-algorithm",
            "EC",
            "-pkeyopt",
            "group:P-256",
            "-out",
            name,
        ]));
    }
    run(env
        .plain("pkey")
        .args(["-in", "b.pem", "-pubout", "-out", "b.pub"]));
    run(env.plain("pkeyutl").args([
        "-derive", "-inkey", "a.pem", "-peerkey", "b.pub", "-out", "expected",
    ]));
    for order in ["tpmkey-first", "default-first"] {
        run(Command::new(&derive_peer)
            .current_dir(env.dir.path())
            .env("TPMKEY_TCTI", &env.tcti)
            .env("TPMKEY_CONF", "/dev/null")
            .env_remove("OPENSSL_CONF")
            .arg(&env.modules)
            .args([order, "a.pem", "b.pem", "got"]));
        assert_eq!(env.read("got"), env.read("expected"), "{order}");
    }
}

#[test]
fn cms_decrypt_with_an_ec_recipient_key() {
    let env = Env::new();
    let message = b"enveloped for a TPM EC key\n";
    let msg = env.write("msg", message);
    for kind in ["EC", "P-384"] {
        let key = env.genkey(&format!("{kind}.pem"), kind);
        let cert = env.self_signed(&key, &format!("{kind}.crt"));
        // RFC 5753 variants: the default KDF digest, another digest, cofactor ECDH.
        for (cipher, keyopts) in [
            ("-aes128", &[][..]),
            ("-aes256", &["-keyopt", "ecdh_kdf_md:sha384"][..]),
            ("-aes192", &["-keyopt", "ecdh_cofactor_mode:1"][..]),
        ] {
            let cms = env.file("m.cms");
            run(env
                .plain("cms")
                .args(["-encrypt", "-binary", "-recip", &cert])
                .args(keyopts)
                .args([cipher, "-in", &msg, "-out", &cms]));
            for order in ORDERS {
                let out = run(env
                    .openssl(order, "cms")
                    .args(["-decrypt", "-binary", "-inkey", &key, "-recip", &cert])
                    .args(["-in", &cms]));
                assert_eq!(
                    out.stdout,
                    message.to_vec(),
                    "{kind} {keyopts:?} {order:?}: {}",
                    stdout(&out)
                );
            }
        }
    }
}
