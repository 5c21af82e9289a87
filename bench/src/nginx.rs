//! nginx (2 workers) serving TLS from one key and certificate, on a free loopback port, as
//! a child of the bench: started for one batch, stopped (SIGTERM to the master, which stops
//! its workers and so lets the provider flush what they hold) before the next row.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long nginx may take to listen, and to stop.
const TIMEOUT: Duration = Duration::from_secs(15);

/// What one nginx serves and how its libcrypto is configured.
#[derive(Clone, Debug)]
pub struct Site {
    /// A directory of its own (configuration, pid, error log, temp paths).
    pub dir: PathBuf,
    pub key: PathBuf,
    pub certificate: PathBuf,
    /// OPENSSL_CONF of the master (the workers inherit the loaded providers).
    pub openssl_conf: PathBuf,
    /// Variables the master gets and passes on to its workers (`env NAME;`).
    pub env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Nginx {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

fn config(site: &Site, port: u16) -> String {
    let dir = site.dir.display();
    let env: String = site
        .env
        .iter()
        .map(|(k, _)| format!("env {k};\n"))
        .collect();
    format!(
        "{env}user root;\ndaemon off;\nmaster_process on;\nworker_processes 2;\n\
         pid {dir}/nginx.pid;\nerror_log {dir}/error.log notice;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n access_log off;\n client_body_temp_path {dir}/tmp;\n\
         proxy_temp_path {dir}/tmp;\n fastcgi_temp_path {dir}/tmp;\n\
         uwsgi_temp_path {dir}/tmp;\n scgi_temp_path {dir}/tmp;\n\
         server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name localhost;\n\
         ssl_certificate {};\n  ssl_certificate_key {};\n\
         # nginx before 1.23.4 leaves TLS 1.3 out of its default protocols.\n\
         ssl_protocols TLSv1.2 TLSv1.3;\n  ssl_session_cache off;\n  ssl_session_tickets off;\n\
         location / {{ return 200 \"ok\\n\"; }}\n }}\n}}\n",
        site.certificate.display(),
        site.key.display()
    )
}

impl Nginx {
    /// Starts nginx for `site` and waits until it accepts connections.
    pub fn start(site: &Site) -> Result<Nginx, String> {
        let tmp = site.dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let port = free_port()?;
        let conf = site.dir.join("nginx.conf");
        std::fs::write(&conf, config(site, port))
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        let log = site.dir.join("error.log");
        let _ = std::fs::remove_file(&log);
        let stderr = std::fs::File::create(site.dir.join("stderr.log"))
            .map_err(|e| format!("{}: {e}", site.dir.display()))?;
        let child = Command::new("nginx")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("OPENSSL_CONF", &site.openssl_conf)
            .env("TPMKEY_CONF", "/dev/null")
            .envs(site.env.iter().map(|(k, v)| (k, v)))
            .arg("-e")
            .arg(&log)
            .arg("-p")
            .arg(&site.dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting nginx: {e}"))?;
        let mut nginx = Nginx { child, port, log };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!(
                    "nginx exited with {status}: {}",
                    nginx.log_tail(&site.dir)
                ));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(nginx);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nginx not listening within {TIMEOUT:?}: {}",
                    nginx.log_tail(&site.dir)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines of the error log (and of stderr), for a failed row.
    pub fn log_tail(&self, dir: &Path) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default());
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("[emerg]") || l.contains("[crit]") || l.contains("[alert]"))
            .collect();
        let tail = lines[lines.len().saturating_sub(2)..].join(" | ");
        if tail.is_empty() {
            "no error logged".into()
        } else {
            tail
        }
    }

    /// SIGTERM to the master (by its pid), which stops the workers, then waits for it.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
