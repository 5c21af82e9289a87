//! `tpmkey keygen --pcr/--signer`, `tpmkey pcr read` and `tpmkey policy sign|add|ls|rm|check`
//! on a real swtpm: PCR-bound keys, signed policies made offline (the TCTI pointing nowhere)
//! that keep a key working across a state change without touching its blobs, refused bad
//! signatures, and systemd-measure's signed PCR 11 policies for a fake UKI.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod sealing;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{stderr, tpmkey_with, Env};
use sealing::{extend_pcr16, hex, lockout_counter, s};
use tpmkey::KeyFile;
use tpmkey_testenv::TpmEndpoint;

const NOWHERE: &str = "swtpm:host=127.0.0.1,port=1";

fn openssl(args: &[&str]) {
    tpmkey_testenv::run(Command::new("openssl").args(args));
}

fn check_fails_with(env: &Env, key: &Path, want: &[&str]) {
    let before = lockout_counter(&env.swtpm);
    let out = env.tpmkey(["policy", "check", s(key)]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    for w in want {
        assert!(stderr(&out).contains(w), "{w}: {}", stderr(&out));
    }
    assert_eq!(
        lockout_counter(&env.swtpm),
        before,
        "no dictionary-attack count"
    );
}

fn blobs(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let k = KeyFile::from_pem(&std::fs::read(path).unwrap()).unwrap();
    (k.public, k.private)
}

/// PCR 16 after one more extend with 32 bytes of 0x01 (what `extend_pcr16` does).
fn next_pcr16(values_file: &Path) -> String {
    let text = std::fs::read_to_string(values_file).unwrap();
    let mut extend = tpmkey::hex::unhex(text.trim().split('=').nth(1).unwrap()).unwrap();
    extend.extend_from_slice(&[0u8; 31]);
    extend.push(1);
    format!("sha256:16={}\n", hex(&openssl::sha::sha256(&extend)))
}

#[test]
fn pcr_key_with_check_and_pcr_read() {
    let env = Env::start();
    let key = env.path("k.key");
    env.tpmkey_ok(["keygen", "--pcr", "sha256:16", "-o", s(&key)]);
    let ls = String::from_utf8(env.tpmkey_ok(["policy", "ls", s(&key)])).unwrap();
    assert!(ls.contains("PolicyPCR sha256:16"), "{ls}");
    env.tpmkey_ok(["policy", "check", s(&key)]);

    let pcrs = String::from_utf8(env.tpmkey_ok(["pcr", "read", "sha256:16"])).unwrap();
    assert_eq!(pcrs, format!("sha256:16={}\n", "00".repeat(32)));

    extend_pcr16(&env.swtpm);
    check_fails_with(&env, &key, &["PCR", "sha256:16"]);
}

/// `tpmkey policy sign` as a publisher runs it: PCR values from a file, the key's
/// policyRef, no TPM reachable. Returns the signed policy's path.
fn sign_offline(env: &Env, signer_key: &Path, values: &Path, key: &Path, name: &str) -> PathBuf {
    let out = env.path(&format!("{name}.policy"));
    let signed = tpmkey_with(
        NOWHERE,
        env.dir.path(),
        [
            "policy",
            "sign",
            "--signer-key",
            s(signer_key),
            "--pcr-values",
            s(values),
            "--key",
            s(key),
            "--name",
            name,
            "-o",
            s(&out),
        ],
    );
    assert!(signed.status.success(), "{}", stderr(&signed));
    out
}

#[test]
fn signed_policies_made_offline() {
    let env = Env::start();
    let signer_key = env.path("signer.key");
    let signer_pub = env.path("signer.pub");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        s(&signer_key),
    ]);
    openssl(&[
        "pkey",
        "-in",
        s(&signer_key),
        "-pubout",
        "-out",
        s(&signer_pub),
    ]);
    let key = env.path("k.key");
    env.tpmkey_ok(["keygen", "--signer", s(&signer_pub), "-o", s(&key)]);
    let blobs_at_start = blobs(&key);
    check_fails_with(&env, &key, &["no signed policy"]);

    // The publisher: predicted values, signed with no TPM reachable.
    let now = env.path("a.pcrs");
    env.tpmkey_ok(["pcr", "read", "sha256:16", "-o", s(&now)]);
    let policy_a = sign_offline(&env, &signer_key, &now, &key, "state-a");
    env.tpmkey_ok(["policy", "add", s(&key), s(&policy_a)]);
    env.tpmkey_ok(["policy", "check", s(&key)]);

    // An update: the next state, predicted and signed before the device gets there.
    let next = env.path("b.pcrs");
    std::fs::write(&next, next_pcr16(&now)).unwrap();
    let policy_b = sign_offline(&env, &signer_key, &next, &key, "state-b");
    env.tpmkey_ok(["policy", "add", s(&key), s(&policy_b)]);
    extend_pcr16(&env.swtpm);
    env.tpmkey_ok(["policy", "check", s(&key)]);
    assert_eq!(blobs(&key), blobs_at_start, "key blobs unchanged");

    // An unsigned state: every policy tried and named.
    extend_pcr16(&env.swtpm);
    check_fails_with(&env, &key, &["state-a", "state-b"]);

    env.tpmkey_ok(["policy", "rm", s(&key), "state-a"]);
    let ls = String::from_utf8(env.tpmkey_ok(["policy", "ls", s(&key)])).unwrap();
    assert!(
        ls.contains("signed state-b") && !ls.contains("state-a"),
        "{ls}"
    );

    // A signature that does not verify is refused before it is added.
    let pem = std::fs::read_to_string(&policy_b).unwrap();
    let der = tpmkey::keyfile::pem_decode(pem.as_bytes(), "TPMKEY SIGNED POLICY").unwrap();
    let mut bad = der.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x55;
    let bad_file = env.path("bad.policy");
    std::fs::write(
        &bad_file,
        tpmkey::keyfile::pem_encode("TPMKEY SIGNED POLICY", &bad),
    )
    .unwrap();
    let out = env.tpmkey(["policy", "add", s(&key), s(&bad_file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    let out = env.tpmkey(["policy", "add", s(&key), s(&env.path("missing.policy"))]);
    assert!(stderr(&out).contains("missing.policy"), "{}", stderr(&out));
}

/// systemd-measure signs the PCR 11 values of a fake UKI's boot phases; a key bound to the
/// RSA signer (empty policyRef) works once PCR 11 is replayed to the first phase, and after
/// a "kernel update" (another UKI, PCR 11 replayed to its value) only when the new JSON is
/// added.
#[test]
fn systemd_measure_signed_pcr_policies() {
    const MEASURE: &str = "/usr/lib/systemd/systemd-measure";
    let mut env = Env::start();
    let sk = env.path("sk.pem");
    let pk = env.path("pk.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        s(&sk),
    ]);
    openssl(&["pkey", "-in", s(&sk), "-pubout", "-out", s(&pk)]);
    let key = env.path("k.key");
    env.tpmkey_ok([
        "keygen",
        "--signer",
        s(&pk),
        "--policy-ref",
        "empty",
        "-o",
        s(&key),
    ]);

    let dir = env.dir.path().to_path_buf();
    let tcti = env.swtpm.tcti();
    let uki = |tag: &str| -> Vec<(String, Vec<u8>)> {
        vec![
            (".linux".into(), format!("fake kernel {tag}").into_bytes()),
            (".osrel".into(), b"ID=tpmkey-test\n".to_vec()),
            (".cmdline".into(), b"quiet".to_vec()),
        ]
    };
    let measure = |sections: &[(String, Vec<u8>)], sub: &[String]| -> Vec<u8> {
        let mut cmd = Command::new(MEASURE);
        cmd.args(sub);
        for (name, content) in sections {
            let file = dir.join(format!(
                "{}-{}",
                &name[1..],
                hex(&openssl::sha::sha256(content))
            ));
            std::fs::write(&file, content).unwrap();
            cmd.arg(format!("--{}={}", &name[1..], s(&file)));
        }
        cmd.args(["--bank=sha256", "--json=short", "--phase=enter-initrd"]);
        tpmkey_testenv::run(&mut cmd).stdout
    };
    let sign = |sections: &[(String, Vec<u8>)], json: &Path| {
        let out = measure(
            sections,
            &[
                "sign".into(),
                format!("--private-key={}", s(&sk)),
                format!("--public-key={}", s(&pk)),
                format!("--tpm2-device={tcti}"),
            ],
        );
        std::fs::write(json, out).unwrap();
    };
    let predicted = |sections: &[(String, Vec<u8>)]| -> String {
        let text = String::from_utf8(measure(sections, &["calculate".into()])).unwrap();
        text.split("\"hash\":\"").nth(1).unwrap()[..64].to_string()
    };
    // What systemd-stub and systemd-pcrphase extend into PCR 11 for these sections and the
    // enter-initrd phase: each section's name (with its NUL) and content, then the phase.
    let replay = |swtpm: &tpmkey_testenv::Swtpm, sections: &[(String, Vec<u8>)]| {
        let mut events: Vec<Vec<u8>> = Vec::new();
        for (name, content) in sections {
            events.push([name.as_bytes(), b"\0"].concat());
            events.push(content.clone());
        }
        events.push(b"enter-initrd".to_vec());
        for e in events {
            swtpm.tpm2_tools_ok([
                "tpm2_pcrextend",
                &format!("11:sha256={}", hex(&openssl::sha::sha256(&e))),
            ]);
        }
    };

    let v1 = uki("v1");
    let json_v1 = env.path("v1.json");
    sign(&v1, &json_v1);
    env.tpmkey_ok([
        "policy",
        "add",
        s(&key),
        "--systemd",
        s(&json_v1),
        "--name",
        "uki-v1",
    ]);
    replay(&env.swtpm, &v1);
    let pcr11 = String::from_utf8(env.tpmkey_ok(["pcr", "read", "sha256:11"])).unwrap();
    assert_eq!(
        pcr11.trim(),
        format!("sha256:11={}", predicted(&v1)),
        "replay matches systemd-measure"
    );
    env.tpmkey_ok(["policy", "check", s(&key)]);

    // The kernel update: boot v2 without its signature, then with it.
    env.swtpm.reboot();
    let v2 = uki("v2");
    replay(&env.swtpm, &v2);
    check_fails_with(&env, &key, &["uki-v1"]);
    let json_v2 = env.path("v2.json");
    sign(&v2, &json_v2);
    env.tpmkey_ok([
        "policy",
        "add",
        s(&key),
        "--systemd",
        s(&json_v2),
        "--name",
        "uki-v2",
    ]);
    env.tpmkey_ok(["policy", "check", s(&key)]);
}
