//! `ssh` login with a token key: `ssh -I <module>` from a fresh client process to an sshd
//! the bench starts on 127.0.0.1 (its own host key and configuration, the token's P-256
//! key as the only authorised key), the PIN handed over by SSH_ASKPASS. One sample is one
//! login, from process start to `ok` printed by the remote command.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::Bench;
use crate::report::Round;
use crate::subject::Subject;
use crate::token::{TokenStack, USER_PIN};

const SSHD: &str = "/usr/sbin/sshd";

/// An sshd on a free loopback port, stopped (by its pid) when dropped.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    port: u16,
    authorized_keys: PathBuf,
    askpass: PathBuf,
    log: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `cmd`; its stdout, or the reason it failed.
fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            tail.join(" | ")
        ))
    }
}

impl Sshd {
    /// Why there can be no ssh rows on this machine, if there cannot.
    pub fn unavailable() -> Option<String> {
        (!Path::new(SSHD).exists()).then(|| format!("{SSHD} missing (package openssh-server)"))
    }

    pub fn start(work: &Path) -> Result<Sshd, String> {
        let dir = work.join("sshd");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let host_key = dir.join("host_key");
        let _ = std::fs::remove_file(&host_key);
        output(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key),
        )?;
        let authorized_keys = dir.join("authorized_keys");
        write(&authorized_keys, "")?;
        let askpass = dir.join("askpass");
        write(&askpass, &format!("#!/bin/sh\necho '{USER_PIN}'\n"))?;
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .map_err(|e| format!("{}: {e}", askpass.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let config = dir.join("sshd_config");
        write(
            &config,
            &format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 StrictModes no\nPidFile {}\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nLogLevel INFO\n",
                host_key.display(),
                authorized_keys.display(),
                dir.join("sshd.pid").display()
            ),
        )?;
        let log = dir.join("sshd.log");
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting sshd: {e}"))?;
        let mut sshd = Sshd {
            child,
            port,
            authorized_keys,
            askpass,
            log,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(10)
                || sshd.child.try_wait().ok().flatten().is_some()
            {
                return Err(format!("sshd did not start: {}", sshd.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sshd)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        lines.join(" | ")
    }

    /// The token's P-256 key as `ssh-keygen -D` lists it (untimed set-up).
    pub fn key_line(bench: &Bench, stack: TokenStack) -> Result<String, String> {
        let listed = output(
            Command::new("ssh-keygen")
                .arg("-D")
                .arg(stack.module()?)
                .envs(bench.env(Subject::Token(stack))),
        )?;
        listed
            .lines()
            .find(|l| l.starts_with("ecdsa-sha2-nistp256 "))
            .map(str::to_string)
            .ok_or_else(|| format!("ssh-keygen -D lists no P-256 key: {}", listed.trim()))
    }

    /// A P-256 key file and its public line: the same login without a TPM, the baseline
    /// of the token rows (untimed set-up).
    pub fn software_key(&self) -> Result<(PathBuf, String), String> {
        let key = self.askpass.with_file_name("id_ecdsa");
        let _ = std::fs::remove_file(&key);
        output(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ecdsa", "-b", "256", "-N", "", "-f"])
                .arg(&key),
        )?;
        let public = key.with_extension("pub");
        let line =
            std::fs::read_to_string(&public).map_err(|e| format!("{}: {e}", public.display()))?;
        Ok((key, line.trim().to_string()))
    }

    /// One login with `key` (only that key is authorised): through the token's module, or
    /// with the software key file when `stack` is `None`.
    pub fn login(
        &self,
        bench: &Bench,
        stack: Option<TokenStack>,
        key: &str,
    ) -> Result<(Round, String), String> {
        write(&self.authorized_keys, &format!("{key}\n"))?;
        let mut cmd = Command::new("ssh");
        cmd.args([
            "-F",
            "/dev/null",
            "-o",
            "PreferredAuthentications=publickey",
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ]);
        match stack {
            Some(stack) => {
                cmd.arg("-I")
                    .arg(stack.module()?)
                    .envs(bench.env(Subject::Token(stack)));
            }
            None => {
                let file = self.askpass.with_file_name("id_ecdsa");
                cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(file);
            }
        }
        cmd.args(["-p", &self.port.to_string(), "root@127.0.0.1", "echo", "ok"])
            .env("SSH_ASKPASS", &self.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null());
        bench.traffic();
        let start = Instant::now();
        let result = output(&mut cmd);
        let elapsed = start.elapsed();
        let traffic = bench.traffic();
        match result {
            Ok(out) if out == "ok\n" => Ok(traffic.sample(elapsed)),
            Ok(out) => Err(format!("ssh printed \"{}\"", out.trim())),
            Err(e) => Err(format!("{e}; sshd: {}", self.log_tail())),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
