//! Several processes signing at once through the core with its default policy (objects
//! per operation on swtpm, kept behind tpm2-abrmd): aggregate rate against one process in
//! the same round, and failures. abrmd reaches swtpm through the wire tap, so its rows
//! count the commands it sends on its clients' behalf.

use std::io::BufRead;
use std::time::{Duration, Instant};

use tpmkey::hash::Hash;
use tpmkey::{connection, KeyFile, SignScheme, TpmKey};
use tpmkey_testenv::Abrmd;

use crate::bench::Bench;
use crate::operation::{digest, Op};
use crate::report::{Kind, Round, Row, Status, Table, Target};
use crate::subject::{self, TCTI_VAR};
use crate::worker::Worker;

/// `signer <dir>`: one warm-up signature, "ready", then on `go <ms>` signs for that long and
/// answers `done <ok> <failed> <nanos> <first error>`.
pub fn child(args: &[String]) -> Result<(), String> {
    let [dir] = args else {
        return Err(format!("signer: expected <dir>, got {args:?}"));
    };
    let tcti = std::env::var(TCTI_VAR).map_err(|_| format!("{TCTI_VAR} is not set"))?;
    let core = |e: tpmkey::Error| format!("tpmkey: {e}");
    connection::configure(&[("tcti", &tcti)]).map_err(core)?;
    let path = std::path::Path::new(dir).join(Op::EcdsaP256.key_file_name());
    let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = TpmKey::from_key_file(&KeyFile::from_pem(&pem).map_err(core)?, None).map_err(core)?;
    let digest = digest();
    let sign = || key.sign(SignScheme::Ecdsa(Hash::Sha256), &digest);
    sign().map_err(core)?;
    println!("ready");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("stdin: {e}"))?;
    let ms: u64 = line
        .trim()
        .strip_prefix("go ")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("expected go <ms>, got \"{}\"", line.trim()))?;
    let (mut ok, mut failed, mut first_error) = (0u64, 0u64, String::new());
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(ms) {
        match sign() {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                if first_error.is_empty() {
                    first_error = e.to_string().replace('\n', " ");
                }
            }
        }
    }
    let nanos = start.elapsed().as_nanos();
    println!("done {ok} {failed} {nanos} {first_error}");
    connection::shutdown();
    Ok(())
}

/// Where the signers' TPM is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// swtpm through the tap, no resource manager: the per-operation policy.
    Direct,
    /// tpm2-abrmd on a private bus: the keep policy.
    Abrmd,
}

struct Case {
    path: Path,
    processes: usize,
}

