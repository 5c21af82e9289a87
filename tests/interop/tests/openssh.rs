//! OpenSSH with token keys: `ssh-keygen -D` lists the EC P-256 and RSA-2048 keys, and
//! `ssh -I <module>` logs in with each to an sshd this test starts on 127.0.0.1.
//!
//! The module runs in the ssh client, which here reads its whole configuration from a
//! tpmkey.conf named by TPMKEY_CONF (the way a daemon that strips the environment would
//! be set up); the sshd only checks signatures. ssh asks for the PIN through SSH_ASKPASS
//! (forced, so no tty is needed); BatchMode stays off because ssh then refuses to ask for
//! a PIN at all ("pin required").

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tpmkey_testenv::pkcs11_env::*;

/// An sshd on a free loopback port with its own host key and configuration, accepting
/// the keys in `authorized_keys` for root; killed by its pid on drop.
struct Sshd {
    child: Child,
    port: u16,
    authorized_keys: PathBuf,
    log: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let host_key = dir.join("host_key");
        tpmkey_testenv::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key),
        );
        let authorized_keys = dir.join("authorized_keys");
        std::fs::write(&authorized_keys, "").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 StrictModes no\nPidFile {}\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nLogLevel INFO\n",
                host_key.display(),
                authorized_keys.display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        let log = dir.join("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let sshd = Sshd {
            child,
            port,
            authorized_keys,
            log,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not start:\n{}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_keygen_lists_and_ssh_logs_in_with_ec_and_rsa_keys() {
    let env = TestEnv::new("per-operation");
    token_with_keys("ssh");
    let dir = TempDir::new("ssh");
    let conf = write_conf(&env, &dir.0);
    // Only the configuration file reaches the module in the client processes.
    let client = |program: &str| {
        let mut cmd = Command::new(program);
        for (k, _) in env.vars() {
            cmd.env_remove(k);
        }
        cmd.env("TPMKEY_CONF", &conf);
        cmd
    };

    let listed = tpmkey_testenv::run(client("ssh-keygen").arg("-D").arg(module_path()));
    let listed = String::from_utf8(listed.stdout).unwrap();
    let line = |kind: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} key listed:\n{listed}"))
            .to_string()
    };
    let (ec, rsa) = (line("ecdsa-sha2-nistp256 "), line("ssh-rsa "));
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let askpass = dir.0.join("askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{USER_PIN}'\n")).unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();

    let sshd = Sshd::start(&dir.0);
    for (key, algorithm) in [(&ec, "ECDSA"), (&rsa, "RSA")] {
        // Only this key may log in: ssh offers both, the server accepts one.
        std::fs::write(&sshd.authorized_keys, format!("{key}\n")).unwrap();
        let out = client("ssh")
            .args([
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
            ])
            .arg("-I")
            .arg(module_path())
            .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", "echo", "ok"])
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout == b"ok\n",
            "ssh with the {algorithm} key: {}\nsshd log:\n{}",
            text(&out),
            sshd.log()
        );
        let accepted = "Accepted publickey for root from 127.0.0.1";
        assert!(
            sshd.log()
                .lines()
                .any(|l| l.contains(accepted) && l.contains(&format!("ssh2: {algorithm} "))),
            "sshd did not accept the {algorithm} key:\n{}",
            sshd.log()
        );
    }
}
