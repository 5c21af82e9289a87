//! tpmkey-testenv: the harness every TPM test uses.
//!
//! Every test gets a real swtpm ([`Swtpm::start`]) on a private state directory and a
//! private loopback port pair, optionally fronted by tpm2-abrmd on a private D-Bus bus
//! ([`Abrmd::start`]). Nothing is mocked, the default TCTI and port 2321 are never used, and
//! every process is stopped by its pid when its owner is dropped, also when the test panics.
//! [`UnixBridge`] puts a swtpm's port pair behind unix sockets, for clients in another
//! network namespace.
//! [`Swtpm::start_with_ek_certs`] provisions EK certificates from a private CA ([`EkCa`]).
//! What the front ends' tests share is here too: the cdylibs cargo built ([`cdylib`]), the
//! provider's openssl environment ([`provider_env`]), the PKCS#11 module's environment
//! ([`pkcs11_env`]), storage primaries made with tpm2-tools ([`StoragePrimary`]), objects
//! and sessions left in the TPM ([`leftovers`]) and the lock of tests that share process
//! state ([`serial`]).
//! A machine where swtpm cannot start makes the tests fail, never skip.
//!
//! ```no_run
//! use tpmkey_testenv::{run, Swtpm, TpmEndpoint};
//!
//! let tpm = Swtpm::start();
//! let out = tpm.tpm2_tools_ok(["tpm2_getrandom", "--hex", "8"]);
//! assert!(!out.stdout.is_empty());
//! // Or any command with TPM2TOOLS_TCTI set:
//! run(tpm.tpm2_command("tpm2_getcap").arg("properties-fixed"));
//! ```

// A test harness reports failure by panicking: that is how a test fails.
#![allow(clippy::panic)]

mod abrmd;
pub mod cbor2;
mod cdylib;
pub mod ek_certs;
pub mod fault;
pub mod fault_matrix;
pub mod fuzz_input;
mod leftovers;
mod pins;
pub mod pkcs11_env;
pub mod pkcs11_module;
mod pkcs11_provider;
mod process;
pub mod provider_env;
pub mod readme;
mod storage_primary;
mod swtpm;
pub mod tpm_command;
pub mod tpm_model;
pub mod unix_bridge;
pub mod wire_tap;

use std::ffi::OsStr;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

pub use abrmd::Abrmd;
pub use cdylib::cdylib;
pub use ek_certs::EkCa;
pub use fault::{Area, Fault, FaultPlan, Injected};
pub use leftovers::{flush_leftovers, handles, leftovers, owner_nv_indices};
pub use pkcs11_provider::pkcs11_provider;
pub use process::{pid_exists, TempDir};
pub use storage_primary::{StoragePrimary, SRK_ATTRIBUTES};
pub use swtpm::Swtpm;
pub use tpm_model::Profile;
pub use unix_bridge::UnixBridge;
pub use wire_tap::WireTap;

/// What a client needs to reach a TPM: a TCTI string and some environment. Implemented by
/// [`Swtpm`] (direct) and [`Abrmd`] (through the resource manager), so that one test body can
/// run against both.
pub trait TpmEndpoint {
    /// The tpm2-tss TCTI configuration string.
    fn tcti(&self) -> String;

    /// Environment variables a client process needs besides the TCTI string.
    fn env(&self) -> Vec<(String, String)>;

    /// A `Command` for `program` with `TPM2TOOLS_TCTI` and [`TpmEndpoint::env`] set.
    fn tpm2_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("TPM2TOOLS_TCTI", self.tcti());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a tpm2-tools command (first item: `"tpm2_getrandom"` or `"getrandom"`) and
    /// returns its output whatever the exit status.
    fn tpm2_tools<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
        Self: Sized,
    {
        let mut cmd = tpm2_tools_command(self, args);
        cmd.output().unwrap_or_else(|e| {
            panic!("tpmkey-testenv: cannot run {cmd:?}: {e} (is tpm2-tools installed? `make deps`)")
        })
    }

    /// Like [`TpmEndpoint::tpm2_tools`], but panics with stdout/stderr on failure.
    fn tpm2_tools_ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
        Self: Sized,
    {
        run(&mut tpm2_tools_command(self, args))
    }
}

/// `tpm2_TOOL ARGS` for `endpoint`: the first item is the tool, with or without `tpm2_`.
fn tpm2_tools_command<T, I, S>(endpoint: &T, args: I) -> Command
where
    T: TpmEndpoint + ?Sized,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut args = args.into_iter();
    let Some(tool) = args.next() else {
        panic!("tpmkey-testenv: tpm2_tools needs at least the tool name");
    };
    let tool = tool.as_ref().to_string_lossy().into_owned();
    let program = if tool.starts_with("tpm2") || tool.contains('/') {
        tool
    } else {
        format!("tpm2_{tool}")
    };
    let mut cmd = endpoint.tpm2_command(&program);
    cmd.args(args);
    cmd
}

/// Makes the tests of one test binary that share process-wide state (the core's connection,
/// the PKCS#11 module's environment) run one at a time: hold the guard for the whole test.
/// A test that failed while holding it does not stop the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `cmd` to completion and returns its output; panics with the command line, the exit
/// status, stdout and stderr if it cannot run or exits unsuccessfully.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("tpmkey-testenv: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "tpmkey-testenv: command failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}
