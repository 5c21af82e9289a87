//! The one error type of tpmkey, with TPM response codes decoded into words.

use std::fmt;

use crate::response_code::ResponseCode;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A configuration file or value is wrong; the message names file and line.
    Config(String),
    /// The TPM cannot be reached through the TCTI.
    Tcti { tcti: String, cause: String },
    /// The TPM answered a command with an error code.
    Tpm {
        command: &'static str,
        rc: ResponseCode,
    },
    /// The TPM's answer does not check out (bad response HMAC, malformed response).
    Integrity(String),
    /// A key file (TSS2 PRIVATE KEY) is malformed.
    KeyFile(String),
    /// A well-formed request for something tpmkey does not do (yet).
    Unsupported(String),
    /// A caller's argument is wrong (size, algorithm, handle range).
    BadInput(String),
    /// Attestation evidence (certInfo, a quote, a bundle, a credential) is malformed or
    /// does not verify; the message names the field or the check.
    Evidence(String),
    /// A file system operation failed.
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A panic was caught at an FFI boundary.
    Panic(String),
    /// What this process knows of a token (its secret, its objects) belongs to a token that
    /// another process has since re-initialised: log in again.
    StaleToken(String),
    /// The platform state (PCRs, clock, locality) or the signed policies on hand do not
    /// satisfy an object's policy; the message names what differs. No DA count was spent.
    PolicyNotSatisfied(String),
    /// A token refuses a PIN without asking the TPM: `tries` wrong PINs of `role` since its
    /// last successful login reached the token's own limit (no TPM lockout is involved).
    PinLocked {
        serial: String,
        role: &'static str,
        tries: u32,
        remedy: &'static str,
        /// The TPM refused (the PIN's NV index is at its limit), not the token's file.
        by_tpm: bool,
    },
}

impl Error {
    pub fn tpm(command: &'static str, rc: u32) -> Self {
        Error::Tpm {
            command,
            rc: ResponseCode(rc),
        }
    }

    /// The TPM response code, when this error came from the TPM.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Error::Tpm { rc, .. } => Some(*rc),
            _ => None,
        }
    }

    /// True when the TPM refused an authorisation value (wrong password or PIN).
    pub fn is_bad_auth(&self) -> bool {
        self.response_code().is_some_and(|rc| rc.is_bad_auth())
    }

    /// True when the TPM refuses because of dictionary-attack lockout.
    pub fn is_lockout(&self) -> bool {
        self.response_code().is_some_and(|rc| rc.is_lockout())
    }

    /// True when an object's policy is not satisfied by the platform state, whether found
    /// before use or reported by the TPM (PolicyFail, PCR changed, policy CC).
    pub fn is_policy_failure(&self) -> bool {
        matches!(self, Error::PolicyNotSatisfied(_))
            || self
                .response_code()
                .is_some_and(|rc| matches!(rc.base(), 0x9D | 0xA4 | 0x128))
    }

    /// True when a token refuses a PIN at its own limit of wrong tries.
    pub fn is_pin_locked(&self) -> bool {
        matches!(self, Error::PinLocked { .. })
    }

    /// True for a store file that exists but does not say what it should (the message
    /// names the file and what is wrong).
    pub fn is_damaged_store(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData)
    }

    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "configuration: {m}"),
            Error::Tcti { tcti, cause } => {
                write!(f, "TPM not reachable through TCTI \"{tcti}\": {cause}")
            }
            Error::Tpm { command, rc } => write!(f, "TPM2_{command} failed: {rc}"),
            Error::Integrity(m) => write!(f, "TPM response rejected: {m}"),
            Error::KeyFile(m) => write!(f, "TSS2 key file: {m}"),
            Error::Unsupported(m) => write!(f, "not supported: {m}"),
            Error::BadInput(m) => write!(f, "invalid argument: {m}"),
            Error::Evidence(m) => write!(f, "attestation evidence rejected: {m}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Panic(m) => write!(f, "internal error (panic caught): {m}"),
            Error::StaleToken(serial) => write!(
                f,
                "token {serial} was re-initialised by another process: log in again"
            ),
            Error::PolicyNotSatisfied(m) => write!(f, "policy not satisfied: {m}"),
            Error::PinLocked {
                serial,
                role,
                tries,
                remedy,
                by_tpm,
            } => {
                let who = if *by_tpm {
                    "the TPM refuses it: its PIN index counted the token's limit"
                } else {
                    "the token's limit; the TPM was not asked"
                };
                write!(
                    f,
                    "the {role} PIN of token {serial} is locked after {tries} wrong PINs \
                     ({who}): {remedy}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
