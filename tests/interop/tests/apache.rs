//! Apache httpd (Debian apache2, mod_ssl) serving HTTPS with a TPM key file, the provider
//! activated by an openssl.cnf.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use tpmkey_testenv::provider_env::{free_port, run, Background, Env};

struct Apache(Background);

impl Drop for Apache {
    /// SIGTERM to the parent, which stops its children.
    fn drop(&mut self) {
        let pid = self.0 .0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0 .0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn apache_serves_https_from_a_tpm_key() {
    let env = Env::new();
    let key = env.genkey("server.pem", "EC");
    let cert = env.self_signed(&key, "server.crt");
    let dir = env.dir.path().display().to_string();
    std::fs::create_dir_all(env.path("www")).unwrap();
    env.write("www/index.html", b"hello from the TPM\n");
    let cnf = format!(
        "openssl_conf = init\n[init]\nproviders = provs\n\
         [provs]\ndefault = dflt\ntpmkey = tpmk\n[dflt]\nactivate = 1\n\
         [tpmk]\nmodule = {}\nactivate = 1\ntcti = {}\n",
        env.modules.join("tpmkey.so").display(),
        env.tcti
    );
    let cnf = env.write("openssl.cnf", cnf.as_bytes());
    let port = free_port();
    let modules = "/usr/lib/apache2/modules";
    let conf = format!(
        "ServerRoot {dir}\nDefaultRuntimeDir {dir}\nPidFile {dir}/httpd.pid\n\
         ErrorLog {dir}/error.log\nLogLevel info\nServerName localhost\n\
         LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
         LoadModule authz_core_module {modules}/mod_authz_core.so\n\
         LoadModule socache_shmcb_module {modules}/mod_socache_shmcb.so\n\
         LoadModule ssl_module {modules}/mod_ssl.so\n\
         Listen 127.0.0.1:{port}\nDocumentRoot {dir}/www\n\
         <Directory {dir}/www>\n Require all granted\n</Directory>\n\
         SSLSessionCache shmcb:{dir}/ssl_scache(512000)\n\
         <VirtualHost 127.0.0.1:{port}>\n SSLEngine on\n\
         SSLCertificateFile {cert}\n SSLCertificateKeyFile {key}\n</VirtualHost>\n"
    );
    let conf = env.write("httpd.conf", conf.as_bytes());
    let mut cmd = Command::new("/usr/sbin/apache2");
    cmd.env("OPENSSL_CONF", &cnf)
        .env("TPMKEY_CONF", "/dev/null")
        .env_remove("TPMKEY_TCTI")
        .args(["-d", &dir, "-f", &conf, "-DFOREGROUND"]);
    let mut apache = Apache(Background::spawn(&mut cmd));
    apache.0.wait_listening(port);
    for _ in 0..20 {
        let out = run(Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "30", "--cacert", &cert])
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/index.html")));
        assert_eq!(out.stdout, b"hello from the TPM\n");
    }
}
