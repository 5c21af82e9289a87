//! TPM sealed data objects: a few secret bytes (at most 128, the TPM's MAX_SYM_DATA) that
//! only the TPM gives back, to whoever presents the authValue. The PKCS#11 token seals its
//! token secret under PIN-derived authValues (dictionary-attack protected: the TPM rate-limits
//! PIN guessing) and private data objects under high-entropy authValues (noDA).
//! Stored as TSS2 PRIVATE KEY files of type sealed data (OID 2.23.133.10.1.5).
//!
//! A sealed object may be bound to a policy (the platform state: PCRs, signed policies,
//! expiry), as keys are: its `policy [1]` / `authPolicy [3]` run in the connection's
//! policy session (`crate::policy_session`) before TPM2_Unseal, and userWithAuth is clear
//! so that the authValue alone never unseals it.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::commands::{KeyAuth, Tpm};
use crate::connection::{with_link, Loadable, Need};
use crate::error::{Error, Result};
use crate::keyfile::{KeyFile, KeyFileType};
use crate::keys::{create_object, key_id, with_blob_loaded, Bound};
use crate::policy::{policy_digest, KeyPolicy, Statement};
use crate::policy_session;
use crate::session_crypto::{SessionCrypto, CRYPTO};
use crate::templates;
use crate::wire::{tpm2b_contents, Reader, TPM_ALG_KEYEDHASH, TPM_ALG_SHA256};

/// The TPM's MAX_SYM_DATA: the most a sealed data object holds.
pub const MAX_SEALED_LEN: usize = 128;

const ATTR_USER_WITH_AUTH: u32 = 1 << 6;
const ATTR_NO_DA: u32 = 1 << 10;

#[derive(Clone)]
pub struct SealedData {
    parent: u32,
    private: Vec<u8>,
    public: Vec<u8>,
    name: Vec<u8>,
    da_protected: bool,
    /// The object's authPolicy digest (empty: none).
    auth_policy: Vec<u8>,
    user_with_auth: bool,
    bound: Option<Arc<Bound>>,
}

