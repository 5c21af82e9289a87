//! Keys bound to the platform state and sealed secrets (issues 13 and 14): P-256 signing
//! with a key bound to PCR 16 and with a signed-policy key, beside a password key in the
//! same round; a 32-byte secret bound to PCR 16 unsealed by `tpmkey unseal` from process
//! start, beside `systemd-creds decrypt` of the same secret on the same TPM and tpm2-tools
//! doing the same steps. TLS with the
//! PCR-bound key is a row of the TLS table ([`crate::tls::Serving::TpmkeyPcr`]); the model
//! section runs these rows under the latency profiles.

use std::process::Command;
use std::time::{Duration, Instant};

use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use tpmkey::hash::Hash;
use tpmkey::key_policy::PolicyRequest;
use tpmkey::policy::{
    policy_digest, signed_message, signed_policy_entry, PcrSelection, SignerKey, Statement,
};
use tpmkey::{connection, KeySpec, TpmKey};

use tpmkey_testenv::tpm_command::command_code;
use tpmkey_testenv::{StoragePrimary, TpmEndpoint, SRK_ATTRIBUTES};

use crate::bench::{Bench, PERSISTENT_CONF, PERSISTENT_PARENT};
use crate::bus::Traffic;
use crate::operation::Op;
use crate::parts::release_dir;
use crate::report::{median, ratios_to_first, Kind, Round, Row, Status, Table, Target};
use crate::subject::{self, Subject, KEY_FILE_VAR};
use crate::throughput;
use crate::tls::{software_key, KeyType, Path};
use crate::worker::Worker;

/// The PCR every platform-bound row is bound to (extended once at set-up, so that
/// systemd-creds, which refuses to trust an all-zero PCR, enforces it too).
pub const PCR: &str = "sha256:16";
pub const PCR_KEY_FILE: &str = "ec-pcr16.pem";
pub const SIGNED_KEY_FILE: &str = "ec-signed-policy.pem";
const SECRET: &str = "secret.bin";
const SEALED: &str = "secret-pcr16.tpm";
const SEALED_PERSISTENT: &str = "secret-pcr16-persistent.tpm";
const CREDENTIAL: &str = "secret-pcr16.cred";
/// The same secret as tpm2-tools seals it (tpm2_create under the storage primary of
/// [`StoragePrimary::SRK`], with the PolicyPCR of tpm2_createpolicy).
const TPM2_TOOLS_SEALED: [&str; 2] = ["tpm2-sealed.pub", "tpm2-sealed.priv"];
/// What a shell script does with tpm2-tools, one process per step, without a resource
/// manager: each tool leaves its objects loaded at exit, so the script flushes them before
/// the next tool loads the saved contexts (else Load fails for want of object slots). The
/// primary's template is [`StoragePrimary::SRK`]'s.
fn tpm2_tools_unseal_script() -> String {
    format!(
        "set -e\n\
         d=$1\n\
         tpm2_createprimary -Q -C o -g sha256 -G ecc256:null:aes128cfb -a '{SRK_ATTRIBUTES}' \
         -c $d/u-prim.ctx\n\
         tpm2_flushcontext -t\n\
         tpm2_load -Q -C $d/u-prim.ctx -u $d/tpm2-sealed.pub -r $d/tpm2-sealed.priv \
         -c $d/u-seal.ctx\n\
         tpm2_flushcontext -t\n\
         tpm2_startauthsession --policy-session -S $d/u-session.ctx\n\
         tpm2_policypcr -Q -S $d/u-session.ctx -l sha256:16\n\
         tpm2_unseal -p session:$d/u-session.ctx -c $d/u-seal.ctx\n\
         tpm2_flushcontext -l\n\
         tpm2_flushcontext -s\n\
         tpm2_flushcontext -t\n"
    )
}

/// The credential name systemd-creds binds into the credential and checks on decrypt.
const CREDENTIAL_NAME: &str = "bench";

