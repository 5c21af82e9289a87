//! `scripts/deps.sh demo` in a fresh minbase Debian 12 root: it installs the demo's
//! programs and none of the test set's services, starts no service and enables none,
//! and a second run installs nothing (debian-root.sh demo-deps, in-root-demo-deps.sh).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

use tpmkey_package_test::{text, workspace};

#[test]
fn demo_dependencies_start_and_enable_no_service_in_a_fresh_debian_12() {
    let script = workspace().join("tests/package/debian-root.sh");
    let out = Command::new(&script)
        .arg("demo-deps")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success()
            && stdout.contains("in-root-demo-deps.sh: PASSED")
            && stdout.contains("no process left running in the root"),
        "deps.sh demo in a fresh Debian 12 root failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        out.status,
        text(&out.stderr)
    );
}
