//! The fault matrix of the provider: every operation (keygen, load, sign EC/RSA/PSS,
//! decrypt OAEP/PKCS#1, ECDH, random) with every fault class of the harness's fault
//! injector in the TPM command that does the operation's work. Each cell asserts a correct
//! result (always after a transient fault) or a clean failure naming the cause, nothing
//! left in the TPM, the lockout counter unmoved, no hang, and the next operation working.
//! One swtpm for the whole matrix; the table lands in target/release/fault-matrix-provider.md.
//!
//! The one exception to "nothing left": a fault that loses the response of a command that
//! made an object or session (Load, StartAuthSession) leaves it in the TPM, since no
//! client ever learnt its handle; the table says so for those cells.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{run, Env, Order};
use tpmkey_testenv::fault_matrix::{self, Matrix};
use tpmkey_testenv::FaultPlan;

const CREATE: u32 = 0x153;
const CREATE_LOADED: u32 = 0x191;
const LOAD: u32 = 0x157;
const SIGN: u32 = 0x15D;
const RSA_DECRYPT: u32 = 0x159;
const ECDH_ZGEN: u32 = 0x154;
const GET_RANDOM: u32 = 0x17B;
const START_AUTH_SESSION: u32 = 0x176;

/// The provider's response timeout in the matrix (`TPMKEY_TIMEOUT`).
const TIMEOUT: Duration = Duration::from_secs(3);
/// Longest any one operation may take: a stalled command and its retry each wait for
/// the timeout, and an RSA operation with process start stays well under the rest.
const LIMIT: Duration = Duration::from_secs(20);

struct Op {
    name: &'static str,
    /// The commands doing the operation's work: the fault goes into the first of them.
    codes: &'static [u32],
    command: fn(&Env) -> Command,
    /// Whether a successful run produced the right result.
    check: fn(&Env, &[u8]) -> Result<(), String>,
}

const PSS: [&str; 5] = [
    "-sha256",
    "-sigopt",
    "rsa_padding_mode:pss",
    "-sigopt",
    "rsa_pss_saltlen:32",
];

fn sign_cmd(env: &Env, key: &str, opts: &[&str]) -> Command {
    let mut c = env.openssl(Order::TpmkeyFirst, "dgst");
    c.args(opts).args([
        "-sign",
        &env.file(key),
        "-out",
        &env.file("sig"),
        &env.file("msg"),
    ]);
    c
}

fn verify(env: &Env, key: &str, opts: &[&str]) -> Result<(), String> {
    let out = env
        .plain("dgst")
        .args(opts)
        .args(["-verify", &env.file(&format!("{key}.pub"))])
        .args(["-signature", &env.file("sig"), &env.file("msg")])
        .output()
        .unwrap();
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| "signature does not verify".to_owned())
}

fn decrypt_cmd(env: &Env, ct: &str, mode: &str) -> Command {
    let mut c = env.openssl(Order::TpmkeyFirst, "pkeyutl");
    c.args([
        "-decrypt",
        "-inkey",
        &env.file("rsa.pem"),
        "-in",
        &env.file(ct),
    ])
    .args(["-pkeyopt", mode, "-out", &env.file("pt")]);
    c
}

