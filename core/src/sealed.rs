//! TPM sealed data objects: a few secret bytes (at most 128, the TPM's MAX_SYM_DATA) that
//! only the TPM gives back, to whoever presents the authValue. The PKCS#11 token seals its
//! token secret under PIN-derived authValues (dictionary-attack protected: the TPM rate-limits
//! PIN guessing) and private data objects under high-entropy authValues (noDA).
//! Stored as TSS2 PRIVATE KEY files of type sealed data (OID 2.23.133.10.1.5).

use zeroize::Zeroizing;

use crate::commands::Tpm;
use crate::connection::{with_link, Need};
use crate::error::{Error, Result};
use crate::keyfile::{KeyFile, KeyFileType};
use crate::keys::{create_object, with_blob_loaded};
use crate::session_crypto::{SessionCrypto, CRYPTO};
use crate::templates;
use crate::wire::{tpm2b_contents, TPM_ALG_KEYEDHASH, TPM_ALG_SHA256};

/// The TPM's MAX_SYM_DATA: the most a sealed data object holds.
pub const MAX_SEALED_LEN: usize = 128;

const ATTR_NO_DA: u32 = 1 << 10;

#[derive(Clone)]
pub struct SealedData {
    parent: u32,
    private: Vec<u8>,
    public: Vec<u8>,
    name: Vec<u8>,
    da_protected: bool,
}

impl std::fmt::Debug for SealedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedData")
            .field("parent", &format_args!("0x{:08x}", self.parent))
            .field("da_protected", &self.da_protected)
            .finish()
    }
}

impl SealedData {
    /// Seals `data` under `parent` (default: the configured parent, else the storage
    /// primary). `da_protected`: a wrong `auth` counts toward the TPM's lockout (for PINs).
    pub fn seal(
        data: &[u8],
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
    ) -> Result<SealedData> {
        if data.is_empty() || data.len() > MAX_SEALED_LEN {
            return Err(Error::BadInput(format!(
                "sealed data of {} bytes (1 to {MAX_SEALED_LEN})",
                data.len()
            )));
        }
        if auth.len() > 32 {
            return Err(Error::BadInput(
                "authValue longer than 32 bytes (the TPM's SHA-256 limit)".into(),
            ));
        }
        let template = templates::sealed_data(da_protected)?;
        let (parent, private, public) = create_object(parent, |tpm, t| {
            tpm.create(t.handle, &t.name, &t.auth, auth, data, &template)
        })?;
        Self::from_parts(parent, private, public)
    }

    fn from_parts(parent: u32, private: Vec<u8>, public: Vec<u8>) -> Result<SealedData> {
        let tpmt = tpm2b_contents(&public)
            .map_err(|_| Error::KeyFile("sealed data public area: bad TPM2B size".into()))?;
        let field = |at: usize| {
            tpmt.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        if field(0) != Some(TPM_ALG_KEYEDHASH) {
            return Err(Error::KeyFile(
                "sealed data public area is not a KEYEDHASH object".into(),
            ));
        }
        if field(2) != Some(TPM_ALG_SHA256) {
            return Err(Error::Unsupported(
                "sealed objects whose name algorithm is not SHA-256".into(),
            ));
        }
        let attrs = tpmt
            .get(4..8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| Error::KeyFile("sealed data public area is truncated".into()))?;
        let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&CRYPTO.sha256(&[tpmt]));
        Ok(SealedData {
            parent,
            private,
            public,
            name,
            da_protected: attrs & ATTR_NO_DA == 0,
        })
    }

    /// A sealed data object from its TSS2 file (no TPM command).
    pub fn from_key_file(file: &KeyFile) -> Result<SealedData> {
        if file.key_type != KeyFileType::Sealed {
            return Err(Error::KeyFile(format!(
                "expected a sealed data file, found a {}",
                file.key_type
            )));
        }
        if file.policy.is_some() || file.auth_policy.is_some() || file.secret.is_some() {
            return Err(Error::Unsupported(
                "sealed data bound to a policy or an import secret".into(),
            ));
        }
        Self::from_parts(file.parent, file.private.clone(), file.public.clone())
    }

    pub fn key_file(&self) -> KeyFile {
        KeyFile {
            key_type: KeyFileType::Sealed,
            empty_auth: false,
            policy: None,
            secret: None,
            auth_policy: None,
            envelope: None,
            parent: self.parent,
            public: self.public.clone(),
            private: self.private.clone(),
        }
    }

    /// The object's Name: nameAlg ‖ SHA-256(TPMT_PUBLIC).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    pub fn is_da_protected(&self) -> bool {
        self.da_protected
    }

    /// Runs `op` with the object loaded under its parent, flushing it right after: sealed
    /// objects are used once (a login, a read), so they never take a slot for long.
    fn with_loaded<R>(
        &self,
        mut op: impl FnMut(&mut Tpm, u32, &crate::connection::Target) -> Result<R>,
    ) -> Result<R> {
        with_link(|link| {
            link.run(Need::Parent(self.parent), |tpm, target| {
                let p = target.ok_or_else(|| Error::Integrity("parent not loaded".into()))?;
                with_blob_loaded(tpm, p, &self.private, &self.public, &self.name, |tpm, h| {
                    op(tpm, h, p)
                })
            })
        })
    }

    /// TPM2_Unseal. A wrong `auth` is `Error::is_bad_auth`; a locked-out TPM `is_lockout`.
    pub fn unseal(&self, auth: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.with_loaded(|tpm, handle, _| tpm.unseal(handle, &self.name, auth))
    }

    /// TPM2_ObjectChangeAuth: the same data under `new_auth` (the TPM checks `auth`). The
    /// old blob keeps working with the old authValue: callers replace it where it is stored.
    pub fn change_auth(&self, auth: &[u8], new_auth: &[u8]) -> Result<SealedData> {
        if new_auth.len() > 32 {
            return Err(Error::BadInput(
                "authValue longer than 32 bytes (the TPM's SHA-256 limit)".into(),
            ));
        }
        let private = self.with_loaded(|tpm, handle, parent| {
            tpm.object_change_auth(
                handle,
                &self.name,
                auth,
                parent.handle,
                &parent.name,
                new_auth,
            )
        })?;
        Self::from_parts(self.parent, private, self.public.clone())
    }
}
