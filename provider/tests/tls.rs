//! TLS with TPM keys: `openssl s_server` with a TPM key and `openssl s_client`, TLS 1.3 and
//! 1.2, ECDSA, RSA-PSS, RSA PKCS#1, static RSA key transport, mutual TLS with a TPM client
//! key; both provider orders, no property query.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{free_port, run_bounded, Background, Env, Order, ORDERS};

/// One handshake: s_server with `server_key`, s_client with `client_args`; returns the
/// client's report.
fn handshake(
    env: &Env,
    order: Order,
    server_key: &str,
    server_cert: &str,
    server_args: &[&str],
    client_args: &[&str],
) -> String {
    let port = free_port();
    let mut server = env.openssl(order, "s_server");
    server
        .args(["-accept", &format!("127.0.0.1:{port}"), "-naccept", "1"])
        .args(["-key", server_key, "-cert", &env.file(server_cert)])
        .args(server_args);
    let mut server = Background::spawn(&mut server);
    server.wait_listening(port);
    let mut client = env.openssl(order, "s_client");
    client
        .args(["-connect", &format!("127.0.0.1:{port}"), "-brief"])
        .args(["-CAfile", &env.file(server_cert), "-verify_return_error"])
        .args(client_args);
    let out = run_bounded(&mut client, Duration::from_secs(30));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !report.contains("Verification: OK") {
        panic!(
            "{order:?} handshake failed ({client_args:?}):\n{report}\n--- server ---\n{}",
            server.output()
        );
    }
    report
}

fn expect(report: &str, parts: &[&str]) {
    for p in parts {
        assert!(report.contains(p), "expected {p:?} in:\n{report}");
    }
}

#[test]
fn tls13_ecdsa_and_rsa_pss_both_orders() {
    let env = Env::new();
    let ec = env.genkey("ec.pem", "EC");
    let rsa = env.genkey("rsa.pem", "RSA");
    env.self_signed(&ec, "ec.crt");
    env.self_signed(&rsa, "rsa.crt");
    for order in ORDERS {
        let r = handshake(&env, order, &ec, "ec.crt", &[], &["-tls1_3"]);
        expect(&r, &["TLSv1.3", "Signature type: ECDSA"]);
        let r = handshake(&env, order, &rsa, "rsa.crt", &[], &["-tls1_3"]);
        expect(&r, &["TLSv1.3", "Signature type: RSA-PSS"]);
    }
}

#[test]
fn tls12_rsa_pkcs1_pss_and_static_rsa_both_orders() {
    let env = Env::new();
    let rsa = env.genkey("rsa.pem", "RSA");
    env.self_signed(&rsa, "rsa.crt");
    for order in ORDERS {
        let r = handshake(
            &env,
            order,
            &rsa,
            "rsa.crt",
            &[],
            &["-tls1_2", "-sigalgs", "RSA+SHA256"],
        );
        expect(&r, &["TLSv1.2", "ECDHE-RSA", "Signature type: RSA\n"]);
        let r = handshake(&env, order, &rsa, "rsa.crt", &[], &["-tls1_2"]);
        expect(&r, &["TLSv1.2", "ECDHE-RSA"]);
        // Static RSA key exchange: the TPM decrypts the pre-master secret.
        let r = handshake(
            &env,
            order,
            &rsa,
            "rsa.crt",
            &["-cipher", "AES128-GCM-SHA256"],
            &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        );
        expect(&r, &["TLSv1.2", "Ciphersuite: AES128-GCM-SHA256"]);
    }
}

/// TLS 1.2 with an ECDSA certificate, also with tpmkey listed first: libssl keeps tpmkey's
/// own P-256/P-384 groups then (software ephemeral keys), so the certificate's curve stays
/// usable; with the NIST group forced as well as with the default group list.
#[test]
fn tls12_ecdsa_both_orders() {
    let env = Env::new();
    let ec = env.genkey("ec.pem", "EC");
    let p384 = env.genkey("p384.pem", "P-384");
    env.self_signed(&ec, "ec.crt");
    env.self_signed(&p384, "p384.crt");
    for order in ORDERS {
        let r = handshake(&env, order, &ec, "ec.crt", &[], &["-tls1_2"]);
        expect(&r, &["TLSv1.2", "ECDHE-ECDSA"]);
        // The server allows only the NIST group, so that group is negotiated. The client
        // offers X25519 too: OpenSSL 3.0's libssl (use_ecc) sends no supported_groups in a
        // TLS 1.2-only ClientHello unless a group's algorithm is literally "EC", "X25519" or
        // "X448", and with tpmkey first the NIST groups are tpmkey's TPMKEY-EPHEMERAL-EC.
        // In TLS 1.2 the client's groups also bound the certificate's curve.
        // (s_client names the curve of a default provider key only; tpmkey's shows its size.)
        for (key, cert, group, bits) in [
            (&ec, "ec.crt", "P-256", 256),
            (&p384, "p384.crt", "P-384", 384),
        ] {
            let server_args = ["-groups", group];
            let client_groups = format!("{group}:X25519");
            let temp_key = format!(", {bits} bits\n");
            for version in ["-tls1_2", "-tls1_3"] {
                let client_args = [version, "-groups", &client_groups];
                let r = handshake(&env, order, key, cert, &server_args, &client_args);
                let line = r.lines().find(|l| l.starts_with("Server Temp Key:"));
                assert!(
                    line.is_some_and(|l| format!("{l}\n").ends_with(&temp_key)),
                    "{order:?} {version} {group}: {r}"
                );
            }
        }
    }
}

#[test]
fn mutual_tls_with_a_tpm_client_key_both_orders() {
    let env = Env::new();
    let server = env.genkey("server.pem", "EC");
    let client = env.genkey("client.pem", "RSA");
    env.self_signed(&server, "server.crt");
    env.self_signed(&client, "client.crt");
    let client_crt = env.file("client.crt");
    for order in ORDERS {
        for version in ["-tls1_3", "-tls1_2"] {
            let r = handshake(
                &env,
                order,
                &server,
                "server.crt",
                &[
                    "-Verify",
                    "1",
                    "-CAfile",
                    &client_crt,
                    "-verify_return_error",
                ],
                &[version, "-cert", &client_crt, "-key", &client],
            );
            expect(&r, &["Verification: OK"]);
        }
    }
}
