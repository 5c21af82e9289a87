//! A process that forks after using the TPM, and a TPM that restarts under a running
//! process: the child gets its own connection and session and the parent's stay intact;
//! operations fail cleanly while the TPM is down and succeed again after.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use tpmkey::hash::Hash;
use tpmkey::{KeySpec, SignScheme, TpmKey};

fn sign(key: &TpmKey) -> tpmkey::Result<tpmkey::Signature> {
    key.sign(
        SignScheme::Ecdsa(Hash::Sha256),
        &Hash::Sha256.digest(&[b"fork"]),
    )
}

#[test]
fn child_after_fork_uses_its_own_connection() {
    // `keep`: the parent holds its key and session loaded, the riskiest case.
    let _tpm = common::tpm_with(&[("objects", "keep")]);
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    // The second signature releases the storage key: the parent then holds one object
    // and the session, and the child's storage key and key fit swtpm's three slots.
    sign(&key).unwrap();
    sign(&key).unwrap();
    let before = tpmkey::connection::commands_sent();
    // SAFETY: the child only signs through tpmkey and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = std::panic::catch_unwind(|| {
            let a = sign(&key).is_ok();
            let b = sign(&key).is_ok();
            tpmkey::connection::shutdown();
            a && b
        })
        .unwrap_or(false);
        // SAFETY: ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: status {status}"
    );
    // The parent's session nonces were not touched: one more command, the signature.
    sign(&key).unwrap();
    assert_eq!(
        tpmkey::connection::commands_sent(),
        before + 1,
        "keep policy: one TPM command per signature"
    );
}

#[test]
fn tpm_restart_fails_cleanly_then_recovers() {
    let mut tpm = common::tpm();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    sign(&key).unwrap();
    tpm.swtpm.stop();
    let started = std::time::Instant::now();
    let e = sign(&key).unwrap_err().to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "no hang while the TPM is down"
    );
    assert!(
        e.contains("TPM not reachable through TCTI") && e.contains(&tpm.swtpm.tcti()),
        "{e}"
    );
    tpm.swtpm.restart();
    sign(&key).unwrap();
    sign(&key).unwrap();
}

#[test]
fn keep_policy_survives_a_restart_with_loaded_handles() {
    let mut tpm = common::tpm_with(&[("objects", "keep")]);
    let key = TpmKey::generate(KeySpec::Rsa(2048), None, None).unwrap();
    let scheme = SignScheme::RsaPkcs1(Hash::Sha256);
    let digest = Hash::Sha256.digest(&[b"x"]);
    key.sign(scheme, &digest).unwrap();
    tpm.swtpm.restart();
    key.sign(scheme, &digest).unwrap();
}
