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
