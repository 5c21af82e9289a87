//! The provider on a TPM that signs RSA-PSS with the maximum salt, as many hardware TPMs
//! do: the harness's tap emulates it (`fault::max_salt_pss`) for a sign-only key imported
//! from a software key the test holds, with the session off so the tap can replace the
//! signature. `rsa_pss_saltlen:digest` and a TLS 1.3 handshake fail naming the salt
//! instead of handing out a signature a verifier or peer rejects; `rsa_pss_saltlen:max`
//! gets the TPM's signature, which verifies, unless it was altered on the way.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{fails, free_port, run, run_bounded, Background, Env, Order, WireTap};
use tpmkey::import::{self, SoftwareKey};
use tpmkey_testenv::{fault, Area, Fault, FaultPlan};

/// A software RSA-2048 key `soft.pem` imported sign-only as `key.pem`, with its
/// self-signed certificate `key.crt` (PKCS#1 v1.5, which the emulation leaves alone); from
/// then on the tap answers every RSAPSS TPM2_Sign with a max-salt signature.
fn max_salt_env() -> (Env, WireTap, String) {
    let (env, tap) = Env::tapped();
    run(env.plain("genpkey").args([
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &env.file("soft.pem"),
    ]));
    let file = {
        let _serial = tpmkey_testenv::serial();
        tpmkey::connection::configure(&[("tcti", &env.tpm.tcti())]).unwrap();
        let soft = SoftwareKey::from_pem(&env.read("soft.pem")).unwrap();
        let file = import::import(&soft.sign_only(), None, None).unwrap();
        tpmkey::connection::shutdown();
        file
    };
    let key = env.write("key.pem", file.to_pem().as_bytes());
    env.self_signed(&key, "key.crt");
    tap.tamper_exchange(fault::max_salt_pss(&env.path("soft.pem")));
    (env, tap, key)
}

/// `openssl pkeyutl -sign` of a SHA-256 digest with PSS and `saltlen`, session off.
fn pss_sign(env: &Env, key: &str, saltlen: &str) -> std::process::Command {
    env.write("digest", &[0x5a; 32]);
    let mut c = env.openssl(Order::TpmkeyFirst, "pkeyutl");
    c.env("TPMKEY_SESSION", "off")
        .args(["-sign", "-inkey", key])
        .args(["-in", &env.file("digest"), "-out", &env.file("sig")])
        .args([
            "-pkeyopt",
            "digest:sha256",
            "-pkeyopt",
            "rsa_padding_mode:pss",
        ])
        .args(["-pkeyopt", &format!("rsa_pss_saltlen:{saltlen}")]);
    c
}

#[test]
fn pkeyutl_digest_salt_fails_naming_the_salt_and_max_salt_verifies() {
    let (env, tap, key) = max_salt_env();
    let out = fails(&mut pss_sign(&env, &key, "digest"));
    assert!(
        out.contains("222-byte salt") && out.contains("32 was asked for"),
        "{out}"
    );
    assert!(!env.path("sig").exists() || env.read("sig").is_empty());

    // The maximum salt, but the signature altered on the bus: refused, not written.
    tap.inject(FaultPlan::on(0x15D, 0, Fault::Flip(Area::Parameters, 100)));
    let out = fails(&mut pss_sign(&env, &key, "max"));
    assert!(
        out.contains("TPM2_Sign") && out.contains("does not verify"),
        "{out}"
    );
    assert!(!env.path("sig").exists() || env.read("sig").is_empty());

    run(&mut pss_sign(&env, &key, "max"));
    // The default provider alone, with the software key's public half.
    for (saltlen, ok) in [("max", true), ("digest", false)] {
        let out = env
            .plain("pkeyutl")
            .args(["-verify", "-inkey", &env.file("soft.pem")])
            .args(["-in", &env.file("digest"), "-sigfile", &env.file("sig")])
            .args([
                "-pkeyopt",
                "digest:sha256",
                "-pkeyopt",
                "rsa_padding_mode:pss",
            ])
            .args(["-pkeyopt", &format!("rsa_pss_saltlen:{saltlen}")])
            .output()
            .unwrap();
        assert_eq!(out.status.success(), ok, "verify with salt {saltlen}");
    }
}

#[test]
fn tls13_handshake_fails_at_the_server_naming_the_salt() {
    let (env, _tap, key) = max_salt_env();
    let port = free_port();
    let mut server = env.openssl(Order::TpmkeyFirst, "s_server");
    server
        .env("TPMKEY_SESSION", "off")
        .args(["-accept", &format!("127.0.0.1:{port}"), "-naccept", "1"])
        .args(["-key", &key, "-cert", &env.file("key.crt")]);
    let mut server = Background::spawn(&mut server);
    server.wait_listening(port);
    let mut client = env.plain("s_client");
    client
        .args([
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-brief",
            "-tls1_3",
        ])
        .args(["-CAfile", &env.file("key.crt"), "-verify_return_error"]);
    let out = run_bounded(&mut client, Duration::from_secs(30));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server_out = server.output();
    assert!(!out.status.success(), "the handshake succeeded:\n{report}");
    assert!(
        server_out.contains("222-byte salt") && server_out.contains("32 was asked for"),
        "server output:\n{server_out}\n--- client ---\n{report}"
    );
    // The server sent no signature but an internal_error alert: the client had no
    // CertificateVerify to reject (before the check it failed with "bad signature").
    assert!(
        report.contains("internal error") && !report.contains("bad signature"),
        "{report}"
    );
}
