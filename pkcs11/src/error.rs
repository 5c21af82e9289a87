//! The one error type of the module: a CK_RV, the cause in words (for the debug log) and,
//! for CKR_BUFFER_TOO_SMALL, the size the caller needs. A damaged store is CKR_DEVICE_ERROR
//! for a damaged record or PIN file and CKR_TOKEN_NOT_RECOGNIZED for a token whose
//! description is unreadable, each with a [`log`] line naming the file and the cause.

use cryptoki_sys::*;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug)]
pub struct Error {
    rv: CK_RV,
    needed: Option<usize>,
    cause: String,
}

impl Error {
    pub fn new(rv: CK_RV, cause: impl Into<String>) -> Error {
        Error {
            rv,
            needed: None,
            cause: cause.into(),
        }
    }

    pub fn rv(rv: CK_RV) -> Error {
        Error::new(rv, "")
    }

    /// The caller's buffer is missing or short: `needed` bytes (or items) are required.
    pub fn buffer_too_small(needed: usize) -> Error {
        Error {
            rv: CKR_BUFFER_TOO_SMALL,
            needed: Some(needed),
            cause: format!("{needed} needed"),
        }
    }

    pub fn code(&self) -> CK_RV {
        self.rv
    }

    pub fn needed(&self) -> Option<usize> {
        self.needed
    }

    pub fn cause(&self) -> &str {
        &self.cause
    }

    /// True for CKR_BUFFER_TOO_SMALL, the one error that does not end an operation.
    pub fn keeps_operation(&self) -> bool {
        self.rv == CKR_BUFFER_TOO_SMALL
    }
}

/// Errors of the core: the TPM, the store, the configuration. Callers map the cases that
/// have a specific meaning in their function (a wrong PIN, bad padding) before this.
impl From<tpmkey::Error> for Error {
    fn from(e: tpmkey::Error) -> Error {
        if e.is_damaged_store() {
            log(&format!("damaged store file: {e}"));
        }
        let rv = match &e {
            tpmkey::Error::BadInput(_) => CKR_DATA_INVALID,
            tpmkey::Error::Unsupported(_) => CKR_FUNCTION_FAILED,
            tpmkey::Error::Io { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                CKR_TOKEN_WRITE_PROTECTED
            }
            tpmkey::Error::Panic(_) | tpmkey::Error::Config(_) => CKR_GENERAL_ERROR,
            // C_Logout and C_Login again make the session current.
            tpmkey::Error::StaleToken(_) => CKR_USER_NOT_LOGGED_IN,
            _ => CKR_DEVICE_ERROR,
        };
        Error::new(rv, e.to_string())
    }
}

/// The module's log (standard error, where PKCS#11 hosts collect a module's messages):
/// what an administrator must see whatever the debug setting, such as a damaged store.
/// Never secrets. A stderr that cannot be written (a closed pipe) is ignored: `eprintln!`
/// would panic there, at the FFI edge.
pub fn log(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "tpmkey-pkcs11: {message}");
}

/// A core error from checking a PIN: the TPM's verdict becomes the PIN return codes. Only
/// TPM2_Unseal of a PIN's sealed object judges the PIN; an authorisation failure of another
/// command (a session whose nonce was altered on the bus, say) is not a wrong PIN.
pub fn pin_error(e: tpmkey::Error) -> Error {
    let judges_pin = matches!(&e, tpmkey::Error::Tpm { command, .. } if *command == "Unseal");
    if e.is_lockout() {
        Error::new(CKR_PIN_LOCKED, e.to_string())
    } else if e.is_bad_auth() && judges_pin {
        Error::new(CKR_PIN_INCORRECT, e.to_string())
    } else {
        e.into()
    }
}
