//! The one error type of the module: a CK_RV, the cause in words (for the debug log) and,
//! for CKR_BUFFER_TOO_SMALL, the size the caller needs, and the module's log lines. A damaged store is CKR_DEVICE_ERROR
//! for a damaged record or PIN file and CKR_TOKEN_NOT_RECOGNIZED for a token whose
//! description is unreadable, each with a [`log`] line naming the file and the cause.

use cryptoki_sys::*;

pub(crate) type Result<T> = std::result::Result<T, Error>;

#[derive(Debug)]
pub(crate) struct Error {
    rv: CK_RV,
    needed: Option<usize>,
    cause: String,
}

impl Error {
    pub(crate) fn new(rv: CK_RV, cause: impl Into<String>) -> Error {
        Error {
            rv,
            needed: None,
            cause: cause.into(),
        }
    }

    pub(crate) fn rv(rv: CK_RV) -> Error {
        Error::new(rv, "")
    }

    /// The caller's buffer is missing or short: `needed` bytes (or items) are required.
    pub(crate) fn buffer_too_small(needed: usize) -> Error {
        Error {
            rv: CKR_BUFFER_TOO_SMALL,
            needed: Some(needed),
            cause: format!("{needed} needed"),
        }
    }

    pub(crate) fn code(&self) -> CK_RV {
        self.rv
    }

    pub(crate) fn needed(&self) -> Option<usize> {
        self.needed
    }

    pub(crate) fn cause(&self) -> &str {
        &self.cause
    }

