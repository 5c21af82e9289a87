//! What every cell of a front end's fault matrix checks besides the operation's own
//! result, and the table the matrix writes: the TPM left clean (no transient object and no
//! session of the process left behind), the lockout counter unmoved, and every operation
//! back within a time limit.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::fault::{self, Area, Fault};
pub use crate::leftovers::{flush_leftovers, handles, leftovers};
use crate::{Swtpm, TpmEndpoint};

/// Every fault class of the matrix, one representative each, for a client that waits
/// `timeout` for a response: one delay within it, one past it.
pub fn fault_classes(timeout: Duration) -> Vec<Fault> {
    let mut all = vec![
        Fault::DropBeforeForward,
        Fault::DropAfterForward,
        Fault::Delay(timeout / 4),
        Fault::Delay(timeout + Duration::from_secs(1)),
        Fault::Flip(Area::Header, 9),
        Fault::Flip(Area::Handles, 3),
        Fault::Flip(Area::Parameters, 7),
        Fault::Flip(Area::Sessions, 4),
        Fault::Truncate(Area::Header),
        Fault::Truncate(Area::Parameters),
        Fault::Truncate(Area::Sessions),
        Fault::Extend(Area::Parameters, 5),
        Fault::Extend(Area::Sessions, 5),
        Fault::Restart { orderly: true },
        Fault::Restart { orderly: false },
    ];
    all.extend(fault::ANSWERS.iter().map(|(rc, _)| Fault::Answer(*rc)));
    all
}

/// Faults after which the operation must succeed: a response within the client's
/// `timeout`, or a TPM asking to be asked again.
pub fn must_recover(f: &Fault, timeout: Duration) -> bool {
    matches!(f, Fault::Delay(d) if *d < timeout)
        || matches!(
            f,
            Fault::Answer(
                fault::TPM_RC_RETRY
                    | fault::TPM_RC_YIELDED
                    | fault::TPM_RC_TESTING
                    | fault::TPM_RC_OBJECT_MEMORY
                    | fault::TPM_RC_SESSION_MEMORY
            )
        )
}

/// Commands whose response hands out a new handle (object or session).
const MAKES_HANDLE: &[u32] = &[0x131, 0x157, 0x161, 0x176, 0x191, 0x167];

/// Whether `fault` in `code` makes a new object or session whose handle never reaches the
/// client intact: the response is lost, its header altered, its handle altered, or it
/// comes after the client's `timeout`. Nobody can flush such an object but a TPM restart
/// (a resource manager between the bus and the client lost the response too).
pub fn loses_handle(fault: &Fault, code: u32, timeout: Duration) -> bool {
    MAKES_HANDLE.contains(&code)
        && match fault {
            Fault::DropAfterForward
            | Fault::Flip(Area::Header | Area::Handles, _)
            | Fault::Truncate(Area::Header) => true,
            Fault::Delay(d) => *d >= timeout,
            _ => false,
        }
}

/// TPM_PT_LOCKOUT_COUNTER: authorisation failures the dictionary-attack logic counted.
pub fn lockout_counter(tpm: &Swtpm) -> u32 {
    let out = tpm.tpm2_tools_ok(["tpm2_getcap", "properties-variable"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with("TPM2_PT_LOCKOUT_COUNTER") {
            let value = l.split(':').nth(1).map(str::trim).unwrap_or_default();
            let value = if value.is_empty() {
                lines.next().unwrap_or_default().trim()
            } else {
                value
            };
            let value = value.trim_start_matches("raw:").trim();
            let hex = value.trim_start_matches("0x");
            if let Ok(n) = u32::from_str_radix(hex, 16) {
                return n;
            }
        }
    }
    panic!("tpm2_getcap properties-variable shows no TPM2_PT_LOCKOUT_COUNTER:\n{text}")
}

/// Makes lockout recovery slow (one failure forgotten per 1000 s), so that the counter a
/// test reads still holds every failure of the test.
pub fn freeze_lockout_counter(tpm: &Swtpm) {
    tpm.tpm2_tools_ok([
        "tpm2_dictionarylockout",
        "-s",
        "-n",
        "1000",
        "-t",
        "1000",
        "-l",
        "1",
    ]);
}

/// Runs `cmd` with a time limit: `None` when it had to be killed.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Rows of a fault matrix: (fault, operation, outcome).
#[derive(Debug, Default)]
pub struct Matrix {
    rows: Vec<(String, String, String)>,
}

impl Matrix {
    pub fn record(&mut self, fault: &Fault, operation: &str, outcome: &str) {
        self.rows
            .push((fault.to_string(), operation.to_owned(), outcome.to_owned()));
    }

    /// A markdown table: one row per fault class, one column per operation.
    pub fn table(&self) -> String {
        let mut ops: Vec<&str> = Vec::new();
        let mut faults: Vec<&str> = Vec::new();
        for (f, o, _) in &self.rows {
            if !ops.contains(&o.as_str()) {
                ops.push(o);
            }
            if !faults.contains(&f.as_str()) {
                faults.push(f);
            }
        }
        let mut t = format!("| fault | {} |\n|---|", ops.join(" | "));
        t.push_str(&"---|".repeat(ops.len()));
        t.push('\n');
        for f in &faults {
            t.push_str(&format!("| {f} |"));
            for o in &ops {
                let cell = self
                    .rows
                    .iter()
                    .find(|(rf, ro, _)| rf == f && ro == o)
                    .map_or("", |r| r.2.as_str());
                t.push_str(&format!(" {cell} |"));
            }
            t.push('\n');
        }
        t
    }

    /// Writes the table next to the test binaries (target/<profile>/fault-matrix-NAME.md)
    /// and returns its path.
    pub fn write(&self, name: &str) -> PathBuf {
        let exe = std::env::current_exe().unwrap_or_default();
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map_or_else(std::env::temp_dir, PathBuf::from);
        let path = dir.join(format!("fault-matrix-{name}.md"));
        let _ = std::fs::write(&path, self.table());
        path
    }
}