fn core(e: tpmkey::Error) -> String {
    format!("tpmkey: {e}")
}

/// Extends PCR 16, writes the PCR-bound and signed-policy key files (core, under the
/// storage primary), seals the secret with `tpmkey seal` (under the storage primary and
/// under the persistent storage key) and, where systemd-creds reaches the TPM, encrypts
/// the same secret as a credential bound to PCR 16. The error is systemd-creds's.
pub fn provision(bench: &Bench) -> Result<Result<(), String>, String> {
    bench.tpm.tpm2_tools_ok([
        "tpm2_pcrextend",
        "16:sha256=0000000000000000000000000000000000000000000000000000000000000016",
    ]);
    let tcti = bench.tcti();
    connection::configure(&[("tcti", &tcti), ("objects", "keep")]).map_err(core)?;
    let keys = pcr_bound_keys(bench);
    connection::shutdown();
    keys?;
    let mut secret = vec![0u8; 32];
    openssl::rand::rand_bytes(&mut secret).map_err(|e| format!("random secret: {e}"))?;
    bench.write_file(SECRET, &secret)?;
    let work = bench.work();
    let secret_path = work.join(SECRET).display().to_string();
    for (file, parent) in [(SEALED, None), (SEALED_PERSISTENT, Some(PERSISTENT_PARENT))] {
        let out = work.join(file).display().to_string();
        let mut args = vec!["seal", "-i", &secret_path, "-o", &out, "--pcr", PCR];
        if let Some(p) = parent {
            args.extend(["--parent", p]);
        }
        run_ok(tpmkey_cli(bench)?.args(&args), "tpmkey seal")?;
    }
    bench.flush_leftovers();
    tpm2_tools_seal(bench)?;
    let credential = work.join(CREDENTIAL).display().to_string();
    let encrypted = systemd_creds(bench)
        .args(["encrypt", "--tpm2-pcrs=16", &secret_path, &credential])
        .output()
        .map_err(|e| format!("systemd-creds: {e}"))
        .and_then(|o| checked(o, "systemd-creds encrypt"));
    bench.flush_leftovers();
    Ok(encrypted.map(drop))
}

fn tpm2_tools_seal(bench: &Bench) -> Result<(), String> {
    let path = |name: &str| bench.work().join(name).display().to_string();
    let (primary, policy) = (path("tpm2-prim.ctx"), path("tpm2-pcr.policy"));
    let (public, private) = (path(TPM2_TOOLS_SEALED[0]), path(TPM2_TOOLS_SEALED[1]));
    let secret = path(SECRET);
    StoragePrimary::SRK.create(&bench.tpm, std::path::Path::new(&primary));
    bench.tpm.tpm2_tools_ok([
        "tpm2_createpolicy",
        "-Q",
        "--policy-pcr",
        "-l",
        PCR,
        "-L",
        &policy,
    ]);
    bench.tpm.tpm2_tools_ok([
        "tpm2_create",
        "-Q",
        "-C",
        &primary,
        "-L",
        &policy,
        "-i",
        &secret,
        "-a",
        "fixedtpm|fixedparent|noda",
        "-u",
        &public,
        "-r",
        &private,
    ]);
    bench.flush_leftovers();
    Ok(())
}

