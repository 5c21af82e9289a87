//! kill -9 of `tpmkey keygen -o` and `tpmkey policy add` (which rewrites the key file in
//! place), 100 rounds per write site: afterwards the output is absent or a complete, valid
//! key file (keygen), or exactly the old file or the new one with the policy added (policy
//! add); never half-written. (`seal -o` has its own test, seal_killed.rs.)
//!
//! The kills are deterministic: strace's fault injection sends SIGKILL instead of the n-th
//! call of a file system call (write, openat, fsync, rename, close, ...), for every n the
//! command makes of every one of them, counted in a traced run first; when those are fewer
//! than the rounds, the rest are kills at moments spread over the command's run.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use tpmkey::KeyFile;
use tpmkey_testenv::fault_matrix;

const ROUNDS: usize = 100;
/// The system calls a write of an output goes through.
const SYSCALLS: &[&str] = &[
    "openat",
    "write",
    "pwrite64",
    "writev",
    "ftruncate",
    "fsync",
    "fdatasync",
    "rename",
    "renameat",
    "renameat2",
    "close",
    "unlink",
    "unlinkat",
];
/// Calls whose every invocation gets a round before any other call's (the commit points).
const COMMIT_CALLS: &[&str] = &[
    "rename",
    "renameat",
    "renameat2",
    "fsync",
    "fdatasync",
    "ftruncate",
];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `tpmkey ARGS` against the env's swtpm as a command (not run), optionally under strace.
fn tpmkey(env: &Env, args: &[&str], strace: Option<&[String]>) -> Command {
    let exe = env!("CARGO_BIN_EXE_tpmkey");
    let mut cmd = match strace {
        Some(opts) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-qq"]).args(opts).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TPMKEY_TCTI", env.swtpm.tcti())
        .env("TPMKEY_CONF", "/dev/null")
        .env("TPMKEY_STATE", env.path("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// (system call, calls) of one run of `args`, from `strace -c`.
fn syscall_counts(env: &Env, args: &[&str]) -> Vec<(String, usize)> {
    let summary = env.path("strace-summary");
    let opts = vec![
        "-c".to_owned(),
        "-o".to_owned(),
        s(&summary).to_owned(),
        "-e".to_owned(),
        format!("trace={}", SYSCALLS.join(",")),
    ];
    let status = tpmkey(env, args, Some(&opts)).status().unwrap();
    assert!(status.success(), "traced run of tpmkey {args:?}: {status}");
    let text = std::fs::read_to_string(&summary).unwrap();
    // Rows: % time, seconds, usecs/call, calls, [errors,] syscall.
    text.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let name = *cols.last()?;
            let calls = cols.get(3)?.parse().ok()?;
            SYSCALLS.contains(&name).then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// How one round's writer dies.
#[derive(Clone, Debug)]
enum Kill {
    /// SIGKILL instead of the n-th call of this system call.
    At(String, usize),
    /// SIGKILL after this long.
    After(Duration),
}

/// ROUNDS kills: every (commit call, n), then (other call, n) spread evenly over the rest,
/// then timed kills spread over one run's duration when the calls are fewer.
fn plan(counts: &[(String, usize)], run: Duration) -> Vec<Kill> {
    let all = |commit: bool| -> Vec<Kill> {
        counts
            .iter()
            .filter(|(name, _)| COMMIT_CALLS.contains(&name.as_str()) == commit)
            .flat_map(|(name, n)| (1..=*n).map(move |i| Kill::At(name.clone(), i)))
            .collect()
    };
    let mut kills = all(true);
    kills.truncate(ROUNDS);
    let others = all(false);
    let room = ROUNDS - kills.len();
    if others.len() <= room {
        kills.extend(others);
    } else {
        kills.extend((0..room).map(|i| others[i * others.len() / room].clone()));
    }
    let timed = ROUNDS - kills.len();
    kills.extend((0..timed).map(|i| Kill::After(run * (i as u32 + 1) / (timed as u32 + 1))));
    kills
}

fn killed(status: ExitStatus) -> bool {
    status.signal() == Some(9) || status.code() == Some(137)
}

/// Runs `args` and kills it as `kill` says; true when it died of the kill.
fn run_killed(env: &Env, args: &[&str], kill: &Kill) -> bool {
    match kill {
        Kill::At(call, n) => {
            let opts = vec![
                "-o".to_owned(),
                "/dev/null".to_owned(),
                "-e".to_owned(),
                format!("trace={call}"),
                "-e".to_owned(),
                format!("inject={call}:signal=SIGKILL:when={n}"),
            ];
            killed(tpmkey(env, args, Some(&opts)).status().unwrap())
        }
        Kill::After(delay) => {
            let mut child = tpmkey(env, args, None).spawn().unwrap();
            std::thread::sleep(*delay);
            let done = child.try_wait().unwrap().is_some();
            child.kill().ok(); // SIGKILL
            let status = child.wait().unwrap();
            !done && killed(status)
        }
    }
}

fn timed_run(env: &Env, args: &[&str]) -> Duration {
    let start = Instant::now();
    let status = tpmkey(env, args, None).status().unwrap();
    assert!(status.success(), "tpmkey {args:?}: {status}");
    start.elapsed()
}

#[derive(Default)]
struct Tally {
    killed: usize,
    old: usize,
    new: usize,
}

fn report(site: &str, kills: &[Kill], t: &Tally, dir: &Path) {
    let at_calls = kills.iter().filter(|k| matches!(k, Kill::At(..))).count();
    eprintln!(
        "{site}: {} rounds ({at_calls} at a system call, {} timed), {} killed: {} absent or \
         old, {} complete, none half; {} temporary files left beside the outputs",
        kills.len(),
        kills.len() - at_calls,
        t.killed,
        t.old,
        t.new,
        common::temporary_files(dir)
    );
}

#[test]
fn kill_9_during_keygen_leaves_the_output_absent_or_whole() {
    let env = Env::start();
    let out_dir = env.path("keys");
    std::fs::create_dir(&out_dir).unwrap();
    let probe = out_dir.join("probe.key");
    let args = |out: &PathBuf| -> Vec<String> {
        ["keygen", "-t", "p256", "-o", s(out)]
            .map(str::to_owned)
            .to_vec()
    };
    let probe_args = args(&probe);
    let probe_args: Vec<&str> = probe_args.iter().map(String::as_str).collect();
    let run = timed_run(&env, &probe_args);
    std::fs::remove_file(&probe).unwrap();
    let counts = syscall_counts(&env, &probe_args);
    std::fs::remove_file(&probe).unwrap();
    let kills = plan(&counts, run);
    let mut t = Tally::default();
    for (round, kill) in kills.iter().enumerate() {
        let out = out_dir.join(format!("k{round}.key"));
        let a = args(&out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        t.killed += usize::from(run_killed(&env, &a, kill));
        // Without a resource manager the killed process's objects stay in the TPM.
        fault_matrix::flush_leftovers(&env.swtpm);
        match std::fs::read(&out) {
            Err(_) => t.old += 1,
            Ok(bytes) => {
                let file = KeyFile::from_pem(&bytes).unwrap_or_else(|e| {
                    panic!("round {round} ({kill:?}): a key file that is not whole: {e}")
                });
                file.check_loadable()
                    .unwrap_or_else(|e| panic!("round {round} ({kill:?}): {e}"));
                t.new += 1;
            }
        }
    }
    report("keygen -o", &kills, &t, &out_dir);
    assert!(
        t.killed > ROUNDS / 2,
        "only {} of the writers died",
        t.killed
    );
}

#[test]
fn kill_9_during_policy_add_leaves_the_old_file_or_the_new_one() {
    let env = Env::start();
    let signer_key = env.path("signer.key");
    let signer_pub = env.path("signer.pub");
    common::openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        s(&signer_key),
    ]);
    common::openssl(&[
        "pkey",
        "-in",
        s(&signer_key),
        "-pubout",
        "-out",
        s(&signer_pub),
    ]);
    let key_dir = env.path("keys");
    std::fs::create_dir(&key_dir).unwrap();
    let key = key_dir.join("k.key");
    env.tpmkey_ok(["keygen", "--signer", s(&signer_pub), "-o", s(&key)]);
    let values = env.path("now.pcrs");
    env.tpmkey_ok(["pcr", "read", "sha256:16", "-o", s(&values)]);
    let policy = env.path("state-a.policy");
    env.tpmkey_ok([
        "policy",
        "sign",
        "--signer-key",
        s(&signer_key),
        "--pcr-values",
        s(&values),
        "--key",
        s(&key),
        "--name",
        "state-a",
        "-o",
        s(&policy),
    ]);
    let old = std::fs::read(&key).unwrap();
    let args = ["policy", "add", s(&key), s(&policy)];
    let run = timed_run(&env, &args);
    let new = std::fs::read(&key).unwrap();
    assert_ne!(old, new, "policy add changed nothing");
    std::fs::write(&key, &old).unwrap();
    let counts = syscall_counts(&env, &args);
    assert_eq!(
        std::fs::read(&key).unwrap(),
        new,
        "policy add is not deterministic"
    );
    let kills = plan(&counts, run);
    let mut t = Tally::default();
    for (round, kill) in kills.iter().enumerate() {
        std::fs::write(&key, &old).unwrap();
        t.killed += usize::from(run_killed(&env, &args, kill));
        // Without a resource manager the killed process's objects stay in the TPM.
        fault_matrix::flush_leftovers(&env.swtpm);
        let now = std::fs::read(&key)
            .unwrap_or_else(|e| panic!("round {round} ({kill:?}): the key file is gone: {e}"));
        if now == old {
            t.old += 1;
        } else if now == new {
            t.new += 1;
        } else {
            panic!(
                "round {round} ({kill:?}): the key file is neither the old one nor the new one \
                 ({} bytes)",
                now.len()
            );
        }
    }
    report("policy add", &kills, &t, &key_dir);
    assert!(
        t.killed > ROUNDS / 2,
        "only {} of the writers died",
        t.killed
    );
}