fn same_file(env: &Env, produced: &str, expected: &str) -> Result<(), String> {
    let got = std::fs::read(env.path(produced)).unwrap_or_default();
    (got == env.read(expected))
        .then_some(())
        .ok_or_else(|| format!("{produced} differs from {expected}"))
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "keygen EC",
            codes: &[CREATE, CREATE_LOADED],
            command: |env| {
                let _ = std::fs::remove_file(env.path("new.pem"));
                let mut c = env.tpmkey_only("genpkey");
                c.args(["-algorithm", "EC", "-pkeyopt", "group:P-256", "-out"])
                    .arg(env.path("new.pem"));
                c
            },
            check: |env, _| {
                let text = std::fs::read_to_string(env.path("new.pem")).unwrap_or_default();
                text.starts_with("-----BEGIN TSS2 PRIVATE KEY-----")
                    .then_some(())
                    .ok_or_else(|| "no key file written".to_owned())
            },
        },
        Op {
            name: "load",
            codes: &[LOAD],
            command: |env| {
                let mut c = env.openssl(Order::TpmkeyFirst, "pkey");
                c.args([
                    "-in",
                    &env.file("ec.pem"),
                    "-pubout",
                    "-out",
                    &env.file("loaded.pub"),
                ]);
                c
            },
            check: |env, _| same_file(env, "loaded.pub", "ec.pem.pub"),
        },
        Op {
            name: "sign EC",
            codes: &[SIGN],
            command: |env| sign_cmd(env, "ec.pem", &["-sha256"]),
            check: |env, _| verify(env, "ec.pem", &["-sha256"]),
        },
        Op {
            name: "sign RSA",
            codes: &[SIGN, RSA_DECRYPT],
            command: |env| sign_cmd(env, "rsa.pem", &["-sha256"]),
            check: |env, _| verify(env, "rsa.pem", &["-sha256"]),
        },
        Op {
            name: "sign PSS",
            codes: &[SIGN, RSA_DECRYPT],
            command: |env| sign_cmd(env, "rsa.pem", &PSS),
            check: |env, _| verify(env, "rsa.pem", &PSS),
        },
        Op {
            name: "decrypt OAEP",
            codes: &[RSA_DECRYPT],
            command: |env| decrypt_cmd(env, "ct.oaep", "rsa_padding_mode:oaep"),
            check: |env, _| same_file(env, "pt", "secret"),
        },
        Op {
            name: "decrypt PKCS#1",
            codes: &[RSA_DECRYPT],
            command: |env| decrypt_cmd(env, "ct.pkcs1", "rsa_padding_mode:pkcs1"),
            check: |env, _| same_file(env, "pt", "secret"),
        },
        Op {
            name: "ECDH",
            codes: &[ECDH_ZGEN],
            command: |env| {
                let mut c = env.openssl(Order::TpmkeyFirst, "pkeyutl");
                c.args(["-derive", "-inkey", &env.file("ec.pem")]).args([
                    "-peerkey",
                    &env.file("peer.pub"),
                    "-out",
                    &env.file("z"),
                ]);
                c
            },
            check: |env, _| same_file(env, "z", "z.expected"),
        },
        Op {
            name: "random",
            codes: &[GET_RANDOM],
            command: |env| {
                let mut c = env.tpmkey_only("rand");
                c.args(["-hex", "16"]);
                c
            },
            check: |_, stdout| {
                let s = String::from_utf8_lossy(stdout);
                let s = s.trim();
                (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then_some(())
                    .ok_or_else(|| format!("not 16 random bytes: {s:?}"))
            },
        },
        Op {
            name: "sign EC, session start",
            codes: &[START_AUTH_SESSION],
            command: |env| sign_cmd(env, "ec.pem", &["-sha256"]),
            check: |env, _| verify(env, "ec.pem", &["-sha256"]),
        },
    ]
}

