//! What every provider test needs: a private swtpm, a modules directory holding
//! `tpmkey.so` (a link to the provider cdylib cargo built, see [`crate::cdylib`]), and
//! `openssl` commands that load the provider in either order, or only the default provider
//! (the independent verifier); servers and clients run in the background, bounded in time.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use crate::{run, Abrmd, Swtpm, TempDir, TpmEndpoint, WireTap};

/// Which provider OpenSSL sees first (no property query in either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    TpmkeyFirst,
    DefaultFirst,
}

pub const ORDERS: [Order; 2] = [Order::TpmkeyFirst, Order::DefaultFirst];

#[derive(Debug)]
pub struct Env {
    pub tpm: Swtpm,
    pub dir: TempDir,
    pub modules: PathBuf,
    /// The TCTI the provider uses (the swtpm's, or a wire tap's).
    pub tcti: String,
}

impl Env {
    // Starting a swtpm is no `Default`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Env {
        let tpm = Swtpm::start();
        let dir = TempDir::new("provider");
        let modules = dir.path().join("modules");
        std::fs::create_dir_all(&modules).unwrap();
        std::os::unix::fs::symlink(crate::cdylib("tpmkey_provider"), modules.join("tpmkey.so"))
            .unwrap();
        let tcti = tpm.tcti();
        Env {
            tpm,
            dir,
            modules,
            tcti,
        }
    }

    /// A new environment whose provider TCTI goes through a wire tap on its swtpm.
    pub fn tapped() -> (Env, WireTap) {
        let mut env = Env::new();
        let tap = WireTap::start(env.tpm.port());
        env.tcti = tap.tcti();
        (env, tap)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn file(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// `openssl <sub>` with only the default provider, no tpmkey anywhere.
    pub fn plain(&self, sub: &str) -> Command {
        let mut c = Command::new("openssl");
        c.current_dir(self.dir.path())
            .env_remove("OPENSSL_CONF")
            .env_remove("OPENSSL_MODULES")
            .arg(sub);
        c
    }

    /// `openssl <sub>` with tpmkey and default loaded in `order`.
    pub fn openssl(&self, order: Order, sub: &str) -> Command {
        let mut c = self.plain(sub);
        c.env("TPMKEY_TCTI", &self.tcti)
            .env("TPMKEY_CONF", "/dev/null")
            .env_remove("TPMKEY_OBJECTS")
            .arg("-provider-path")
            .arg(&self.modules);
        match order {
            Order::TpmkeyFirst => c.args(["-provider", "tpmkey", "-provider", "default"]),
            Order::DefaultFirst => c.args(["-provider", "default", "-provider", "tpmkey"]),
        };
        c
    }

    /// `openssl <sub>` with only tpmkey loaded (genpkey: the key must be the TPM's).
    pub fn tpmkey_only(&self, sub: &str) -> Command {
        let mut c = self.plain(sub);
        c.env("TPMKEY_TCTI", &self.tcti)
            .env("TPMKEY_CONF", "/dev/null")
            .arg("-provider-path")
            .arg(&self.modules)
            .args(["-provider", "tpmkey"]);
        c
    }

    /// A new TPM key file `name` (`EC`/`P-384`/`RSA`/`RSA3072`), with its public key
    /// `name.pub` exported by the provider.
    pub fn genkey(&self, name: &str, kind: &str) -> String {
        let mut c = self.tpmkey_only("genpkey");
        match kind {
            "EC" => c.args(["-algorithm", "EC", "-pkeyopt", "group:P-256"]),
            "P-384" => c.args(["-algorithm", "EC", "-pkeyopt", "group:P-384"]),
            "RSA" => c.args(["-algorithm", "RSA", "-pkeyopt", "bits:2048"]),
            "RSA3072" => c.args(["-algorithm", "RSA", "-pkeyopt", "bits:3072"]),
            other => panic!("key kind {other}"),
        };
        run(c.arg("-out").arg(self.path(name)));
        run(self
            .openssl(Order::TpmkeyFirst, "pkey")
            .arg("-in")
            .arg(self.path(name))
            .arg("-pubout")
            .arg("-out")
            .arg(self.path(&format!("{name}.pub"))));
        self.file(name)
    }

    /// A new TPM key file `name`: `genpkey -algorithm ALGORITHM -pkeyopt OPT...` with only
    /// tpmkey loaded.
    pub fn genkey_with(&self, name: &str, algorithm: &str, pkeyopts: &[&str]) -> String {
        let mut c = self.tpmkey_only("genpkey");
        c.args(["-algorithm", algorithm]);
        for opt in pkeyopts {
            c.args(["-pkeyopt", opt]);
        }
        run(c.arg("-out").arg(self.path(name)));
        self.file(name)
    }

    /// `openssl dgst OPTS -sign KEY -out SIG MSG` with the provider loaded in `order`.
    pub fn dgst_sign(&self, order: Order, key: &str, opts: &[&str], sig: &str, msg: &str) {
        run(self
            .openssl(order, "dgst")
            .args(opts)
            .args(["-sign", key, "-out", sig, msg]));
    }

    /// Checks a signature with OpenSSL's default provider alone (no tpmkey in the process).
    pub fn dgst_verify_default(&self, pubkey: &str, opts: &[&str], sig: &str, msg: &str) {
        run(self
            .plain("dgst")
            .args(opts)
            .args(["-verify", pubkey, "-signature", sig, msg]));
    }

    /// A self-signed certificate `cert` for the TPM key `key`.
    pub fn self_signed(&self, key: &str, cert: &str) -> String {
        run(self.openssl(Order::DefaultFirst, "req").args([
            "-new",
            "-x509",
            "-key",
            key,
            "-subj",
            "/CN=localhost",
            "-days",
            "2",
            "-out",
            &self.file(cert),
        ]));
        self.file(cert)
    }

    pub fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.path(name), data).unwrap();
        self.file(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

/// Runs `cmd`, which must fail; returns what it printed (stdout, then stderr).
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Killed by a signal (a crash) is not a clean failure.
    assert!(out.status.code().is_some(), "{cmd:?} crashed: {stderr}");
    format!("{}{stderr}", String::from_utf8_lossy(&out.stdout))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A background process killed (by pid) and reaped on drop.
#[derive(Debug)]
pub struct Background(pub Child);

impl Background {
    pub fn spawn(cmd: &mut Command) -> Background {
        Background(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// Waits until something listens on `port` (without connecting: a server with
    /// `-naccept 1` would count the probe), or panics with the process's output.
    pub fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if listening(port) {
                return;
            }
            if let Ok(Some(status)) = self.0.try_wait() {
                let out = self.output();
                panic!("server exited ({status}) before listening:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not listen on {port} within 20 s");
    }

    /// Kills the process and returns what it printed.
    pub fn output(&mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut s = String::new();
        use std::io::Read;
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

/// True when /proc/net/tcp shows a socket listening on 127.0.0.1:`port` (or any address).
pub fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let suffix = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let (_, local, _, state) = (f.next(), f.next(), f.next(), f.next());
        local.is_some_and(|l| l.ends_with(&suffix)) && state == Some("0A")
    })
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` with a time limit; panics if it runs longer.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `cmd` run in a new session (`setsid -w`): no controlling terminal, stdin at EOF, so a
/// password prompt gets nothing, as in a daemon or a script.
pub fn without_tty(cmd: &Command) -> Command {
    let mut c = Command::new("setsid");
    c.arg("-w").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    c.stdin(Stdio::null());
    c
}

/// TPM responses on the wire that are authorisation failures (TPM_RC_AUTH_FAIL or
/// TPM_RC_BAD_AUTH for any session): each one counts against the lockout counter when
/// the object is DA-protected.
pub fn auth_failures(log: &[(Vec<u8>, Vec<u8>)]) -> usize {
    log.iter()
        .filter(|(_, rsp)| {
            rsp.len() >= 10 && {
                let rc = u32::from_be_bytes([rsp[6], rsp[7], rsp[8], rsp[9]]) & 0x8BF;
                rc == 0x88E || rc == 0x8A2
            }
        })
        .count()
}
