//! Token scale: C_Initialize and C_FindObjects through the tpmkey module on a token holding
//! 10 and one holding 1,000 objects (public data objects, made once through the module with
//! C_CreateObject: cheap, unlike key pairs). Each token has a store directory of its own;
//! the 1,000-object rows are compared with the 10-object rows of the same round.

use std::path::PathBuf;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::Session;

use crate::bench::Bench;
use crate::operation::Output;
use crate::report::{join_notes, ratios_to_first, Kind, Row, Table, Target};
use crate::subject;
use crate::token::{initialise, log_in, open, p11, TokenStack};
use crate::worker::{serve_operation, Operation, Worker};

const SIZES: [usize; 2] = [10, 1000];

/// The label of the `i`th object of a token.
fn label(i: usize) -> Vec<u8> {
    format!("object-{i}").into_bytes()
}

/// What a row times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// C_Initialize, C_GetSlotList (what every application calls next), C_Finalize.
    Initialize,
    /// C_FindObjectsInit (one label), C_FindObjects, C_FindObjectsFinal, logged in.
    FindObjects,
}

impl Call {
    fn id(self) -> &'static str {
        match self {
            Call::Initialize => "initialize",
            Call::FindObjects => "find",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Call::Initialize => "C_Initialize + C_GetSlotList + C_Finalize",
            Call::FindObjects => "C_FindObjects by CKA_LABEL (Init, Find, Final), logged in",
        }
    }

    fn parse(s: &str) -> Result<Call, String> {
        [Call::Initialize, Call::FindObjects]
            .into_iter()
            .find(|c| c.id() == s)
            .ok_or_else(|| format!("unknown call \"{s}\""))
    }
}

/// `token-fill <count>`: initialises the token of TPMKEY_STORE and creates `count` public
/// data objects in it.
pub fn fill(args: &[String]) -> Result<(), String> {
    let [count] = args else {
        return Err(format!("token-fill: expected <count>, got {args:?}"));
    };
    let count: usize = count.parse().map_err(|_| format!("bad count {count}"))?;
    let pkcs11 = open(&TokenStack::Tpmkey.module()?)?;
    initialise(&pkcs11)?;
    let session = log_in(&pkcs11)?;
    for i in 0..count {
        session
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Label(label(i)),
                Attribute::Application(b"tpmkey-bench".to_vec()),
                Attribute::Value(format!("value {i}").into_bytes()),
            ])
            .map_err(p11("C_CreateObject"))?;
    }
    drop(session);
    pkcs11.finalize().map_err(p11("C_Finalize"))?;
    println!("ok");
    Ok(())
}

struct ScaleOperation {
    call: Call,
    /// The object C_FindObjects looks for: the middle one.
    wanted: usize,
    pkcs11: Option<Pkcs11>,
    session: Option<Session>,
}

impl Operation for ScaleOperation {
    fn acquire(&mut self) -> Result<(), String> {
        let module = TokenStack::Tpmkey.module()?;
        match self.call {
            Call::Initialize => {
                self.pkcs11 = Some(Pkcs11::new(module).map_err(p11("loading the module"))?);
            }
            Call::FindObjects => {
                let pkcs11 = open(&module)?;
                self.session = Some(log_in(&pkcs11)?);
                self.pkcs11 = Some(pkcs11);
            }
        }
        Ok(())
    }

    fn once(&mut self) -> Result<Output, String> {
        let pkcs11 = self.pkcs11.as_ref().ok_or("module not loaded")?;
        match self.call {
            Call::Initialize => {
                pkcs11
                    .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
                    .map_err(p11("C_Initialize"))?;
                let slots = pkcs11.get_slots_with_token();
                // A clone shares the loaded library: C_Finalize without unloading it.
                pkcs11.clone().finalize().map_err(p11("C_Finalize"))?;
                Ok(Output::Count(slots.map_err(p11("C_GetSlotList"))?.len()))
            }
            Call::FindObjects => {
                let session = self.session.as_ref().ok_or("not logged in")?;
                let found = session
                    .find_objects(&[
                        Attribute::Class(ObjectClass::DATA),
                        Attribute::Label(label(self.wanted)),
                    ])
                    .map_err(p11("C_FindObjects"))?;
                Ok(Output::Count(found.len()))
            }
        }
    }

    fn release(&mut self) -> Result<(), String> {
        if let Some(session) = self.session.take() {
            let _ = session.logout();
        }
        if let Some(pkcs11) = self.pkcs11.take() {
            if self.call == Call::FindObjects {
                pkcs11.finalize().map_err(p11("C_Finalize"))?;
            }
        }
        Ok(())
    }
}

