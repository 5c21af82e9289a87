//! TPM commands per operation, counted on the wire (objects=keep, as behind a resource
//! manager): one command per signature and per TLS handshake; key parameters never reach
//! the TPM.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{free_port, run, run_bounded, Background, Env, Order, ORDERS};

const TPM2_SIGN: u32 = 0x15D;
const TPM2_RSA_DECRYPT: u32 = 0x159;
const TPM2_CREATE: u32 = 0x153;
const TPM2_CREATE_LOADED: u32 = 0x191;
const TPM2_LOAD: u32 = 0x157;

/// In both provider orders: with tpmkey first, the default provider's DRBG still serves
/// libssl's RAND_bytes (tpmkey offers its own only when no other provider has one).
#[test]
fn tls_handshakes_cost_one_tpm_command_each() {
    for (order, (kind, command)) in ORDERS
        .into_iter()
        .flat_map(|o| [(o, ("EC", TPM2_SIGN)), (o, ("RSA", TPM2_RSA_DECRYPT))])
    {
        let kind = format!("{kind} {order:?}");
        let (env, tap) = Env::tapped();
        let key = env.genkey("k.pem", &kind[..kind.find(' ').unwrap()]);
        env.self_signed(&key, "k.crt");
        tap.take_codes();
        let port = free_port();
        let mut server = env.openssl(order, "s_server");
        server
            .env("TPMKEY_OBJECTS", "keep")
            .args(["-accept", &format!("127.0.0.1:{port}"), "-naccept", "5"])
            .args(["-key", &key, "-cert", &env.file("k.crt")]);
        let mut server = Background::spawn(&mut server);
        server.wait_listening(port);
        // Opening the key loads it (a key file that cannot work fails at start-up); its
        // parameters cost no TPM command.
        let at_load = tap.take_codes();
        assert!(at_load.contains(&TPM2_LOAD), "{kind}: {at_load:x?}");
        assert!(at_load.len() <= 4, "{kind}: {at_load:x?}");
        let mut per_handshake = Vec::new();
        for _ in 0..4 {
            let out = run_bounded(
                env.plain("s_client")
                    .args([
                        "-connect",
                        &format!("127.0.0.1:{port}"),
                        "-brief",
                        "-tls1_3",
                    ])
                    .args(["-CAfile", &env.file("k.crt"), "-verify_return_error"]),
                Duration::from_secs(30),
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            per_handshake.push(tap.take_codes());
        }
        eprintln!("{kind}: TPM commands per handshake: {per_handshake:x?}");
        // (-naccept 5: the server is still running, no teardown flushes counted.)
        // The first handshakes also start the session, load the key and put the storage
        // key away (a ContextSave and a flush the core does once, right after the first
        // use); from then on, one TPM command per handshake.
        let startup: usize = per_handshake[..2].iter().map(Vec::len).sum();
        assert!(startup <= 7, "{kind}: {per_handshake:x?}");
        for codes in &per_handshake[2..] {
            assert_eq!(codes, &vec![command], "{kind}: {per_handshake:x?}");
        }
    }
}

/// TLS 1.2 ECDHE-ECDSA with the NIST group forced, client and server both loading tpmkey in
/// either order: the ephemeral keys are software (TPMKEY-EPHEMERAL-EC with tpmkey first,
/// the default provider's otherwise), so a handshake costs the one signature, and libssl
/// never makes a TPM key.
#[test]
fn tls12_nist_group_handshakes_cost_one_signature_both_orders() {
    for order in ORDERS {
        let (env, tap) = Env::tapped();
        let key = env.genkey("k.pem", "EC");
        env.self_signed(&key, "k.crt");
        tap.take_codes();
        let port = free_port();
        let mut server = env.openssl(order, "s_server");
        server
            .env("TPMKEY_OBJECTS", "keep")
            .args(["-accept", &format!("127.0.0.1:{port}"), "-naccept", "5"])
            .args([
                "-key",
                &key,
                "-cert",
                &env.file("k.crt"),
                "-curves",
                "P-256",
            ]);
        let mut server = Background::spawn(&mut server);
        server.wait_listening(port);
        let mut per_handshake = Vec::new();
        for _ in 0..4 {
            // X25519 offered too: see tls.rs, tls12_ecdsa_both_orders; the server allows
            // P-256 only.
            let out = run_bounded(
                env.openssl(order, "s_client")
                    .env("TPMKEY_OBJECTS", "keep")
                    .args(["-connect", &format!("127.0.0.1:{port}"), "-brief"])
                    .args(["-tls1_2", "-groups", "P-256:X25519"])
                    .args(["-CAfile", &env.file("k.crt"), "-verify_return_error"]),
                Duration::from_secs(30),
            );
            let report = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{order:?}: {report}");
            assert!(
                report.contains("ECDHE-ECDSA") && report.contains(", 256 bits\n"),
                "{order:?}: not ECDHE on P-256:\n{report}"
            );
            per_handshake.push(tap.take_codes());
        }
        eprintln!("{order:?}: TPM commands per TLS 1.2 P-256 handshake: {per_handshake:x?}");
        for codes in &per_handshake {
            assert!(
                !codes.contains(&TPM2_CREATE) && !codes.contains(&TPM2_CREATE_LOADED),
                "{order:?}: a handshake created a TPM key: {per_handshake:x?}"
            );
        }
        for codes in &per_handshake[2..] {
            assert_eq!(codes, &vec![TPM2_SIGN], "{order:?}: {per_handshake:x?}");
        }
    }
}

#[test]
fn process_start_to_first_signature() {
    let (env, tap) = Env::tapped();
    let key = env.genkey("k.pem", "EC");
    let msg = env.write("msg", b"count me");
    tap.take_codes();
    run(env
        .openssl(Order::TpmkeyFirst, "dgst")
        .env("TPMKEY_OBJECTS", "keep")
        .args(["-sha256", "-sign", &key, "-out", &env.file("sig"), &msg]));
    let codes = tap.take_codes();
    eprintln!("process start to first signature (and exit): {codes:x?}");
    let until_sign = codes.iter().position(|c| *c == TPM2_SIGN).unwrap() + 1;
    assert!(until_sign <= 5, "{codes:x?}");
}
