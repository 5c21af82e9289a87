//! kill -9 in the middle of C_GenerateKeyPair / C_CreateObject loops, 20 times: the store
//! still opens, lists every object the killed writer reported created, and holds no half
//! objects (a public key without its private key or the reverse, a record without its
//! key or sealed file, a file that does not decode).
//!
//! Then deterministically: the writer killed by strace's fault injection at its n-th
//! rename (a file about to be committed) and at its n-th fsync (a temporary file written
//! but not yet durable, or a rename not yet durable), for every n over its first writes:
//! each write site of the store once, since the same n hits the same site every time.
//!
//! The writer is this test binary again in a child role (see `common::child`): it creates
//! EC key pairs, public data objects and private (TPM-sealed) data objects in a loop and
//! prints each CKA_ID once the call returned, flushing stdout. Without a resource manager
//! a killed process's TPM objects and sessions stay in the TPM; between rounds the test
//! flushes them with tpm2_flushcontext, as an administrator would (behind tpm2-abrmd or
//! /dev/tpmrm0 that happens by itself).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use tpmkey::store::Record;
use tpmkey::KeyFile;

const ROUNDS: usize = 20;
const P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// Child role "writer": creates objects until killed.
#[test]
fn writer() {
    if child_role().is_none() {
        return;
    }
    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for i in 0u64.. {
        let id = format!("{}-{i}", std::process::id()).into_bytes();
        let kind = match i % 3 {
            0 => {
                s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &[
                        Attribute::Token(true),
                        Attribute::EcParams(P256.to_vec()),
                        Attribute::Id(id.clone()),
                    ],
                    &[Attribute::Token(true), Attribute::Id(id.clone())],
                )
                .unwrap();
                "pair"
            }
            1 => {
                s.create_object(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Id(id.clone()),
                    Attribute::Value(vec![0xa5; 2000]),
                ])
                .unwrap();
                "data"
            }
            _ => {
                s.create_object(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Id(id.clone()),
                    Attribute::Value(vec![0x5a; 64]),
                ])
                .unwrap();
                "sealed"
            }
        };
        writeln!(out, "created {kind} {}", String::from_utf8(id).unwrap()).unwrap();
        out.flush().unwrap();
    }
}

/// A pseudo-random delay (the clock's nanoseconds) so kills land at varied moments.
fn random_delay(max_ms: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Duration::from_millis(20 + u64::from(nanos) % max_ms)
}

/// How a writer dies.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// SIGKILL after a random delay once it is logged in.
    AfterDelay,
    /// SIGKILL (strace fault injection) instead of its n-th call of one of `syscalls`.
    AtSyscall(&'static str, usize),
}

/// The writer child, run under strace when it is to die at a system call.
fn writer_command(kill: Kill) -> std::process::Command {
    let direct = child("writer", "writer");
    let Kill::AtSyscall(syscalls, n) = kill else {
        return direct;
    };
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null"])
        .args(["-e", &format!("trace={syscalls}")])
        .args(["-e", &format!("inject={syscalls}:signal=SIGKILL:when={n}")])
        .arg(direct.get_program())
        .args(direct.get_args());
    for (k, v) in direct.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd
}

/// Whether strace's tracee died of SIGKILL: strace then dies of it too (or exits 128 + 9);
/// strace's own failure exits 1.
fn killed(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9) || status.code() == Some(137)
}

