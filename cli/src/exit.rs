//! Exit codes, so scripts can tell a wrong password from a platform in the wrong state.

use std::process::ExitCode;

use tpmkey::Error;

pub const ERROR: u8 = 1;
pub const WRONG_PASSWORD: u8 = 3;
pub const POLICY_NOT_SATISFIED: u8 = 4;
pub const TPM_UNAVAILABLE: u8 = 5;

pub fn code(e: &Error) -> ExitCode {
    ExitCode::from(match e {
        _ if e.is_bad_auth() => WRONG_PASSWORD,
        _ if e.is_lockout() => TPM_UNAVAILABLE,
        Error::Tcti { .. } => TPM_UNAVAILABLE,
        _ if e.is_policy_failure() => POLICY_NOT_SATISFIED,
        _ => ERROR,
    })
}