pub fn run(bench: &Bench) -> Table {
    let n = bench.settings.processes;
    let mut table = Table::new(
        format!("Scale: {n} processes signing ECDSA P-256 at once through the core"),
        Kind::Rate,
        "1 process",
    );
    let abrmd = std::panic::catch_unwind(|| Abrmd::start_on(&bench.tcti()))
        .map_err(|_| "tpm2-abrmd did not start (see the panic above)".to_string());
    let cases = [
        Case {
            path: Path::Direct,
            processes: 1,
        },
        Case {
            path: Path::Direct,
            processes: n,
        },
        Case {
            path: Path::Abrmd,
            processes: 1,
        },
        Case {
            path: Path::Abrmd,
            processes: n,
        },
    ];
    let mut rows: Vec<Row> = cases
        .iter()
        .map(|c| {
            let place = match c.path {
                Path::Direct => "swtpm, no resource manager (objects=per-operation)",
                Path::Abrmd => "tpm2-abrmd (objects=keep)",
            };
            // Without a resource manager the swtpm TCTI connects per command and swtpm
            // serves one connection at a time: the ratio measures that transport (0.56-0.94
            // between quiet and busy runs), so it is reported without a target there.
            let target = Target {
                min_ratio: (c.processes > 1 && c.path == Path::Abrmd).then_some(0.9),
                zero_failures: true,
                ..Target::default()
            };
            let mut row = Row::new(format!("{} process(es), {place}", c.processes), target);
            if let (Path::Abrmd, Err(e)) = (c.path, &abrmd) {
                row.fail(e.clone());
            }
            row
        })
        .collect();
    let mut errors = vec![String::new(); cases.len()];
    let mut traffics = vec![String::new(); cases.len()];
    for round in 0..bench.settings.rounds {
        eprintln!("  scale round {}/{}", round + 1, bench.settings.rounds);
        let mut single = [None, None];
        for (i, case) in cases.iter().enumerate() {
            if rows[i].status != Status::Ran {
                continue;
            }
            let (tcti, env) = match (case.path, &abrmd) {
                (Path::Direct, _) => (bench.tcti(), Vec::new()),
                (Path::Abrmd, Ok(a)) => (a.tcti(), a.env()),
                (Path::Abrmd, Err(_)) => continue,
            };
            let result = measure(bench, case.processes, &tcti, &env);
            rows[i].left(bench.check_leftovers());
            match result {
                Ok((mut r, first_error, traffic)) => {
                    traffics[i] = traffic;
                    let slot = usize::from(case.path == Path::Abrmd);
                    if case.processes == 1 {
                        single[slot] = Some(r.rate());
                    } else if let Some(one) = single[slot].filter(|x| *x > 0.0) {
                        r.ratio = Some(r.rate() / one);
                    }
                    if errors[i].is_empty() {
                        errors[i] = first_error;
                    }
                    rows[i].rounds.push(r);
                }
                Err(e) => rows[i].fail(format!("round {}: {e}", round + 1)),
            }
        }
    }
    for (((row, case), error), traffic) in rows.iter_mut().zip(&cases).zip(&errors).zip(&traffics) {
        let mut notes = vec![format!("failures: {}", row.failures())];
        if !traffic.is_empty() {
            notes.push(traffic.clone());
        }
        if case.path == Path::Abrmd {
            notes.push("TPM cmds: abrmd to swtpm, on the tap".into());
        }
        if case.processes > 1 {
            notes.push("ratio: aggregate rate / one process, same round".into());
            notes.push(match case.path {
                Path::Direct => "no ratio target (it measures the swtpm transport); reference: tpm2-openssl 2 of 6 fail with 0x902".into(),
                Path::Abrmd => "reference: tpm2-pkcs11 3 of 4 runs lose signatures".into(),
            });
        }
        if !error.is_empty() {
            notes.push(format!("first error: {error}"));
        }
        row.notes = notes.join("; ");
    }
    table.rows = rows;
    drop(abrmd);
    bench.flush_leftovers();
    table
}

/// Starts `processes` signers, lets them sign together for the round's duration.
fn measure(
    bench: &Bench,
    processes: usize,
    tcti: &str,
    extra_env: &[(String, String)],
) -> Result<(Round, String, String), String> {
    let mut env = subject::CORE.env(tcti, bench.work());
    // The core's default policy: auto (per-operation without a resource manager).
    env.retain(|(k, _)| k != "TPMKEY_OBJECTS" && k != "TPMKEY_TCTI");
    env.extend_from_slice(extra_env);
    let dir = bench.work().display().to_string();
    let mut signers = Vec::new();
    for i in 0..processes {
        let log = bench.work().join(format!("signer-{i}.log"));
        signers.push(Worker::spawn("signer", &[&dir], &env, &log)?);
    }
    for s in signers.iter_mut() {
        let reply = s.ask("")?;
        if reply != "ready" {
            return Err(format!("signer answered \"{reply}\""));
        }
    }
    bench.traffic();
    let ms = bench.settings.duration.as_millis();
    for s in signers.iter_mut() {
        s.send(&format!("go {ms}"))?;
    }
    let (mut ok, mut failed, mut longest, mut first_error) = (0u64, 0u64, 0f64, String::new());
    for s in signers.iter_mut() {
        let reply = s.ask("")?;
        let mut words = reply.splitn(5, ' ');
        let (Some("done"), Some(o), Some(f), Some(ns)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format!("signer answered \"{reply}\""));
        };
        let parse = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("bad reply \"{reply}\""))
        };
        ok += parse(o)?;
        failed += parse(f)?;
        longest = longest.max(parse(ns)? as f64 / 1e9);
        if first_error.is_empty() {
            first_error = words.next().unwrap_or_default().to_string();
        }
    }
    let traffic = bench.traffic();
    drop(signers);
    Ok((
        Round {
            ops: ok,
            seconds: longest,
            commands: Some(traffic.total),
            ratio: None,
            limit_ratio: None,
            model_ms: traffic.model_ms,
            failures: failed,
        },
        first_error,
        traffic.per_op(ok),
    ))
}
