//! Who performs an operation in a row: raw tss-esapi (the limit), the tpmkey core
//! in-process, the provider through libcrypto, the PKCS#11 module, and the Debian stacks
//! they are compared with.

use std::path::Path;

use tpmkey::public_key::KeyPublic;
use tpmkey::KeyFile;

use crate::core_api::{CoreMode, CoreOperation};
use crate::evp::{EvpOperation, EvpStack};
use crate::operation::{public_pkey, Inputs, Op};
use crate::parts::Parts;
use crate::raw::RawOperation;
use crate::token::{TokenOperation, TokenStack};
use crate::worker::Operation;

/// The variable that hands the tapped TCTI string to every child.
pub const TCTI_VAR: &str = "BENCH_TCTI";
/// The openssl.cnf of the tpm2-openssl rows: `default_properties = ?provider=tpm2`.
pub const TPM2_OPENSSL_CNF: &str = "openssl-tpm2.cnf";
/// Names another key file in the work directory than the operation's usual one.
pub const KEY_FILE_VAR: &str = "BENCH_KEY_FILE";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Raw,
    Core(CoreMode),
    Evp(EvpStack),
    Token(TokenStack),
}

pub const CORE: Subject = Subject::Core(CoreMode {
    session: true,
    per_operation: false,
});
pub const CORE_SESSION_OFF: Subject = Subject::Core(CoreMode {
    session: false,
    per_operation: false,
});
pub const CORE_PER_OPERATION: Subject = Subject::Core(CoreMode {
    session: true,
    per_operation: true,
});
pub const PROVIDER: Subject = Subject::Evp(EvpStack::Tpmkey);
pub const TPM2_OPENSSL: Subject = Subject::Evp(EvpStack::Tpm2Openssl);
pub const PKCS11: Subject = Subject::Token(TokenStack::Tpmkey);
pub const TPM2_PKCS11: Subject = Subject::Token(TokenStack::Tpm2Pkcs11);

/// Every subject, in the order of the table.
pub const ALL: [Subject; 8] = [
    Subject::Raw,
    CORE,
    CORE_SESSION_OFF,
    CORE_PER_OPERATION,
    PROVIDER,
    TPM2_OPENSSL,
    PKCS11,
    TPM2_PKCS11,
];