/// `token-scale <call> <count>`: a row worker (see worker.rs) for `call` on the token of
/// TPMKEY_STORE, which holds `count` objects.
pub fn child(args: &[String]) -> Result<(), String> {
    let [call, count] = args else {
        return Err(format!(
            "token-scale: expected <call> <count>, got {args:?}"
        ));
    };
    let call = Call::parse(call)?;
    let count: usize = count.parse().map_err(|_| format!("bad count {count}"))?;
    let operation = ScaleOperation {
        call,
        wanted: count / 2,
        pkcs11: None,
        session: None,
    };
    serve_operation(Box::new(operation), &move |out| match (call, out) {
        // The module lists our token and an empty slot for the next one.
        (Call::Initialize, Output::Count(n)) if *n >= 1 => Ok(()),
        (Call::FindObjects, Output::Count(1)) => Ok(()),
        (Call::Initialize, Output::Count(_)) => Err("no slot with a token".into()),
        (Call::FindObjects, Output::Count(n)) => Err(format!("found {n} objects, not 1")),
        (_, other) => Err(format!("unexpected {other:?}")),
    })
}

fn store(bench: &Bench, count: usize) -> PathBuf {
    bench.work().join(format!("scale-store-{count}"))
}

fn env(bench: &Bench, count: usize) -> Vec<(String, String)> {
    let mut env = bench.env(subject::PKCS11);
    env.retain(|(k, _)| k != "TPMKEY_STORE");
    env.push((
        "TPMKEY_STORE".into(),
        store(bench, count).display().to_string(),
    ));
    env
}

/// Makes the token of `count` objects.
fn make_token(bench: &Bench, count: usize) -> Result<(), String> {
    let dir = store(bench, count);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = bench.work().join(format!("token-fill-{count}.log"));
    let result = Worker::spawn(
        "token-fill",
        &[&count.to_string()],
        &env(bench, count),
        &log,
    )
    .and_then(|mut w| w.ask(""));
    bench.flush_leftovers();
    result.map(drop)
}

struct Live {
    call: Call,
    row: Row,
    worker: Option<Worker>,
    traffic: String,
}

pub fn run(bench: &Bench) -> Table {
    let mut table = Table::new(
        "Token scale: the tpmkey module with 10 and with 1,000 objects in a token",
        Kind::Rate,
        "10 objects, same call",
    );
    let made = match &bench.parts.pkcs11 {
        Some(reason) => Err(reason.clone()),
        None => SIZES
            .into_iter()
            .try_for_each(|n| make_token(bench, n).map_err(|e| format!("making the token: {e}"))),
    };
    let mut live = Vec::new();
    for call in [Call::Initialize, Call::FindObjects] {
        for count in SIZES {
            let name = format!("{}, {count} objects", call.label());
            let target = Target {
                min_ratio: (count > SIZES[0]).then_some(0.9),
                ..Target::default()
            };
            let mut row = match &bench.parts.pkcs11 {
                Some(reason) => Row::not_available(name, reason.clone()),
                None => Row::new(name, target),
            };
            let log = bench
                .work()
                .join(format!("token-scale-{}-{count}.log", call.id()));
            let worker = made.clone().and_then(|()| {
                let args = [call.id(), &count.to_string()];
                Worker::spawn("token-scale", &args, &env(bench, count), &log)
            });
            let worker = worker.map_err(|e| row.fail(e)).ok();
            live.push(Live {
                call,
                row,
                worker,
                traffic: String::new(),
            });
        }
    }
    for round in 0..bench.settings.rounds {
        eprintln!(
            "  token scale round {}/{}",
            round + 1,
            bench.settings.rounds
        );
        for l in live.iter_mut() {
            let Some(worker) = l.worker.as_mut() else {
                continue;
            };
            let result = crate::throughput::measure(bench, worker);
            l.row.left(bench.check_leftovers());
            match result {
                Ok((r, traffic)) => {
                    l.traffic = traffic;
                    l.row.rounds.push(r);
                }
                Err(e) => {
                    l.row.fail(format!("round {}: {e}", round + 1));
                    l.worker = None;
                }
            }
        }
        for call in [Call::Initialize, Call::FindObjects] {
            // SIZES[0] comes first in each call's rows: the baseline.
            let mut rows: Vec<&mut Row> = live
                .iter_mut()
                .filter(|l| l.call == call)
                .map(|l| &mut l.row)
                .collect();
            ratios_to_first(&mut rows, round);
        }
    }
    for l in live {
        let mut row = l.row;
        let ms = row.median_ms().map(|m| format!("{:.3} ms per call", m));
        row.notes = join_notes([ms.unwrap_or_default(), l.traffic]);
        table.rows.push(row);
    }
    table
}
