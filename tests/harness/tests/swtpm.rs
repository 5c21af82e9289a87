//! Tests of the swtpm harness itself, against a real swtpm.

#![allow(clippy::panic)]

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;

use tpmkey_testenv::{handles, pid_exists, run, StoragePrimary, Swtpm, TpmEndpoint};

fn getrandom_ok(tpm: &impl TpmEndpoint) {
    let out = tpm.tpm2_tools_ok(["tpm2_getrandom", "--hex", "16"]);
    let hex = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        hex.trim().len(),
        32,
        "unexpected tpm2_getrandom output {hex:?}"
    );
}

#[test]
fn tcti_names_the_private_port() {
    let tpm = Swtpm::start();
    assert_eq!(
        tpm.tcti(),
        format!("swtpm:host=127.0.0.1,port={}", tpm.port())
    );
    assert_eq!(tpm.ctrl_port(), tpm.port() + 1);
    assert!(
        !(2320..=2322).contains(&tpm.port()),
        "port {} is a default port",
        tpm.port()
    );
    assert!(tpm.state_dir().starts_with(std::env::temp_dir()));
    assert!(tpm.state_dir().is_dir());
    assert!(tpm.pid().is_some());
}

#[test]
fn parallel_instances_all_answer() {
    const N: usize = 6;
    let ports = Mutex::new(BTreeSet::new());
    thread::scope(|s| {
        for _ in 0..N {
            s.spawn(|| {
                let tpm = Swtpm::start();
                getrandom_ok(&tpm);
                let mut ports = ports.lock().expect("ports lock");
                assert!(
                    ports.insert(tpm.port()),
                    "port {} handed out twice",
                    tpm.port()
                );
                // Keep the instance alive until all have answered, so ports overlap in time.
                drop(ports);
                getrandom_ok(&tpm);
                tpm
            });
        }
    });
    assert_eq!(ports.lock().expect("ports lock").len(), N);
}

#[test]
fn two_instances_side_by_side() {
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(Swtpm::start);
        let b = s.spawn(Swtpm::start);
        (a.join().expect("start a"), b.join().expect("start b"))
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.state_dir(), b.state_dir());
    getrandom_ok(&a);
    getrandom_ok(&b);
}

#[test]
fn dictionary_attack_limits_are_relaxed() {
    let tpm = Swtpm::start();
    let out = tpm.tpm2_tools_ok(["tpm2_getcap", "properties-variable"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
    };
    assert_eq!(value("TPM2_PT_MAX_AUTH_FAIL"), "0x3E8", "{text}");
    assert_eq!(value("TPM2_PT_LOCKOUT_INTERVAL"), "0x1", "{text}");
    assert_eq!(value("TPM2_PT_LOCKOUT_RECOVERY"), "0x1", "{text}");
}

#[test]
fn restart_keeps_persistent_objects() {
    let mut tpm = Swtpm::start();
    let ctx = tpm.state_dir().join("primary.ctx");
    StoragePrimary::TOOLS_DEFAULT.create(&tpm, &ctx);
    let ctx = ctx.to_str().expect("utf-8 temp path");
    tpm.tpm2_tools_ok(["tpm2_evictcontrol", "-C", "o", "-c", ctx, "0x81000001"]);
    let before = tpm
        .tpm2_tools_ok(["tpm2_readpublic", "-c", "0x81000001"])
        .stdout;

    let old_pid = tpm.pid().expect("running");
    let port = tpm.port();
    let tcti = tpm.tcti();
    tpm.restart();
    let new_pid = tpm.pid().expect("running after restart");
    assert_ne!(old_pid, new_pid);
    assert!(!pid_exists(old_pid), "old swtpm {old_pid} still exists");
    assert_eq!(tpm.port(), port);
    assert_eq!(tpm.tcti(), tcti);

    let after = tpm
        .tpm2_tools_ok(["tpm2_readpublic", "-c", "0x81000001"])
        .stdout;
    assert_eq!(before, after);
    // The transient primary did not survive the restart (TPM2_Startup(CLEAR)).
    let transient = handles(&tpm, "handles-transient");
    assert!(
        transient.is_empty(),
        "transient objects after restart: {transient:?}"
    );
}

#[test]
fn stop_then_restart() {
    let mut tpm = Swtpm::start();
    let pid = tpm.pid().expect("running");
    tpm.stop();
    assert_eq!(tpm.pid(), None);
    assert!(!pid_exists(pid), "swtpm {pid} survived stop()");
    assert!(tpm.state_dir().is_dir(), "stop() must keep the state");
    let out = tpm.tpm2_tools(["tpm2_getrandom", "8"]);
    assert!(!out.status.success(), "a stopped swtpm answered");
    tpm.stop(); // idempotent
    tpm.restart();
    getrandom_ok(&tpm);
    tpm.restart(); // restart of a running instance
    getrandom_ok(&tpm);
}

#[test]
fn drop_kills_the_process_and_removes_the_state() {
    let tpm = Swtpm::start();
    let pid = tpm.pid().expect("running");
    let dir = tpm.state_dir().to_path_buf();
    assert!(pid_exists(pid));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(String::from_utf8_lossy(&cmdline).contains("swtpm"));
    drop(tpm);
    assert!(!pid_exists(pid), "swtpm {pid} survived drop");
    assert!(!dir.exists(), "{} survived drop", dir.display());
}

#[test]
fn panicking_test_still_cleans_up() {
    let seen: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let tpm = Swtpm::start();
        *seen.lock().expect("lock") = Some((tpm.pid().expect("running"), tpm.state_dir().into()));
        run(tpm.tpm2_command("tpm2_getrandom").arg("8"));
        panic!("deliberate panic while owning a Swtpm");
    }));
    assert!(result.is_err());
    let (pid, dir) = seen.lock().expect("lock").take().expect("swtpm started");
    assert!(!pid_exists(pid), "swtpm {pid} survived the panic");
    assert!(!dir.exists(), "{} survived the panic", dir.display());
}

#[test]
fn run_reports_failures() {
    let result = panic::catch_unwind(|| {
        run(std::process::Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
    });
    let err = result.expect_err("exit 3 must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("out") && msg.contains("err") && msg.contains('3'),
        "{msg}"
    );
}
