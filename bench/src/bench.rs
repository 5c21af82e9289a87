//! The bench's own TPM and work directory: a private swtpm (with EK certificates) and the
//! wire tap in front of it, the key files every row uses, the tokens, and the settings from the environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tpmkey::{connection, KeySpec, TpmKey};
use tpmkey_testenv::{EkCa, Profile, StoragePrimary, Swtpm, TpmEndpoint, WireTap};

use crate::bus::Traffic;
use crate::evp::provider_dir;
use crate::operation::Op;
use crate::parts::{release_dir, Parts};
use crate::subject::{self, Subject};
use crate::worker::Worker;

/// The persistent storage key the "persistent parent" rows use.
pub const PERSISTENT_PARENT: &str = "0x81000001";
/// Key file and configuration of the key under that persistent parent.
pub const PERSISTENT_KEY_FILE: &str = "ec-persistent.pem";
pub const PERSISTENT_CONF: &str = "tpmkey-persistent.conf";

#[derive(Clone, Debug)]
pub struct Settings {
    pub rounds: usize,
    pub duration: Duration,
    pub processes: usize,
    /// Sections to run (throughput, startup, scale, token, platform, attest, tls, model); empty: all.
    pub only: Vec<String>,
    /// The TPM latency profiles the model section runs under (BENCH_PROFILE).
    pub profiles: Vec<Profile>,
    /// Rounds and seconds per row and round under a profile, where model time dominates.
    pub model_rounds: usize,
    pub model_duration: Duration,
}

/// bench/profiles: the latency profiles.
pub fn profile_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles")
}

/// BENCH_PROFILE (comma-separated names; default: every profile but `none`).
fn profiles_from_env() -> Result<Vec<Profile>, String> {
    let dir = profile_dir();
    let names: Vec<String> = match std::env::var("BENCH_PROFILE") {
        Ok(v) => v
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Err(_) => Profile::names(&dir)
            .into_iter()
            .filter(|n| n != "none")
            .collect(),
    };
    names
        .iter()
        .map(|n| Profile::load(&dir, n).map_err(|e| format!("BENCH_PROFILE: {e}")))
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}=\"{v}\" is not a valid value")),
        Err(_) => Ok(default),
    }
}

fn positive_seconds(name: &str, default: f64) -> Result<f64, String> {
    let seconds: f64 = env_or(name, default)?;
    if seconds > 0.0 && seconds < 3600.0 {
        Ok(seconds)
    } else {
        Err(format!("{name}={seconds}: expected a positive duration"))
    }
}