    /// True for CKR_BUFFER_TOO_SMALL, the one error that does not end an operation.
    pub(crate) fn keeps_operation(&self) -> bool {
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
        if e.is_policy_failure() {
            return not_usable_now("the key", None, &e, CKR_FUNCTION_REJECTED);
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

/// The module's log at level error (standard error unless `TPMKEY_LOG` says otherwise;
/// see `tpmkey::log`): what an administrator must see, such as a damaged store. Never
/// secrets.
pub(crate) fn log(message: &str) {
    tpmkey::log::write(tpmkey::log::Level::Error, "tpmkey-pkcs11", message);
}

/// A line at level debug: every failed call with its cause.
pub(crate) fn debug(message: &str) {
    tpmkey::log::write(tpmkey::log::Level::Debug, "tpmkey-pkcs11", message);
}

/// An object whose policy the platform state does not satisfy now: the state is at fault,
/// not the caller, and it can come back (a reboot into the approved state), so the answer
/// is `rv` (CKR_FUNCTION_REJECTED for keys, CKR_ATTRIBUTE_SENSITIVE for values) with a log
/// line that names the policy (`statements`) and what differs (`e`, which names the PCRs).
/// No dictionary-attack count was spent: policies fail before authorisation.
pub(crate) fn not_usable_now(
    what: &str,
    statements: Option<&[tpmkey::policy::Statement]>,
    e: &tpmkey::Error,
    rv: CK_RV,
) -> Error {
    let policy = match statements {
        Some(st) => format!(
            "; its platform policy: {}",
            tpmkey::policy::Statement::describe_all(st)
        ),
        None => String::new(),
    };
    let why = format!(
        "{what} is not usable in this platform state ({e}){policy}; {} until the platform is \
         back in that state (e.g. a reboot)",
        rv_name(rv)
    );
    log(&why);
    Error::new(rv, why)
}

/// A core error from using `key`: a policy failure names the key's policy.
pub(crate) fn key_use(key: &tpmkey::TpmKey, e: tpmkey::Error) -> Error {
    match key.policy() {
        Some(policy) if e.is_policy_failure() => not_usable_now(
            "the key",
            Some(&policy.statements),
            &e,
            CKR_FUNCTION_REJECTED,
        ),
        _ => e.into(),
    }
}

/// TPM_RC_INTEGRITY, with the parameter number stripped.
const TPM_RC_INTEGRITY: u32 = 0x09F;
/// TPM_RC_HANDLE, with the handle number stripped.
const TPM_RC_HANDLE: u32 = 0x08B;

/// What a token made before tokens recorded their storage key shows on another or a
/// cleared TPM: the TPM refuses to load its PIN object (another storage key made it), or
/// has no PIN index or secret index at the token's handles.
fn is_foreign(e: &tpmkey::Error) -> Option<&'static str> {
    match e {
        tpmkey::Error::Tpm {
            command: "Load",
            rc,
        } if rc.base() == TPM_RC_INTEGRITY => {
            Some("the token's PIN object does not load on this TPM")
        }
        tpmkey::Error::Tpm {
            command: "PolicySecret",
            rc,
        } if rc.base() == TPM_RC_HANDLE && rc.handle_number() == Some(1) => {
            Some("the token's PIN index is not in this TPM")
        }
        tpmkey::Error::Tpm {
            command: "NV_Read",
            rc,
        } if rc.base() == TPM_RC_HANDLE => Some("the token's secret index is not in this TPM"),
        _ => None,
    }
}

/// A core error from checking a PIN: the TPM's verdict becomes the PIN return codes. Only
/// TPM2_Unseal of a PIN's sealed object and PolicySecret with a PIN's NV index judge the
/// PIN (a secret index's refusal after its PIN index accepted the PIN is an integrity
/// error); an authorisation failure of another command (a session whose nonce was altered on
/// the bus, say) is not a wrong PIN.
pub(crate) fn pin_error(e: tpmkey::Error) -> Error {
    let judges_pin = matches!(&e, tpmkey::Error::Tpm { command, .. }
        if *command == "Unseal" || *command == "PolicySecret");
    if e.is_lockout() {
        let why = format!("{e}: {}", tpmkey::dictionary_attack::lockout_advice());
        log(&why);
        Error::new(CKR_PIN_LOCKED, why)
    } else if e.is_pin_locked() {
        log(&e.to_string());
        Error::new(CKR_PIN_LOCKED, e.to_string())
    } else if let Some(what) = is_foreign(&e) {
        let why = format!(
            "{e}: {what}: the token was made on another TPM, or this TPM was cleared since \
             (CKR_TOKEN_NOT_RECOGNIZED)"
        );
        log(&why);
        Error::new(CKR_TOKEN_NOT_RECOGNIZED, why)
    } else if e.is_bad_auth() && judges_pin {
        Error::new(CKR_PIN_INCORRECT, e.to_string())
    } else {
        e.into()
    }
}

/// The name of a CK_RV, for log lines (tools print some codes as unknown).
pub(crate) fn rv_name(rv: CK_RV) -> &'static str {
    match rv {
        CKR_OK => "CKR_OK",
        CKR_ACTION_PROHIBITED => "CKR_ACTION_PROHIBITED",
        CKR_ARGUMENTS_BAD => "CKR_ARGUMENTS_BAD",
        CKR_ATTRIBUTE_READ_ONLY => "CKR_ATTRIBUTE_READ_ONLY",
        CKR_ATTRIBUTE_SENSITIVE => "CKR_ATTRIBUTE_SENSITIVE",
        CKR_ATTRIBUTE_TYPE_INVALID => "CKR_ATTRIBUTE_TYPE_INVALID",
        CKR_ATTRIBUTE_VALUE_INVALID => "CKR_ATTRIBUTE_VALUE_INVALID",
        CKR_BUFFER_TOO_SMALL => "CKR_BUFFER_TOO_SMALL",
        CKR_CANT_LOCK => "CKR_CANT_LOCK",
        CKR_CRYPTOKI_ALREADY_INITIALIZED => "CKR_CRYPTOKI_ALREADY_INITIALIZED",
        CKR_CRYPTOKI_NOT_INITIALIZED => "CKR_CRYPTOKI_NOT_INITIALIZED",
        CKR_CURVE_NOT_SUPPORTED => "CKR_CURVE_NOT_SUPPORTED",
        CKR_DATA_INVALID => "CKR_DATA_INVALID",
        CKR_DATA_LEN_RANGE => "CKR_DATA_LEN_RANGE",
        CKR_DEVICE_ERROR => "CKR_DEVICE_ERROR",
        CKR_ENCRYPTED_DATA_INVALID => "CKR_ENCRYPTED_DATA_INVALID",
        CKR_ENCRYPTED_DATA_LEN_RANGE => "CKR_ENCRYPTED_DATA_LEN_RANGE",
        CKR_FUNCTION_FAILED => "CKR_FUNCTION_FAILED",
        CKR_FUNCTION_NOT_PARALLEL => "CKR_FUNCTION_NOT_PARALLEL",
        CKR_FUNCTION_NOT_SUPPORTED => "CKR_FUNCTION_NOT_SUPPORTED",
        CKR_FUNCTION_REJECTED => "CKR_FUNCTION_REJECTED",
        CKR_GENERAL_ERROR => "CKR_GENERAL_ERROR",
        CKR_KEY_FUNCTION_NOT_PERMITTED => "CKR_KEY_FUNCTION_NOT_PERMITTED",
        CKR_KEY_HANDLE_INVALID => "CKR_KEY_HANDLE_INVALID",
        CKR_KEY_SIZE_RANGE => "CKR_KEY_SIZE_RANGE",
        CKR_KEY_TYPE_INCONSISTENT => "CKR_KEY_TYPE_INCONSISTENT",
        CKR_MECHANISM_INVALID => "CKR_MECHANISM_INVALID",
        CKR_MECHANISM_PARAM_INVALID => "CKR_MECHANISM_PARAM_INVALID",
        CKR_OBJECT_HANDLE_INVALID => "CKR_OBJECT_HANDLE_INVALID",
        CKR_OPERATION_ACTIVE => "CKR_OPERATION_ACTIVE",
        CKR_OPERATION_NOT_INITIALIZED => "CKR_OPERATION_NOT_INITIALIZED",
        CKR_PIN_INCORRECT => "CKR_PIN_INCORRECT",
        CKR_PIN_LEN_RANGE => "CKR_PIN_LEN_RANGE",
        CKR_PIN_LOCKED => "CKR_PIN_LOCKED",
        CKR_SESSION_EXISTS => "CKR_SESSION_EXISTS",
        CKR_SESSION_HANDLE_INVALID => "CKR_SESSION_HANDLE_INVALID",
        CKR_SESSION_PARALLEL_NOT_SUPPORTED => "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
        CKR_SESSION_READ_ONLY => "CKR_SESSION_READ_ONLY",
        CKR_SESSION_READ_ONLY_EXISTS => "CKR_SESSION_READ_ONLY_EXISTS",
        CKR_SESSION_READ_WRITE_SO_EXISTS => "CKR_SESSION_READ_WRITE_SO_EXISTS",
        CKR_SIGNATURE_INVALID => "CKR_SIGNATURE_INVALID",
        CKR_SIGNATURE_LEN_RANGE => "CKR_SIGNATURE_LEN_RANGE",
        CKR_SLOT_ID_INVALID => "CKR_SLOT_ID_INVALID",
        CKR_TEMPLATE_INCOMPLETE => "CKR_TEMPLATE_INCOMPLETE",
        CKR_TEMPLATE_INCONSISTENT => "CKR_TEMPLATE_INCONSISTENT",
        CKR_TOKEN_NOT_PRESENT => "CKR_TOKEN_NOT_PRESENT",
        CKR_TOKEN_NOT_RECOGNIZED => "CKR_TOKEN_NOT_RECOGNIZED",
        CKR_TOKEN_WRITE_PROTECTED => "CKR_TOKEN_WRITE_PROTECTED",
        CKR_USER_ALREADY_LOGGED_IN => "CKR_USER_ALREADY_LOGGED_IN",
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN => "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
        CKR_USER_NOT_LOGGED_IN => "CKR_USER_NOT_LOGGED_IN",
        CKR_USER_PIN_NOT_INITIALIZED => "CKR_USER_PIN_NOT_INITIALIZED",
        CKR_USER_TYPE_INVALID => "CKR_USER_TYPE_INVALID",
        _ => "CKR_(other)",
    }
}
