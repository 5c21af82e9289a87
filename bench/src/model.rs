//! The model section: what a user of a real TPM waits for. Under each latency profile
//! (bench/profiles, BENCH_PROFILE) the wire tap holds every command for the modelled TPM's
//! service time, one command at a time over all connections, and the rows run through it:
//! TLS 1.3 handshakes against nginx, process start to the first signature, `openssl req`
//! of a certificate, an `ssh` login with a token key, P-256 signing with a PCR-bound and a
//! signed-policy key, the unseal of a PCR-bound secret, certify, quote and the enrolment
//! round trip. The figures are model time, not machine noise; each row is also put
//! against its floor, the least the modelled TPM must spend on one operation (a handshake:
//! one Sign or RSA_Decrypt; a fresh process signing with a key file: Load and Sign).
//!
//! A row is a [`Sample`] and a floor: rows for later work (PCR-bound keys, unseal, quote)
//! add a variant and its floor.

use std::time::Duration;

use tpmkey_testenv::tpm_command::KeyKind;
use tpmkey_testenv::{Abrmd, Profile};

use crate::attest::{Proof, PROOFS};
use crate::bench::Bench;
use crate::evp::EvpStack;
use crate::nginx::Site;
use crate::platform::{SignCase, Unsealer, SIGN_CASES, UNSEALERS};
use crate::report::{join_notes, Kind, Round, Row, Status, Table, Target};
use crate::ssh::Sshd;
use crate::subject::Subject;
use crate::tls::{self, KeyType, Path, Serving, KEY_TYPES};
use crate::token::TokenStack;
use crate::{req, startup};

