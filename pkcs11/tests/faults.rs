//! The fault matrix of the PKCS#11 token: C_Initialize, C_Login, C_Sign, C_Decrypt,
//! C_GenerateKeyPair, C_CreateObject (data object) and C_SetPIN with every fault class of
//! the harness's fault injector in the TPM command that does the call's work. Each cell
//! asserts a correct result (always after a transient fault) or a clean CKR error (never
//! CKR_PIN_INCORRECT for the right PIN), nothing left in the TPM once the module is
//! finalised, the lockout counter unmoved (a wrong PIN moves it, checked at the end; a
//! disorderly restart too, by the TPM's own rule), the call back within the time limit, a
//! failed C_SetPIN leaving the old PIN, and the next call working. One swtpm for the
//! matrix; the table lands in target/release/fault-matrix-token.md.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{init_token, load, user_session, TestEnv, USER_PIN};
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tpmkey_testenv::fault_matrix::{self, Matrix};
use tpmkey_testenv::{Fault, FaultPlan};

const CREATE: u32 = 0x153;
const NV_READ: u32 = 0x14E;
const SIGN: u32 = 0x15D;
const RSA_DECRYPT: u32 = 0x159;
const START_AUTH_SESSION: u32 = 0x176;

const TIMEOUT: Duration = Duration::from_secs(3);
/// Longest one call may take: a stalled command and its retry each wait for the timeout.
const LIMIT: Duration = Duration::from_secs(15);
const NEW_PIN: &str = "654321";
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// What every call of the matrix works with.
struct Token {
    slot: Slot,
    /// "a secret" encrypted (OAEP, SHA-1) to the RSA key, for C_Decrypt.
    ciphertext: Vec<u8>,
}

type Call = fn(&Pkcs11, &Token) -> Result<(), String>;

struct Op {
    name: &'static str,
    /// The commands doing the call's work (empty: the first command of any kind).
    codes: &'static [u32],
    /// Whether the call logs in itself (otherwise the cell logs in before the fault).
    logs_in: bool,
    call: Call,
}

fn ck(e: Error) -> String {
    match e {
        Error::Pkcs11(rv, f) => format!("{rv:?} ({f:?})"),
        other => other.to_string(),
    }
}

fn find(s: &Session, class: ObjectClass, label: &str) -> Result<ObjectHandle, String> {
    s.find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
        .map_err(ck)?
        .first()
        .copied()
        .ok_or_else(|| format!("no {label} object"))
}

fn logged_in(p: &Pkcs11, t: &Token) -> Result<Session, String> {
    p.get_token_info(t.slot).map_err(ck)?;
    let s = p.open_rw_session(t.slot).map_err(ck)?;
    match s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(s),
        Err(e) => Err(ck(e)),
    }
}

