//! One real swtpm per test, on a private state directory and a private loopback port pair.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{self, Managed, PortPair, TempDir};
use crate::TpmEndpoint;

/// How many times [`Swtpm::start`] tries fresh ports when swtpm cannot bind.
const START_ATTEMPTS: usize = 10;
/// How long one swtpm launch may take until both of its ports listen.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Swtpm::restart`] keeps retrying the same port (another process may hold it).
const RESTART_TIMEOUT: Duration = Duration::from_secs(15);

/// A running swtpm (TPM 2.0 simulator), private to one test.
///
/// * state in a fresh directory under `std::env::temp_dir()`, removed on drop;
/// * TPM command port `port()` and control port `port() + 1` on 127.0.0.1, never 2321/2322;
/// * started with `--flags not-need-init,startup-clear` (TPM2_Startup done);
/// * dictionary-attack protection relaxed (`tpm2_dictionarylockout -s -n 1000 -t 1 -l 1`);
/// * a child process of the test, stopped by pid (SIGTERM, then SIGKILL) and reaped on
///   drop, also when the test panics.
///
/// Start one per test: a `Swtpm` in a `static` is never dropped, its process outlives the
/// test binary (the next harness run sweeps it).
#[derive(Debug)]
pub struct Swtpm {
    // Field order is drop order: process first, then the ports, then the directory.
    process: Option<Managed>,
    ports: PortPair,
    dir: TempDir,
}

impl Swtpm {
    /// Starts a fresh swtpm. Panics with swtpm's output if it cannot start, so that a test
    /// fails (never skips) on a machine without a working swtpm.
    pub fn start() -> Swtpm {
        Self::start_prepared(|_| Ok(()))
    }

    /// [`Swtpm::start`] on a state directory that `prepare` fills first (e.g. with
    /// `swtpm_setup`); a failing `prepare` panics with its message.
    pub(crate) fn start_prepared(prepare: impl Fn(&Path) -> Result<(), String>) -> Swtpm {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let dir = TempDir::new("swtpm");
            if let Err(e) = prepare(dir.path()) {
                panic!("tpmkey-testenv: preparing the swtpm state failed: {e}");
            }
            let ports = PortPair::reserve();
            match launch(dir.path(), ports.base()) {
                Ok(process) => {
                    let tpm = Swtpm {
                        process: Some(process),
                        ports,
                        dir,
                    };
                    tpm.relax_dictionary_attack();
                    return tpm;
                }
                // Most likely another process took one of the ports: try a fresh pair.
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "tpmkey-testenv: swtpm did not start after {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        )
    }

    /// The TCTI configuration string for tpm2-tss (`TPM2TOOLS_TCTI`, `TPM2OPENSSL_TCTI`,
    /// `tss_esapi::TctiNameConf::from_str`): `swtpm:host=127.0.0.1,port=P`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port())
    }

    /// The TPM command port P (the control channel is P + 1).
    pub fn port(&self) -> u16 {
        self.ports.base()
    }

    /// The control channel port, P + 1.
    pub fn ctrl_port(&self) -> u16 {
        self.ports.base() + 1
    }

    /// The swtpm state directory (also holds `swtpm.log` and `swtpm.pid`).
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the running swtpm, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Managed::pid)
    }

    /// Path of swtpm's stdout/stderr log (kept across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("swtpm.log")
    }

    /// swtpm's output so far, for diagnostics.
    pub fn log(&self) -> String {
        process::read_log(&self.log_path())
    }

    /// Stops swtpm by pid (SIGTERM, SIGKILL after 2 s) and keeps the state directory and the
    /// port pair. No-op when already stopped. Transient objects and sessions are lost;
    /// persistent objects and NV survive a later [`Swtpm::restart`].
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate();
        }
    }

    /// Stops swtpm (if running) and starts it again on the same state directory and ports,
    /// with TPM2_Startup(CLEAR): a "TPM restarted" event. The TCTI string is unchanged.
    /// Panics if swtpm cannot come back within 15 s.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + RESTART_TIMEOUT;
        loop {
            match launch(self.dir.path(), self.port()) {
                Ok(process) => {
                    self.process = Some(process);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "tpmkey-testenv: swtpm did not restart on port {}: {e}",
                        self.port()
                    )
                }
                // The port may be briefly held by another process: retry the same port.
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// An orderly reboot: TPM2_Shutdown(CLEAR), then [`Swtpm::restart`]. PCRs are back to
    /// their reset values and, unlike a plain restart, the dictionary-attack counter is not
    /// raised.
    pub fn reboot(&mut self) {
        self.tpm2_tools_ok(["tpm2_shutdown", "-c"]);
        self.restart();
    }

    fn relax_dictionary_attack(&self) {
        let out = self.tpm2_tools([
            "tpm2_dictionarylockout",
            "-s",
            "-n",
            "1000",
            "-t",
            "1",
            "-l",
            "1",
        ]);
        if !out.status.success() {
            panic!(
                "tpmkey-testenv: tpm2_dictionarylockout failed on {} ({}):\nstdout: {}\nstderr: {}\nswtpm log: {}",
                self.tcti(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
    }
}

impl TpmEndpoint for Swtpm {
    fn tcti(&self) -> String {
        Swtpm::tcti(self)
    }

    /// None: a client reaches swtpm with the TCTI string alone.
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Runs swtpm on `dir` and ports `port`, `port + 1` until it listens on both, or returns
/// why not. A missing swtpm binary panics at once (no point in retrying).
fn launch(dir: &Path, port: u16) -> Result<Managed, String> {
    let program = process::find_program("swtpm");
    let log = dir.join("swtpm.log");
    let pidfile = dir.join("swtpm.pid");
    let mut cmd = Command::new(&program);
    cmd.arg("socket")
        .arg("--tpmstate")
        .arg(format!("dir={}", dir.display()))
        .arg("--tpm2")
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .arg("--pid")
        .arg(format!("file={}", pidfile.display()));
    let mut child = Managed::spawn("swtpm", &mut cmd, &log).unwrap_or_else(|e| {
        panic!(
            "tpmkey-testenv: cannot run {}: {e} (install with `make deps`)",
            program.display()
        )
    });
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    loop {
        if let Some(status) = child.exited() {
            return Err(format!(
                "swtpm on port {port} exited with {status}; log:\n{}",
                process::read_log(&log)
            ));
        }
        let Some(pid) = child.pid() else {
            return Err("swtpm has no pid".to_owned());
        };
        let connects = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
        // Cheap connects first; then make sure the listeners are our child's.
        let ready = connects(port)
            && connects(port + 1)
            && process::listens_on(pid, &[port, port + 1]).unwrap_or(true);
        if ready {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            child.terminate();
            return Err(format!(
                "swtpm on port {port} did not listen within {LAUNCH_TIMEOUT:?}; log:\n{}",
                process::read_log(&log)
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
}