fn pcr_bound_keys(bench: &Bench) -> Result<(), String> {
    let pcrs = PolicyRequest {
        pcrs: Some(PcrSelection::parse(PCR).map_err(core)?),
        ..PolicyRequest::default()
    }
    .statements()
    .map_err(core)?;
    let key = TpmKey::generate_with_policy(KeySpec::EcP256, None, None, None, pcrs.clone())
        .map_err(core)?;
    let file = key.key_file().ok_or("generated key has no key file")?;
    bench.write_file(PCR_KEY_FILE, file.to_pem().as_bytes())?;

    // A signed-policy key: PolicyAuthorize by a software signer, which then signs the
    // PolicyPCR of the current state, as a publisher does for each approved state.
    let signer_key = software_key(KeyType::P256)?;
    let spki = signer_key
        .public_key_to_der()
        .map_err(|e| format!("signer: {e}"))?;
    let signer = SignerKey::from_spki_der(&spki).map_err(core)?;
    let authorize = PolicyRequest {
        signer: Some(signer.clone()),
        ..PolicyRequest::default()
    }
    .statements()
    .map_err(core)?;
    let policy_ref = match authorize.first() {
        Some(Statement::Authorize(a)) => a.policy_ref.clone(),
        _ => return Err("a signer's policy does not start with PolicyAuthorize".into()),
    };
    let key =
        TpmKey::generate_with_policy(KeySpec::EcP256, None, None, None, authorize).map_err(core)?;
    let mut file = key.key_file().ok_or("generated key has no key file")?;
    let approved = policy_digest(&pcrs).map_err(core)?;
    let der = Signer::new(MessageDigest::sha256(), &signer_key)
        .and_then(|mut s| {
            s.update(&signed_message(&approved, &policy_ref))?;
            s.sign_to_vec()
        })
        .map_err(|e| format!("signing the policy: {e}"))?;
    let signature = signer.signature(&der, Hash::Sha256).map_err(core)?;
    let entry =
        signed_policy_entry(Some("bench"), &pcrs, &signer, &policy_ref, signature).map_err(core)?;
    file.add_signed_policy(entry).map_err(core)?;
    bench.write_file(SIGNED_KEY_FILE, file.to_pem().as_bytes())
}

/// target/release/tpmkey with the environment of the core rows (the tapped TCTI, the
/// bench's empty configuration).
pub fn tpmkey_cli(bench: &Bench) -> Result<Command, String> {
    let exe = release_dir()?.join("tpmkey");
    if !exe.exists() {
        return Err(format!("{} not built", exe.display()));
    }
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(bench.env(subject::CORE));
    Ok(cmd)
}

/// systemd-creds on the tapped swtpm: `--tpm2-device=swtpm:...` names the TCTI module and
/// its configuration; `-T` uses the TPM alone (no host key in /var/lib/systemd).
fn systemd_creds(bench: &Bench) -> Command {
    let mut cmd = Command::new("systemd-creds");
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TSS2_LOG", "all+none")
        .arg("-T")
        .arg(format!("--tpm2-device={}", bench.tcti()))
        .arg(format!("--name={CREDENTIAL_NAME}"));
    cmd
}

pub fn checked(out: std::process::Output, what: &str) -> Result<Vec<u8>, String> {
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("{what}: {}: {}", out.status, err.trim()))
    }
}

pub fn run_ok(cmd: &mut Command, what: &str) -> Result<Vec<u8>, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    checked(out, what)
}

/// A signing row: a stack and a key file of the work directory.
pub struct SignCase {
    pub name: &'static str,
    pub subject: Subject,
    /// `None`: the password key of the throughput rows.
    pub key_file: Option<&'static str>,
    max_commands: f64,
    /// Against the password key of the same stack, in the same round.
    min_ratio: Option<f64>,
}

/// Per stack: the password key (the baseline), the PCR-bound key, the signed-policy key.
pub const SIGN_CASES: [SignCase; 6] = [
    SignCase {
        name: "tpmkey core, password key (the throughput rows' key)",
        subject: subject::CORE,
        key_file: None,
        max_commands: 1.0,
        min_ratio: None,
    },
    SignCase {
        name: "tpmkey core, key bound to PCR 16",
        subject: subject::CORE,
        key_file: Some(PCR_KEY_FILE),
        max_commands: 2.0,
        min_ratio: Some(0.90),
    },
    SignCase {
        name: "tpmkey core, signed-policy key (PolicyAuthorize, signed PCR 16 policy)",
        subject: subject::CORE,
        key_file: Some(SIGNED_KEY_FILE),
        max_commands: 3.0,
        min_ratio: None,
    },
    SignCase {
        name: "tpmkey provider (EVP), password key",
        subject: subject::PROVIDER,
        key_file: None,
        max_commands: 1.0,
        min_ratio: None,
    },
    SignCase {
        name: "tpmkey provider (EVP), key bound to PCR 16",
        subject: subject::PROVIDER,
        key_file: Some(PCR_KEY_FILE),
        max_commands: 2.0,
        min_ratio: Some(0.90),
    },
    SignCase {
        name: "tpmkey provider (EVP), signed-policy key",
        subject: subject::PROVIDER,
        key_file: Some(SIGNED_KEY_FILE),
        max_commands: 3.0,
        min_ratio: None,
    },
];