impl Subject {
    pub fn id(self) -> &'static str {
        match self {
            Subject::Raw => "raw",
            CORE => "core",
            CORE_SESSION_OFF => "core-session-off",
            CORE_PER_OPERATION => "core-per-operation",
            Subject::Core(_) => "core-other",
            PROVIDER => "provider",
            TPM2_OPENSSL => "tpm2-openssl",
            PKCS11 => "pkcs11",
            TPM2_PKCS11 => "tpm2-pkcs11",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Subject::Raw => "raw tss-esapi, password auth (the limit)",
            CORE => "tpmkey core, session on, objects=keep",
            CORE_SESSION_OFF => "tpmkey core, session off, objects=keep",
            CORE_PER_OPERATION => "tpmkey core, session on, objects=per-operation",
            Subject::Core(_) => "tpmkey core",
            PROVIDER => "tpmkey provider (EVP), session on, keep",
            TPM2_OPENSSL => "tpm2-openssl 1.1.1 (EVP, propquery ?provider=tpm2)",
            PKCS11 => "tpmkey pkcs11 (logged in), session on, keep",
            TPM2_PKCS11 => "tpm2-pkcs11 1.9.0 (logged in)",
        }
    }

    /// What applications load: a provider or a PKCS#11 module (tpmkey's or a peer's).
    pub fn is_front_end(self) -> bool {
        matches!(self, Subject::Evp(_) | Subject::Token(_))
    }

    /// The existing Debian stacks tpmkey is compared with.
    pub fn is_peer(self) -> bool {
        matches!(self, TPM2_OPENSSL | TPM2_PKCS11)
    }

    pub fn parse(s: &str) -> Result<Subject, String> {
        ALL.into_iter()
            .find(|x| x.id() == s)
            .ok_or_else(|| format!("unknown subject \"{s}\""))
    }

    /// Why the row cannot run on this machine, if it cannot.
    pub fn unavailable(self, parts: &Parts) -> Option<String> {
        match self {
            Subject::Raw | Subject::Core(_) => None,
            PROVIDER => parts.provider.clone(),
            Subject::Evp(_) => parts.tpm2_openssl.clone(),
            PKCS11 => parts.pkcs11.clone(),
            Subject::Token(_) => parts.tpm2_pkcs11.clone(),
        }
    }

    /// The environment of a child running this subject against `tcti`.
    pub fn env(self, tcti: &str, work: &Path) -> Vec<(String, String)> {
        let mut env = vec![
            (TCTI_VAR.to_string(), tcti.to_string()),
            // Only what the bench sets: no /etc/tpmkey/tpmkey.conf, no system openssl.cnf.
            (
                "TPMKEY_CONF".into(),
                work.join("tpmkey.conf").display().to_string(),
            ),
            (
                "OPENSSL_CONF".into(),
                work.join("openssl.cnf").display().to_string(),
            ),
            ("TSS2_LOG".into(), "all+none".into()),
            ("TPMKEY_TCTI".into(), tcti.to_string()),
        ];
        let (session, objects) = match self {
            Subject::Core(mode) => {
                let [s, o] = mode.config();
                (s.1, o.1)
            }
            _ => ("on", "keep"),
        };
        env.push(("TPMKEY_SESSION".into(), session.into()));
        env.push(("TPMKEY_OBJECTS".into(), objects.into()));
        match self {
            Subject::Evp(EvpStack::Tpm2Openssl) => {
                env.push(("TPM2OPENSSL_TCTI".into(), tcti.to_string()));
                // Without the property query libcrypto picks the default provider's
                // signature and fails with "missing private key" (reference.md 4).
                let conf = work.join(TPM2_OPENSSL_CNF).display().to_string();
                env.push(("OPENSSL_CONF".into(), conf));
            }
            Subject::Token(stack) => {
                let store = stack.store(work).display().to_string();
                env.push(("TPMKEY_STORE".into(), store.clone()));
                env.push(("TPM2_PKCS11_STORE".into(), store));
                env.push(("TPM2_PKCS11_TCTI".into(), tcti.to_string()));
            }
            _ => {}
        }
        env
    }

    /// Builds this subject's operation for `op` inside a worker (`work`: the bench's work
    /// directory with the key files).
    pub fn open(self, op: Op, work: &Path) -> Result<(Box<dyn Operation>, Inputs), String> {
        let tcti = std::env::var(TCTI_VAR).map_err(|_| format!("{TCTI_VAR} is not set"))?;
        let stack = match self {
            Subject::Token(stack) => stack,
            _ => return self.open_key_file(&tcti, op, work),
        };
        let path = stack.public_key_file(work, op);
        let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let public = openssl::pkey::PKey::public_key_from_pem(&pem)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let inputs = Inputs::new(op, public)?;
        Ok((Box::new(TokenOperation::new(stack, &inputs)?), inputs))
    }

    /// The subjects that use the TSS2 key file the runner provisioned.
    fn open_key_file(
        self,
        tcti: &str,
        op: Op,
        work: &Path,
    ) -> Result<(Box<dyn Operation>, Inputs), String> {
        let name = std::env::var(KEY_FILE_VAR).unwrap_or_else(|_| op.key_file_name().into());
        let path = work.join(name);
        let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = KeyFile::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        let public = KeyPublic::parse(&file.public).map_err(|e| e.to_string())?;
        let inputs = Inputs::new(op, public_pkey(&public.key)?)?;
        let operation: Box<dyn Operation> = match self {
            Subject::Raw => Box::new(RawOperation::new(tcti, &file, &inputs)?),
            Subject::Core(mode) => Box::new(CoreOperation::new(tcti, mode, &file, &inputs)?),
            Subject::Evp(stack) => Box::new(EvpOperation::new(stack, work, pem, &inputs)),
            Subject::Token(stack) => Box::new(TokenOperation::new(stack, &inputs)?),
        };
        Ok((operation, inputs))
    }
}
