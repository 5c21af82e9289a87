//! Several processes on one swtpm without a resource manager, and a process that forks
//! after C_Initialize. The signing processes are this test binary again in a child role
//! (see `common::child`), so each is a real, separate user of the built module.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::panic::AssertUnwindSafe;
use std::process::Stdio;

use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::Session;

const PROCESSES: usize = 6;
const SIGNATURES: usize = 50;

/// Signs `count` messages with the key `id` and verifies each signature; returns the
/// number of failed signatures (printing why).
fn sign_and_verify(s: &Session, id: &[u8], count: usize) -> usize {
    let key = private_key(s, id);
    let public = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id.to_vec()),
        ])
        .unwrap()[0];
    let mechanism = if id == EC_ID {
        Mechanism::EcdsaSha256
    } else {
        Mechanism::Sha256RsaPkcs
    };
    let mut failed = 0;
    for i in 0..count {
        let data = format!("message {i} from process {}", std::process::id());
        let result = s
            .sign(&mechanism, key, data.as_bytes())
            .and_then(|sig| s.verify(&mechanism, public, data.as_bytes(), &sig));
        if let Err(e) = result {
            eprintln!("signature {i} of process {}: {e}", std::process::id());
            failed += 1;
        }
    }
    failed
}

/// Child role "ec" or "rsa": logs in and signs SIGNATURES times, then reports.
#[test]
fn signer() {
    let Some(role) = child_role() else { return };
    let p = load();
    let slot = token_slots(&p)[0];
    let s = user_session(&p, slot);
    let id = if role == "ec" { EC_ID } else { RSA_ID };
    let failed = sign_and_verify(&s, id, SIGNATURES);
    println!("signed {} failed {failed}", SIGNATURES - failed);
}

#[test]
fn six_processes_sign_on_one_tpm_without_a_resource_manager() {
    signers_on_one_tpm("per-operation", PROCESSES);
}

/// `objects = keep` without a resource manager: one process keeps (the lease), the other
/// loads per operation; neither waits for ever on slots the other holds.
#[test]
fn two_processes_sign_under_keep_without_a_resource_manager() {
    signers_on_one_tpm("keep", 2);
}

fn signers_on_one_tpm(objects: &str, processes: usize) {
    let _env = TestEnv::new(objects);
    token_with_keys("processes");
    let children: Vec<_> = (0..processes)
        .map(|i| {
            child("signer", if i % 2 == 0 { "ec" } else { "rsa" })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut signed, mut failed) = (0, 0);
    for c in children {
        let out = c.wait_with_output().unwrap();
        let report = text(&out);
        assert!(out.status.success(), "a signing process failed:\n{report}");
        let line = report
            .lines()
            .find(|l| l.starts_with("signed "))
            .unwrap_or_else(|| panic!("no report:\n{report}"));
        let numbers: Vec<usize> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        signed += numbers[0];
        failed += numbers[1];
        assert_eq!(numbers[1], 0, "{report}");
    }
    assert_eq!((signed, failed), (processes * SIGNATURES, 0));
}

/// The forked child: the inherited module state is not its own until it calls
/// C_Initialize; then it logs in and signs with its own TPM connection.
fn after_fork(p: &Pkcs11) -> usize {
    match p.get_slots_with_token() {
        Err(Error::Pkcs11(RvError::CryptokiNotInitialized, _)) => {}
        other => panic!("inherited state used in the child: {other:?}"),
    }
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let s = user_session(p, token_slots(p)[0]);
    sign_and_verify(&s, EC_ID, 30)
}

#[test]
fn fork_after_initialize_child_and_parent_both_sign() {
    let _env = TestEnv::new("keep");
    token_with_keys("fork");
    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    // The parent's key and session are in the TPM before the fork.
    assert_eq!(sign_and_verify(&s, EC_ID, 1), 0);

    // SAFETY: fork has no preconditions; the child runs only `after_fork` (no lock of
    // another thread is needed: this test holds the test lock and the module is idle)
    // and leaves with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = match std::panic::catch_unwind(AssertUnwindSafe(|| after_fork(&p))) {
            Ok(0) => 0,
            Ok(_) => 1,
            Err(_) => 2,
        };
        // SAFETY: ends the child without running the parent's destructors or harness.
        unsafe { libc::_exit(code) };
    }
    let parent_failed = sign_and_verify(&s, EC_ID, 30);
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child failed (status {status:#x}; 1: failed signatures, 2: panic)"
    );
    assert_eq!(
        parent_failed, 0,
        "the parent's signatures failed alongside the child"
    );
    // The parent's handles still work after the child is gone.
    assert_eq!(sign_and_verify(&s, EC_ID, 5), 0);
    assert_eq!(sign_and_verify(&s, RSA_ID, 2), 0);
}
