//! Operations per second of every stack on one key, one process per row, in interleaved
//! rounds; every ratio is to the raw row of the same round. What a row leaves in the TPM
//! is checked after its release, and for the EVP rows after the worker process has exited.

use std::time::Duration;

use crate::bench::Bench;
use crate::bus::Traffic;
use crate::operation::Op;
use crate::report::{join_notes, Kind, Round, Row, Status, Table, Target};
use crate::subject::{self, Subject, ALL};
use crate::worker::Worker;

/// The targets: (with session, session off) for P-256 and RSA-2048 signing.
fn target(op: Op, subject: Subject) -> Target {
    let (on, off) = match op {
        Op::EcdsaP256 => (0.93, 0.97),
        Op::RsaSign => (0.97, 0.98),
        Op::RsaOaep | Op::EcdhP256 => return Target::default(),
    };
    let min_ratio = match subject {
        subject::CORE | subject::PROVIDER | subject::PKCS11 => Some(on),
        subject::CORE_SESSION_OFF => Some(off),
        _ => None,
    };
    let max_commands = matches!(subject, subject::PROVIDER | subject::PKCS11).then_some(1.0);
    Target {
        min_ratio,
        max_commands,
        ..Target::default()
    }
}

/// What the reference measured for the existing stacks (reference.md section 6).
fn reference_note(op: Op, subject: Subject) -> &'static str {
    match (op, subject) {
        (Op::EcdsaP256, subject::TPM2_OPENSSL) => "reference: 0.76-0.86, 2 cmds (Hash + Sign)",
        (Op::RsaSign, subject::TPM2_OPENSSL) => "reference: 0.96, 2 cmds",
        (Op::EcdsaP256, subject::TPM2_PKCS11) => "reference: 0.16",
        (Op::RsaSign, subject::TPM2_PKCS11) => "reference: 0.47",
        _ => "",
    }
}

struct Live {
    row: Row,
    subject: Subject,
    worker: Option<Worker>,
    traffic: String,
}

pub fn run(bench: &Bench, op: Op) -> Table {
    let mut table = Table::new(op.title(), Kind::Rate, "raw");
    let mut live: Vec<Live> = Vec::new();
    for subject in ALL {
        let name = subject.label();
        if let Some(reason) = subject.unavailable(&bench.parts) {
            table.rows.push(Row::not_available(name, reason));
            continue;
        }
        let mut row = Row::new(name, target(op, subject));
        row.peer = subject.is_peer();
        let worker = match bench.token_error(subject) {
            Some(e) => Err(e),
            None => bench.spawn("worker", subject, op, &[]),
        };
        let worker = worker.map_err(|e| row.fail(e)).ok();
        live.push(Live {
            row,
            subject,
            worker,
            traffic: String::new(),
        });
    }
    for round in 0..bench.settings.rounds {
        eprintln!(
            "  {} round {}/{}",
            op.id(),
            round + 1,
            bench.settings.rounds
        );
        let mut raw_rate = None;
        for l in live.iter_mut() {
            let Some(worker) = l.worker.as_mut() else {
                continue;
            };
            let result = measure(bench, worker);
            if matches!(l.subject, Subject::Evp(_)) {
                // libcrypto keeps its references to the provider's key until the process
                // exits, where the provider's exit flush runs: only what survives the
                // process is a leak. A fresh worker serves the next round.
                l.worker = None;
                l.row.left(bench.check_leftovers());
                if result.is_ok() && round + 1 < bench.settings.rounds {
                    l.worker = bench
                        .spawn("worker", l.subject, op, &[])
                        .map_err(|e| l.row.fail(e))
                        .ok();
                }
            } else {
                l.row.left(bench.check_leftovers());
            }
            match result {
                Ok((r, traffic)) => {
                    if l.subject == Subject::Raw {
                        raw_rate = Some(r.rate());
                    }
                    l.traffic = traffic;
                    l.row.rounds.push(r);
                }
                Err(e) if round == 0 && not_offered(l.subject, &e) => {
                    let part = if l.subject == subject::PROVIDER {
                        "provider"
                    } else {
                        "module"
                    };
                    l.row.status =
                        Status::NotAvailable(format!("the {part} does not offer it yet: {e}"));
                    l.worker = None;
                }
                Err(e) => {
                    l.row.fail(format!("round {}: {e}", round + 1));
                    l.worker = None;
                }
            }
        }
        for l in live.iter_mut() {
            if let (Some(last), Some(raw)) = (l.row.rounds.last_mut(), raw_rate) {
                if last.ratio.is_none() && raw > 0.0 {
                    last.ratio = Some(last.rate() / raw);
                }
            }
        }
    }
    for l in live {
        let mut row = l.row;
        let reference = reference_note(op, l.subject);
        row.notes = join_notes([l.traffic.as_str(), reference]);
        table.rows.push(row);
    }
    table.rows.sort_by_key(|r| {
        ALL.iter()
            .position(|s| s.label() == r.name)
            .unwrap_or(usize::MAX)
    });
    table
}

/// Our front ends are written while the bench runs: an operation they do not offer yet is
/// n/a, anything else that breaks is a failure.
fn not_offered(subject: Subject, error: &str) -> bool {
    matches!(subject, subject::PROVIDER | subject::PKCS11)
        && [
            "operation not supported",
            "CKR_MECHANISM_INVALID",
            "not supported by this Cryptoki",
        ]
        .iter()
        .any(|m| error.contains(m))
}

/// acquire (untimed, checked), a timed batch counted on the wire, release.
pub fn measure(bench: &Bench, worker: &mut Worker) -> Result<(Round, String), String> {
    measure_for(bench, worker, bench.settings.duration).map(|(r, t)| {
        let seen = t.per_op(r.ops);
        (r, seen)
    })
}

/// [`measure`] with a batch of `duration`, and what crossed the bus.
pub fn measure_for(
    bench: &Bench,
    worker: &mut Worker,
    duration: Duration,
) -> Result<(Round, Traffic), String> {
    worker.acquire()?;
    bench.traffic();
    let (ops, elapsed) = worker.run(duration)?;
    let traffic = bench.traffic();
    worker.release()?;
    Ok((
        Round {
            ops,
            seconds: elapsed.as_secs_f64(),
            commands: Some(traffic.total),
            ratio: None,
            limit_ratio: None,
            model_ms: traffic.model_ms,
            failures: 0,
        },
        traffic,
    ))
}
