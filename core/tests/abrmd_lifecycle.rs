//! Behind tpm2-abrmd: children of a process that used the TPM sign (the tabrmd TCTI library's
//! GLib threads do not survive fork, so tpmkey reaches abrmd itself), and a TPM that restarts
//! behind the resource manager is recovered from at the next operation.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use tpmkey::hash::Hash;
use tpmkey::{KeySpec, SignScheme, TpmKey};
use tpmkey_testenv::Abrmd;

fn sign(key: &TpmKey, i: u32) -> tpmkey::Result<tpmkey::Signature> {
    key.sign(
        SignScheme::Ecdsa(Hash::Sha256),
        &Hash::Sha256.digest(&[&i.to_be_bytes()]),
    )
}

#[test]
fn children_of_a_tabrmd_user_sign() {
    let tpm = common::tpm();
    let abrmd = Abrmd::start(&tpm.swtpm);
    abrmd.set_process_env();
    tpmkey::connection::configure(&[("tcti", &abrmd.tcti())]).unwrap();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    sign(&key, 0).unwrap();
    let started = Instant::now();
    let mut pids = Vec::new();
    for c in 0..4u32 {
        // SAFETY: the child only signs through tpmkey and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: a watchdog: a hung child dies instead of hanging the test.
            unsafe { libc::alarm(30) };
            let ok = std::panic::catch_unwind(|| {
                let all = (0..20).all(|i| sign(&key, c * 100 + i).is_ok());
                tpmkey::connection::shutdown();
                all
            })
            .unwrap_or(false);
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        pids.push(pid);
    }
    for pid in pids {
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child {pid} failed or hung: status {status}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    sign(&key, 999).unwrap();
}

/// The handles tpm2-abrmd gave out stop working when the TPM restarts (it answers
/// TPM_RC_VALUE on the handle): the next operation reconnects and re-creates its objects.
/// (What tpm2-abrmd itself leaks in that case is described in the README.)
#[test]
fn tpm_restart_behind_abrmd_recovers() {
    let mut tpm = common::tpm();
    let abrmd = Abrmd::start(&tpm.swtpm);
    abrmd.set_process_env();
    tpmkey::connection::configure(&[("tcti", &abrmd.tcti())]).unwrap();
    let ec = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    sign(&ec, 1).unwrap();
    sign(&ec, 2).unwrap();
    tpm.swtpm.stop();
    tpm.swtpm.restart();
    let started = Instant::now();
    sign(&ec, 3).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