/// Runs a writer, kills it as `kill` says, and returns what it reported created:
/// (kind, CKA_ID).
fn kill_a_writer(kill: Kill) -> Vec<(String, String)> {
    let mut writer = writer_command(kill)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    // The harness prints its own lines first.
    let ready = lines.by_ref().map_while(|l| l.ok()).any(|l| l == "ready");
    if !ready && matches!(kill, Kill::AtSyscall(..)) {
        // Killed at a write of C_Initialize or C_Login (the storage key's pin, say).
        let status = writer.wait().unwrap();
        assert!(
            killed(status),
            "{kill:?}: the writer did not start ({status})"
        );
        return Vec::new();
    }
    assert!(ready, "the writer did not start");
    let reader = std::thread::spawn(move || {
        lines
            .map_while(|l| l.ok())
            .filter_map(|l| {
                let mut words = l.strip_prefix("created ")?.split(' ');
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .collect::<Vec<_>>()
    });
    match kill {
        Kill::AfterDelay => {
            std::thread::sleep(random_delay(250));
            writer.kill().unwrap(); // SIGKILL
            writer.wait().unwrap();
        }
        Kill::AtSyscall(..) => {
            let status = writer.wait().unwrap();
            assert!(
                killed(status),
                "{kill:?}: the writer was not killed ({status})"
            );
        }
    }
    reader.join().unwrap()
}

fn objects_dir(store: &Path) -> PathBuf {
    let token = std::fs::read_dir(store).unwrap().next().unwrap().unwrap();
    token.path().join("objects")
}

/// Every committed record decodes and has its companion files, which decode too. Returns
/// the leftovers of killed writers (temporary and orphaned companion files): invisible,
/// removed by the next writer.
fn check_files(dir: &Path) -> Vec<String> {
    let names: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut leftovers = Vec::new();
    for name in &names {
        let path = dir.join(name);
        if let Some(uid) = name.strip_suffix(".obj") {
            let record = Record::decode(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            for (has, ext) in [(record.has_key, "key"), (record.has_sealed, "sealed")] {
                if has {
                    let companion = dir.join(format!("{uid}.{ext}"));
                    let pem = std::fs::read(&companion)
                        .unwrap_or_else(|e| panic!("{name} without its .{ext} file: {e}"));
                    KeyFile::from_pem(&pem).unwrap_or_else(|e| panic!("{uid}.{ext}: {e}"));
                }
            }
            if record.has_key {
                assert_eq!(record.parts.len(), 2, "{name}: a key pair record");
                assert!(
                    record.parts.iter().all(|p| !p.is_empty()),
                    "{name}: half a pair"
                );
            }
        } else {
            let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
            if !names.contains(&format!("{stem}.obj")) {
                leftovers.push(name.clone());
            }
        }
    }
    leftovers
}

/// Through the module: every reported object is there, every key pair is whole, and the
/// values of data objects not `checked` before read back (sealed ones through the TPM).
fn check_objects(reported: &BTreeSet<(String, String)>, checked: &mut BTreeSet<String>) {
    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut publics = BTreeSet::new();
    let mut privates = BTreeSet::new();
    for h in s.find_objects(&[]).unwrap() {
        let attrs = s
            .get_attributes(
                h,
                &[
                    AttributeType::Class,
                    AttributeType::Id,
                    AttributeType::Private,
                ],
            )
            .unwrap();
        let (mut class, mut id, mut private) = (None, None, false);
        for a in attrs {
            match a {
                Attribute::Class(c) => class = Some(c),
                Attribute::Id(v) => id = Some(String::from_utf8(v).unwrap()),
                Attribute::Private(p) => private = p,
                _ => {}
            }
        }
        let id = id.unwrap();
        match class.unwrap() {
            ObjectClass::PUBLIC_KEY => {
                publics.insert(id.clone());
            }
            ObjectClass::PRIVATE_KEY => {
                privates.insert(id.clone());
                seen.insert(("pair".into(), id));
            }
            ObjectClass::DATA => {
                let kind = if private { "sealed" } else { "data" };
                if checked.insert(id.clone()) {
                    let value = s.get_attributes(h, &[AttributeType::Value]).unwrap();
                    let expected = if private {
                        vec![0x5a; 64]
                    } else {
                        vec![0xa5; 2000]
                    };
                    assert!(
                        matches!(&value[..], [Attribute::Value(v)] if *v == expected),
                        "{kind} object {id}: wrong value"
                    );
                }
                seen.insert((kind.into(), id));
            }
            other => panic!("unexpected object class {other}"),
        }
    }
    assert_eq!(publics, privates, "key pairs with a half missing");
    let missing: Vec<_> = reported.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "reported created but not in the store: {missing:?}"
    );
    drop(s);
    p.finalize().unwrap();
}

#[test]
fn kill_9_during_generate_and_create_leaves_a_whole_store() {
    let env = TestEnv::new("per-operation");
    token_with_keys("kill");
    let mut reported = BTreeSet::new();
    let mut leftovers = 0;
    let mut checked = BTreeSet::new();
    for _ in 0..ROUNDS {
        let created = kill_a_writer(Kill::AfterDelay);
        reported.extend(created);
        tpmkey_testenv::flush_leftovers(&env.swtpm);
        leftovers += check_files(&objects_dir(&env.store.0)).len();
        check_objects(&reported, &mut checked);
    }
    eprintln!(
        "{} objects reported created in {ROUNDS} killed writers; {leftovers} leftover files seen",
        reported.len()
    );
    // The next writer removes what killed writers left.
    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label("after".into()),
    ])
    .unwrap();
    assert_eq!(
        check_files(&objects_dir(&env.store.0)),
        Vec::<String>::new()
    );
}

/// Renames (and fsyncs) a writer does over its first objects: enough to reach every write
/// site of a key pair, a public data object and a sealed data object twice.
const WRITE_SITES: usize = 12;

#[test]
fn kill_9_at_every_write_site_leaves_a_whole_store() {
    let env = TestEnv::new("per-operation");
    token_with_keys("sites");
    let mut reported = BTreeSet::new();
    let mut checked = BTreeSet::new();
    let mut killed = 0;
    let mut before_ready = 0;
    for syscalls in ["rename,renameat,renameat2", "fsync,fdatasync"] {
        for n in 1..=WRITE_SITES {
            let created = kill_a_writer(Kill::AtSyscall(syscalls, n));
            killed += 1;
            before_ready += usize::from(created.is_empty());
            reported.extend(created);
            tpmkey_testenv::fault_matrix::flush_leftovers(&env.swtpm);
            check_files(&objects_dir(&env.store.0));
            check_objects(&reported, &mut checked);
        }
    }
    eprintln!(
        "{killed} writers killed at a rename or fsync ({before_ready} before their first \
         object); {} objects reported created",
        reported.len()
    );
}
