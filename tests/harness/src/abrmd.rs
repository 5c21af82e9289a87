//! tpm2-abrmd (the user-space resource manager) on a private D-Bus session bus.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{self, Managed, TempDir};
use crate::{Swtpm, TpmEndpoint};

/// How long the bus and abrmd may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// `sun_path` is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// A tpm2-abrmd in front of a [`Swtpm`], on its own `dbus-daemon --session` bus.
///
/// Clients use the TCTI `tabrmd:bus_name=NAME,bus_type=session` together with the
/// environment of [`Abrmd::env`] (`DBUS_SESSION_BUS_ADDRESS`). The bus name is unique per
/// instance. Both daemons are child processes, stopped by pid and reaped on drop, and the
/// bus directory is removed. Drop the `Abrmd` before its `Swtpm` when you can (either order
/// cleans up).
#[derive(Debug)]
pub struct Abrmd {
    // Field order is drop order: abrmd, then its bus, then the directory.
    abrmd: Option<Managed>,
    dbus: Option<Managed>,
    dir: TempDir,
    bus_name: String,
    swtpm_tcti: String,
}

impl Drop for Abrmd {
    fn drop(&mut self) {
        // Its unique bus name is in the TCTI, so in the name of tpmkey's storage-key record.
        crate::pins::forget(&self.bus_name);
    }
}

impl Abrmd {
    /// Starts a private session bus and tpm2-abrmd on it, connected to `swtpm`, and waits
    /// until `tpm2_getrandom 8` succeeds through it. Panics with the daemons' output if not.
    pub fn start(swtpm: &Swtpm) -> Abrmd {
        Abrmd::start_on(&swtpm.tcti())
    }

    /// Like [`Abrmd::start`], but reaches the TPM through `swtpm_tcti` (for example a
    /// [`crate::WireTap`]'s TCTI, to count what abrmd sends to swtpm).
    pub fn start_on(swtpm_tcti: &str) -> Abrmd {
        let dir = TempDir::new("abrmd");
        let socket = dir.path().join("bus");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            panic!(
                "tpmkey-testenv: D-Bus socket path {} is too long for a unix socket; set TMPDIR \
                 to a shorter directory",
                socket.display()
            );
        }
        let bus_name = format!(
            "com.intel.tss2.Tabrmd.tpmkey{}n{}",
            std::process::id(),
            process::unique()
        );
        let mut this = Abrmd {
            abrmd: None,
            dbus: None,
            dir,
            bus_name,
            swtpm_tcti: swtpm_tcti.to_owned(),
        };
        this.start_bus(&socket);
        this.start_abrmd();
        this
    }

    fn start_bus(&mut self, socket: &Path) {
        let program = process::find_program("dbus-daemon");
        let log = self.dir.path().join("dbus.log");
        let mut cmd = Command::new(&program);
        cmd.arg("--session")
            .arg("--nofork")
            .arg("--nopidfile")
            .arg(format!("--address=unix:path={}", socket.display()));
        let dbus = Managed::spawn("dbus-daemon", &mut cmd, &log)
            .unwrap_or_else(|e| panic!("tpmkey-testenv: cannot run {}: {e}", program.display()));
        process::write_pid_file(self.dir.path(), "dbus.pid", dbus.pid());
        let dbus = self.dbus.insert(dbus);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = dbus.exited() {
                panic!(
                    "tpmkey-testenv: dbus-daemon exited with {status}; log:\n{}",
                    process::read_log(&log)
                );
            }
            if UnixStream::connect(socket).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "tpmkey-testenv: dbus-daemon did not listen on {} within {READY_TIMEOUT:?}; log:\n{}",
                    socket.display(),
                    process::read_log(&log)
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn start_abrmd(&mut self) {
        let program = process::find_program("tpm2-abrmd");
        let log = self.dir.path().join("abrmd.log");
        let mut cmd = Command::new(&program);
        cmd.arg("--session")
            .arg("--allow-root")
            .arg(format!("--dbus-name={}", self.bus_name))
            .arg(format!("--tcti={}", self.swtpm_tcti));
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let abrmd = Managed::spawn("tpm2-abrmd", &mut cmd, &log)
            .unwrap_or_else(|e| panic!("tpmkey-testenv: cannot run {}: {e}", program.display()));
        process::write_pid_file(self.dir.path(), "abrmd.pid", abrmd.pid());
        self.abrmd = Some(abrmd);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.abrmd.as_mut().and_then(Managed::exited) {
                panic!(
                    "tpmkey-testenv: tpm2-abrmd exited with {status}; log:\n{}",
                    process::read_log(&log)
                );
            }
            let out = self.tpm2_tools(["tpm2_getrandom", "8"]);
            if out.status.success() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "tpmkey-testenv: tpm2-abrmd ({}) not answering within {READY_TIMEOUT:?}; \
                     last tpm2_getrandom stderr:\n{}\nabrmd log:\n{}",
                    self.tcti(),
                    String::from_utf8_lossy(&out.stderr),
                    process::read_log(&log)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TCTI string for clients: `tabrmd:bus_name=NAME,bus_type=session`. A client also
    /// needs [`Abrmd::env`] in its environment (or [`Abrmd::set_process_env`]).
    pub fn tcti(&self) -> String {
        format!("tabrmd:bus_name={},bus_type=session", self.bus_name)
    }

    /// The environment a client process needs: `DBUS_SESSION_BUS_ADDRESS`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("DBUS_SESSION_BUS_ADDRESS".to_owned(), self.bus_address())]
    }

    /// Sets `DBUS_SESSION_BUS_ADDRESS` in the current process, for in-process clients
    /// (tss-esapi in the test itself). It is process-wide: tests running in parallel in the
    /// same binary with their own `Abrmd` would overwrite each other's value, so use it from
    /// a test binary (file under `tests/`) that holds one `Abrmd` at a time.
    pub fn set_process_env(&self) {
        std::env::set_var("DBUS_SESSION_BUS_ADDRESS", self.bus_address());
    }

    /// `unix:path=DIR/bus`.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.socket_path().display())
    }

    /// The unique well-known name abrmd owns on the bus.
    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// The TCTI string abrmd itself uses to reach the swtpm.
    pub fn swtpm_tcti(&self) -> &str {
        &self.swtpm_tcti
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.path().join("bus")
    }

    /// The pid of tpm2-abrmd.
    pub fn pid(&self) -> Option<u32> {
        self.abrmd.as_ref().and_then(Managed::pid)
    }

    /// The pid of the private dbus-daemon.
    pub fn dbus_pid(&self) -> Option<u32> {
        self.dbus.as_ref().and_then(Managed::pid)
    }

    /// tpm2-abrmd's output so far, for diagnostics.
    pub fn log(&self) -> String {
        process::read_log(&self.dir.path().join("abrmd.log"))
    }
}

impl TpmEndpoint for Abrmd {
    fn tcti(&self) -> String {
        Abrmd::tcti(self)
    }

    fn env(&self) -> Vec<(String, String)> {
        Abrmd::env(self)
    }
}
