//! Tests of the tpm2-abrmd harness, against a real swtpm and tpm2-abrmd.

use std::process::Command;

use tpmkey_testenv::{pid_exists, run, Abrmd, Swtpm, TpmEndpoint};

#[test]
fn abrmd_answers_through_the_tabrmd_tcti() {
    let tpm = Swtpm::start();
    let rm = Abrmd::start(&tpm);
    assert_eq!(
        rm.tcti(),
        format!("tabrmd:bus_name={},bus_type=session", rm.bus_name())
    );
    assert!(rm.bus_name().starts_with("com.intel.tss2.Tabrmd.tpmkey"));
    assert_eq!(rm.swtpm_tcti(), tpm.tcti());
    let out = rm.tpm2_tools_ok(["tpm2_getrandom", "--hex", "16"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 32);

    // Without the bus address the tabrmd TCTI cannot find the daemon.
    let out = Command::new("tpm2_getrandom")
        .arg("8")
        .env("TPM2TOOLS_TCTI", rm.tcti())
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .expect("run tpm2_getrandom");
    assert!(!out.status.success());
}

#[test]
fn two_abrmds_have_their_own_bus() {
    let tpm_a = Swtpm::start();
    let tpm_b = Swtpm::start();
    let a = Abrmd::start(&tpm_a);
    let b = Abrmd::start(&tpm_b);
    assert_ne!(a.bus_name(), b.bus_name());
    assert_ne!(a.env(), b.env());
    a.tpm2_tools_ok(["getrandom", "8"]);
    b.tpm2_tools_ok(["getrandom", "8"]);
}

#[test]
fn set_process_env_lets_children_inherit_the_bus() {
    let tpm = Swtpm::start();
    let rm = Abrmd::start(&tpm);
    rm.set_process_env();
    assert_eq!(
        std::env::var("DBUS_SESSION_BUS_ADDRESS").expect("set"),
        rm.env()[0].1
    );
    // Only the TCTI is passed explicitly; the bus address comes from this process.
    run(Command::new("tpm2_getrandom")
        .arg("8")
        .env("TPM2TOOLS_TCTI", rm.tcti()));
}

#[test]
fn drop_stops_abrmd_and_its_bus() {
    let tpm = Swtpm::start();
    let rm = Abrmd::start(&tpm);
    let abrmd = rm.pid().expect("abrmd pid");
    let dbus = rm.dbus_pid().expect("dbus pid");
    let bus = rm.bus_address();
    assert!(pid_exists(abrmd) && pid_exists(dbus));
    drop(rm);
    assert!(!pid_exists(abrmd), "tpm2-abrmd {abrmd} survived drop");
    assert!(!pid_exists(dbus), "dbus-daemon {dbus} survived drop");
    let socket = bus.trim_start_matches("unix:path=");
    assert!(!std::path::Path::new(socket).exists());
    // The swtpm is untouched.
    tpm.tpm2_tools_ok(["tpm2_getrandom", "8"]);
}