impl Settings {
    /// BENCH_ROUNDS (5), BENCH_SECONDS per row and round (1.0), BENCH_PROCESSES (8),
    /// BENCH_ONLY (comma-separated sections), BENCH_PROFILE (latency profiles of the model
    /// section), BENCH_MODEL_ROUNDS (BENCH_ROUNDS, at most 3), BENCH_MODEL_SECONDS (twice
    /// BENCH_SECONDS, at least 1).
    pub fn from_env() -> Result<Settings, String> {
        let seconds = positive_seconds("BENCH_SECONDS", 1.0)?;
        let model_seconds = positive_seconds("BENCH_MODEL_SECONDS", (2.0 * seconds).max(1.0))?;
        let rounds = env_or("BENCH_ROUNDS", 5usize)?.max(1);
        Ok(Settings {
            rounds,
            duration: Duration::from_secs_f64(seconds),
            profiles: profiles_from_env()?,
            model_rounds: env_or("BENCH_MODEL_ROUNDS", rounds.min(3))?.max(1),
            model_duration: Duration::from_secs_f64(model_seconds),
            processes: env_or("BENCH_PROCESSES", 8usize)?.max(2),
            only: std::env::var("BENCH_ONLY")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }

    pub fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

#[allow(missing_debug_implementations)]
pub struct Bench {
    pub settings: Settings,
    pub parts: Parts,
    /// Setup failures of a subject's token (its rows fail with this reason).
    pub token_errors: Vec<(Subject, String)>,
    pub work: PathBuf,
    /// Whether systemd-creds encrypted the sealed-secret rows' credential on this TPM.
    pub systemd_creds: Result<(), String>,
    /// Whether the attest section's AK and EK certificate were made.
    pub attestation: Result<(), String>,
    // Field order is drop order: the tap, then swtpm.
    pub tap: WireTap,
    pub tpm: Swtpm,
    /// The CA of the swtpm's EK certificates (its files live as long as this).
    pub ek_ca: EkCa,
}

impl Bench {
    /// Starts swtpm and the tap, writes the key files, initialises the tokens.
    pub fn start(settings: Settings) -> Result<Bench, String> {
        let work = std::env::temp_dir().join(format!("tpmkey-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        let (tpm, ek_ca) = Swtpm::start_with_ek_certs();
        let tap = WireTap::start(tpm.port());
        let mut bench = Bench {
            settings,
            parts: Parts::detect()?,
            token_errors: Vec::new(),
            work,
            systemd_creds: Err("not set up".into()),
            attestation: Err("not set up".into()),
            tap,
            tpm,
            ek_ca,
        };
        bench.write_files()?;
        bench.provision_keys()?;
        bench.systemd_creds = crate::platform::provision(&bench)?;
        bench.attestation = crate::attest::provision(&bench);
        bench.setup_tokens();
        bench.tap.take_log();
        Ok(bench)
    }

    pub fn tcti(&self) -> String {
        self.tap.tcti()
    }

    fn write(&self, name: &str, content: &str) -> Result<(), String> {
        self.write_file(name, content.as_bytes())
    }

    /// Writes a file of the work directory.
    pub fn write_file(&self, name: &str, content: &[u8]) -> Result<(), String> {
        let path = self.work.join(name);
        std::fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn write_files(&self) -> Result<(), String> {
        self.write("tpmkey.conf", "")?;
        self.write("openssl.cnf", "")?;
        self.write(
            subject::TPM2_OPENSSL_CNF,
            "openssl_conf = openssl_init\n[openssl_init]\nalg_section = evp_properties\n\
             [evp_properties]\ndefault_properties = ?provider=tpm2\n",
        )?;
        self.write(PERSISTENT_CONF, &format!("parent = {PERSISTENT_PARENT}\n"))?;
        let dir = provider_dir(&self.work);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let target = release_dir()?.join("libtpmkey_provider.so");
        let link = dir.join("tpmkey.so");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
        for stack in [
            crate::token::TokenStack::Tpmkey,
            crate::token::TokenStack::Tpm2Pkcs11,
        ] {
            let store = stack.store(&self.work);
            std::fs::create_dir_all(&store).map_err(|e| format!("{}: {e}", store.display()))?;
        }
        Ok(())
    }

    /// The P-256 and RSA-2048 key files (core, under the storage primary), and a P-256 key
    /// under a persistent storage key at 0x81000001 (made with tpm2-tools, SRK template).
    fn provision_keys(&self) -> Result<(), String> {
        let tcti = self.tcti();
        let tpmkey = |e: tpmkey::Error| format!("provisioning keys: {e}");
        connection::configure(&[("tcti", &tcti), ("objects", "keep")]).map_err(tpmkey)?;
        for (spec, op) in [
            (KeySpec::EcP256, Op::EcdsaP256),
            (KeySpec::Rsa(2048), Op::RsaSign),
        ] {
            let key = TpmKey::generate(spec, None, None).map_err(tpmkey)?;
            let file = key.key_file().ok_or("generated key has no key file")?;
            self.write(op.key_file_name(), &file.to_pem())?;
        }
        connection::shutdown();
        let ctx = self.work.join("srk.ctx");
        StoragePrimary::SRK.create(&self.tpm, &ctx);
        let ctx = ctx.display().to_string();
        self.tpm.tpm2_tools_ok([
            "tpm2_evictcontrol",
            "-C",
            "o",
            "-c",
            &ctx,
            PERSISTENT_PARENT,
        ]);
        self.flush_leftovers();
        let parent = u32::from_str_radix(PERSISTENT_PARENT.trim_start_matches("0x"), 16)
            .map_err(|e| e.to_string())?;
        connection::configure(&[
            ("tcti", &tcti),
            ("objects", "keep"),
            ("parent", PERSISTENT_PARENT),
        ])
        .map_err(tpmkey)?;
        let key = TpmKey::generate(KeySpec::EcP256, None, Some(parent)).map_err(tpmkey)?;
        let file = key.key_file().ok_or("generated key has no key file")?;
        self.write(PERSISTENT_KEY_FILE, &file.to_pem())?;
        connection::shutdown();
        Ok(())
    }

    /// Initialises a token in each available PKCS#11 module (in a child, with the module's
    /// environment) and generates its keys.
    fn setup_tokens(&mut self) {
        for subject in [subject::PKCS11, subject::TPM2_PKCS11] {
            let Subject::Token(stack) = subject else {
                continue;
            };
            if subject.unavailable(&self.parts).is_some() {
                continue;
            }
            let dir = self.work.display().to_string();
            for step in crate::token::SETUP_STEPS {
                let result = Worker::spawn(
                    "token-setup",
                    &[stack.id(), &dir, step],
                    &self.env(subject),
                    &self.work.join(format!("{}-setup-{step}.log", stack.id())),
                )
                .and_then(|mut w| w.ask(""));
                self.flush_leftovers();
                if let Err(e) = result {
                    self.token_errors
                        .push((subject, format!("token setup ({step}): {e}")));
                    break;
                }
            }
        }
    }

    pub fn token_error(&self, subject: Subject) -> Option<String> {
        self.token_errors
            .iter()
            .find(|(s, _)| *s == subject)
            .map(|(_, e)| e.clone())
    }

    pub fn env(&self, subject: Subject) -> Vec<(String, String)> {
        subject.env(&self.tcti(), &self.work)
    }

    /// Starts a child of this binary in `mode` for `subject` and `op`.
    pub fn spawn(
        &self,
        mode: &str,
        subject: Subject,
        op: Op,
        extra_env: &[(String, String)],
    ) -> Result<Worker, String> {
        let mut env = self.env(subject);
        env.extend_from_slice(extra_env);
        let log = self
            .work
            .join(format!("{mode}-{}-{}.log", subject.id(), op.id()));
        let dir = self.work.display().to_string();
        Worker::spawn(mode, &[subject.id(), op.id(), &dir], &env, &log)
    }

    /// Commands on the wire since the last call.
    pub fn traffic(&self) -> Traffic {
        Traffic::from_log(&self.tap.take_log(), self.tap.profile().as_deref())
    }

    /// Objects and sessions left in the TPM (asked straight from swtpm, not through the
    /// tap); flushes them so the next row starts with an empty TPM. Without a resource
    /// manager, whatever a stack leaves behind at release or exit blocks every later user.
    pub fn check_leftovers(&self) -> Option<String> {
        let count = |what: &str| {
            let out = self.tpm.tpm2_tools(["tpm2_getcap", what]);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.trim_start().starts_with("- 0x"))
                .count()
        };
        let (objects, sessions) = (count("handles-transient"), count("handles-loaded-session"));
        if objects + sessions == 0 {
            return None;
        }
        self.flush_leftovers();
        Some(format!("{objects} object(s) and {sessions} session(s)"))
    }

    /// Flushes transient objects and sessions someone left behind (a failed row), straight
    /// to swtpm, so the next row starts with an empty TPM.
    pub fn flush_leftovers(&self) {
        for what in ["-t", "-l", "-s"] {
            let _ = self.tpm.tpm2_tools(["tpm2_flushcontext", what]);
        }
    }

    pub fn work(&self) -> &Path {
        &self.work
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_parses() {
        let names = Profile::names(&profile_dir());
        for expected in ["none", "demonstrator", "discrete", "firmware"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing: {names:?}"
            );
        }
        for name in &names {
            let profile = Profile::load(&profile_dir(), name).unwrap();
            assert_eq!(profile.is_zero(), name == "none", "{name}");
        }
    }
}