impl SignCase {
    pub fn row(&self, bench: &Bench) -> Row {
        match self.subject.unavailable(&bench.parts) {
            Some(reason) => Row::not_available(self.name, reason),
            None => Row::new(
                self.name,
                Target {
                    min_ratio: self.min_ratio,
                    max_commands: Some(self.max_commands),
                    ..Target::default()
                },
            ),
        }
    }

    /// A timed batch in a fresh worker (acquire untimed), talking to swtpm through the
    /// wire tap (commands counted; the modelled TPM under a profile) or straight (timed
    /// without the tap's proxy cost per command, which would fall twice on a PCR-bound
    /// key). What the row left in the TPM is checked after the worker has exited, where
    /// the provider's exit flush runs.
    pub fn batch(
        &self,
        bench: &Bench,
        duration: Duration,
        path: Path,
    ) -> Result<(Round, Traffic), String> {
        let tcti = match path {
            Path::Direct => bench.tpm.tcti(),
            Path::Tapped => bench.tcti(),
        };
        let mut env = self.subject.env(&tcti, bench.work());
        if let Some(f) = self.key_file {
            env.push((KEY_FILE_VAR.to_string(), f.to_string()));
        }
        let op = Op::EcdsaP256;
        let log = bench
            .work()
            .join(format!("platform-{}-{}.log", self.subject.id(), op.id()));
        let dir = bench.work().display().to_string();
        let mut worker = Worker::spawn("worker", &[self.subject.id(), op.id(), &dir], &env, &log)?;
        let (mut round, traffic) = throughput::measure_for(bench, &mut worker, duration)?;
        if path == Path::Direct {
            round.commands = None;
        }
        Ok((round, traffic))
    }
}

/// How an unseal row gets the secret from process start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsealer {
    /// `tpmkey unseal FILE`; under the persistent storage key or the storage primary.
    Tpmkey { persistent: bool },
    /// `systemd-creds decrypt -T` of the credential encrypted with `--tpm2-pcrs=16`.
    SystemdCreds,
    /// tpm2-tools 5, one process per step ([`tpm2_tools_unseal_script`]).
    Tpm2Tools,
}

pub const UNSEALERS: [Unsealer; 4] = [
    Unsealer::Tpmkey { persistent: false },
    Unsealer::Tpmkey { persistent: true },
    Unsealer::SystemdCreds,
    Unsealer::Tpm2Tools,
];

