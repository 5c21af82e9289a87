//! GnuTLS's p11tool with the module as its provider: `--list-all` before and after a
//! login, and `--export` / `--export-pubkey` of the token keys by their RFC 7512
//! `pkcs11:` URIs, compared with the keys' CKA_PUBLIC_KEY_INFO as openssl prints it.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Output;

use tpmkey_testenv::pkcs11_env::*;

fn p11tool(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = command(env, "p11tool");
    cmd.arg("--provider").arg(module_path()).args(args);
    tpmkey_testenv::run(&mut cmd)
}

#[test]
fn p11tool_lists_and_exports_by_uri() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("gnutls");
    let dir = TempDir::new("p11tool");

    // The slot kept for C_InitToken holds a second, uninitialised token that opens
    // sessions, so p11tool wants the token named.
    let token_uri = format!("pkcs11:token={}", keys.label);
    let public = text(&p11tool(&env, &["--list-all", &token_uri]));
    assert!(
        public.contains("Type: Public key (EC/ECDSA-SECP256R1)"),
        "{public}"
    );
    assert!(public.contains("Type: Public key (RSA-2048)"), "{public}");
    assert!(
        !public.contains("type=private"),
        "private keys before login:\n{public}"
    );
    let all = text(&p11tool(
        &env,
        &["--list-all", &token_uri, "--login", "--set-pin", USER_PIN],
    ));
    for (object, id) in [("ec", "%01"), ("rsa", "%02")] {
        for kind in ["public", "private"] {
            let uri_tail = format!("token={};id={id};object={object};type={kind}", keys.label);
            assert!(all.contains(&uri_tail), "{uri_tail} not listed:\n{all}");
        }
    }
    assert!(all.contains("manufacturer=TPM%20IBM"), "{all}");

    for (object, id, spki) in [("ec", "%01", &keys.ec_spki), ("rsa", "%02", &keys.rsa_spki)] {
        let expected = std::fs::read(public_key_files(&dir.0, object, spki)).unwrap();
        let token = &keys.label;
        let exported = p11tool(
            &env,
            &[
                "--export",
                &format!("pkcs11:token={token};object={object};type=public"),
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&exported.stdout).trim(),
            String::from_utf8_lossy(&expected).trim(),
            "{object} public key object"
        );
        // The public half of the private key object (read from its CKA_PUBLIC_KEY_INFO).
        let out = dir.0.join(format!("{object}-from-private.pem"));
        p11tool(
            &env,
            &[
                "--export-pubkey",
                &format!("pkcs11:token={token};id={id};type=private"),
                "--login",
                "--set-pin",
                USER_PIN,
                "--outfile",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            expected,
            "{object} private key object"
        );
    }
}
