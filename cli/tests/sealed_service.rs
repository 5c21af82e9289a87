//! The service example (conf/nginx-tpmkey-sealed-password.conf), run as its unit runs it
//! without systemd: the unit's ExecStartPre lines (tpmkey unseal into the runtime
//! directory, nginx -t) and nginx itself, with the example's paths moved into a test
//! directory. nginx serves HTTPS with a password-protected TPM key whose password was
//! unsealed at start; after PCR 16 moves the start fails with the policy message, exit 4,
//! and no password file is left. (The unit runs nginx as www-data; here the workers stay
//! root, `user root;`, to read the test's private directory.)

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod sealing;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use sealing::{extend_pcr16, s};

const DROP_IN: &str = include_str!("../../conf/nginx-tpmkey-sealed-password.conf");

struct Service<'a> {
    env: &'a Env,
    openssl_cnf: PathBuf,
    port: u16,
}

impl Service<'_> {
    /// The example's path in this test's directory.
    fn path(&self, unit_path: &str) -> String {
        let dir = self.env.dir.path().display().to_string();
        unit_path
            .replace("/run/nginx-tpmkey", &format!("{dir}/run"))
            .replace("/etc/tpmkey", &format!("{dir}/etc"))
            .replace("/etc/nginx/tpmkey.conf", &format!("{dir}/nginx.conf"))
    }

    /// A unit command line as a Command: tpmkey is the one built here, nginx and rm come
    /// from PATH, paths are moved, the environment is the unit's (TPM from the config).
    fn command(&self, line: &str) -> Command {
        let mut words = line.split_whitespace().map(|w| self.path(w));
        let program = words.next().unwrap();
        let program = match program.as_str() {
            "/usr/bin/tpmkey" => env!("CARGO_BIN_EXE_tpmkey").to_string(),
            other => Path::new(other)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        };
        let is_nginx = program == "nginx";
        let mut cmd = Command::new(program);
        cmd.args(words)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OPENSSL_CONF", &self.openssl_cnf)
            .env("TPMKEY_CONF", self.env.path("tpmkey.conf"))
            .env("TPMKEY_STATE", self.env.path("state"));
        if is_nginx {
            cmd.args(["-p", s(self.env.dir.path())]);
        }
        cmd
    }

    /// The drop-in's `KEY=` lines after the reset line, in order.
    fn lines(key: &str) -> Vec<&'static str> {
        DROP_IN
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// ExecStartPre, in order, stopping at the first failure as systemd does.
    fn start_pre(&self) -> Result<(), Output> {
        for line in Self::lines("ExecStartPre=") {
            let out = self.command(line).output().unwrap();
            if !out.status.success() {
                return Err(out);
            }
        }
        Ok(())
    }

    fn stop_post(&self) {
        for line in Self::lines("ExecStopPost=") {
            assert!(self.command(line).status().unwrap().success());
        }
    }

    /// ExecStart of nginx-tpmkey.service, in the foreground.
    fn start(&self) -> Nginx {
        let mut cmd = self.command("/usr/sbin/nginx -c /etc/nginx/tpmkey.conf");
        let mut child = cmd
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "nginx exited");
            assert!(Instant::now() < deadline, "nginx does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx(child)
    }
}

/// The nginx master, stopped (SIGQUIT, then SIGKILL) when the test ends, also on a panic:
/// its workers follow it.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(env: &Env, cnf: &Path, args: &[&str]) {
    tpmkey_testenv::run(
        Command::new("openssl")
            .args(args)
            .env("OPENSSL_CONF", cnf)
            .env("TPMKEY_CONF", env.path("tpmkey.conf"))
            .env("TPMKEY_STATE", env.path("state")),
    );
}

