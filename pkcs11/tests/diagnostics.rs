//! Failures a user can diagnose, against a real swtpm: the log switch (`TPMKEY_LOG` with
//! level and file, the `log` key of tpmkey.conf, the `TPMKEY_DEBUG` alias) with TPM
//! response codes in words and no PIN; a token made on another TPM answers
//! CKR_TOKEN_NOT_RECOGNIZED and says why; the slot kept for C_InitToken holds a real
//! uninitialised token; a P-521 key request says why it is refused.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use tpmkey_testenv::Swtpm;

/// pkcs11-tool with the module and the test's environment plus `extra`.
fn tool(env: &TestEnv, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.arg("--module").arg(module_path()).args(args);
    for (k, v) in env.vars() {
        cmd.env(k, v);
    }
    cmd.env_remove("TPMKEY_LOG").env_remove("TPMKEY_DEBUG");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const WRONG_PIN: &str = "wrong-pin-4711";

fn wrong_login(env: &TestEnv, extra: &[(&str, &str)]) -> Output {
    let out = tool(
        env,
        extra,
        &[
            "--token-label",
            "diag",
            "--login",
            "--pin",
            WRONG_PIN,
            "--list-objects",
        ],
    );
    assert!(!out.status.success());
    out
}

#[test]
fn one_log_switch_with_level_destination_and_alias() {
    let env = TestEnv::new("per-operation");
    let p = load();
    init_token(&p, "diag");
    p.finalize().unwrap();
    let dir = TempDir::new("log");

    // Default: errors only, so a wrong PIN leaves no line.
    let out = wrong_login(&env, &[]);
    assert!(!stderr(&out).contains("tpmkey-pkcs11["), "{}", stderr(&out));

    // TPMKEY_LOG=debug,file=PATH: the failed call, its CK_RV by name and the TPM's answer
    // in words, in the file only; never the PIN.
    let file = dir.0.join("debug.log");
    let spec = format!("debug,file={}", file.display());
    let out = wrong_login(&env, &[("TPMKEY_LOG", &spec)]);
    assert!(!stderr(&out).contains("tpmkey-pkcs11["), "{}", stderr(&out));
    let log = std::fs::read_to_string(&file).unwrap();
    assert!(
        log.contains("C_Login: CKR_PIN_INCORRECT (0xa0)")
            && log.contains("TPM2_PolicySecret failed")
            && log.contains("wrong password or PIN"),
        "{log}"
    );
    assert!(!log.contains(WRONG_PIN), "{log}");

    // The same from tpmkey.conf's `log` key.
    let conf = dir.0.join("tpmkey.conf");
    let conf_file = dir.0.join("conf.log");
    std::fs::write(&conf, format!("log = debug,file={}\n", conf_file.display())).unwrap();
    wrong_login(&env, &[("TPMKEY_CONF", conf.to_str().unwrap())]);
    let log = std::fs::read_to_string(&conf_file).unwrap();
    assert!(log.contains("C_Login: CKR_PIN_INCORRECT"), "{log}");

    // That was the token's third wrong PIN: the next login is refused by the token, an
    // error-level line on standard error by default, none with `off`.
    let out = wrong_login(&env, &[]);
    assert!(
        stderr(&out).contains("is locked after 3 wrong PINs"),
        "{}",
        stderr(&out)
    );
    let out = wrong_login(&env, &[("TPMKEY_LOG", "off")]);
    assert!(!stderr(&out).contains("tpmkey-pkcs11["), "{}", stderr(&out));

    // TPMKEY_DEBUG keeps working: debug lines on standard error.
    let out = wrong_login(&env, &[("TPMKEY_DEBUG", "1")]);
    assert!(
        stderr(&out).contains("C_Login: CKR_PIN_LOCKED"),
        "{}",
        stderr(&out)
    );
}

/// C_Login on `slot` answers CKR_TOKEN_NOT_RECOGNIZED; the module is finalised after.
fn assert_login_not_recognized(p: Pkcs11, slot: cryptoki::slot::Slot) {
    let s = p.open_ro_session(slot).unwrap();
    assert_eq!(
        rv(
            s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
                .unwrap_err()
        ),
        RvError::TokenNotRecognized
    );
    drop(s);
    p.finalize().unwrap();
}

/// The serial number (directory name) of the one token in the store.
fn token_serial(env: &TestEnv) -> String {
    std::fs::read_dir(&env.store.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| !n.starts_with('.'))
        .unwrap()
}

#[test]
fn a_token_from_another_tpm_is_not_recognized() {
    let env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "diag");
    p.finalize().unwrap();

    // The same store on another TPM.
    let other = Swtpm::start();
    std::env::set_var("TPMKEY_TCTI", other.tcti());
    let p = load();
    assert_eq!(
        rv(p.get_token_info(slot).unwrap_err()),
        RvError::TokenNotRecognized
    );
    assert_login_not_recognized(p, slot);
    let out = tool(&env, &[("TPMKEY_TCTI", &other.tcti())], &["--list-slots"]);
    assert!(
        stderr(&out).contains("cannot be used with this TPM")
            && stderr(&out).contains("made on another TPM, or this TPM was cleared"),
        "{}",
        stderr(&out)
    );

    // A token made before tokens recorded their storage key: login says the same.
    let info = env.store.0.join(token_serial(&env)).join("token");
    let text = std::fs::read_to_string(&info).unwrap();
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("storage-key="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&info, old).unwrap();
    let p = load();
    assert!(p.get_token_info(slot).unwrap().token_initialized());
    assert_login_not_recognized(p, slot);
    std::fs::write(&info, text).unwrap();

    // Back on its own TPM it works.
    std::env::set_var("TPMKEY_TCTI", env.swtpm.tcti());
    let p = load();
    assert!(p.get_token_info(slot).unwrap().token_initialized());
    user_session(&p, slot);
}

