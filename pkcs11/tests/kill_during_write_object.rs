//! kill -9 during `pkcs11-tool --write-object --private`, 50 times at moments spread over
//! the command's run: every private data object is afterwards either absent or complete
//! (its value reads back byte for byte), and the store opens without damaged records.
//! Without a resource manager a killed process's TPM objects and sessions stay in the TPM;
//! between rounds the test flushes them, as an administrator would.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};

const ROUNDS: usize = 50;

fn value(round: usize) -> Vec<u8> {
    (0..4000)
        .map(|i| (i * 31 + round * 97 + i / 256) as u8)
        .collect()
}

fn write_object(env: &TestEnv, file: &std::path::Path, label: &str) -> std::process::Command {
    let mut cmd = command(env, "pkcs11-tool");
    cmd.arg("--module")
        .arg(module_path())
        .args(["--token-label", "killed", "--login", "--pin", USER_PIN])
        .arg("--write-object")
        .arg(file)
        .args(["--type", "data", "--private", "--label", label])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

#[test]
fn kill_9_during_write_object_leaves_objects_absent_or_whole() {
    let env = TestEnv::new("per-operation");
    token_with_keys("killed");
    let dir = TempDir::new("killed");

    // How long one write takes here, to spread the kills over it.
    let file = dir.0.join("timing");
    std::fs::write(&file, value(999)).unwrap();
    let start = Instant::now();
    assert!(write_object(&env, &file, "timing")
        .status()
        .unwrap()
        .success());
    let full = start.elapsed().as_micros() as u64;

    let mut finished = 0;
    for round in 0..ROUNDS {
        let file = dir.0.join(format!("v{round}"));
        std::fs::write(&file, value(round)).unwrap();
        let mut child = write_object(&env, &file, &format!("k{round}"))
            .spawn()
            .unwrap();
        // From 0 to 120% of a whole run, in even steps.
        std::thread::sleep(Duration::from_micros(
            full * 6 * round as u64 / (5 * ROUNDS as u64),
        ));
        if child.try_wait().unwrap().is_some() {
            finished += 1;
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        tpmkey_testenv::flush_leftovers(&env.swtpm);
    }

    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    let found = s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    let mut complete = 0;
    for h in found {
        let attrs = s
            .get_attributes(h, &[AttributeType::Label, AttributeType::Value])
            .unwrap();
        let (Attribute::Label(label), Attribute::Value(v)) = (&attrs[0], &attrs[1]) else {
            panic!("{attrs:?}");
        };
        let label = String::from_utf8(label.clone()).unwrap();
        let Some(round) = label.strip_prefix('k') else {
            continue;
        };
        let round: usize = round.parse().unwrap();
        assert!(*v == value(round), "{label}: the value is not whole");
        complete += 1;
    }
    drop(s);
    p.finalize().unwrap();
    eprintln!(
        "{ROUNDS} writes killed (one run: {full} us; {finished} had exited before the kill): \
         {complete} objects complete, {} absent, none half",
        ROUNDS - complete
    );
}