impl Unsealer {
    pub fn label(self) -> &'static str {
        match self {
            Unsealer::Tpmkey { persistent: false } => {
                "tpmkey unseal (a process), 32-byte secret bound to PCR 16, storage primary"
            }
            Unsealer::Tpmkey { persistent: true } => {
                "tpmkey unseal (a process), the same, under the persistent storage key"
            }
            Unsealer::SystemdCreds => {
                "systemd-creds 252 decrypt -T (a process), the same secret, --tpm2-pcrs=16"
            }
            Unsealer::Tpm2Tools => {
                "tpm2-tools (a shell script: createprimary, load, startauthsession, policypcr, \
                 unseal, flushes), the same secret"
            }
        }
    }

    fn target(self) -> Target {
        let max_commands = match self {
            Unsealer::Tpmkey { persistent: false } => Some(5.0),
            Unsealer::Tpmkey { persistent: true } => Some(4.0),
            Unsealer::SystemdCreds | Unsealer::Tpm2Tools => None,
        };
        Target {
            max_commands,
            ..Target::default()
        }
    }

    pub fn row(self, bench: &Bench) -> Row {
        let mut row = Row::new(self.label(), self.target());
        row.peer = matches!(self, Unsealer::SystemdCreds | Unsealer::Tpm2Tools);
        if self == Unsealer::SystemdCreds {
            if let Err(e) = &bench.systemd_creds {
                row.status = Status::NotAvailable(e.clone());
            }
        }
        row
    }

    /// One process from start to exit: wall time, the TPM commands up to and including
    /// Unseal (what the secret waits for; the exit's flushes follow), and every command
    /// sent; the output must be the secret.
    pub fn sample(self, bench: &Bench) -> Result<(Round, String), String> {
        let work = bench.work();
        let mut cmd = match self {
            Unsealer::Tpmkey { persistent } => {
                let mut cmd = tpmkey_cli(bench)?;
                if persistent {
                    // A machine with a persistent storage key configures it: it also
                    // salts the policy session, so no storage primary is made.
                    cmd.env("TPMKEY_CONF", work.join(PERSISTENT_CONF));
                    cmd.arg("unseal").arg(work.join(SEALED_PERSISTENT));
                } else {
                    cmd.arg("unseal").arg(work.join(SEALED));
                }
                cmd
            }
            Unsealer::SystemdCreds => {
                let mut cmd = systemd_creds(bench);
                cmd.args(["--newline=no", "decrypt"])
                    .arg(work.join(CREDENTIAL))
                    .arg("-");
                cmd
            }
            Unsealer::Tpm2Tools => {
                let mut cmd = Command::new("sh");
                cmd.env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("TSS2_LOG", "all+none")
                    .env("TPM2TOOLS_TCTI", bench.tcti())
                    .arg("-c")
                    .arg(tpm2_tools_unseal_script())
                    .arg("sh")
                    .arg(work);
                cmd
            }
        };
        let expected = std::fs::read(work.join(SECRET)).map_err(|e| format!("{SECRET}: {e}"))?;
        bench.traffic();
        let start = Instant::now();
        let out = cmd.output();
        let elapsed = start.elapsed();
        let log = bench.tap.take_log();
        let what = match self {
            Unsealer::Tpmkey { .. } => "tpmkey unseal",
            Unsealer::SystemdCreds => "systemd-creds decrypt",
            Unsealer::Tpm2Tools => "tpm2-tools",
        };
        let secret = checked(out.map_err(|e| format!("{what}: {e}"))?, what)?;
        if secret != expected {
            return Err(format!(
                "{what} printed {} bytes, not the 32-byte secret",
                secret.len()
            ));
        }
        let to_secret = log
            .iter()
            .position(|(c, _)| c.len() >= 10 && command_code(c) == TPM_CC_UNSEAL)
            .ok_or_else(|| format!("{what}: no Unseal on the wire"))?;
        let traffic = Traffic::from_log(&log, bench.tap.profile().as_deref());
        let (mut round, seen) = traffic.sample(elapsed);
        round.commands = Some(to_secret as u64 + 1);
        Ok((round, format!("{} in all: {seen}", traffic.total)))
    }
}

const TPM_CC_UNSEAL: u32 = 0x15E;

/// Each signing row's slices of a round: rows take turns (A B C A B C ...) so that the
/// load of a shared machine falls on all of them alike.
const SLICES: u32 = 4;

/// One row's timed slices of one round, summed, and its counted slice.
#[derive(Default)]
struct Slices {
    round: Round,
    steady: Option<f64>,
    seen: String,
}

impl Slices {
    fn add(&mut self, r: &Round) {
        self.round.ops += r.ops;
        self.round.seconds += r.seconds;
    }