#[test]
fn the_empty_slot_holds_an_uninitialised_token() {
    let _env = TestEnv::new("per-operation");
    let p: Pkcs11 = load();
    let empty = empty_slot(&p);
    assert!(p.get_slot_info(empty).unwrap().token_present());
    let info = p.get_token_info(empty).unwrap();
    assert!(!info.token_initialized() && !info.user_pin_initialized());
    // Applications that open a session on every present token (strongSwan) get one.
    let ro = p.open_ro_session(empty).unwrap();
    let rw = p.open_rw_session(empty).unwrap();
    assert!(ro.find_objects(&[]).unwrap().is_empty());
    assert_eq!(
        rv(rw
            .login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
            .unwrap_err()),
        RvError::UserPinNotInitialized
    );
    assert_eq!(rv(rw.logout().unwrap_err()), RvError::UserNotLoggedIn);
    assert_eq!(
        rv(p.init_token(empty, &AuthPin::new(SO_PIN.into()), "late")
            .unwrap_err()),
        RvError::SessionExists
    );
    drop(ro);
    drop(rw);
    p.init_token(empty, &AuthPin::new(SO_PIN.into()), "late")
        .unwrap();
    assert!(p.get_token_info(empty).unwrap().token_initialized());
}

#[test]
fn p521_key_generation_says_why_it_is_refused() {
    let env = TestEnv::new("per-operation");
    let p = load();
    init_token(&p, "diag");
    p.finalize().unwrap();
    let out = tool(
        &env,
        &[],
        &[
            "--token-label",
            "diag",
            "--login",
            "--pin",
            USER_PIN,
            "--keypairgen",
            "--key-type",
            "EC:secp521r1",
            "--label",
            "big",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the curve P-521 (secp521r1) is not supported")
            && stderr(&out).contains("CKR_CURVE_NOT_SUPPORTED"),
        "{}",
        stderr(&out)
    );
}