/// Keys and inputs every cell uses, made before any fault.
fn prepare(env: &Env) {
    env.genkey("ec.pem", "EC");
    env.genkey("rsa.pem", "RSA");
    env.write("msg", b"fault matrix");
    env.write("secret", b"a secret of the fault matrix");
    for (ct, mode) in [("ct.oaep", "oaep"), ("ct.pkcs1", "pkcs1")] {
        run(env.plain("pkeyutl").args([
            "-encrypt",
            "-pubin",
            "-inkey",
            &env.file("rsa.pem.pub"),
            "-in",
            &env.file("secret"),
            "-out",
            &env.file(ct),
            "-pkeyopt",
            &format!("rsa_padding_mode:{mode}"),
        ]));
    }
    run(env
        .plain("genpkey")
        .args([
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(env.path("peer.pem")));
    run(env.plain("pkey").args([
        "-in",
        &env.file("peer.pem"),
        "-pubout",
        "-out",
        &env.file("peer.pub"),
    ]));
    run(env.plain("pkeyutl").args([
        "-derive",
        "-inkey",
        &env.file("peer.pem"),
        "-peerkey",
        &env.file("ec.pem.pub"),
        "-out",
        &env.file("z.expected"),
    ]));
}

/// How the core names the cause of a failure (its error's Display).
const CAUSES: [&str; 3] = ["TPM2_", "TPM response rejected", "TPM not reachable"];

/// Runs `op` once; Ok(()) for a correct result, Err(stderr) for a clean failure. Panics on
/// a hang, a crash, a wrong result accepted, or a failure that does not name its cause.
fn attempt(env: &Env, op: &Op, what: &str) -> Result<(), String> {
    let mut cmd = (op.command)(env);
    cmd.env("TPMKEY_TIMEOUT", TIMEOUT.as_secs().to_string());
    let Some(out) = fault_matrix::run_within(&mut cmd, LIMIT) else {
        panic!("{what}: {} did not return within {LIMIT:?}", op.name);
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code().is_some(),
        "{what}: {} crashed ({}): {stderr}",
        op.name,
        out.status
    );
    if out.status.success() {
        if let Err(e) = (op.check)(env, &out.stdout) {
            panic!(
                "{what}: {} succeeded with a wrong result: {e}\n{stderr}",
                op.name
            );
        }
        return Ok(());
    }
    let named = CAUSES.iter().any(|cause| stderr.contains(cause));
    assert!(
        named,
        "{what}: {} failed without naming the cause:\n{stderr}",
        op.name
    );
    Err(stderr)
}

/// The cause a failure names, shortened for the table.
fn cause(stderr: &str) -> String {
    let at = CAUSES
        .iter()
        .filter_map(|c| stderr.find(c))
        .min()
        .unwrap_or_default();
    let line = stderr[at..].lines().next().unwrap_or_default();
    let short: String = line.chars().take(60).collect();
    format!("error: {}", short.replace('|', "/"))
}

#[test]
fn every_operation_under_every_fault() {
    let (env, tap) = Env::tapped();
    fault_matrix::freeze_lockout_counter(&env.tpm);
    prepare(&env);
    let lockout = fault_matrix::lockout_counter(&env.tpm);
    let mut matrix = Matrix::default();
    let mut problems = Vec::new();
    for op in ops() {
        for fault in fault_matrix::fault_classes(TIMEOUT) {
            let what = format!("[{fault} in {}]", op.name);
            tap.inject(FaultPlan::on_any(op.codes, 0, fault));
            let result = attempt(&env, &op, &what);
            let fired = !tap.faults_pending();
            let applied = tap.stop_injecting().last().is_some_and(|i| i.applied);
            let mut outcome = match (&result, fired) {
                (_, false) => "not reached".to_owned(),
                (_, true) if !applied => "n/a (no such area)".to_owned(),
                (Ok(()), true) => "ok".to_owned(),
                (Err(e), true) => cause(e),
            };
            if fired && result.is_err() && fault_matrix::must_recover(&fault, TIMEOUT) {
                problems.push(format!(
                    "{what}: a transient fault failed the operation: {outcome}"
                ));
            }
            if !fired {
                problems.push(format!("{what}: the operation never sent {:x?}", op.codes));
            }
            let left = fault_matrix::leftovers(&env.tpm);
            let lost = op
                .codes
                .iter()
                .any(|c| fault_matrix::loses_handle(&fault, *c, TIMEOUT));
            if !left.is_empty() {
                if lost {
                    outcome.push_str(" (handle lost with the response)");
                } else {
                    problems.push(format!("{what}: left in the TPM: {left:?}"));
                }
                fault_matrix::flush_leftovers(&env.tpm);
            }
            if let Err(e) = attempt(&env, &op, &format!("{what}, next")) {
                problems.push(format!("{what}: the next operation failed: {}", cause(&e)));
            }
            let now = fault_matrix::lockout_counter(&env.tpm);
            if now != lockout {
                problems.push(format!("{what}: lockout counter moved {lockout} -> {now}"));
            }
            matrix.record(&fault, op.name, &outcome);
        }
    }
    let path = matrix.write("provider");
    eprintln!("{}\n(table in {})", matrix.table(), path.display());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