impl std::fmt::Debug for SealedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedData")
            .field("parent", &format_args!("0x{:08x}", self.parent))
            .field("da_protected", &self.da_protected)
            .field("policy", &self.bound.is_some())
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
        check_sizes(data, auth)?;
        let template = templates::sealed_data(da_protected, &[])?;
        let (parent, private, public) = create_object(parent, |tpm, t| {
            tpm.create(t.handle, &t.name, &t.auth, auth, data, &template)
        })?;
        Self::from_parts(parent, private, public)
    }

    /// [`SealedData::seal`] bound to `statements` (see `crate::key_policy`): unsealed only
    /// in a policy session that satisfies them. With a non-empty `auth`, PolicyAuthValue is
    /// added: the platform state AND the password. userWithAuth is clear.
    pub fn seal_with_policy(
        data: &[u8],
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
        mut statements: Vec<Statement>,
    ) -> Result<SealedData> {
        if !auth.is_empty()
            && !statements
                .iter()
                .any(|s| matches!(s, Statement::AuthValue | Statement::Password))
        {
            statements.push(Statement::AuthValue);
        }
        if statements.is_empty() {
            return Err(Error::BadInput(
                "a policy-bound sealed object needs at least one policy statement".into(),
            ));
        }
        check_sizes(data, auth)?;
        let digest = policy_digest(&statements)?;
        let template = templates::sealed_data(da_protected, &digest)?;
        let (parent, private, public) = create_object(parent, |tpm, t| {
            tpm.create(t.handle, &t.name, &t.auth, auth, data, &template)
        })?;
        let created = Self::from_parts(parent, private, public)?;
        if created.auth_policy != digest || created.user_with_auth {
            return Err(Error::Integrity(
                "the TPM created the sealed object with another policy than the one requested"
                    .into(),
            ));
        }
        let file = KeyFile {
            policy: Some(Statement::encode_all(&statements)?),
            ..created.key_file()
        };
        Self::from_key_file(&file)
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
        let truncated = || Error::KeyFile("sealed data public area is truncated".into());
        let attrs = tpmt
            .get(4..8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(truncated)?;
        let auth_policy = Reader::new(tpmt.get(8..).ok_or_else(truncated)?)
            .tpm2b()
            .map_err(|_| truncated())?
            .to_vec();
        let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&CRYPTO.sha256(&[tpmt]));
        Ok(SealedData {
            parent,
            private,
            public,
            name,
            da_protected: attrs & ATTR_NO_DA == 0,
            auth_policy,
            user_with_auth: attrs & ATTR_USER_WITH_AUTH != 0,
            bound: None,
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
        if file.secret.is_some() {
            return Err(Error::Unsupported(
                "importable sealed data (secret [2]: wrapped for TPM2_Import)".into(),
            ));
        }
        let mut sealed = Self::from_parts(file.parent, file.private.clone(), file.public.clone())?;
        if let Some(run) = KeyPolicy::from_key_file(file)? {
            if sealed.auth_policy.is_empty() {
                return Err(Error::KeyFile(
                    "the sealed data file carries a policy but the object has no authPolicy".into(),
                ));
            }
            sealed.bound = Some(Arc::new(Bound {
                run,
                policy: file.policy.clone(),
                auth_policy: file.auth_policy.clone(),
            }));
        }
        Ok(sealed)
    }

    pub fn key_file(&self) -> KeyFile {
        KeyFile {
            key_type: KeyFileType::Sealed,
            empty_auth: false,
            policy: self.bound.as_ref().and_then(|b| b.policy.clone()),
            secret: None,
            auth_policy: self.bound.as_ref().and_then(|b| b.auth_policy.clone()),
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

    /// The object's policy, if it is unsealed through one.
    pub fn policy(&self) -> Option<&KeyPolicy> {
        self.bound.as_ref().map(|b| &b.run)
    }

    /// TPM2_Unseal. A wrong `auth` is `Error::is_bad_auth`; a locked-out TPM `is_lockout`;
    /// a platform state the object's policy refuses `Error::PolicyNotSatisfied`, naming the
    /// statement (no dictionary-attack count: the policy fails before authorisation).
    pub fn unseal(&self, auth: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.unseal_with(auth, false)
    }

    /// [`SealedData::unseal`] of an object used once (a PIN object at login): a
    /// policy-bound one is flushed right after, not kept loaded or saved, and so is the
    /// policy session.
    pub fn unseal_once(&self, auth: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.unseal_with(auth, true)
    }

    fn unseal_with(&self, auth: &[u8], once: bool) -> Result<Zeroizing<Vec<u8>>> {
        let Some(bound) = &self.bound else {
            return self.with_loaded(|tpm, handle, _| tpm.unseal(handle, &self.name, auth));
        };
        let id = key_id(self.parent, &self.private);
        let loadable = Loadable::Blob {
            id,
            parent: self.parent,
            private: &self.private,
            public: &self.public,
            name: &self.name,
        };
        with_link(|link| {
            let unsealed = link.run(Need::PolicyKey(&loadable, auth), |tpm, target| {
                let t =
                    target.ok_or_else(|| Error::Integrity("sealed object not loaded".into()))?;
                policy_session::satisfy(tpm, &bound.run, &t.auth)?;
                tpm.policy.end_after_next = once;
                let unsealed = tpm.unseal(t.handle, &t.name, KeyAuth::Policy(&t.auth));
                // Never left set for a later command when the Unseal did not reach the TPM.
                tpm.policy.end_after_next = false;
                unsealed.map_err(|e| {
                    if e.is_policy_failure() && !matches!(e, Error::PolicyNotSatisfied(_)) {
                        Error::PolicyNotSatisfied(policy_session::use_failure(&bound.run))
                    } else {
                        e
                    }
                })
            });
            if once {
                link.discard_loaded(id);
                // Ended by the Unseal itself when it succeeded; flushed otherwise.
                link.discard_policy_session();
            }
            unsealed
        })
    }

    /// TPM2_ObjectChangeAuth: the same data under `new_auth` (the TPM checks `auth`). The
    /// old blob keeps working with the old authValue: callers replace it where it is stored.
    pub fn change_auth(&self, auth: &[u8], new_auth: &[u8]) -> Result<SealedData> {
        if self.bound.is_some() {
            return Err(Error::Unsupported(
                "changing the authValue of a policy-bound sealed object".into(),
            ));
        }
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

fn check_sizes(data: &[u8], auth: &[u8]) -> Result<()> {
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
    Ok(())
}
