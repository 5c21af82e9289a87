//! Row workers: every row runs in a child process of its own (its own TPM connection, its
//! own copy of libcrypto state), driven by the runner over stdin/stdout lines:
//!
//! * `acquire`: load what the row needs (provider, token login, key) and run one checked
//!   operation, untimed;
//! * `run <ms>`: operate for that long, answer `done <ops> <nanos>`;
//! * `release`: free every TPM slot the row holds, so the next row finds the TPM empty
//!   (swtpm has 3 object slots and no resource manager here).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::operation::{Op, Output};
use crate::subject::Subject;

/// One row's stack, as the worker drives it.
pub trait Operation {
    /// Makes the next [`Operation::once`] possible (loads provider, module, key).
    fn acquire(&mut self) -> Result<(), String>;
    /// One operation; the result is checked after the first call of every batch.
    fn once(&mut self) -> Result<Output, String>;
    /// Frees the TPM objects and sessions this row holds.
    fn release(&mut self) -> Result<(), String>;
}

/// Serves the runner until stdin closes: the `worker <subject> <op> <dir>` mode.
pub fn serve(args: &[String]) -> Result<(), String> {
    let (subject, op, dir) = parse_args(args)?;
    let (operation, inputs) = subject.open(op, &dir)?;
    serve_operation(operation, &|out| inputs.check(out))
}

/// Serves the runner's requests for `operation` until stdin closes; `check` judges the
/// result of the operation `acquire` runs.
pub fn serve_operation(
    mut operation: Box<dyn Operation>,
    check: &dyn Fn(&Output) -> Result<(), String>,
) -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let reply = match answer(operation.as_mut(), check, line.trim()) {
            Ok(r) => r,
            Err(e) => format!("err {}", e.replace('\n', " | ")),
        };
        writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("writing stdout: {e}"))?;
    }
    operation.release()
}

fn answer(
    op: &mut dyn Operation,
    check: &dyn Fn(&Output) -> Result<(), String>,
    line: &str,
) -> Result<String, String> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("acquire"), None) => {
            op.acquire()?;
            let out = op.once()?;
            check(&out)?;
            Ok("ok".into())
        }
        (Some("run"), Some(ms)) => {
            let ms: u64 = ms.parse().map_err(|_| format!("bad duration {ms}"))?;
            let (ops, elapsed) = timed_loop(op, Duration::from_millis(ms))?;
            Ok(format!("done {ops} {}", elapsed.as_nanos()))
        }
        (Some("release"), None) => op.release().map(|()| "ok".into()),
        _ => Err(format!("unknown request \"{line}\"")),
    }
}

/// Operates until `duration` has passed; the clock is read once per operation.
pub fn timed_loop(op: &mut dyn Operation, duration: Duration) -> Result<(u64, Duration), String> {
    let start = Instant::now();
    let mut ops = 0u64;
    loop {
        op.once()?;
        ops += 1;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok((ops, elapsed));
        }
    }
}

pub fn parse_args(args: &[String]) -> Result<(Subject, Op, PathBuf), String> {
    match args {
        [subject, op, dir] => Ok((Subject::parse(subject)?, Op::parse(op)?, dir.into())),
        _ => Err(format!("expected <subject> <op> <dir>, got {args:?}")),
    }
}

/// The runner's handle on a worker process.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl Worker {
    /// Starts `bench <mode> <args..>` with `env`; stderr goes to `log`.
    pub fn spawn(
        mode: &str,
        args: &[&str],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Worker, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let stderr = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(exe)
            .arg(mode)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawning a {mode} worker: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("worker pipes missing".into());
        };
        Ok(Worker {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            log: log.into(),
        })
    }

    pub fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("worker stdin closed")?;
        let sent = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        sent.map_err(|e| format!("worker gone ({e}){}", self.log_tail()))
    }

    /// Sends one line (empty: none) and reads the answer line.
    pub fn ask(&mut self, line: &str) -> Result<String, String> {
        if !line.is_empty() {
            self.send(line)?;
        }
        let mut reply = String::new();
        let n = self
            .stdout
            .read_line(&mut reply)
            .map_err(|e| format!("reading worker: {e}"))?;
        if n == 0 {
            return Err(format!("worker exited{}", self.log_tail()));
        }
        let reply = reply.trim().to_string();
        match reply.strip_prefix("err ") {
            Some(e) => Err(e.to_string()),
            None => Ok(reply),
        }
    }

    pub fn acquire(&mut self) -> Result<(), String> {
        self.ask("acquire").map(drop)
    }

    pub fn release(&mut self) -> Result<(), String> {
        self.ask("release").map(drop)
    }

    /// Runs a timed batch: (operations, elapsed).
    pub fn run(&mut self, duration: Duration) -> Result<(u64, Duration), String> {
        let reply = self.ask(&format!("run {}", duration.as_millis()))?;
        let parts: Vec<&str> = reply.split_whitespace().collect();
        match parts.as_slice() {
            ["done", ops, nanos] => {
                let ops = ops.parse().map_err(|_| format!("bad reply {reply}"))?;
                let nanos: u64 = nanos.parse().map_err(|_| format!("bad reply {reply}"))?;
                Ok((ops, Duration::from_nanos(nanos)))
            }
            _ => Err(format!("unexpected reply \"{reply}\"")),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    }
}

impl Drop for Worker {
    /// Closes stdin (the worker releases and exits) and waits; kills this worker (by its
    /// pid) if it has not exited within 10 s.
    fn drop(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
