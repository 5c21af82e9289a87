//! Re-initialising a token under other processes (issue 9, finding 2): a process that had
//! the token open logs in with the salt of the PIN object it reads, never a stale one, so a
//! correct PIN costs no dictionary-attack count; its writes made with what it knew of the
//! old token are refused until it logs in again; and re-initialisation killed with SIGKILL
//! at any moment leaves the old token or the new one, both usable.
//!
//! The killed re-initialiser is this test binary again in a child role (the
//! `TPMKEY_TEST_ROLE` variable), as in the module's kill_during_writes test. Without a
//! resource manager a killed process's TPM objects and sessions stay in the TPM; between
//! rounds the test flushes them with tpm2_flushcontext, as an administrator would.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tpmkey::store::{Record, Role, Store};

const ROLE: &str = "TPMKEY_TEST_ROLE";
const SO_PIN: &[u8] = b"so-secret";
const USER_PIN: &[u8] = b"123456";
const TPM_PT_LOCKOUT_COUNTER: u32 = 0x20E;
const ROUNDS: usize = 20;

fn lockout_counter() -> u32 {
    tpmkey::keys::tpm_properties(TPM_PT_LOCKOUT_COUNTER, 1).unwrap()[0].1
}

fn data_record(value: &[u8]) -> Record {
    let mut attrs = BTreeMap::new();
    attrs.insert(0x11, value.to_vec());
    Record {
        parts: vec![attrs],
        ..Record::default()
    }
}

#[test]
fn a_process_with_the_token_open_logs_in_after_a_reinit() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let _tpm = common::tpm();
    let tmp = tpmkey_testenv::TempDir::new("reinit");
    let store = Store::new(tmp.path());
    let mut token = store.create_token("before", SO_PIN).unwrap();
    let so = token.login(Role::SecurityOfficer, SO_PIN).unwrap();
    token.init_user_pin(&so, USER_PIN).unwrap();
    // Another process's view, opened before the re-initialisation.
    let mut other = store.open(token.serial()).unwrap();
    other.login(Role::User, USER_PIN).unwrap();
    assert_eq!(other.objects().unwrap().len(), 0);

    token.reinitialize(SO_PIN, "after").unwrap();
    let counter = lockout_counter();
    // The right SO PIN works for the process that knew the old salt, and costs nothing.
    other.login(Role::SecurityOfficer, SO_PIN).unwrap();
    assert_eq!(lockout_counter(), counter, "a correct PIN cost a DA count");
    // The user PIN went with the old token.
    assert!(!other.user_pin_initialized());

    // Writes with what a process knew of the old token are refused until it logs in again.
    let mut stale = store.open(token.serial()).unwrap();
    stale.objects().unwrap();
    token.reinitialize(SO_PIN, "again").unwrap();
    let uid = stale.new_uid();
    let e = stale
        .add(&uid, &data_record(b"v"), None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("re-initialised"), "{e}");
    stale.login(Role::SecurityOfficer, SO_PIN).unwrap();
    stale.add(&uid, &data_record(b"v"), None, None).unwrap();
    assert_eq!(token.objects().unwrap().len(), 1);
}

/// Child role "reinit": re-initialises the token in the store named by TPMKEY_STORE until
/// killed, printing "ready" first.
#[test]
fn reinit_child() {
    if std::env::var(ROLE).as_deref() != Ok("reinit") {
        return;
    }
    tpmkey::connection::configure(&[]).unwrap();
    let store = Store::new(std::env::var_os("TPMKEY_STORE").unwrap());
    let serial = store.serials().unwrap().remove(0);
    let mut token = store.open(&serial).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for i in 0u64.. {
        token.reinitialize(SO_PIN, &format!("gen {i}")).unwrap();
        writeln!(out, "reinitialised {i}").unwrap();
        out.flush().unwrap();
    }
}

/// Runs a re-initialiser and kills it with SIGKILL `delay` after it started.
fn kill_a_reinit(store: &Path, tcti: &str, delay: Duration) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "reinit_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, "reinit")
        .env("TPMKEY_STORE", store)
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_CONF", "/dev/null")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.by_ref().map_while(|l| l.ok()).any(|l| l == "ready"),
        "the child did not start"
    );
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn reinit_killed_at_any_moment_leaves_a_usable_token() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let tpm = common::tpm();
    let tmp = tpmkey_testenv::TempDir::new("reinit");
    let store = Store::new(tmp.path());
    let serial = store
        .create_token("start", SO_PIN)
        .unwrap()
        .serial()
        .to_string();
    for round in 0..ROUNDS {
        let before = {
            let mut token = store.open(&serial).unwrap();
            token.login(Role::SecurityOfficer, SO_PIN).unwrap();
            let uid = token.new_uid();
            token.add(&uid, &data_record(b"old"), None, None).unwrap();
            token.objects().unwrap().len()
        };
        tpmkey::connection::shutdown();
        // Kills spread over the 10 to 410 ms a few re-initialisations take.
        let delay = Duration::from_millis(10 + (round as u64 * 97) % 400);
        kill_a_reinit(tmp.path(), &tpm.swtpm.tcti(), delay);
        tpmkey_testenv::flush_leftovers(&tpm.swtpm);
        // One token, complete: its description, SO PIN (checked by the TPM) and objects;
        // the old one (with the object just added) or a new one (without objects).
        assert_eq!(store.serials().unwrap(), [serial.as_str()], "round {round}");
        let mut token = store.open(&serial).unwrap();
        token
            .login(Role::SecurityOfficer, SO_PIN)
            .unwrap_or_else(|e| panic!("round {round}: SO login: {e}"));
        let objects = token.objects().unwrap();

        assert!(
            [0, before].contains(&objects.len()),
            "round {round}: {} objects, {before} before",
            objects.len()
        );
        assert_eq!(lockout_counter(), 0, "round {round}");
    }
    // The next re-initialisation removes what killed ones left beside the token.
    store
        .open(&serial)
        .unwrap()
        .reinitialize(SO_PIN, "end")
        .unwrap();
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [serial], "leftovers beside the token");
}