/// How one sample of a row is taken.
enum Sample {
    Tls(KeyType, Site),
    Startup(&'static startup::Case),
    Req(EvpStack),
    /// A login with the token's P-256 key (as `ssh-keygen -D` lists it), or with a
    /// software key file (`None`: the baseline).
    Ssh(Option<TokenStack>, String),
    /// A batch of P-256 signatures with a password, PCR-bound or signed-policy key.
    Sign(&'static SignCase),
    /// A 32-byte PCR-bound secret from process start.
    Unseal(Unsealer),
    /// Certify, quote or the enrolment round trip from process start.
    Proof(Proof),
}

struct Case {
    row: Row,
    sample: Option<Sample>,
    traffic: String,
    first_error: String,
}

impl Case {
    fn new(row: Row, sample: Option<Sample>) -> Case {
        Case {
            row,
            sample,
            traffic: String::new(),
            first_error: String::new(),
        }
    }
}

/// tpm2-openssl runs behind tpm2-abrmd (itself behind the modelled TPM): straight on the
/// TPM its nginx workers run out of object slots. tpmkey is shown both ways.
const TLS_SERVINGS: [Serving; 5] = [
    Serving::Software,
    Serving::Tpmkey("keep"),
    Serving::TpmkeyPcr,
    Serving::TpmkeyAbrmd,
    Serving::Tpm2OpensslAbrmd,
];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A floor, unless the profile models no time (`none`).
fn nonzero(ms: f64) -> Option<f64> {
    Some(ms).filter(|m| *m > 0.0)
}

/// The modelled time of a command with a key type, in milliseconds.
fn time(profile: &Profile, command: &str, kind: KeyKind) -> f64 {
    profile.time_of_named(command, Some(kind)).map_or(0.0, ms)
}

/// Untimed handshakes before a batch: long enough for both nginx workers to load the key
/// one after the other (primary, salted session, Load, the operation) on the modelled TPM.
fn warm_up(profile: &Profile, key: KeyType) -> Duration {
    let (op, kind) = key.tpm_command();
    let load = time(profile, "CreatePrimary", KeyKind::Ecc)
        + time(profile, "StartAuthSession", KeyKind::Ecc)
        + time(profile, "Load", kind)
        + time(profile, op, kind);
    Duration::from_millis(300) + Duration::from_secs_f64(2.0 * load / 1000.0)
}

fn cases(
    bench: &Bench,
    profile: &Profile,
    sshd: &Result<Sshd, String>,
    abrmd: &Result<Abrmd, String>,
) -> Vec<Case> {
    let mut cases = Vec::new();
    let issuer = tls::software_key(KeyType::P256);
    for key in KEY_TYPES {
        let (op, kind) = key.tpm_command();
        for serving in TLS_SERVINGS.into_iter().filter(|s| s.serves(key)) {
            let name = format!("TLS {}, {}", key.label(), serving.label());
            let mut row = match tls::unavailable(bench, serving) {
                Some(reason) => Row::not_available(name, reason),
                None => Row::new(name, Target::default()),
            };
            row.peer = serving.is_peer();
            if serving != Serving::Software {
                row.floor_ms = nonzero(time(profile, op, kind));
            }
            let site = tls::site(bench, &issuer, abrmd, key, serving, Path::Tapped);
            let sample = site.map_err(|e| row.fail(e)).ok();
            cases.push(Case::new(row, sample.map(|s| Sample::Tls(key, s))));
        }
    }
    let key_in_a_file = time(profile, "Load", KeyKind::Ecc) + time(profile, "Sign", KeyKind::Ecc);
    for case in startup::CASES.iter().filter(|c| c.subject.is_front_end()) {
        let name = format!("start-up to the first P-256 signature: {}", case.name);
        let mut row = match case.subject.unavailable(&bench.parts) {
            Some(reason) => Row::not_available(name, reason),
            None => Row::new(name, Target::default()),
        };
        row.peer = case.subject.is_peer();
        row.floor_ms = nonzero(key_in_a_file);
        if let Some(e) = bench.token_error(case.subject) {
            row.fail(e);
        }
        cases.push(Case::new(row, Some(Sample::Startup(case))));
    }
    for stack in [EvpStack::Tpmkey, EvpStack::Tpm2Openssl] {
        let name = format!(
            "openssl req -new -x509 with a P-256 key file, -provider {}",
            stack.provider_name()
        );
        let subject = Subject::Evp(stack);
        let mut row = match subject.unavailable(&bench.parts) {
            Some(reason) => Row::not_available(name, reason),
            None => Row::new(name, Target::default()),
        };
        row.peer = subject.is_peer();
        row.floor_ms = nonzero(key_in_a_file);
        cases.push(Case::new(row, Some(Sample::Req(stack))));
    }
    for case in &SIGN_CASES {
        let mut row = case.row(bench);
        // Model time, not the targets: those are judged in the platform section.
        row.target = Target::default();
        row.name = format!("P-256 sign: {}", case.name);
        row.floor_ms = nonzero(time(profile, "Sign", KeyKind::Ecc));
        cases.push(Case::new(row, Some(Sample::Sign(case))));
    }
    // The least an unseal from process start must do: load the sealed object under a
    // persistent storage key, one policy session, PolicyPCR, Unseal.
    let unseal_floor = ["Load", "StartAuthSession", "PolicyPCR", "Unseal"]
        .iter()
        .map(|c| time(profile, c, KeyKind::Ecc))
        .sum();
    for unsealer in UNSEALERS {
        let mut row = unsealer.row(bench);
        row.floor_ms = nonzero(unseal_floor);
        cases.push(Case::new(row, Some(Sample::Unseal(unsealer))));
    }
    // The least a quote needs: load the AK, quote; a certify also loads the key.
    for proof in PROOFS {
        let mut row = proof.row(bench);
        row.target = Target::default();
        let floor: &[&str] = match proof {
            Proof::Certify => &["Load", "Load", "Certify"],
            Proof::Quote => &["Load", "Quote"],
            Proof::QuotePersistent => &["Quote"],
            Proof::Enrolment => &[],
        };
        row.floor_ms = nonzero(floor.iter().map(|c| time(profile, c, KeyKind::Ecc)).sum());
        cases.push(Case::new(row, Some(Sample::Proof(proof))));
    }
    let software = sshd
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|d| d.software_key());
    let mut row = Row::new(
        "ssh login with a P-256 key file (no TPM: the baseline of the token rows)",
        Target::default(),
    );
    let line = software.map(|(_, line)| line).map_err(|e| row.fail(e)).ok();
    cases.push(Case::new(row, line.map(|l| Sample::Ssh(None, l))));
    for stack in [TokenStack::Tpmkey, TokenStack::Tpm2Pkcs11] {
        let subject = Subject::Token(stack);
        let name = format!(
            "ssh login, ssh -I {} with the token's P-256 key (PIN via SSH_ASKPASS)",
            stack.id()
        );
        let blocked = subject
            .unavailable(&bench.parts)
            .or_else(|| sshd.as_ref().err().cloned());
        let mut row = match blocked {
            Some(reason) => Row::not_available(name, reason),
            None => Row::new(name, Target::default()),
        };
        row.peer = subject.is_peer();
        row.floor_ms = nonzero(key_in_a_file);
        let key = match bench.token_error(subject) {
            Some(e) => Err(e),
            None if row.status == Status::Ran => Sshd::key_line(bench, stack),
            None => Err(String::new()),
        };
        let key = key.map_err(|e| row.fail(e)).ok();
        cases.push(Case::new(row, key.map(|k| Sample::Ssh(Some(stack), k))));
    }
    cases
}

/// One sample: the round, what crossed the bus per operation, the first failure.
fn take(
    bench: &Bench,
    profile: &Profile,
    sample: &Sample,
    sshd: &Result<Sshd, String>,
) -> Result<(Round, String, String), String> {
    match sample {
        Sample::Tls(key, site) => tls::measure(
            bench,
            site,
            Path::Tapped,
            warm_up(profile, *key),
            bench.settings.model_duration,
        ),
        Sample::Startup(case) => startup::sample(bench, case).map(|(r, t)| (r, t, String::new())),
        Sample::Req(stack) => req::sample(bench, *stack).map(|(r, t)| (r, t, String::new())),
        Sample::Ssh(stack, key) => sshd
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|d| d.login(bench, *stack, key))
            .map(|(r, t)| (r, t, String::new())),
        Sample::Sign(case) => case
            .batch(bench, bench.settings.model_duration, Path::Tapped)
            .map(|(r, t)| {
                let seen = t.per_op(r.ops);
                (r, seen, String::new())
            }),
        Sample::Unseal(unsealer) => unsealer.sample(bench).map(|(r, t)| (r, t, String::new())),
        Sample::Proof(proof) => proof.sample(bench).map(|(r, t)| (r, t, String::new())),
    }
}

