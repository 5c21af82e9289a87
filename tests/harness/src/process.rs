//! Plumbing shared by [`crate::Swtpm`] and [`crate::Abrmd`]: child processes stopped by pid,
//! private temporary directories, loopback port pairs, and the sweep of leftovers of test
//! processes that were killed before they could clean up.

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Prefix of every directory the harness creates under `std::env::temp_dir()`.
const DIR_PREFIX: &str = "tpmkey-";
/// How long a stopped process gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A number unique within this process (used in directory and D-Bus names).
pub(crate) fn unique() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A random number from std's randomly keyed hasher (no `rand` dependency).
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(unique());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Finds an installed program: `$PATH` first, then the sbin directories that a non-login
/// root shell may lack (tpm2-abrmd, sshd and nginx live in /usr/sbin).
pub(crate) fn find_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tpmkey-testenv: program `{name}` not found in PATH or the sbin directories; \
                 install the test dependencies with `make deps` (scripts/deps.sh)"
            )
        })
}

/// Sends `sig` to `pid`; errors (no such process) are ignored.
fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) takes two integers and has no memory-safety preconditions; the pid is
    // positive, so it never addresses a process group.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether a process with this pid exists (including a zombie).
pub fn pid_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A child process that is stopped by its pid (SIGTERM, then SIGKILL) and reaped when
/// dropped, so that `/proc/PID` disappears with it.
#[derive(Debug)]
pub(crate) struct Managed {
    name: String,
    child: Option<Child>,
}

