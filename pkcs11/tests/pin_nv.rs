//! PIN limits enforced by the TPM, against a real swtpm: each token's PINs are counted in
//! its own TPM_NT_PIN_FAIL NV indices, never in the TPM's dictionary-attack counter, so a
//! locked user PIN leaves the SO PIN and the machine's password-protected keys usable;
//! re-initialisation and removal leave no NV index behind (the TPM's own handle list
//! says so); a token made without PIN indices still works as before.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tpmkey_testenv::Swtpm;

fn login(p: &Pkcs11, slot: Slot, user: UserType, pin: &str) -> Result<(), RvError> {
    let s = p.open_rw_session(slot).unwrap();
    s.login(user, Some(&AuthPin::new(pin.into()))).map_err(rv)
}

/// The TPM's failure counter (TPM_PT_LOCKOUT_COUNTER).
fn tpm_failures(swtpm: &Swtpm) -> u32 {
    let out = swtpm.tpm2_tools_ok(["tpm2_getcap", "properties-variable"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("TPM2_PT_LOCKOUT_COUNTER:"))
        .unwrap_or_else(|| panic!("no lockout counter in:\n{text}"));
    u32::from_str_radix(value.trim().trim_start_matches("0x"), 16).unwrap()
}

/// The NV indices the TPM holds in the owner range (tpm2_getcap handles-nv-index).
fn owner_nv_indices(swtpm: &Swtpm) -> Vec<u32> {
    let out = swtpm.tpm2_tools_ok(["tpm2_getcap", "handles-nv-index"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("0x"))
        .filter_map(|h| u32::from_str_radix(h.trim(), 16).ok())
        .filter(|h| (0x0180_0000..0x01C0_0000).contains(h))
        .collect()
}

/// A sealed object with the password `pw`, dictionary-attack protected as the provider's
/// password-protected keys are, made with tpm2-tools in `dir`.
fn da_object(swtpm: &Swtpm, dir: &Path) {
    let f = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(dir.join("data"), b"machine secret").unwrap();
    // Every tool leaves its objects loaded; the module needs the TPM's few slots.
    let flush = || swtpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    swtpm.tpm2_tools_ok(["tpm2_createprimary", "-C", "o", "-c", &f("primary.ctx")]);
    flush();
    swtpm.tpm2_tools_ok([
        "tpm2_create",
        "-C",
        &f("primary.ctx"),
        "-p",
        "pw",
        "-i",
        &f("data"),
        "-u",
        &f("obj.pub"),
        "-r",
        &f("obj.priv"),
    ]);
    flush();
    swtpm.tpm2_tools_ok([
        "tpm2_load",
        "-C",
        &f("primary.ctx"),
        "-u",
        &f("obj.pub"),
        "-r",
        &f("obj.priv"),
        "-c",
        &f("obj.ctx"),
    ]);
    flush();
}

/// Unseals the object of [`da_object`] with `pw`: whether the TPM gave the data back.
fn unseal(swtpm: &Swtpm, dir: &Path, pw: &str) -> bool {
    let ctx = dir.join("obj.ctx");
    let out = swtpm.tpm2_tools(["tpm2_unseal", "-c", ctx.to_str().unwrap(), "-p", pw]);
    swtpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    out.status.success() && out.stdout == b"machine secret"
}

#[test]
fn wrong_pins_never_reach_the_tpms_dictionary_attack_counter() {
    let env = TestEnv::new("per-operation");
    // swtpm's defaults: locked out after 3 failures, one forgotten every 1000 s.
    env.swtpm.tpm2_tools_ok([
        "tpm2_dictionarylockout",
        "-s",
        "-n",
        "3",
        "-t",
        "1000",
        "-l",
        "1000",
    ]);
    let work = TempDir::new("da-object");
    da_object(&env.swtpm, &work.0);
    let p = load();
    let slot = init_token(&p, "counted");

    // The token's limit (3), counted by the TPM: incorrect, then locked even for the
    // right PIN.
    for _ in 0..3 {
        assert_eq!(
            login(&p, slot, UserType::User, "000000"),
            Err(RvError::PinIncorrect)
        );
    }
    let info = p.get_token_info(slot).unwrap();
    assert!(info.user_pin_locked() && !info.so_pin_count_low());
    assert_eq!(
        login(&p, slot, UserType::User, USER_PIN),
        Err(RvError::PinLocked)
    );
    // Still locked when the token's own record is gone: the TPM keeps the count.
    std::fs::remove_file(
        env.store
            .0
            .join(token_dir_name(&env.store.0))
            .join("pin-state"),
    )
    .unwrap();
    assert_eq!(
        login(&p, slot, UserType::User, USER_PIN),
        Err(RvError::PinLocked)
    );
    p.finalize().unwrap();
    assert_eq!(tpm_failures(&env.swtpm), 0, "the TPM's counter never moved");

    // The machine's password-protected keys work, and so does the SO PIN, which unlocks
    // the user PIN; the TPM's counter is still untouched.
    assert!(unseal(&env.swtpm, &work.0, "pw"));
    let p = load();
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .unwrap();
    s.init_pin(&AuthPin::new("new-user-pin".into())).unwrap();
    s.logout().unwrap();
    drop(s);
    login(&p, slot, UserType::User, "new-user-pin").unwrap();
    assert_eq!(
        login(&p, slot, UserType::User, USER_PIN),
        Err(RvError::PinIncorrect)
    );
    p.finalize().unwrap();
    assert_eq!(tpm_failures(&env.swtpm), 0);

    // A TPM in dictionary-attack lockout (another application's wrong passwords) refuses
    // the token's PIN object too, and the message says how the TPM recovers.
    for _ in 0..3 {
        assert!(!unseal(&env.swtpm, &work.0, "wrong"));
    }
    assert_eq!(tpm_failures(&env.swtpm), 3);
    let mut cmd = Command::new("pkcs11-tool");
    cmd.arg("--module")
        .arg(module_path())
        .args([
            "--token-label",
            "counted",
            "--login",
            "--pin",
            "new-user-pin",
        ])
        .arg("--list-objects");
    for (k, v) in env.vars() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        text.contains("CKR_PIN_LOCKED")
            && text.contains("dictionary-attack lockout")
            && text.contains("tpm2_dictionarylockout -c"),
        "{text}"
    );
}

/// The one token directory in `store`.
fn token_dir_name(store: &Path) -> String {
    std::fs::read_dir(store)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| !n.starts_with('.'))
        .unwrap()
}