fn sign_and_verify(s: &Session) -> Result<(), String> {
    let private = find(s, ObjectClass::PRIVATE_KEY, "ec")?;
    let public = find(s, ObjectClass::PUBLIC_KEY, "ec")?;
    let sig = s
        .sign(&Mechanism::EcdsaSha256, private, b"fault matrix")
        .map_err(ck)?;
    s.verify(&Mechanism::EcdsaSha256, public, b"fault matrix", &sig)
        .map_err(|e| format!("WRONG RESULT: signature does not verify: {}", ck(e)))
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "C_Initialize+C_GetTokenInfo",
            codes: &[],
            logs_in: true,
            call: |p, t| p.get_token_info(t.slot).map(|_| ()).map_err(ck),
        },
        Op {
            name: "C_Login",
            codes: &[NV_READ],
            logs_in: true,
            call: |p, t| logged_in(p, t).map(|_| ()),
        },
        Op {
            name: "C_Login, session start",
            codes: &[START_AUTH_SESSION],
            logs_in: true,
            call: |p, t| logged_in(p, t).map(|_| ()),
        },
        Op {
            name: "C_Sign",
            codes: &[SIGN],
            logs_in: false,
            call: |p, t| sign_and_verify(&logged_in(p, t)?),
        },
        Op {
            name: "C_Decrypt OAEP",
            codes: &[RSA_DECRYPT],
            logs_in: false,
            call: |p, t| {
                let s = logged_in(p, t)?;
                let key = find(&s, ObjectClass::PRIVATE_KEY, "rsa")?;
                let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
                    MechanismType::SHA1,
                    PkcsMgfType::MGF1_SHA1,
                    PkcsOaepSource::empty(),
                ));
                let pt = s.decrypt(&oaep, key, &t.ciphertext).map_err(ck)?;
                (pt == b"a secret")
                    .then_some(())
                    .ok_or_else(|| "WRONG RESULT: other plaintext".to_owned())
            },
        },
        Op {
            name: "C_GenerateKeyPair",
            codes: &[CREATE],
            logs_in: false,
            call: |p, t| {
                let s = logged_in(p, t)?;
                let (_, private) = s
                    .generate_key_pair(
                        &Mechanism::EccKeyPairGen,
                        &[Attribute::EcParams(P256_OID.to_vec())],
                        &[],
                    )
                    .map_err(ck)?;
                s.sign(&Mechanism::EcdsaSha256, private, b"new")
                    .map(|_| ())
                    .map_err(|e| format!("WRONG RESULT: the new key does not sign: {}", ck(e)))
            },
        },
        Op {
            name: "C_CreateObject (data)",
            codes: &[],
            logs_in: false,
            call: |p, t| {
                let s = logged_in(p, t)?;
                s.create_object(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Label("data".into()),
                    Attribute::Value(b"data object".to_vec()),
                ])
                .map(|_| ())
                .map_err(ck)
            },
        },
        Op {
            name: "C_SetPIN",
            codes: &[],
            logs_in: false,
            call: |p, t| {
                let s = logged_in(p, t)?;
                s.set_pin(
                    &AuthPin::new(USER_PIN.into()),
                    &AuthPin::new(NEW_PIN.into()),
                )
                .map_err(ck)?;
                // Back to the PIN the other cells use (no fault left by now).
                s.set_pin(
                    &AuthPin::new(NEW_PIN.into()),
                    &AuthPin::new(USER_PIN.into()),
                )
                .map_err(|e| format!("setting the PIN back: {}", ck(e)))
            },
        },
    ]
}

fn prepare(p: &Pkcs11) -> Token {
    let slot = init_token(p, "faults");
    let s = user_session(p, slot);
    for (mechanism, private, label) in [
        (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(P256_OID.to_vec())],
            "ec",
        ),
        (
            Mechanism::RsaPkcsKeyPairGen,
            vec![Attribute::ModulusBits(2048.into())],
            "rsa",
        ),
    ] {
        let mut pubt = private.clone();
        pubt.extend([Attribute::Token(true), Attribute::Label(label.into())]);
        s.generate_key_pair(
            &mechanism,
            &pubt,
            &[Attribute::Token(true), Attribute::Label(label.into())],
        )
        .unwrap();
    }
    let public = find(&s, ObjectClass::PUBLIC_KEY, "rsa").unwrap();
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ));
    let ciphertext = s.encrypt(&oaep, public, b"a secret").unwrap();
    Token { slot, ciphertext }
}

/// Runs `call` on a freshly initialised module; the module is finalised afterwards.
fn timed(op: &Op, t: &Token, what: &str) -> Result<(), String> {
    let start = Instant::now();
    let p = load();
    let result = (op.call)(&p, t);
    let _ = p.finalize();
    let took = start.elapsed();
    assert!(took < LIMIT, "{what}: took {took:?}");
    if let Err(e) = &result {
        assert!(!e.starts_with("WRONG RESULT"), "{what}: {e}");
    }
    result
}

