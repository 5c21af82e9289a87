//! Several processes on one swtpm without a resource manager: each loads its key and
//! session around every operation (objects = per-operation), and retries when the TPM's
//! three slots are taken by the others.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;

use tpmkey::hash::Hash;
use tpmkey::{KeyFile, KeySpec, SignScheme, TpmKey};

const CHILD_KEY: &str = "TPMKEY_TEST_CHILD_KEY";

/// Run by `six_processes_sign_without_resource_manager` in child processes: signs 50 times.
#[test]
fn child_signer() {
    let Ok(path) = std::env::var(CHILD_KEY) else {
        return;
    };
    let pem = std::fs::read(&path).unwrap();
    let key = TpmKey::from_key_file(&KeyFile::from_pem(&pem).unwrap(), None).unwrap();
    let spec_is_rsa = key.public().is_rsa();
    let mut ok = 0;
    for i in 0..50u32 {
        let digest = Hash::Sha256.digest(&[&i.to_be_bytes()]);
        let scheme = if spec_is_rsa {
            SignScheme::RsaPkcs1(Hash::Sha256)
        } else {
            SignScheme::Ecdsa(Hash::Sha256)
        };
        match key.sign(scheme, &digest) {
            Ok(_) => ok += 1,
            Err(e) => eprintln!("signature {i} failed: {e}"),
        }
    }
    tpmkey::connection::shutdown();
    println!("CHILD-SIGNED {ok}");
    assert_eq!(ok, 50);
}

#[test]
fn six_processes_sign_without_resource_manager() {
    let tpm = common::tpm();
    let dir = std::env::temp_dir().join(format!("tpmkey-procs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (i, spec) in [KeySpec::EcP256, KeySpec::EcP256, KeySpec::Rsa(2048)]
        .into_iter()
        .enumerate()
    {
        let key = TpmKey::generate(spec, None, None).unwrap();
        let p = dir.join(format!("key{i}.pem"));
        std::fs::write(&p, key.key_file().unwrap().to_pem()).unwrap();
        paths.push(p);
    }
    tpmkey::connection::shutdown();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "child_signer", "--nocapture", "--test-threads=1"])
                .env(CHILD_KEY, &paths[i % paths.len()])
                .env("TPMKEY_TCTI", tpm.swtpm.tcti())
                .env("TPMKEY_CONF", "/dev/null")
                .env_remove("TPMKEY_OBJECTS")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failures = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("CHILD-SIGNED 50") {
            failures.push(format!(
                "child {i}: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing of theirs is left loaded: the TPM has its slots free again.
    let left = tpmkey_testenv::leftovers(&tpm.swtpm);
    assert!(left.is_empty(), "{left:?}");
}

const EXIT_CHILD: &str = "TPMKEY_TEST_EXIT_CHILD";

/// Run by `exit_without_shutdown_leaves_nothing_loaded`: uses the TPM under `keep` and
/// returns without calling `connection::shutdown()`.
#[test]
fn child_exits_without_shutdown() {
    if std::env::var(EXIT_CHILD).is_err() {
        return;
    }
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    key.sign(SignScheme::Ecdsa(Hash::Sha256), &[5u8; 32])
        .unwrap();
    key.sign(SignScheme::Ecdsa(Hash::Sha256), &[5u8; 32])
        .unwrap();
    println!("CHILD-DONE");
}

#[test]
fn exit_without_shutdown_leaves_nothing_loaded() {
    let tpm = common::tpm();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_exits_without_shutdown",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EXIT_CHILD, "1")
        .env("TPMKEY_TCTI", tpm.swtpm.tcti())
        .env("TPMKEY_OBJECTS", "keep")
        .env("TPMKEY_CONF", "/dev/null")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CHILD-DONE"),
        "{out:?}"
    );
    let left = tpmkey_testenv::leftovers(&tpm.swtpm);
    assert!(left.is_empty(), "{left:?}");
}
