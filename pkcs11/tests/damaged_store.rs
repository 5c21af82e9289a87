//! A damaged store is reported, never hidden (issue 9, finding 8): a token whose description
//! is damaged keeps a slot that answers CKR_TOKEN_NOT_RECOGNIZED and is never initialised
//! over; a damaged object record makes C_FindObjectsInit fail with CKR_DEVICE_ERROR; each
//! is named (file and cause) in the module's log (standard error). A damaged `generation`
//! file is rewritten: finds and creations go on, and no call reports failure for a change
//! it made.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::*;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::types::AuthPin;

fn token_dir(store: &std::path::Path) -> PathBuf {
    std::fs::read_dir(store)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// Child role "list": lists the slots and what C_GetTokenInfo and C_InitToken say of each.
#[test]
fn list_slots() {
    if child_role().as_deref() != Some("list") {
        return;
    }
    let p = load();
    for slot in p.get_all_slots().unwrap() {
        match p.get_token_info(slot) {
            Ok(info) => println!(
                "slot {}: initialised {}",
                slot.id(),
                info.token_initialized()
            ),
            Err(e) => {
                let init = p.init_token(slot, &AuthPin::new(SO_PIN.into()), "over");
                println!(
                    "slot {}: {:?}, init {:?}",
                    slot.id(),
                    rv(e),
                    init.map_err(rv)
                );
            }
        }
    }
}

#[test]
fn a_damaged_token_keeps_its_slot_and_is_never_initialised_over() {
    let env = TestEnv::new("per-operation");
    drop(token_with_keys("mine"));
    let info = token_dir(&env.store.0).join("token");
    let text = std::fs::read(&info).unwrap();
    std::fs::write(&info, &text[..10]).unwrap();
    let out = child("list_slots", "list").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let slots: Vec<&str> = stdout.lines().filter(|l| l.starts_with("slot ")).collect();
    assert_eq!(slots.len(), 2, "{stdout}");
    assert!(
        slots
            .iter()
            .any(|l| l.ends_with("TokenNotRecognized, init Err(TokenNotRecognized)")),
        "{stdout}"
    );
    assert!(
        slots.iter().any(|l| l.ends_with("initialised false")),
        "{stdout}"
    );
    assert!(stderr.contains(&info.display().to_string()), "{stderr}");
    assert!(stderr.contains("no \"salt=\" line"), "{stderr}");
    // Nothing was written over the damaged token.
    assert_eq!(std::fs::read(&info).unwrap(), &text[..10]);
    assert_eq!(std::fs::read_dir(&env.store.0).unwrap().count(), 1);
}

/// Child role "find": logs in and searches the first token.
#[test]
fn find_in_token() {
    if child_role().as_deref() != Some("find") {
        return;
    }
    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    println!(
        "find: {:?}",
        s.find_objects(&[]).map(|v| v.len()).map_err(rv)
    );
}

#[test]
fn a_damaged_record_is_named_and_fails_the_search() {
    let env = TestEnv::new("per-operation");
    drop(token_with_keys("mine"));
    let record = token_dir(&env.store.0).join("objects").join("0abc.obj");
    std::fs::write(&record, b"garbage").unwrap();
    let out = child("find_in_token", "find").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("find: Err(DeviceError)"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains(&record.display().to_string()), "{stderr}");
    assert!(stderr.contains("shorter than its checksum"), "{stderr}");
}

#[test]
fn a_damaged_generation_file_is_rewritten() {
    let env = TestEnv::new("per-operation");
    drop(token_with_keys("mine"));
    let generation = token_dir(&env.store.0).join("generation");
    std::fs::write(&generation, b"not a number\n").unwrap();
    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    assert_eq!(s.find_objects(&[]).unwrap().len(), 4);
    std::fs::write(&generation, b"\xff\xfe").unwrap();
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Id(b"new".to_vec()),
    ])
    .unwrap();
    assert_eq!(s.find_objects(&[]).unwrap().len(), 5);
    let text = std::fs::read_to_string(&generation).unwrap();
    assert!(text.trim().parse::<u64>().is_ok(), "{text:?}");
}
