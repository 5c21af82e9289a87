//! Start-up: TPM commands and milliseconds from process start to the first signature, one
//! fresh child process per sample (program start, library or provider load, key load,
//! login where the stack has one, and the signature).

use std::io::BufRead;
use std::time::Instant;

use crate::bench::{Bench, PERSISTENT_CONF, PERSISTENT_KEY_FILE};
use crate::operation::Op;
use crate::report::{join_notes, Kind, Round, Row, Table, Target};
use crate::subject::{self, Subject, KEY_FILE_VAR};
use crate::worker::parse_args;

/// `startup <subject> <op> <dir>`: first signature, "signed", then wait for stdin to close.
pub fn child(args: &[String]) -> Result<(), String> {
    let (subject, op, dir) = parse_args(args)?;
    let (mut operation, inputs) = subject.open(op, &dir)?;
    operation.acquire()?;
    let out = operation.once()?;
    println!("signed");
    inputs.check(&out)?;
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    operation.release()
}

pub struct Case {
    pub name: &'static str,
    pub subject: Subject,
    pub persistent_parent: bool,
    max_commands: Option<f64>,
    note: &'static str,
}

pub const CASES: [Case; 7] = [
    Case {
        name: "tpmkey core, objects=keep, session on",
        subject: subject::CORE,
        persistent_parent: false,
        max_commands: Some(5.0),
        note: "the floor under the provider's target",
    },
    Case {
        name: "tpmkey core, persistent storage key",
        subject: subject::CORE,
        persistent_parent: true,
        max_commands: Some(3.0),
        note: "the floor under the provider's target",
    },
    Case {
        name: "tpmkey provider",
        subject: subject::PROVIDER,
        persistent_parent: false,
        max_commands: Some(5.0),
        note: "",
    },
    Case {
        name: "tpmkey provider, persistent storage key",
        subject: subject::PROVIDER,
        persistent_parent: true,
        max_commands: Some(3.0),
        note: "",
    },
    Case {
        name: "tpm2-openssl 1.1.1",
        subject: subject::TPM2_OPENSSL,
        persistent_parent: false,
        max_commands: None,
        note: "reference: 8 cmds, 12 ms",
    },
    Case {
        name: "tpmkey pkcs11, C_Initialize + login + C_Sign",
        subject: subject::PKCS11,
        persistent_parent: false,
        max_commands: Some(8.0),
        note: "",
    },
    Case {
        name: "tpm2-pkcs11 1.9.0, C_Initialize + login + C_Sign",
        subject: subject::TPM2_PKCS11,
        persistent_parent: false,
        max_commands: None,
        note: "reference: 30-35 cmds, 26 ms",
    },
];

pub fn run(bench: &Bench) -> Table {
    let mut table = Table::new(
        "Start-up: process start to the first ECDSA P-256 signature",
        Kind::Latency,
        "",
    );
    let mut rows: Vec<(Row, String, Option<String>)> = CASES
        .iter()
        .map(|c| {
            let target = Target {
                max_commands: c.max_commands,
                ..Target::default()
            };
            let blocked = c.subject.unavailable(&bench.parts);
            let mut row = match &blocked {
                Some(reason) => Row::not_available(c.name, reason.clone()),
                None => Row::new(c.name, target),
            };
            row.peer = c.subject.is_peer();
            (row, String::new(), bench.token_error(c.subject))
        })
        .collect();
    for round in 0..bench.settings.rounds {
        eprintln!("  start-up round {}/{}", round + 1, bench.settings.rounds);
        for (case, (row, traffic, token_error)) in CASES.iter().zip(rows.iter_mut()) {
            if let Some(e) = token_error.take() {
                row.fail(e);
            }
            if !matches!(row.status, crate::report::Status::Ran) {
                continue;
            }
            let result = sample(bench, case);
            row.left(bench.check_leftovers());
            match result {
                Ok((r, t)) => {
                    row.rounds.push(r);
                    *traffic = t;
                }
                Err(e) => row.fail(format!("round {}: {e}", round + 1)),
            }
        }
    }
    for (case, (mut row, traffic, _)) in CASES.iter().zip(rows) {
        row.notes = join_notes([traffic.as_str(), case.note]);
        table.rows.push(row);
    }
    table
}

/// One fresh child to its first signature: wall time and what crossed the bus.
pub fn sample(bench: &Bench, case: &Case) -> Result<(Round, String), String> {
    let mut env = Vec::new();
    if case.persistent_parent {
        let conf = bench.work().join(PERSISTENT_CONF).display().to_string();
        env.push(("TPMKEY_CONF".to_string(), conf));
        env.push((KEY_FILE_VAR.to_string(), PERSISTENT_KEY_FILE.to_string()));
    }
    bench.traffic();
    let start = Instant::now();
    let mut child = bench.spawn("startup", case.subject, Op::EcdsaP256, &env)?;
    let reply = child.ask("")?;
    let elapsed = start.elapsed();
    let traffic = bench.traffic();
    if reply != "signed" {
        return Err(format!("unexpected reply \"{reply}\""));
    }
    drop(child);
    Ok(traffic.sample(elapsed))
}