#[test]
fn reinitialisation_and_removal_leave_no_nv_index() {
    let env = TestEnv::new("per-operation");
    assert!(owner_nv_indices(&env.swtpm).is_empty());
    let p = load();
    let slot = init_token(&p, "first");
    p.finalize().unwrap();
    let first = owner_nv_indices(&env.swtpm);
    assert_eq!(first.len(), 2, "an SO and a user index: {first:x?}");

    // C_InitToken over it: the old token's indices go, the new token has its SO index.
    let p = load();
    p.init_token(slot, &AuthPin::new(SO_PIN.into()), "second")
        .unwrap();
    p.finalize().unwrap();
    let second = owner_nv_indices(&env.swtpm);
    assert_eq!(second.len(), 1, "{second:x?}");
    assert!(second.iter().all(|h| !first.contains(h)));

    // C_InitPIN twice: the user index is replaced where it is, not added.
    let p = load();
    for pin in [USER_PIN, "other-pin"] {
        let s = p.open_rw_session(slot).unwrap();
        s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
            .unwrap();
        s.init_pin(&AuthPin::new(pin.into())).unwrap();
        s.logout().unwrap();
    }
    login(&p, slot, UserType::User, "other-pin").unwrap();
    p.finalize().unwrap();
    assert_eq!(owner_nv_indices(&env.swtpm).len(), 2);

    // Removal: the indices, then the directory.
    let serial = token_dir_name(&env.store.0);
    tpmkey::store::Store::new(&env.store.0)
        .remove_token(&serial)
        .unwrap();
    tpmkey::connection::shutdown();
    assert!(owner_nv_indices(&env.swtpm).is_empty());
    assert!(!env.store.0.join(&serial).exists());
}

/// Fills the TPM's NV memory with ordinary indices (in the platform-manufacturer range,
/// apart from the owner range the PIN indices use): big ones, then small ones.
fn fill_nv(swtpm: &Swtpm) -> Vec<String> {
    let mut defined = Vec::new();
    for size in ["2048", "128", "8"] {
        loop {
            let handle = format!("0x{:08x}", 0x0150_0000 + defined.len());
            let out = swtpm.tpm2_tools([
                "tpm2_nvdefine",
                &handle,
                "-C",
                "o",
                "-s",
                size,
                "-a",
                "ownerwrite|ownerread",
            ]);
            if !out.status.success() {
                break;
            }
            defined.push(handle);
        }
    }
    defined
}

/// A TPM whose NV memory is full gives a token no PIN index: it is made as tokens were
/// before PIN indices, counts wrong PINs in the TPM's dictionary-attack counter, and keeps
/// working once NV memory is free again.
#[test]
fn a_token_without_pin_indices_works_as_before() {
    let env = TestEnv::new("per-operation");
    let filler = fill_nv(&env.swtpm);
    assert!(!filler.is_empty());
    let p = load();
    let slot = init_token(&p, "previous");
    assert_eq!(
        login(&p, slot, UserType::User, "000000"),
        Err(RvError::PinIncorrect)
    );
    login(&p, slot, UserType::User, USER_PIN).unwrap();
    p.finalize().unwrap();
    assert_eq!(tpm_failures(&env.swtpm), 1, "the previous format's count");
    assert!(owner_nv_indices(&env.swtpm).is_empty());
    for handle in &filler {
        env.swtpm
            .tpm2_tools_ok(["tpm2_nvundefine", handle.as_str(), "-C", "o"]);
    }

    // NV memory free again: the token keeps its format, and logs in.
    let p = load();
    login(&p, slot, UserType::User, USER_PIN).unwrap();
    login(&p, slot, UserType::So, SO_PIN).unwrap();
    let info = p.get_token_info(slot).unwrap();
    assert!(!info.user_pin_count_low() && !info.so_pin_count_low());
    p.finalize().unwrap();
    assert!(owner_nv_indices(&env.swtpm).is_empty());
}
