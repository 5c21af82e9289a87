//! Through tpm2-abrmd on a private D-Bus session bus: `objects = auto` picks `keep`, the
//! salted session works behind the resource manager, and processes get their own slots.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;

use tpmkey::hash::Hash;
use tpmkey::{KeyFile, KeySpec, RsaPadding, SignScheme, TpmKey};
use tpmkey_testenv::Abrmd;

const CHILD_KEY: &str = "TPMKEY_TEST_ABRMD_CHILD_KEY";

#[test]
fn child_signer() {
    let Ok(path) = std::env::var(CHILD_KEY) else {
        return;
    };
    let key = TpmKey::from_key_file(
        &KeyFile::from_pem(&std::fs::read(path).unwrap()).unwrap(),
        None,
    )
    .unwrap();
    for i in 0..50u32 {
        key.sign(
            SignScheme::Ecdsa(Hash::Sha256),
            &Hash::Sha256.digest(&[&i.to_be_bytes()]),
        )
        .unwrap();
    }
    tpmkey::connection::shutdown();
    println!("CHILD-SIGNED 50");
}

#[test]
fn keys_work_behind_tpm2_abrmd() {
    let tpm = common::tpm();
    let abrmd = Abrmd::start(&tpm.swtpm);
    abrmd.set_process_env();
    tpmkey::connection::configure(&[("tcti", &abrmd.tcti())]).unwrap();
    assert_eq!(
        tpmkey::connection::with_link(|l| Ok(l.policy())).unwrap(),
        tpmkey::config::ObjectPolicy::Keep,
        "auto picks keep behind a resource manager"
    );
    let ec = TpmKey::generate(KeySpec::EcP256, Some(b"pw"), None).unwrap();
    for _ in 0..5 {
        ec.sign(SignScheme::Ecdsa(Hash::Sha256), &[9u8; 32])
            .unwrap();
    }
    let rsa = TpmKey::generate(KeySpec::Rsa(2048), None, None).unwrap();
    let pss = SignScheme::RsaPss {
        hash: Hash::Sha256,
        mgf1: Hash::Sha256,
        salt_len: 32,
    };
    rsa.sign(pss, &[1u8; 32]).unwrap();
    let raw = rsa.decrypt(RsaPadding::None, b"", &vec![3u8; 256]).unwrap();
    assert_eq!(raw.len(), 256);
    let mut r = [0u8; 100];
    tpmkey::keys::random(&mut r).unwrap();
    let mut wrong = ec.clone();
    wrong.set_password(b"nope");
    assert!(wrong
        .sign(SignScheme::Ecdsa(Hash::Sha256), &[9u8; 32])
        .unwrap_err()
        .is_bad_auth());

    // Six processes at once through the resource manager.
    let path = std::env::temp_dir().join(format!("tpmkey-abrmd-{}.pem", std::process::id()));
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    std::fs::write(&path, key.key_file().unwrap().to_pem()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|_| {
            let mut c = Command::new(&exe);
            c.args(["--exact", "child_signer", "--nocapture", "--test-threads=1"])
                .env(CHILD_KEY, &path)
                .env("TPMKEY_TCTI", abrmd.tcti())
                .env("TPMKEY_CONF", "/dev/null")
                .stdout(std::process::Stdio::piped());
            for (k, v) in abrmd.env() {
                c.env(k, v);
            }
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("CHILD-SIGNED 50")
        );
    }
    std::fs::remove_file(path).ok();
}

const GONE_KEY: &str = "TPMKEY_TEST_ABRMD_GONE_KEY";
const GONE_PID: &str = "TPMKEY_TEST_ABRMD_GONE_PID";

/// In a child whose SIGPIPE has its default action, as in a C program that loads a front
/// end: signs, kills tpm2-abrmd, signs again.
#[test]
fn child_outliving_abrmd() {
    let (Ok(path), Ok(pid)) = (std::env::var(GONE_KEY), std::env::var(GONE_PID)) else {
        return;
    };
    // SAFETY: no other thread of this process is running a signal-sensitive call now.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let key = TpmKey::from_key_file(
        &KeyFile::from_pem(&std::fs::read(path).unwrap()).unwrap(),
        None,
    )
    .unwrap();
    let digest = [7u8; 32];
    key.sign(SignScheme::Ecdsa(Hash::Sha256), &digest).unwrap();
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    // Dead once a zombie (its parent, the test, reaps it) or gone.
    while std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.contains("State:\tZ"))
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let e = key
        .sign(SignScheme::Ecdsa(Hash::Sha256), &digest)
        .unwrap_err();
    println!("CHILD-FAILED {e}");
}

/// A write to the socket of a tpm2-abrmd that has gone raises no SIGPIPE (which would end a
/// program that keeps its default action), but fails naming the TCTI.
#[test]
fn abrmd_gone_is_an_error_not_sigpipe() {
    let tpm = common::tpm();
    let abrmd = Abrmd::start(&tpm.swtpm);
    let path = std::env::temp_dir().join(format!("tpmkey-abrmd-gone-{}.pem", std::process::id()));
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    std::fs::write(&path, key.key_file().unwrap().to_pem()).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_outliving_abrmd",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(GONE_KEY, &path)
        .env(GONE_PID, abrmd.pid().unwrap().to_string())
        .env("TPMKEY_TCTI", abrmd.tcti())
        .env("TPMKEY_CONF", "/dev/null")
        .envs(abrmd.env())
        .output()
        .unwrap();
    std::fs::remove_file(path).ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "the child died of a signal ({}):\n{stdout}",
        out.status
    );
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("CHILD-FAILED") && stdout.contains("tabrmd"),
        "the error does not name the tabrmd TCTI:\n{stdout}"
    );
}
