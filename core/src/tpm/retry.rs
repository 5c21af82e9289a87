//! What a failed operation means for the connection: the TPM is full (back off and retry),
//! our state in it is lost (start over once), or the failure is the answer. Wrong
//! passwords are never retried.

use std::time::Duration;

use crate::error::Error;
use crate::response_code::{
    TPM_RC_BAD_CONTEXT, TPM_RC_INITIALIZE, TPM_RC_REFERENCE_H0, TPM_RC_REFERENCE_S6, TPM_RC_VALUE,
};
use crate::session_crypto::{RustCrypto, SessionCrypto};

/// How long to keep retrying when other processes fill the TPM's slots.
pub(crate) const BUSY_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The TPM's slots are full (other processes): release ours, back off, retry.
    Busy,
    /// Our handles or connection are gone (TPM restarted, TCTI broke): start over once.
    Lost,
    Fatal,
}

pub(crate) fn classify(e: &Error) -> Failure {
    match e {
        Error::Tcti { .. } => Failure::Lost,
        Error::Tpm { command, rc } => {
            let base = rc.base();
            if rc.is_tpm_full() {
                Failure::Busy
            } else if *command == "ContextLoad"
                || (TPM_RC_REFERENCE_H0..=TPM_RC_REFERENCE_S6).contains(&base)
                || base == TPM_RC_BAD_CONTEXT
                // Behind a resource manager, the handles it gave out stop working when the
                // TPM restarts: tpm2-abrmd answers TPM_RC_VALUE on the handle.
                || (base == TPM_RC_VALUE && rc.handle_number().is_some())
                || base == TPM_RC_INITIALIZE
            {
                Failure::Lost
            } else {
                Failure::Fatal
            }
        }
        _ => Failure::Fatal,
    }
}

/// A random wait before retry `attempt` on a full TPM, its cap doubling up to 64 ms, so
/// that processes waiting on each other do not retry in step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let mut r = [0u8; 2];
    RustCrypto.random(&mut r);
    let cap = 1u64 << attempt.min(5);
    Duration::from_millis(1 + u64::from(u16::from_be_bytes(r)) % (cap * 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response_code::{
        TPM_RC_AUTH_FAIL, TPM_RC_CONTEXT_GAP, TPM_RC_LOCKOUT, TPM_RC_OBJECT_MEMORY,
        TPM_RC_SESSION_MEMORY,
    };

    fn tpm(command: &'static str, rc: u32) -> Failure {
        classify(&Error::tpm(command, rc))
    }

    #[test]
    fn a_full_tpm_is_busy() {
        for rc in [
            TPM_RC_OBJECT_MEMORY,
            TPM_RC_SESSION_MEMORY,
            TPM_RC_CONTEXT_GAP,
        ] {
            assert_eq!(tpm("Load", rc), Failure::Busy, "0x{rc:x}");
            // Even on ContextLoad, which is otherwise "lost".
            assert_eq!(tpm("ContextLoad", rc), Failure::Busy, "0x{rc:x}");
        }
    }

    #[test]
    fn gone_handles_sessions_and_connections_are_lost() {
        for rc in [
            TPM_RC_REFERENCE_H0,
            TPM_RC_REFERENCE_H0 + 6,
            TPM_RC_REFERENCE_S6,
            TPM_RC_BAD_CONTEXT,
            TPM_RC_INITIALIZE,
        ] {
            assert_eq!(tpm("Sign", rc), Failure::Lost, "0x{rc:x}");
        }
        // TPM_RC_VALUE about handle 1 (tpm2-abrmd after its TPM restarted).
        assert_eq!(tpm("Sign", TPM_RC_VALUE | 0x100), Failure::Lost);
        // Any failure of ContextLoad: the saved context no longer fits the TPM.
        assert_eq!(tpm("ContextLoad", TPM_RC_VALUE | 0x040), Failure::Lost);
        let tcti = Error::Tcti {
            tcti: "swtpm".into(),
            cause: "connection reset".into(),
        };
        assert_eq!(classify(&tcti), Failure::Lost);
    }

    #[test]
    fn wrong_passwords_lockout_and_bad_parameters_are_the_answer() {
        // AUTH_FAIL on session 1: never retried (each try would count toward lockout).
        assert_eq!(tpm("Sign", TPM_RC_AUTH_FAIL | 0x900), Failure::Fatal);
        assert_eq!(tpm("Sign", TPM_RC_LOCKOUT), Failure::Fatal);
        // TPM_RC_VALUE about parameter 1 is not about a handle.
        assert_eq!(tpm("Sign", TPM_RC_VALUE | 0x040 | 0x100), Failure::Fatal);
        assert_eq!(tpm("Sign", TPM_RC_REFERENCE_S6 + 1), Failure::Fatal);
        assert_eq!(
            classify(&Error::Integrity("bad response HMAC".into())),
            Failure::Fatal
        );
    }

    #[test]
    fn backoff_stays_within_its_doubling_cap() {
        for attempt in 0..10 {
            let cap = 2u64 << attempt.min(5);
            let wait = backoff(attempt).as_millis() as u64;
            assert!((1..=cap).contains(&wait), "attempt {attempt}: {wait} ms");
        }
    }
}