#[test]
fn every_call_under_every_fault() {
    let env = TestEnv::new("per-operation");
    std::env::set_var("TPMKEY_TIMEOUT", TIMEOUT.as_secs().to_string());
    let tap = tpmkey_testenv::WireTap::start(env.swtpm.port());
    std::env::set_var("TPMKEY_TCTI", tap.tcti());
    fault_matrix::freeze_lockout_counter(&env.swtpm);
    let token = {
        let p = load();
        let t = prepare(&p);
        p.finalize().unwrap();
        t
    };
    let mut lockout = fault_matrix::lockout_counter(&env.swtpm);
    let mut matrix = Matrix::default();
    let mut problems = Vec::new();
    let any: Vec<u32> = (0x11F..=0x193).collect();
    for op in ops() {
        for fault in fault_matrix::fault_classes(TIMEOUT) {
            let what = format!("[{fault} in {}]", op.name);
            let codes: &[u32] = if op.codes.is_empty() { &any } else { op.codes };
            let start = Instant::now();
            let p = load();
            let mut session = None;
            if !op.logs_in {
                session = Some(logged_in(&p, &token).unwrap());
            }
            tap.inject(FaultPlan::on_any(codes, 0, fault));
            let result = (op.call)(&p, &token);
            let fired = !tap.faults_pending();
            let applied = tap.stop_injecting().last().is_some_and(|i| i.applied);
            drop(session);
            let _ = p.finalize();
            let took = start.elapsed();
            if took >= LIMIT {
                problems.push(format!("{what}: took {took:?}"));
            }
            if let Err(e) = &result {
                assert!(!e.starts_with("WRONG RESULT"), "{what}: {e}");
            }
            let mut outcome = match (&result, fired) {
                (_, false) => "not reached".to_owned(),
                (_, true) if !applied => "n/a (no such area)".to_owned(),
                (Ok(()), true) => "ok".to_owned(),
                (Err(e), true) => format!("error: {e}"),
            };
            if result
                .as_ref()
                .is_err_and(|e| e.starts_with("PinIncorrect"))
            {
                problems.push(format!("{what}: a fault reported as a wrong PIN"));
            }
            if fired && result.is_err() && fault_matrix::must_recover(&fault, TIMEOUT) {
                problems.push(format!(
                    "{what}: a transient fault failed the call: {outcome}"
                ));
            }
            let left = fault_matrix::leftovers(&env.swtpm);
            if !left.is_empty() {
                let lost = codes
                    .iter()
                    .any(|c| fault_matrix::loses_handle(&fault, *c, TIMEOUT));
                if lost {
                    outcome.push_str(" (handle lost with the response)");
                } else {
                    problems.push(format!("{what}: left in the TPM: {left:?}"));
                }
                fault_matrix::flush_leftovers(&env.swtpm);
            }
            // A failed C_SetPIN leaves the old PIN: the next cell logs in with it.
            if let Err(e) = timed(&op, &token, &format!("{what}, next")) {
                problems.push(format!("{what}: the next call failed: {e}"));
            }
            let now = fault_matrix::lockout_counter(&env.swtpm);
            if now != lockout {
                let counted = format!(" (lockout counter +{})", now - lockout);
                if fault == (Fault::Restart { orderly: false }) && now == lockout + 1 {
                    // The TPM's own rule: a TPM that was not shut down orderly counts one
                    // failure at start-up, as an attack might have cut its power mid-try.
                    outcome.push_str(&counted);
                } else {
                    problems.push(format!("{what}: lockout counter moved {lockout} -> {now}"));
                }
                lockout = now;
            }
            matrix.record(&fault, op.name, &outcome);
        }
    }
    // The control: a wrong PIN is refused, and counted by the token's PIN index, not by
    // the TPM's dictionary-attack counter.
    let before = fault_matrix::lockout_counter(&env.swtpm);
    let p = load();
    let s = p.open_rw_session(token.slot).unwrap();
    let e = s
        .login(UserType::User, Some(&AuthPin::new("000000".into())))
        .unwrap_err();
    assert!(matches!(e, Error::Pkcs11(RvError::PinIncorrect, _)), "{e}");
    drop(s);
    p.finalize().unwrap();
    assert_eq!(fault_matrix::lockout_counter(&env.swtpm), before);

    let path = matrix.write("token");
    eprintln!("{}\n(table in {})", matrix.table(), path.display());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
