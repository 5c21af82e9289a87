//! PIN state per token and lockout recovery, against a real swtpm: the PIN flags count this
//! token's wrong PINs since its last successful login; each token's PINs are counted in its
//! own TPM_NT_PIN_FAIL NV indices, never in the TPM's dictionary-attack counter, so a
//! locked user PIN leaves the SO PIN and the machine's password-protected keys usable; the
//! SO resets a locked user PIN; an attacker who restores the store gets no more than the
//! token's limit; a TPM lockout names its recovery; re-initialisation and removal leave no
//! NV index behind (the TPM's own handle list says so); a token made without PIN indices
//! works as before.

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
use tpmkey_testenv::{owner_nv_indices, Swtpm};

fn login(p: &Pkcs11, slot: Slot, user: UserType, pin: &str) -> Result<(), RvError> {
    let s = p.open_rw_session(slot).unwrap();
    s.login(user, Some(&AuthPin::new(pin.into()))).map_err(rv)
}

/// C_InitPIN by the SO (C_Login as SO, C_InitPIN, C_Logout).
fn so_sets_user_pin(p: &Pkcs11, slot: Slot, pin: &str) {
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .unwrap();
    s.init_pin(&AuthPin::new(pin.into())).unwrap();
    s.logout().unwrap();
}

/// (count low, final try, locked) of the user PIN, then of the SO PIN.
fn flags(p: &Pkcs11, slot: Slot) -> [(bool, bool, bool); 2] {
    let i = p.get_token_info(slot).unwrap();
    [
        (
            i.user_pin_count_low(),
            i.user_pin_final_try(),
            i.user_pin_locked(),
        ),
        (
            i.so_pin_count_low(),
            i.so_pin_final_try(),
            i.so_pin_locked(),
        ),
    ]
}

const CLEAR: (bool, bool, bool) = (false, false, false);

/// Sets the TPM's dictionary-attack parameters (no module may hold the TPM meanwhile).
fn dictionary_attack(env: &TestEnv, max_tries: u32, interval: u32) {
    env.swtpm.tpm2_tools_ok([
        "tpm2_dictionarylockout",
        "-s",
        "-n",
        &max_tries.to_string(),
        "-t",
        &interval.to_string(),
        "-l",
        "1000",
    ]);
}

