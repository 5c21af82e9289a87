//! The core under the harness's fault injector, where a front end cannot show it: a TPM
//! that stalls past the configured timeout, and a bus that ends in the middle of a response.
//! Each operation gives up the connection after the timeout and either succeeds on a new
//! one or fails naming the TCTI; nothing stays loaded, and the next operation works.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use tpmkey::hash::Hash;
use tpmkey::{Error, KeySpec, SignScheme, TpmKey};
use tpmkey_testenv::fault_matrix;
use tpmkey_testenv::{Area, Fault, FaultPlan};

const SIGN: u32 = 0x15D;
const TIMEOUT: Duration = Duration::from_secs(2);

fn sign(key: &TpmKey) -> tpmkey::Result<tpmkey::Signature> {
    key.sign(SignScheme::Ecdsa(Hash::Sha256), &[7u8; 32])
}

#[test]
fn a_stalled_or_cut_response_times_out_and_the_next_operation_works() {
    let (tpm, tap) = common::tapped_tpm(&[("timeout", "2"), ("objects", "per-operation")]);
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    sign(&key).unwrap();
    for fault in [
        Fault::Delay(TIMEOUT + Duration::from_secs(1)),
        Fault::Truncate(Area::Header),
    ] {
        tap.inject(FaultPlan::on(SIGN, 0, fault));
        let start = Instant::now();
        let result = sign(&key);
        let took = start.elapsed();
        assert!(!tap.faults_pending(), "{fault}: no Sign sent");
        if let Err(e) = result {
            assert!(matches!(e, Error::Tcti { .. }), "{fault}: {e}");
        }
        if let Fault::Delay(_) = fault {
            assert!(
                took >= TIMEOUT,
                "{fault}: answered in {took:?}, before the timeout"
            );
        }
        // One wait for the stalled command, one for the retry on a new connection at most.
        assert!(
            took < 2 * TIMEOUT + Duration::from_secs(2),
            "{fault}: {took:?}"
        );
        sign(&key).unwrap();
        tpmkey::connection::shutdown();
        assert_eq!(fault_matrix::leftovers(&tpm.swtpm), Vec::<String>::new());
    }
}

const LOAD: u32 = 0x157;
const START_AUTH_SESSION: u32 = 0x176;
const CREATE_PRIMARY: u32 = 0x131;

/// Signs with a key that has to be loaded (from its file) on a fresh connection: the
/// storage key, the key and the session are all made anew.
fn sign_fresh(file: &tpmkey::keyfile::KeyFile) -> tpmkey::Result<tpmkey::Signature> {
    tpmkey::connection::shutdown();
    sign(&TpmKey::from_key_file(file, None)?)
}

#[test]
fn a_response_that_makes_a_handle_but_is_not_used_leaves_nothing_loaded() {
    let (tpm, tap) = common::tapped_tpm(&[("objects", "per-operation")]);
    let file = TpmKey::generate(KeySpec::EcP256, None, None)
        .unwrap()
        .key_file()
        .unwrap();
    for code in [CREATE_PRIMARY, LOAD, START_AUTH_SESSION] {
        for fault in [
            Fault::Truncate(Area::Parameters),
            Fault::Extend(Area::Parameters, 5),
            Fault::Flip(Area::Sessions, 4),
            Fault::Truncate(Area::Sessions),
        ] {
            tap.inject(FaultPlan::on(code, 0, fault));
            let result = sign_fresh(&file);
            assert!(!tap.faults_pending(), "{fault} in 0x{code:x}: not sent");
            if let Err(e) = result {
                assert!(
                    matches!(e, Error::Integrity(_)),
                    "{fault} in 0x{code:x}: {e}"
                );
            }
            tpmkey::connection::shutdown();
            assert_eq!(
                fault_matrix::leftovers(&tpm.swtpm),
                Vec::<String>::new(),
                "{fault} in 0x{code:x}"
            );
            sign_fresh(&file).unwrap();
        }
    }
}

/// StartAuthSession's response carries no HMAC: a nonceTPM altered on the bus gives this
/// process a session key the TPM does not have, and the command using the session fails its
/// authorisation. No password entered that HMAC, so it is not a wrong password: the
/// operation starts over on a new session (once) and succeeds, and so do the next ones.
#[test]
fn a_session_started_with_an_altered_nonce_is_replaced() {
    let (tpm, tap) = common::tapped_tpm(&[("objects", "keep")]);
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    tpmkey::connection::shutdown();
    tap.inject(FaultPlan::on(
        START_AUTH_SESSION,
        0,
        Fault::Flip(Area::Parameters, 7),
    ));
    // The Sign fails its session HMAC with no password involved: the session is out of
    // step, so the operation starts over on a new one and succeeds.
    let first = sign(&key);
    assert!(!tap.faults_pending(), "no StartAuthSession sent");
    first.unwrap();
    for _ in 0..3 {
        sign(&key).unwrap();
    }
    tpmkey::connection::shutdown();
    assert_eq!(fault_matrix::leftovers(&tpm.swtpm), Vec::<String>::new());
}