    fn count(&mut self, r: &Round, traffic: &Traffic) {
        self.steady = traffic.steady_per_op(r.ops);
        self.seen = traffic.per_op(r.ops);
    }
}

/// The signing table (rates, ratio to the same stack's password key in the same round)
/// and the unseal table (ms and TPM commands from process start to the secret).
pub fn run(bench: &Bench) -> Vec<Table> {
    let mut sign = Table::new(
        format!(
            "Keys bound to the platform state: ECDSA P-256 sign beside a password key \
             ({SLICES} timed slices per row and round straight on swtpm, rows taking turns; \
             TPM cmds/op in steady state from a slice through the wire tap, a batch's \
             one-off commands in the notes)"
        ),
        Kind::Rate,
        "the same stack's password key",
    );
    let mut rows: Vec<Row> = SIGN_CASES.iter().map(|c| c.row(bench)).collect();
    let mut steady: Vec<Vec<f64>> = vec![Vec::new(); SIGN_CASES.len()];
    let mut seen = vec![String::new(); SIGN_CASES.len()];
    let mut unseal = Table::new(
        "Sealed secrets: 32 bytes bound to PCR 16, process start to the secret (TPM cmds: up \
         to and including Unseal; the exit's flushes in the notes)",
        Kind::Latency,
        "",
    )
    .with_sample_label("ms from process start to exit with the secret");
    let mut unseal_rows: Vec<Row> = UNSEALERS.iter().map(|u| u.row(bench)).collect();
    let mut unseal_seen = vec![String::new(); UNSEALERS.len()];
    let slice = bench.settings.duration / SLICES;
    for round in 0..bench.settings.rounds {
        eprintln!("  platform round {}/{}", round + 1, bench.settings.rounds);
        let mut sums: Vec<Slices> = SIGN_CASES.iter().map(|_| Slices::default()).collect();
        // Timed slices straight on swtpm, then one slice each through the tap, counted.
        for path in std::iter::repeat_n(Path::Direct, SLICES as usize).chain([Path::Tapped]) {
            for ((case, row), sum) in SIGN_CASES.iter().zip(rows.iter_mut()).zip(&mut sums) {
                if row.status != Status::Ran {
                    continue;
                }
                let result = case.batch(bench, slice, path);
                row.left(bench.check_leftovers());
                match result {
                    Ok((r, _)) if path == Path::Direct => sum.add(&r),
                    Ok((r, traffic)) => sum.count(&r, &traffic),
                    Err(e) => row.fail(format!("round {}: {e}", round + 1)),
                }
            }
        }
        for (i, (row, sum)) in rows.iter_mut().zip(sums).enumerate() {
            if row.status == Status::Ran && sum.round.ops > 0 {
                steady[i].extend(sum.steady);
                seen[i] = sum.seen;
                row.rounds.push(sum.round);
            }
        }
        for stack in rows.chunks_mut(3) {
            let mut refs: Vec<&mut Row> = stack.iter_mut().collect();
            ratios_to_first(&mut refs, round);
        }
        for ((u, row), t) in UNSEALERS
            .iter()
            .zip(unseal_rows.iter_mut())
            .zip(&mut unseal_seen)
        {
            if row.status != Status::Ran {
                continue;
            }
            let result = u.sample(bench);
            row.left(bench.check_leftovers());
            match result {
                Ok((r, all)) => {
                    row.rounds.push(r);
                    *t = all;
                }
                Err(e) => row.fail(format!("round {}: {e}", round + 1)),
            }
        }
    }
    for ((mut row, steady), seen) in rows.into_iter().zip(steady).zip(seen) {
        row.counted_commands = median(steady);
        row.notes = seen;
        sign.rows.push(row);
    }
    for (mut row, t) in unseal_rows.into_iter().zip(unseal_seen) {
        row.notes = t;
        unseal.rows.push(row);
    }
    bench.flush_leftovers();
    vec![sign, unseal]
}