/// The TPM's failure counter (TPM_PT_LOCKOUT_COUNTER).
fn tpm_failures(env: &TestEnv) -> u32 {
    let out = env
        .swtpm
        .tpm2_tools_ok(["tpm2_getcap", "properties-variable"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("TPM2_PT_LOCKOUT_COUNTER:"))
        .unwrap_or_else(|| panic!("no lockout counter in:\n{text}"));
    u32::from_str_radix(value.trim().trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn pin_flags_count_this_tokens_wrong_pins_since_its_last_login() {
    let _env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "flags");
    let other = init_token(&p, "other");
    assert_eq!(flags(&p, slot), [CLEAR, CLEAR]);

    // Another token's wrong PIN moves the TPM's counter, not this token's flags.
    assert_eq!(
        login(&p, other, UserType::User, "000000"),
        Err(RvError::PinIncorrect)
    );
    assert_eq!(flags(&p, slot), [CLEAR, CLEAR]);
    assert_eq!(flags(&p, other)[0], (true, false, false));

    // A wrong PIN, then the right one: the count is cleared by the success.
    assert_eq!(
        login(&p, slot, UserType::User, "000000"),
        Err(RvError::PinIncorrect)
    );
    assert_eq!(flags(&p, slot), [(true, false, false), CLEAR]);
    login(&p, slot, UserType::User, USER_PIN).unwrap();
    assert_eq!(flags(&p, slot), [CLEAR, CLEAR]);

    // Three wrong PINs (the token's limit): low, final try, locked; the right PIN is then
    // refused without a TPM check, and the SO PIN is untouched.
    for expected in [
        (true, false, false),
        (true, true, false),
        (false, false, true),
    ] {
        assert_eq!(
            login(&p, slot, UserType::User, "000000"),
            Err(RvError::PinIncorrect)
        );
        assert_eq!(flags(&p, slot), [expected, CLEAR]);
    }
    assert_eq!(
        login(&p, slot, UserType::User, USER_PIN),
        Err(RvError::PinLocked)
    );

    // A wrong SO PIN counts for the SO only.
    assert_eq!(
        login(&p, slot, UserType::So, "wrong-so"),
        Err(RvError::PinIncorrect)
    );
    assert_eq!(
        flags(&p, slot),
        [(false, false, true), (true, false, false)]
    );

    // The SO sets a new user PIN: the user PIN is unlocked, and the SO's success clears
    // the SO's count.
    so_sets_user_pin(&p, slot, "new-user-pin");
    assert_eq!(flags(&p, slot), [CLEAR, CLEAR]);
    login(&p, slot, UserType::User, "new-user-pin").unwrap();

    // The state is the token's, in the store: a new C_Initialize sees it.
    assert_eq!(
        login(&p, slot, UserType::User, "000000"),
        Err(RvError::PinIncorrect)
    );
    p.finalize().unwrap();
    let p = load();
    assert_eq!(flags(&p, slot), [(true, false, false), CLEAR]);
}

/// pkcs11-tool logging in to the token `label` with `pin` in its own process, which must
/// fail: its standard error (the module logs there).
fn failed_tool_login(env: &TestEnv, label: &str, pin: &str) -> String {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.arg("--module").arg(module_path()).args([
        "--token-label",
        label,
        "--login",
        "--pin",
        pin,
        "--list-objects",
    ]);
    for (k, v) in env.vars() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// An attacker who restores the store before every guess resets the token's file, not its
/// PIN index: the TPM stops them after the token's limit (3; the TPM's own budget is 4
/// here, and untouched), and the message says the TPM refused.
#[test]
fn an_attacker_restoring_the_store_gets_the_tokens_limit() {
    let env = TestEnv::new("per-operation");
    dictionary_attack(&env, 4, 1000);
    let p = load();
    init_token(&p, "attacked");
    p.finalize().unwrap();
    let copy = TempDir::new("store-copy");
    let saved = copy.0.join("store");
    copy_dir(&env.store.0, &saved);

    let mut wrong = 0;
    let mut locked_message = None;
    for guess in 0..10 {
        std::fs::remove_dir_all(&env.store.0).unwrap();
        copy_dir(&saved, &env.store.0);
        let text = failed_tool_login(&env, "attacked", &format!("guess-{guess}"));
        if text.contains("CKR_PIN_INCORRECT") {
            wrong += 1;
        } else {
            assert!(text.contains("CKR_PIN_LOCKED"), "{text}");
            locked_message = Some(text);
        }
    }
    assert_eq!(
        wrong, 3,
        "the TPM allowed exactly the token's limit of wrong PINs"
    );
    let text = locked_message.unwrap();
    assert!(text.contains("the TPM refuses it"), "{text}");
    // Even the right PIN is refused now, with the restored store, and the TPM's own
    // counter has not moved.
    std::fs::remove_dir_all(&env.store.0).unwrap();
    copy_dir(&saved, &env.store.0);
    let p = load();
    let slot = token_slots(&p)[0];
    assert_eq!(
        login(&p, slot, UserType::User, USER_PIN),
        Err(RvError::PinLocked)
    );
    p.finalize().unwrap();
    assert_eq!(tpm_failures(&env), 0);
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
    dictionary_attack(&env, 3, 1000);
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
    assert_eq!(tpm_failures(&env), 0, "the TPM's counter never moved");

    // The machine's password-protected keys work, and so does the SO PIN, which unlocks
    // the user PIN; the TPM's counter is still untouched.
    assert!(unseal(&env.swtpm, &work.0, "pw"));
    let p = load();
    so_sets_user_pin(&p, slot, "new-user-pin");
    login(&p, slot, UserType::User, "new-user-pin").unwrap();
    assert_eq!(
        login(&p, slot, UserType::User, USER_PIN),
        Err(RvError::PinIncorrect)
    );
    p.finalize().unwrap();
    assert_eq!(tpm_failures(&env), 0);

    // A TPM in dictionary-attack lockout (another application's wrong passwords) refuses
    // the token's PIN object too, and the message says how the TPM recovers.
    for _ in 0..3 {
        assert!(!unseal(&env.swtpm, &work.0, "wrong"));
    }
    assert_eq!(tpm_failures(&env), 3);
    let text = failed_tool_login(&env, "counted", "new-user-pin");
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
    assert_eq!(
        first.len(),
        4,
        "a PIN index and a secret index for the SO and for the user: {first:x?}"
    );

    // C_InitToken over it: the old token's indices go, the new token has its SO indices.
    let p = load();
    p.init_token(slot, &AuthPin::new(SO_PIN.into()), "second")
        .unwrap();
    p.finalize().unwrap();
    let second = owner_nv_indices(&env.swtpm);
    assert_eq!(second.len(), 2, "{second:x?}");
    assert!(second.iter().all(|h| !first.contains(h)));

    // C_InitPIN twice: the user indices are replaced where they are, not added.
    let p = load();
    for pin in [USER_PIN, "other-pin"] {
        so_sets_user_pin(&p, slot, pin);
    }
    login(&p, slot, UserType::User, "other-pin").unwrap();
    p.finalize().unwrap();
    let third = owner_nv_indices(&env.swtpm);
    assert_eq!(third.len(), 4, "{third:x?}");
    assert!(second.iter().all(|h| third.contains(h)));

    // Removal: the indices, then the directory.
    remove_the_token_and_check(&env);
}

/// Removes the one token of the store (`Store::remove_token`, as `tpmkey token rm` does):
/// no NV index of the owner range and no token directory is left.
fn remove_the_token_and_check(env: &TestEnv) {
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
    assert_eq!(tpm_failures(&env), 1, "the previous format's count");
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

/// Ordinary owner NV indices (in the platform-manufacturer range, apart from the owner
/// range of the token's indices) that take the TPM's NV memory.
struct NvFiller<'a> {
    swtpm: &'a Swtpm,
    defined: Vec<String>,
    next: u32,
}

impl<'a> NvFiller<'a> {
    fn new(swtpm: &'a Swtpm) -> NvFiller<'a> {
        NvFiller {
            swtpm,
            defined: Vec::new(),
            next: 0x0150_0000,
        }
    }

    /// Defines an index of `size` bytes: whether the TPM had room.
    fn add(&mut self, size: u32) -> bool {
        let handle = format!("0x{:08x}", self.next);
        let out = self.swtpm.tpm2_tools([
            "tpm2_nvdefine",
            &handle,
            "-C",
            "o",
            "-s",
            &size.to_string(),
            "-a",
            "ownerwrite|ownerread",
        ]);
        if out.status.success() {
            self.next += 1;
            self.defined.push(handle);
        }
        out.status.success()
    }

    fn remove_last(&mut self) {
        let handle = self.defined.pop().unwrap();
        self.swtpm
            .tpm2_tools_ok(["tpm2_nvundefine", handle.as_str(), "-C", "o"]);
    }

    /// The largest index (1 to 2048 bytes) the TPM has room for now, if any.
    fn largest_fit(&mut self) -> Option<u32> {
        let fits = |f: &mut Self, size: u32| {
            let ok = f.add(size);
            if ok {
                f.remove_last();
            }
            ok
        };
        if !fits(self, 1) {
            return None;
        }
        let (mut low, mut high) = (1, 2049);
        while high - low > 1 {
            let mid = (low + high) / 2;
            if fits(self, mid) {
                low = mid;
            } else {
                high = mid;
            }
        }
        Some(low)
    }

    fn remove_all(&mut self) {
        while !self.defined.is_empty() {
            self.remove_last();
        }
    }
}

/// A TPM whose NV memory has room for a PIN index (8 bytes) but not for a secret index
/// (32 bytes) makes the PINs of a new token as tokens were made before secret indices: the
/// token secret in a PIN object checked by a PIN index. Such a token (the form of every
/// token made before secret indices) keeps logging in, with the PIN object, once the
/// TPM has room again; a PIN set on it then takes the secret-index form.
#[test]
fn a_token_with_pin_objects_and_pin_indices_keeps_working() {
    let env = TestEnv::new("per-operation");
    let mut nv = NvFiller::new(&env.swtpm);
    while nv.add(2048) {}
    // Room for less than 2048 bytes, and more than 2048 - 256 - overhead (each index costs
    // its data plus a fixed overhead, measured with a 100-byte one).
    nv.remove_last();
    while nv.largest_fit() == Some(2048) {
        assert!(nv.add(256));
    }
    let before = nv.largest_fit().unwrap();
    assert!(nv.add(100));
    let room = nv.largest_fit().unwrap();
    let overhead = before - room - 100;
    eprintln!("NV: room for {room} bytes, {overhead} bytes per index");
    // Room for two PIN indices of 8 bytes and less than 32 after the first: the largest
    // fit made overhead + 28 by one more index.
    let adjust = room - overhead - (overhead + 28);
    assert!(nv.add(adjust));
    assert_eq!(
        nv.largest_fit(),
        Some(overhead + 28),
        "NV room after the adjustment"
    );

    let p = load();
    let slot = init_token(&p, "pin-objects");
    login(&p, slot, UserType::User, USER_PIN).unwrap();
    p.finalize().unwrap();
    let store = env.store.0.join(token_dir_name(&env.store.0));
    for file in ["so-pin.tss", "user-pin.tss"] {
        let text = std::fs::read_to_string(store.join(file)).unwrap();
        assert!(text.contains("-----BEGIN TSS2 PRIVATE KEY-----"), "{text}");
    }
    assert_eq!(owner_nv_indices(&env.swtpm).len(), 2, "two PIN indices");
    nv.remove_all();

    // Room again: the PIN objects keep working, their PIN indices still count.
    let p = load();
    login(&p, slot, UserType::User, USER_PIN).unwrap();
    login(&p, slot, UserType::So, SO_PIN).unwrap();
    assert_eq!(
        login(&p, slot, UserType::User, "000000"),
        Err(RvError::PinIncorrect)
    );
    assert_eq!(flags(&p, slot)[0], (true, false, false));
    login(&p, slot, UserType::User, USER_PIN).unwrap();
    // A new user PIN takes the secret-index form, at the same PIN index.
    so_sets_user_pin(&p, slot, "new-user-pin");
    login(&p, slot, UserType::User, "new-user-pin").unwrap();
    p.finalize().unwrap();
    let user = std::fs::read_to_string(store.join("user-pin.tss")).unwrap();
    assert!(user.contains("secret-index="), "{user}");
    assert_eq!(owner_nv_indices(&env.swtpm).len(), 3);
    assert_eq!(tpm_failures(&env), 0);

    // Removal deletes the indices of both forms.
    remove_the_token_and_check(&env);
}

/// The secret index the user's PIN file of the token in `store` names.
fn user_secret_index(store: &Path) -> String {
    let text =
        std::fs::read_to_string(store.join(token_dir_name(store)).join("user-pin.tss")).unwrap();
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("secret-index="))
        .unwrap_or_else(|| panic!("no secret index in:\n{text}"));
    format!("0x{hex}")
}

/// A secret index replaced at its handle by one of another public area (whoever holds the
/// owner hierarchy's authorisation can delete and define indices): its Name is not the one
/// the token computes, so the TPM refuses the read. The login fails naming the secret
/// index, never as a wrong PIN: no count in the token, its PIN index or the TPM.
#[test]
fn a_replaced_secret_index_is_named_never_a_wrong_pin() {
    let env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "replaced");
    p.finalize().unwrap();
    let handle = user_secret_index(&env.store.0);
    env.swtpm
        .tpm2_tools_ok(["tpm2_nvundefine", handle.as_str(), "-C", "o"]);
    env.swtpm.tpm2_tools_ok([
        "tpm2_nvdefine",
        handle.as_str(),
        "-C",
        "o",
        "-s",
        "32",
        "-a",
        "ownerread|ownerwrite|authread|authwrite",
    ]);

    std::env::set_var("TPMKEY_LOG", "debug");
    let text = failed_tool_login(&env, "replaced", USER_PIN);
    std::env::remove_var("TPMKEY_LOG");
    assert!(!text.contains("CKR_PIN_INCORRECT"), "{text}");
    assert!(
        text.contains("secret index") && text.contains("refused the read"),
        "{text}"
    );
    let p = load();
    assert_eq!(flags(&p, slot), [CLEAR, CLEAR]);
    login(&p, slot, UserType::So, SO_PIN).unwrap();
    p.finalize().unwrap();
    assert_eq!(tpm_failures(&env), 0);
}