impl Managed {
    /// Spawns `cmd` with stdin closed and stdout/stderr appended to `log`.
    pub(crate) fn spawn(name: &str, cmd: &mut Command, log: &Path) -> io::Result<Managed> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()?;
        Ok(Managed {
            name: name.to_owned(),
            child: Some(child),
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited (it is then reaped).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGTERM, wait up to [`TERM_GRACE`], SIGKILL, reap. Never panics (runs in `Drop`).
    pub(crate) fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Not yet reaped means the pid still belongs to our child (a zombie keeps it).
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let pid = child.id();
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        eprintln!(
            "tpmkey-testenv: {} (pid {pid}) ignored SIGTERM, sending SIGKILL",
            self.name
        );
        signal(pid, libc::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A private directory under `std::env::temp_dir()`, mode 0700, removed on drop.
///
/// Its name `tpmkey-KIND-OWNERPID-N-RANDOM` lets a later run find and clean the directories
/// (and processes) of a test process that was killed (see [`sweep_stale`]). The path is
/// [`TempDir::path`]; the field is public too, for the tests that spell it `dir.0`.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(kind: &str) -> TempDir {
        sweep_stale_once();
        let base = std::env::temp_dir();
        let mut last_err = None;
        for _ in 0..100 {
            let name = format!(
                "{DIR_PREFIX}{kind}-{}-{}-{:08x}",
                std::process::id(),
                unique(),
                random_u64() as u32
            );
            let path = base.join(name);
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return TempDir(path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => {
                    panic!(
                        "tpmkey-testenv: cannot create a temporary directory in {}: {e}",
                        base.display()
                    )
                }
            }
        }
        panic!(
            "tpmkey-testenv: cannot create a unique temporary directory in {}: {last_err:?}",
            base.display()
        )
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes `pid` into `dir/name` so that [`sweep_stale`] can find an orphan later.
pub(crate) fn write_pid_file(dir: &Path, name: &str, pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = fs::write(dir.join(name), format!("{pid}\n"));
    }
}

fn sweep_stale_once() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(sweep_stale);
}

/// Removes the directories of dead test processes and kills the processes they started.
///
/// A process recorded in a `*.pid` file is killed only if its command line or environment
/// mentions the directory, so a recycled pid is never hit.
fn sweep_stale() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let mut parts = rest.split('-');
        let (Some(kind), Some(owner)) = (parts.next(), parts.next()) else {
            continue;
        };
        if kind != "swtpm" && kind != "abrmd" {
            continue;
        }
        let Ok(owner) = owner.parse::<u32>() else {
            continue;
        };
        if owner == me || pid_exists(owner) {
            continue;
        }
        let dir = entry.path();
        for pidfile in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = pidfile.path();
            if p.extension() != Some(OsStr::new("pid")) {
                continue;
            }
            let Some(pid) = fs::read_to_string(&p)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            else {
                continue;
            };
            if process_mentions(pid, &dir) {
                signal(pid, libc::SIGKILL);
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

fn process_mentions(pid: u32, dir: &Path) -> bool {
    let needle = dir.as_os_str().as_encoded_bytes();
    ["cmdline", "environ"].iter().any(|f| {
        fs::read(format!("/proc/{pid}/{f}"))
            .map(|data| data.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}

/// Port pairs handed out in this process and not yet released.
static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Ports the harness never uses: the default simulator ports 2321/2322 that an unconfigured
/// TCTI probes.
fn forbidden(port: u16) -> bool {
    (2321..=2322).contains(&port)
}

/// A loopback port pair `base`, `base + 1` reserved in this process until dropped.
#[derive(Debug)]
pub(crate) struct PortPair {
    base: u16,
}

impl PortPair {
    /// Finds a pair of free loopback ports.
    ///
    /// Candidates come from below the kernel's ephemeral range when it leaves room: every
    /// tpm2-tools command opens a new TCP connection from an ephemeral port, so a port from
    /// that range (what binding port 0 returns) may be taken by a client socket, or a TIME_WAIT
    /// entry, between the probe and swtpm's own bind, and again when a test restarts swtpm on
    /// the same port. Both ports are probed by binding them; pairs are reserved in-process;
    /// another process can still win the race, so callers retry when swtpm fails to bind.
    pub(crate) fn reserve() -> PortPair {
        let (lo, hi) = candidate_range();
        for _ in 0..1000 {
            let candidate = match (lo, hi) {
                (Some(lo), Some(hi)) => lo + (random_u64() % u64::from(hi - lo)) as u16,
                _ => match TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()) {
                    Ok(addr) => addr.port(),
                    Err(_) => continue,
                },
            };
            let Some(next) = candidate.checked_add(1) else {
                continue;
            };
            if candidate < 1024 || forbidden(candidate) || forbidden(next) {
                continue;
            }
            let mut reserved = match RESERVED.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if reserved.contains(&candidate) || reserved.contains(&next) {
                continue;
            }
            let probe_a = TcpListener::bind(("127.0.0.1", candidate));
            let probe_b = TcpListener::bind(("127.0.0.1", next));
            if probe_a.is_err() || probe_b.is_err() {
                continue;
            }
            reserved.insert(candidate);
            reserved.insert(next);
            crate::pins::forget_port(candidate);
            return PortPair { base: candidate };
        }
        panic!("tpmkey-testenv: no free loopback port pair found after 1000 candidates")
    }

    pub(crate) fn base(&self) -> u16 {
        self.base
    }
}

impl Drop for PortPair {
    fn drop(&mut self) {
        let mut reserved = match RESERVED.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        reserved.remove(&self.base);
        reserved.remove(&(self.base + 1));
        crate::pins::forget_port(self.base);
    }
}

/// `[lo, hi)` for random candidates: 20000 up to the start of the ephemeral range, if that
/// leaves at least 2000 ports; `None` means "ask the kernel" (bind port 0).
fn candidate_range() -> (Option<u16>, Option<u16>) {
    let ephemeral_lo = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u16>().ok())
        });
    match ephemeral_lo {
        Some(e) if e >= 22_000 => (Some(20_000), Some(e - 1)),
        _ => (None, None),
    }
}

/// Whether process `pid` holds listening TCP sockets on 127.0.0.1 for all of `ports`.
///
/// This (rather than a successful connect) proves that the servers are ours: a connect could
/// reach another process that won the race for the port. `None` if /proc cannot tell.
/// Reading /proc/net/tcp costs milliseconds when thousands of TIME_WAIT entries are left by
/// the TCTI's one-connection-per-command, so callers check a cheap connect first.
pub(crate) fn listens_on(pid: u32, ports: &[u16]) -> Option<bool> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let locals: Vec<String> = ports.iter().map(|p| format!("0100007F:{p:04X}")).collect();
    // For each port, the inodes of listening sockets on it.
    let mut inodes: Vec<Vec<String>> = vec![Vec::new(); ports.len()];
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        if f.len() <= 9 || f[3] != "0A" {
            continue;
        }
        if let Some(k) = locals.iter().position(|l| l == f[1]) {
            inodes[k].push(format!("socket:[{}]", f[9]));
        }
    }
    if inodes.iter().any(Vec::is_empty) {
        return Some(false);
    }
    let fds: Vec<PathBuf> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .collect();
    Some(inodes.iter().all(|port_inodes| {
        fds.iter()
            .any(|target| port_inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    }))
}

/// The content of a log file, for error messages.
pub(crate) fn read_log(path: &Path) -> String {
    match fs::read(path) {
        Ok(data) => String::from_utf8_lossy(&data).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
