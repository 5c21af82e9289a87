//! Shared by the `tpmkey` command's tests: a real swtpm, the command run as a user runs it
//! (its own process, configured through the environment), and a private state directory.

#![allow(clippy::unwrap_used, clippy::panic)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use tpmkey_testenv::TpmEndpoint;
use tpmkey_testenv::{StoragePrimary, Swtpm, TempDir};

pub struct Env {
    pub swtpm: Swtpm,
    pub dir: TempDir,
}

impl Env {
    pub fn start() -> Env {
        Env {
            swtpm: Swtpm::start(),
            dir: TempDir::new("cli"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `tpmkey ARGS` against this swtpm, with nothing inherited that could point elsewhere.
    pub fn tpmkey<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        tpmkey_with(&self.swtpm.tcti(), self.dir.path(), args)
    }

    /// [`Env::tpmkey`] that must succeed; returns its standard output.
    pub fn tpmkey_ok<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.tpmkey(args);
        assert!(out.status.success(), "tpmkey failed: {}", stderr(&out));
        out.stdout
    }
}

pub fn tpmkey_with<I, S>(tcti: &str, state: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_tpmkey"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_CONF", "/dev/null")
        .env("TPMKEY_STATE", state.join("state"))
        .output()
        .expect("run tpmkey")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Env {
    /// The storage primary key with tpmkey's template (the TCG ECC P-256 SRK) made by
    /// tpm2-tools, its context saved in `ctx` and the transient object flushed (no
    /// resource manager).
    pub fn create_storage_primary(&self, ctx: &Path) {
        StoragePrimary::SRK.create(&self.swtpm, ctx);
        self.swtpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    }
}

/// A token store beside the swtpm and the PKCS#11 module the tests built: pkcs11-tool and
/// `tpmkey` run with only this environment.
pub struct TokenEnv {
    pub env: Env,
    pub module: PathBuf,
}

impl TokenEnv {
    pub fn start() -> TokenEnv {
        TokenEnv {
            env: Env::start(),
            module: tpmkey_testenv::pkcs11_module::module_path(),
        }
    }

    pub fn store(&self) -> PathBuf {
        self.env.path("store")
    }

    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TPMKEY_TCTI", self.env.swtpm.tcti()),
            ("TPMKEY_CONF", "/dev/null".into()),
            ("TPMKEY_STORE", self.store().display().to_string()),
            ("TPMKEY_STATE", self.env.path("state").display().to_string()),
        ]
    }

    /// pkcs11-tool with the module and this environment, to be given its arguments.
    pub fn pkcs11_tool(&self) -> Command {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module").arg(&self.module).envs(self.vars());
        cmd
    }

    /// pkcs11-tool ARGS, which must succeed.
    pub fn tool(&self, args: &[&str]) -> Output {
        tpmkey_testenv::run(self.pkcs11_tool().args(args))
    }

    /// `tpmkey ARGS` with the store in the environment, the module named by
    /// TPMKEY_PKCS11_MODULE.
    pub fn tpmkey(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tpmkey"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.vars())
            .env("TPMKEY_PKCS11_MODULE", &self.module)
            .output()
            .unwrap()
    }
}

/// The provider cdylib cargo built for these tests.
pub fn provider_library() -> PathBuf {
    tpmkey_testenv::cdylib("tpmkey_provider")
}

/// openssl ARGS, which must succeed.
pub fn openssl(args: &[&str]) {
    tpmkey_testenv::run(Command::new("openssl").args(args));
}

/// Checks a SHA-256 signature (DER ECDSA or PKCS#1) of `data` with the PEM public key.
pub fn verify_sha256(pem: &str, sig: &str, data: &str) {
    openssl(&["dgst", "-sha256", "-verify", pem, "-signature", sig, data]);
}

/// Temporary files (`*.tmp*`) in `dir`: what writers killed before their rename left.
pub fn temporary_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp")
        })
        .count()
}
