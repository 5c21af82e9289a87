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
