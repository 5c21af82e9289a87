//! strongSwan's `pki` signs self-signed certificates with token keys through its pkcs11
//! plugin (`pki --self --keyid <CKA_ID hex>`): ECDSA and RSA PKCS#1 v1.5; openssl verifies
//! them and finds the token keys' public keys in them. (`--rsa-padding pss` is refused by
//! the strongSwan 5.9.8 pkcs11 plugin itself, "signature scheme RSA_EMSA_PSS not
//! supported", before the module is asked.) IKEv2 with token keys is in ikev2.rs.
//!
//! The plugin is configured in a temporary strongswan.conf (STRONGSWAN_CONF) under `pki`.
//! Its plugin list leaves out `openssl`: that plugin would first try the key through the
//! libp11 engine, which prompts for the PIN too and swallows it. pki asks for the PIN with
//! getpass(3), which reads the controlling terminal when there is one: the test runs pki
//! in a new session (setsid), without a terminal, so the PIN comes from stdin.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::process::Stdio;

use tpmkey_testenv::pkcs11_env::*;

#[test]
fn pki_self_signs_certificates_with_token_keys() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("strongswan");
    let dir = TempDir::new("strongswan");
    let conf = dir.0.join("strongswan.conf");
    std::fs::write(
        &conf,
        format!(
            "pki {{\n  load = pem pkcs1 pkcs8 x509 pubkey random nonce sha1 sha2 gmp pkcs11\n  \
             plugins {{\n    pkcs11 {{\n      modules {{\n        tpmkey {{\n          \
             path = {}\n        }}\n      }}\n    }}\n  }}\n}}\n",
            module_path().display()
        ),
    )
    .unwrap();

    let cases = [
        ("ecdsa", EC_ID, &keys.ec_spki, &[][..], "ecdsa-with-SHA256"),
        (
            "rsa",
            RSA_ID,
            &keys.rsa_spki,
            &[][..],
            "sha256WithRSAEncryption",
        ),
        (
            "rsa",
            RSA_ID,
            &keys.rsa_spki,
            &["--digest", "sha384"][..],
            "sha384WithRSAEncryption",
        ),
    ];
    for (kind, id, spki, extra, algorithm) in cases {
        let keyid: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut pki = command(&env, "setsid");
        pki.args(["-w", "pki", "--self", "--keyid", &keyid, "--type", kind])
            .args(["--dn", &format!("CN={kind} token key"), "--outform", "pem"])
            .args(extra)
            .env("STRONGSWAN_CONF", &conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = pki.spawn().unwrap();
        writeln!(child.stdin.take().unwrap(), "{USER_PIN}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "pki {kind} {extra:?}: {}", text(&out));
        // The slot kept for C_InitToken opens sessions like any present token: the plugin
        // has no failure to log for it.
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !said.contains("CKR_TOKEN_NOT_PRESENT") && !said.contains("failed"),
            "{said}"
        );

        let cert = dir.0.join("cert.pem");
        std::fs::write(&cert, &out.stdout).unwrap();
        let verified = tpmkey_testenv::run(
            std::process::Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(&cert)
                .arg(&cert),
        );
        assert!(text(&verified).contains(": OK"), "{}", text(&verified));
        let shown = text(&tpmkey_testenv::run(
            std::process::Command::new("openssl")
                .args(["x509", "-noout", "-text", "-pubkey", "-in"])
                .arg(&cert),
        ));
        assert!(
            shown.contains(&format!("Signature Algorithm: {algorithm}")),
            "{shown}"
        );
        let expected = std::fs::read_to_string(public_key_files(&dir.0, kind, spki)).unwrap();
        assert!(
            shown.contains(&expected),
            "{kind}: another key in the certificate:\n{shown}"
        );
    }
}
