//! PIN state per token and lockout recovery, against a real swtpm: the PIN flags count this
//! token's wrong PINs since its last successful login, the token refuses at its own limit,
//! which its PIN index holds in the TPM (the TPM's dictionary-attack counter never moves),
//! the SO resets a locked user PIN, and an attacker who restores the store gets no more
//! than the token's limit. (`pin_nv.rs` covers the NV indices themselves and a TPM lockout.)

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

fn login(p: &Pkcs11, slot: Slot, user: UserType, pin: &str) -> Result<(), RvError> {
    let s = p.open_rw_session(slot).unwrap();
    s.login(user, Some(&AuthPin::new(pin.into()))).map_err(rv)
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
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .unwrap();
    s.init_pin(&AuthPin::new("new-user-pin".into())).unwrap();
    s.logout().unwrap();
    drop(s);
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

/// swtpm's own defaults (3 failures, one forgotten every 1000 s): the token's index stops
/// the user after three wrong PINs, none of them counted by the TPM's lockout, and the SO
/// resets the PIN; the TPM's counter is never involved.
#[test]
fn the_so_resets_a_locked_user_pin_without_a_tpm_lockout_reset() {
    let env = TestEnv::new("per-operation");
    dictionary_attack(&env, 3, 1000);
    let p = load();
    let slot = init_token(&p, "reset");
    for _ in 0..3 {
        assert_eq!(
            login(&p, slot, UserType::User, "000000"),
            Err(RvError::PinIncorrect)
        );
    }
    assert_eq!(flags(&p, slot)[0], (false, false, true));
    for _ in 0..5 {
        assert_eq!(
            login(&p, slot, UserType::User, USER_PIN),
            Err(RvError::PinLocked)
        );
    }
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .unwrap();
    s.init_pin(&AuthPin::new("new-user-pin".into())).unwrap();
    s.logout().unwrap();
    login(&p, slot, UserType::User, "new-user-pin").unwrap();
    p.finalize().unwrap();
    assert_eq!(tpm_failures(&env), 0, "the TPM's counter never moved");
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
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module")
            .arg(module_path())
            .args(["--token-label", "attacked", "--login", "--pin"])
            .arg(format!("guess-{guess}"))
            .arg("--list-objects");
        for (k, v) in env.vars() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success());
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
