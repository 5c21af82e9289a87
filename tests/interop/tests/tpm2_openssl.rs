//! Key files move between tpmkey and Debian's tpm2-openssl provider, both directions.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use tpmkey_testenv::provider_env::{
    fails, free_port, run, run_bounded, stdout, Background, Env, Order, ORDERS,
};
use tpmkey_testenv::{TpmEndpoint, WireTap};

/// `openssl <sub>` with tpm2-openssl's provider (`tpm2`) and the default provider, with the
/// property query tpm2-openssl needs (without it its keys fail "missing private key").
fn tpm2_openssl(env: &Env, sub: &str) -> std::process::Command {
    let mut c = env.plain(sub);
    c.env("TPM2OPENSSL_TCTI", env.tpm.tcti())
        .args(["-provider", "tpm2", "-provider", "default"])
        .args(["-propquery", "?provider=tpm2"]);
    c
}

#[test]
fn tpm2_openssl_keys_work_in_tpmkey_and_back() {
    let env = Env::new();
    let msg = env.write("msg", b"interop");
    let sig = env.file("sig");
    // Made by tpm2-openssl, used by tpmkey.
    run(tpm2_openssl(&env, "genpkey")
        .args(["-algorithm", "EC"])
        .args(["-pkeyopt", "group:P-256", "-out", &env.file("theirs.pem")]));
    run(env
        .openssl(Order::TpmkeyFirst, "pkey")
        .args(["-in", &env.file("theirs.pem"), "-pubout"])
        .args(["-out", &env.file("theirs.pub")]));
    env.dgst_sign(
        Order::DefaultFirst,
        &env.file("theirs.pem"),
        &["-sha256"],
        &sig,
        &msg,
    );
    env.dgst_verify_default(&env.file("theirs.pub"), &["-sha256"], &sig, &msg);
    // Made by tpmkey, used by tpm2-openssl.
    let ours = env.genkey("ours.pem", "EC");
    run(tpm2_openssl(&env, "dgst").args(["-sha256", "-sign", &ours, "-out", &sig, &msg]));
    env.dgst_verify_default(&env.file("ours.pem.pub"), &["-sha256"], &sig, &msg);
}