#[test]
fn nginx_starts_with_a_key_password_unsealed_in_the_approved_state_only() {
    let env = Env::start();
    let dir = env.dir.path().display().to_string();
    for d in ["run", "etc", "tmp"] {
        std::fs::create_dir_all(env.path(d)).unwrap();
    }
    std::fs::write(
        env.path("tpmkey.conf"),
        format!("tcti = {}\n", env.swtpm.tcti()),
    )
    .unwrap();
    let cnf = env.path("openssl.cnf");
    std::fs::write(
        &cnf,
        format!(
            "openssl_conf = init\n[init]\nproviders = provs\n[provs]\ndefault = dflt\n\
             tpmkey = tpmk\n[dflt]\nactivate = 1\n[tpmk]\nmodule = {}\nactivate = 1\n",
            common::provider_library().display()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let service = Service {
        env: &env,
        openssl_cnf: cnf.clone(),
        port,
    };

    // The administrator's part: a TLS key with a password, the password sealed to PCR 16.
    let (key, cert) = (
        service.path("/etc/tpmkey/nginx-key.pem"),
        format!("{dir}/etc/cert.pem"),
    );
    let password = "tls-key-password-7Qx";
    openssl(
        &env,
        &cnf,
        &[
            "genpkey",
            "-provider",
            "tpmkey",
            "-provider",
            "default",
            "-propquery",
            "provider=tpmkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "group:P-256",
            "-pkeyopt",
            &format!("user-auth:{password}"),
            "-out",
            &key,
        ],
    );
    let pw_file = env.path("pw");
    std::fs::write(&pw_file, password).unwrap();
    openssl(
        &env,
        &cnf,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            &key,
            "-passin",
            &format!("file:{}", pw_file.display()),
            "-subj",
            "/CN=localhost",
            "-out",
            &cert,
        ],
    );
    env.tpmkey_ok([
        "seal",
        "--pcr",
        "sha256:16",
        "-i",
        s(&pw_file),
        "-o",
        &service.path("/etc/tpmkey/nginx-key-password.tpm"),
    ]);
    std::fs::remove_file(&pw_file).unwrap();
    let password_file = service.path("/run/nginx-tpmkey/key-password");
    std::fs::write(
        env.path("nginx.conf"),
        format!(
            "user root;\nenv TPMKEY_CONF;\nenv TPMKEY_STATE;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n access_log off;\n client_body_temp_path {dir}/tmp;\n proxy_temp_path {dir}/tmp;\n\
             fastcgi_temp_path {dir}/tmp;\n uwsgi_temp_path {dir}/tmp;\n scgi_temp_path {dir}/tmp;\n\
             server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {cert};\n\
             ssl_certificate_key {key};\n  ssl_password_file {password_file};\n\
             ssl_protocols TLSv1.2 TLSv1.3;\n  location / {{ return 200 \"sealed and served\\n\"; }}\n }}\n}}\n"
        ),
    )
    .unwrap();

    // Approved state: the password appears 0600, nginx -t passes, nginx serves.
    service.start_pre().unwrap_or_else(|o| {
        panic!(
            "ExecStartPre failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let mode = std::fs::metadata(&password_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&password_file).unwrap(), password);
    let nginx = service.start();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "--cacert", &cert])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n--- nginx error.log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(env.path("error.log")).unwrap_or_default()
    );
    assert_eq!(out.stdout, b"sealed and served\n");
    drop(nginx);
    service.stop_post();
    assert!(!Path::new(&password_file).exists(), "removed at stop");

    // The platform moved: the start fails at the unseal with the policy message, exit 4,
    // and leaves no password file.
    extend_pcr16(&env.swtpm);
    let failed = service.start_pre().unwrap_err();
    assert_eq!(failed.status.code(), Some(4));
    let message = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(message.contains("PCR sha256:16"), "{message}");
    service.stop_post();
    assert!(!Path::new(&password_file).exists(), "no password file left");
    let leftovers: Vec<_> = std::fs::read_dir(env.path("run")).unwrap().collect();
    assert!(leftovers.is_empty(), "nothing in the runtime directory");
}