pub fn run(bench: &Bench, profile: &Profile) -> Table {
    let rounds = bench.settings.model_rounds;
    let mut table = Table::new(
        format!(
            "Model \"{}\" (bench/profiles/{}.profile): model time, {rounds} rounds, TLS batches of {:.1} s",
            profile.name,
            profile.name,
            bench.settings.model_duration.as_secs_f64()
        ),
        Kind::Model,
        "",
    );
    // Set-up (key files, nginx sites) on plain swtpm; the rows under the model.
    let sshd = match Sshd::unavailable() {
        Some(reason) => Err(reason),
        None => Sshd::start(bench.work()),
    };
    // tpm2-abrmd talks to the modelled TPM (the tap); its own commands count there.
    let abrmd = tls::start_abrmd(&bench.tcti());
    let mut cases = cases(bench, profile, &sshd, &abrmd);
    bench.flush_leftovers();
    bench.tap.set_profile(Some(profile.clone()));
    bench.traffic();
    for round in 0..rounds {
        eprintln!("  model {} round {}/{rounds}", profile.name, round + 1);
        for c in cases.iter_mut() {
            let Some(sample) = c.sample.as_ref().filter(|_| c.row.status == Status::Ran) else {
                continue;
            };
            let result = take(bench, profile, sample, &sshd);
            c.row.left(bench.check_leftovers());
            match result {
                Ok((r, traffic, error)) => {
                    if c.first_error.is_empty() {
                        c.first_error = error;
                    }
                    c.traffic = traffic;
                    c.row.rounds.push(r);
                }
                Err(e) => c.row.fail(format!("round {}: {e}", round + 1)),
            }
        }
    }
    bench.tap.set_profile(None);
    drop(abrmd);
    // ssh and sshd take most of a login's time: the token rows also say what the token
    // added to the key-file login.
    let ssh_baseline = cases
        .iter()
        .find(|c| matches!(c.sample, Some(Sample::Ssh(None, _))))
        .and_then(|c| c.row.median_ms());
    for c in cases {
        let mut row = c.row;
        let mut notes = vec![c.traffic];
        if let (Some(Sample::Ssh(Some(_), _)), Some(base), Some(ms)) =
            (&c.sample, ssh_baseline, row.median_ms())
        {
            notes.push(format!("{:.1} ms over the key-file login", ms - base));
        }
        if row.failures() > 0 {
            notes.push(format!(
                "{} failed; first: {}",
                row.failures(),
                c.first_error
            ));
        }
        row.notes = join_notes(notes);
        table.rows.push(row);
    }
    bench.flush_leftovers();
    table
}