/// Key files with and without a password, EC and RSA, made by one provider and used by the
/// other. tpmkey writes emptyAuth explicitly (TRUE or FALSE): tpm2-openssl reads an absent
/// field as "no password" and failed with TPM_RC_AUTH_FAIL, a dictionary-attack count.
#[test]
fn password_keys_work_in_both_directions() {
    let env = Env::new();
    let msg = env.write("msg", b"interop with a password");
    let sig = env.file("sig");
    for (alg, opt) in [("EC", "group:P-256"), ("RSA", "bits:2048")] {
        for password in [None, Some("s3cret")] {
            let tag = format!("{alg}-{}", password.is_some());
            let auth: Vec<String> = password
                .map(|p| vec!["-passin".into(), format!("pass:{p}")])
                .unwrap_or_default();
            // Made by tpmkey, used by tpm2-openssl.
            let ours = env.file(&format!("ours-{tag}.pem"));
            let mut gen = env.tpmkey_only("genpkey");
            gen.args(["-algorithm", alg, "-pkeyopt", opt, "-out", &ours]);
            if let Some(p) = password {
                gen.args(["-pkeyopt", &format!("user-auth:{p}")]);
            }
            run(&mut gen);
            let ours_pub = env.file(&format!("ours-{tag}.pub"));
            run(env
                .openssl(Order::TpmkeyFirst, "pkey")
                .args(["-in", &ours, "-pubout", "-out", &ours_pub])
                .args(&auth));
            run(tpm2_openssl(&env, "dgst")
                .args(["-sha256", "-sign", &ours, "-out", &sig])
                .args(&auth)
                .arg(&msg));
            env.dgst_verify_default(&ours_pub, &["-sha256"], &sig, &msg);
            // Made by tpm2-openssl, used by tpmkey.
            let theirs = env.file(&format!("theirs-{tag}.pem"));
            let mut gen = tpm2_openssl(&env, "genpkey");
            gen.args(["-algorithm", alg, "-pkeyopt", opt, "-out", &theirs]);
            if let Some(p) = password {
                gen.args(["-pkeyopt", &format!("user-auth:{p}")]);
            }
            run(&mut gen);
            let theirs_pub = env.file(&format!("theirs-{tag}.pub"));
            run(tpm2_openssl(&env, "pkey")
                .args(["-in", &theirs, "-pubout", "-out", &theirs_pub])
                .args(&auth));
            run(env
                .openssl(Order::TpmkeyFirst, "dgst")
                .args(["-sha256", "-sign", &theirs, "-out", &sig])
                .args(&auth)
                .arg(&msg));
            env.dgst_verify_default(&theirs_pub, &["-sha256"], &sig, &msg);
        }
    }
    // No wrong password was ever tried.
    let out = run(env
        .tpm
        .tpm2_command("tpm2_getcap")
        .arg("properties-variable"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("TPM2_PT_LOCKOUT_COUNTER: 0x0"),
        "a dictionary-attack count was spent"
    );
}

/// tpm2-openssl's `genpkey -algorithm RSA-PSS` key file `name`: a restricted signing key
/// (objectAttributes 0x00050072, scheme RSAPSS-SHA256), which signs only what the TPM hashed.
fn tpm2_openssl_pss_key(env: &Env, name: &str) -> String {
    run(tpm2_openssl(env, "genpkey")
        .args(["-algorithm", "RSA-PSS", "-pkeyopt", "bits:2048"])
        .args(["-pkeyopt", "digest:sha256", "-out", &env.file(name)]));
    env.file(name)
}

/// How the default provider alone checks a PSS signature of the TPM: salt = digest length.
const PSS_SHA256: [&str; 5] = [
    "-sha256",
    "-sigopt",
    "rsa_padding_mode:pss",
    "-sigopt",
    "rsa_pss_saltlen:digest",
];

/// The codes of the TPM commands sent since the last look, leaving out the ones the TPM
/// answered TPM_RC_RETRY (swtpm does for an RSA key's first private-key operation; the
/// core sends them again).
fn commands_answered(tap: &WireTap) -> Vec<u32> {
    tap.take_log()
        .iter()
        .filter(|(_, rsp)| rsp.get(6..10) != Some(&0x922u32.to_be_bytes()[..]))
        .map(|(cmd, _)| u32::from_be_bytes([cmd[6], cmd[7], cmd[8], cmd[9]]))
        .collect()
}

/// tpm2-openssl's RSA-PSS key signs through tpmkey: `dgst -sign` (a short message with
/// TPM2_Hash, a long one through a hash sequence) and `pkeyutl -sign -rawin`, verified as
/// PSS by the default provider alone; a digest-only `pkeyutl -sign` says why it cannot.
#[test]
fn tpm2_openssl_rsa_pss_key_signs_messages_through_tpmkey() {
    let (env, tap) = Env::tapped();
    let key = tpm2_openssl_pss_key(&env, "pss.pem");
    let public = env.file("pss.pub");
    run(env
        .openssl(Order::TpmkeyFirst, "pkey")
        .args(["-in", &key, "-pubout", "-out", &public]));
    let text = stdout(&run(env.plain("asn1parse").args(["-in", &public])));
    assert!(
        text.contains(":rsassaPss"),
        "served as an RSA-PSS key: {text}"
    );
    let sig = env.file("sig");
    // A TLS 1.3 CertificateVerify input is about 130 bytes.
    let short = env.write("short", &[b' '; 130]);
    let long = env.write("long", &(0..5000u32).map(|i| i as u8).collect::<Vec<_>>());
    for order in ORDERS {
        for msg in [&short, &long] {
            env.dgst_sign(order, &key, &["-sha256"], &sig, msg);
            env.dgst_verify_default(&public, &PSS_SHA256, &sig, msg);
        }
    }
    run(env
        .openssl(Order::TpmkeyFirst, "pkeyutl")
        .args(["-sign", "-rawin", "-digest", "sha256", "-inkey", &key])
        .args(["-in", &short, "-out", &sig]));
    env.dgst_verify_default(&public, &PSS_SHA256, &sig, &short);
    // One signature of a short message: the key's load, then TPM2_Hash and TPM2_Sign.
    tap.take_log();
    env.dgst_sign(Order::TpmkeyFirst, &key, &["-sha256"], &sig, &short);
    env.dgst_verify_default(&public, &PSS_SHA256, &sig, &short);
    // Context saves, loads and flushes are how a process without the keep lease holds its
    // objects between operations; beyond them, the key's load and then Hash and Sign.
    let codes = commands_answered(&tap);
    let commands: Vec<u32> = codes
        .iter()
        .copied()
        .filter(|c| !matches!(c, 0x161 | 0x162 | 0x165))
        .collect();
    assert_eq!(
        commands,
        [0x131, 0x176, 0x157, 0x17D, 0x15D],
        "CreatePrimary, StartAuthSession, Load, then Hash and Sign: {codes:x?}"
    );
    // The TPM never signs a digest it did not compute.
    let digest = env.file("digest");
    run(env
        .plain("dgst")
        .args(["-sha256", "-binary", "-out", &digest, &short]));
    let err = fails(
        env.openssl(Order::TpmkeyFirst, "pkeyutl")
            .args(["-sign", "-inkey", &key, "-in", &digest, "-out", &sig]),
    );
    assert!(
        err.contains(
            "restricted signing key: the TPM must hash the message; sign the message, not a digest"
        ),
        "{err}"
    );
}

/// TLS 1.3 with tpm2-openssl's RSA-PSS key in `s_server`: its self-signed certificate is
/// signed RSASSA-PSS through tpmkey, and the CertificateVerify is RSA-PSS.
#[test]
fn tls13_server_with_a_tpm2_openssl_rsa_pss_key() {
    let env = Env::new();
    let key = tpm2_openssl_pss_key(&env, "pss.pem");
    let cert = env.self_signed(&key, "pss.crt");
    let text = stdout(&run(env
        .plain("x509")
        .args(["-in", &cert, "-noout", "-text"])));
    assert!(text.contains("Signature Algorithm: rsassaPss"), "{text}");
    let port = free_port();
    let mut server = env.openssl(Order::TpmkeyFirst, "s_server");
    server
        .args(["-accept", &format!("127.0.0.1:{port}"), "-naccept", "1"])
        .args(["-key", &key, "-cert", &cert]);
    let mut server = Background::spawn(&mut server);
    server.wait_listening(port);
    let out = run_bounded(
        env.plain("s_client")
            .args([
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-brief",
                "-tls1_3",
            ])
            .args(["-CAfile", &cert, "-verify_return_error"]),
        Duration::from_secs(30),
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for part in ["TLSv1.3", "Signature type: RSA-PSS", "Verification: OK"] {
        assert!(
            out.status.success() && report.contains(part),
            "expected {part:?} in:\n{report}\n--- server ---\n{}",
            server.output()
        );
    }
}

/// A key file tpmkey cannot use names the cause in OpenSSL's own error output, not only
/// in tpmkey's log: before, it said only "OpenSSL did not accept the TPM key file".
#[test]
fn a_refused_key_file_names_the_cause() {
    let env = Env::new();
    let small = env.file("rsa1024.pem");
    run(tpm2_openssl(&env, "genpkey").args([
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "bits:1024",
        "-out",
        &small,
    ]));
    for order in ORDERS {
        let err = fails(
            env.openssl(order, "pkey")
                .args(["-in", &small, "-noout"])
                .env("TPMKEY_LOG", "off"),
        );
        assert!(err.contains("1024-bit RSA keys"), "{order:?}: {err}");
    }
}
