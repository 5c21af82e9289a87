//! TPM-resident keys: create, load (lazily, by the connection), sign, decrypt, ECDH,
//! persist and evict. A `TpmKey` holds only what is needed to reload it and the public
//! data every parameter query is answered from.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::attest::creation::CreationRecord;
use crate::attest::signature::TpmSignature;
use crate::commands::KeyAuth;
use crate::config::parse_handle;
use crate::connection::{with_link, Loadable, Need, Target};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::{KeyFile, KeyFileType, TpmAuthPolicy, TpmPolicy};
use crate::policy::{policy_digest, KeyPolicy, Statement};
use crate::policy_session;
use crate::public_key::{KeyPublic, PublicKey};
use crate::rsa_padding;
use crate::session_crypto::{SessionCrypto, CRYPTO};
use crate::templates::{self, KeySpec};
use crate::tpm_pss::{self, checked_tpm_pss};
use crate::wire::{TPM_ALG_ECDSA, TPM_ALG_NULL, TPM_ALG_RSAPSS, TPM_ALG_RSASSA, TPM_RH_OWNER};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyLocation {
    /// A key blob loaded under its parent (0x40000001: the storage primary; 0x81xxxxxx).
    Blob { parent: u32, private: Vec<u8> },
    /// A key stored in the TPM at a persistent handle.
    Persistent(u32),
}

#[derive(Clone)]
pub struct TpmKey {
    location: KeyLocation,
    public: KeyPublic,
    has_password: bool,
    auth: Zeroizing<Vec<u8>>,
    id: u64,
    /// The policy the key is used through (its userWithAuth is clear), if any.
    bound: Option<Arc<Bound>>,
    /// What TPM2_Create said of the key's creation, for keys made in this process.
    creation: Option<Arc<CreationRecord>>,
}

/// A key's (or sealed object's) policy as it runs, and as its key file holds it (written
/// back unchanged).
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) run: KeyPolicy,
    pub(crate) policy: Option<Vec<TpmPolicy>>,
    pub(crate) auth_policy: Option<Vec<TpmAuthPolicy>>,
}

impl std::fmt::Debug for TpmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmKey")
            .field("location", &self.location)
            .field("bits", &self.public.bits())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignScheme {
    Ecdsa(Hash),
    /// RSASSA-PKCS1-v1_5 over a digest of `Hash`.
    RsaPkcs1(Hash),
    /// RSASSA-PKCS1-v1_5 over caller-built bytes (DigestInfo, or MD5+SHA1 for old TLS).
    RsaPkcs1Raw,
    RsaPss {
        hash: Hash,
        mgf1: Hash,
        salt_len: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaPadding {
    Oaep {
        hash: Hash,
        mgf1: Hash,
    },
    Pkcs1,
    /// The raw private-key operation (no padding).
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// r and s, left-padded to the curve size.
    Ecdsa {
        r: Vec<u8>,
        s: Vec<u8>,
    },
    Rsa(Vec<u8>),
}

pub(crate) fn key_id(parent: u32, private: &[u8]) -> u64 {
    let h = CRYPTO.sha256(&[&parent.to_be_bytes(), private]);
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) | 1
}

/// The command layer returns the scheme asked for; should that ever not hold, this names it.
fn not_asked_for(sig: &TpmSignature) -> Error {
    Error::Integrity(format!(
        "TPM2_Sign answered with an {} signature, not the scheme asked for",
        sig.scheme_name()
    ))
}

/// A restricted signing key (sign set, decrypt clear) is an application key for signing
/// messages the TPM hashes ([`TpmKey::sign_message`]); a restricted decryption key is a
/// storage key, never one.
fn refuse_restricted_decryption(public: &KeyPublic) -> Result<()> {
    if public.restricted && (public.can_decrypt || !public.can_sign) {
        return Err(Error::Unsupported(
            "restricted decryption keys (storage keys) as application keys".into(),
        ));
    }
    Ok(())
}

pub(crate) fn left_pad(v: &[u8], len: usize) -> Vec<u8> {
    let v = &v[v.iter().take_while(|b| **b == 0).count()..];
    let mut out = vec![0u8; len.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

impl TpmKey {
    fn from_blob(
        parent: u32,
        private: Vec<u8>,
        public: &[u8],
        password: Option<&[u8]>,
    ) -> Result<TpmKey> {
        let public = KeyPublic::parse(public)?;
        refuse_restricted_decryption(&public)?;
        Ok(TpmKey {
            id: key_id(parent, &private),
            location: KeyLocation::Blob { parent, private },
            public,
            has_password: password.is_some_and(|p| !p.is_empty()),
            auth: Zeroizing::new(password.unwrap_or_default().to_vec()),
            bound: None,
            creation: None,
        })
    }

    /// Creates a new key in the TPM under `parent` (default: the configured parent, else
    /// the storage primary). A key with a password is DA-protected; one without is noDA.
    pub fn generate(spec: KeySpec, password: Option<&[u8]>, parent: Option<u32>) -> Result<TpmKey> {
        let password = password.filter(|p| !p.is_empty());
        Self::generate_under(spec, password, parent, None)
    }

    /// [`TpmKey::generate`] with `parent_auth` for this call instead of the configured
    /// `parent-auth`: the parent's authValue, or for the storage primary (parent None or
    /// 0x40000001) the owner hierarchy's, used if the primary has to be created.
    pub fn generate_under(
        spec: KeySpec,
        password: Option<&[u8]>,
        parent: Option<u32>,
        parent_auth: Option<&[u8]>,
    ) -> Result<TpmKey> {
        let password = password.filter(|p| !p.is_empty());
        Self::create(
            spec,
            password.unwrap_or_default(),
            password.is_some(),
            parent,
            parent_auth,
            &[],
        )
    }

    /// Creates a key usable only through a policy: `statements` are its `policy [1]`
    /// (starting with PolicyAuthorize for a key whose policies are signed later; every
    /// PolicyPCR with the values to bind to). With a password, PolicyAuthValue is added:
    /// the key then needs the platform state AND the password. userWithAuth is clear, and
    /// the key the TPM made is checked to carry the digest computed here.
    pub fn generate_with_policy(
        spec: KeySpec,
        password: Option<&[u8]>,
        parent: Option<u32>,
        parent_auth: Option<&[u8]>,
        statements: Vec<Statement>,
    ) -> Result<TpmKey> {
        let password = password.filter(|p| !p.is_empty());
        Self::create_bound(
            spec,
            password.unwrap_or_default(),
            password.is_some(),
            parent,
            parent_auth,
            statements,
        )
    }

    /// [`TpmKey::generate_with_secret`] bound to `statements` as
    /// [`TpmKey::generate_with_policy`] binds them: PolicyAuthValue is added, so the key
    /// needs the platform state AND the secret; noDA like every secret-authorised key.
    pub fn generate_with_secret_and_policy(
        spec: KeySpec,
        auth: &[u8],
        parent: Option<u32>,
        statements: Vec<Statement>,
    ) -> Result<TpmKey> {
        if auth.is_empty() {
            return Err(Error::BadInput("a key secret cannot be empty".into()));
        }
        Self::create_bound(spec, auth, false, parent, None, statements)
    }

    /// A key under `statements`, with PolicyAuthValue added when `auth` is not empty.
    fn create_bound(
        spec: KeySpec,
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
        parent_auth: Option<&[u8]>,
        mut statements: Vec<Statement>,
    ) -> Result<TpmKey> {
        let has_auth_value = statements
            .iter()
            .any(|s| matches!(s, Statement::AuthValue | Statement::Password));
        if !auth.is_empty() && !has_auth_value {
            statements.push(Statement::AuthValue);
        }
        if statements.is_empty() {
            return Err(Error::BadInput(
                "a policy key needs at least one policy statement".into(),
            ));
        }
        let digest = policy_digest(&statements)?;
        // The creation data records the digest of the PCRs the key is bound to, so that
        // CertifyCreation also proves the state the key was created in.
        let creation_pcrs = statements.iter().find_map(|s| match s {
            Statement::Pcr(p) => Some(p.selection.marshal()),
            _ => None,
        });
        let mut key = Self::create_recording(
            spec,
            auth,
            da_protected,
            parent,
            parent_auth,
            &digest,
            creation_pcrs.as_deref(),
        )?;
        if key.public.auth_policy != digest || key.public.user_with_auth {
            return Err(Error::Integrity(
                "the TPM created the key with another policy than the one requested".into(),
            ));
        }
        let policy = Statement::encode_all(&statements)?;
        let authorize = match statements.first() {
            Some(Statement::Authorize(a)) => Some(a.clone()),
            _ => None,
        };
        let rest = statements
            .into_iter()
            .skip(usize::from(authorize.is_some()))
            .collect();
        key.bound = Some(Arc::new(Bound {
            run: KeyPolicy {
                authorize,
                statements: rest,
                signed: Vec::new(),
            },
            policy: Some(policy),
            auth_policy: None,
        }));
        Ok(key)
    }

    /// Creates a key whose authValue is a high-entropy secret (derived by software, never
    /// typed by a person): noDA, so failed guesses at other objects never lock it out.
    pub fn generate_with_secret(spec: KeySpec, auth: &[u8], parent: Option<u32>) -> Result<TpmKey> {
        Self::create(spec, auth, false, parent, None, &[])
    }

    fn create(
        spec: KeySpec,
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
        parent_auth: Option<&[u8]>,
        auth_policy: &[u8],
    ) -> Result<TpmKey> {
        Self::create_recording(
            spec,
            auth,
            da_protected,
            parent,
            parent_auth,
            auth_policy,
            None,
        )
    }

    /// [`TpmKey::create`] whose creation data records the digest of `creation_pcrs` (a
    /// marshalled TPML_PCR_SELECTION).
    fn create_recording(
        spec: KeySpec,
        auth: &[u8],
        da_protected: bool,
        parent: Option<u32>,
        parent_auth: Option<&[u8]>,
        auth_policy: &[u8],
        creation_pcrs: Option<&[u8]>,
    ) -> Result<TpmKey> {
        if auth.len() > 32 {
            return Err(Error::BadInput(
                "key password longer than 32 bytes (the TPM's SHA-256 limit)".into(),
            ));
        }
        let template = templates::key_with_policy(spec, da_protected, auth_policy)?;
        let mut creation = None;
        let (parent, private, public) = create_object_under(parent, parent_auth, |tpm, t| {
            let (private, public, c) = tpm.create_keeping_creation(
                t.handle,
                &t.name,
                &t.auth,
                auth,
                &[],
                &template,
                creation_pcrs,
            )?;
            creation = Some(Arc::new(c));
            Ok((private, public))
        })?;
        let mut key = Self::from_blob(parent, private, &public, Some(auth))?;
        key.creation = creation;
        Ok(key)
    }

    /// What the TPM recorded when it created this key (parent, PCRs, locality) with its
    /// creation ticket: for keys generated in this process, None for keys loaded from files
    /// (their creation file, `tpmkey keygen --creation-data`, holds it).
    pub fn creation(&self) -> Option<&CreationRecord> {
        self.creation.as_deref()
    }

    /// A key from a TSS2 PRIVATE KEY file; the TPM is not touched until the key is used.
    /// An importable key file is the exception: it is imported (one TPM2_Import) the
    /// first time and its loadable form cached in the state directory (`import::loadable`).
    pub fn from_key_file(file: &KeyFile, password: Option<&[u8]>) -> Result<TpmKey> {
        if file.key_type == KeyFileType::Importable {
            return Self::from_key_file(&crate::import::loadable(file)?, password);
        }
        file.check_loadable()?;
        if file.key_type != KeyFileType::Loadable {
            return Err(Error::Unsupported(
                "key files that are not loadable keys".into(),
            ));
        }
        let mut key = Self::from_blob(file.parent, file.private.clone(), &file.public, password)?;
        key.has_password = !file.empty_auth;
        if let Some(run) = KeyPolicy::from_key_file(file)? {
            if !key.public.has_policy {
                return Err(Error::KeyFile(
                    "the key file carries a policy but the key has no authPolicy".into(),
                ));
            }
            // A digest the host can compute (PolicyPCR with its values) must be the key's.
            if let Ok(digest) = run.auth_policy_digest() {
                if digest != key.public.auth_policy {
                    return Err(Error::KeyFile(
                        "policy [1] does not give the key's authPolicy: the policy fields belong to another key"
                            .into(),
                    ));
                }
            }
            key.bound = Some(Arc::new(Bound {
                run,
                policy: file.policy.clone(),
                auth_policy: file.auth_policy.clone(),
            }));
        }
        Ok(key)
    }

    /// A key stored at a persistent handle (one TPM2_ReadPublic).
    pub fn from_persistent(handle: u32, password: Option<&[u8]>) -> Result<TpmKey> {
        if !(0x8100_0000..=0x81FF_FFFF).contains(&handle) {
            return Err(Error::BadInput(format!(
                "0x{handle:08x} is not a persistent handle (0x81xxxxxx)"
            )));
        }
        let public = with_link(|link| link.read_persistent(handle))?;
        if refuse_restricted_decryption(&public).is_err() {
            return Err(Error::Unsupported(format!(
                "0x{handle:08x} is a restricted decryption (storage) key, never an application key"
            )));
        }
        Ok(TpmKey {
            location: KeyLocation::Persistent(handle),
            has_password: password.is_some_and(|p| !p.is_empty()),
            auth: Zeroizing::new(password.unwrap_or_default().to_vec()),
            public,
            id: u64::from(handle) << 1,
            bound: None,
            creation: None,
        })
    }

    /// Parses `handle:0x81000001` (the URI form users of tpm2-openssl write).
    pub fn parse_handle_uri(uri: &str) -> Result<u32> {
        let rest = uri
            .strip_prefix("handle:")
            .ok_or_else(|| Error::BadInput(format!("\"{uri}\" is not a handle: URI")))?;
        let rest = rest.split('?').next().unwrap_or_default();
        parse_handle(rest)
            .ok_or_else(|| Error::BadInput(format!("\"{uri}\": expected handle:0x81xxxxxx")))
    }

    pub fn public(&self) -> &KeyPublic {
        &self.public
    }

    pub fn location(&self) -> &KeyLocation {
        &self.location
    }

    /// True when the key file says the key has a password (emptyAuth FALSE).
    pub fn needs_password(&self) -> bool {
        self.has_password
    }

    pub fn set_password(&mut self, password: &[u8]) {
        self.auth = Zeroizing::new(password.to_vec());
    }

    /// Loads the key into the TPM now (its first operation will not need to), so that a
    /// key file that is corrupt or belongs to another TPM fails when an application opens
    /// it, not at its first use. Needs no password: only the parent authorises TPM2_Load.
    ///
    /// Only when the parent's authorisation is known without asking: the storage primary,
    /// or the configured persistent parent. Another persistent parent may need an authValue
    /// the application gives only with the operation, and guessing could cost a
    /// dictionary-attack count; such keys load at first use, as before.
    pub fn load(&self) -> Result<()> {
        let KeyLocation::Blob { parent, .. } = &self.location else {
            return Ok(());
        };
        let needed = with_link(|link| {
            let known_parent = *parent == TPM_RH_OWNER || link.config().parent == Some(*parent);
            Ok(known_parent && !link.holds(self.id))
        })?;
        if !needed {
            return Ok(());
        }
        with_link(|link| {
            link.before_opening();
            Ok(())
        })?;
        let opened = match self.bound {
            // Opening a key bound to the platform state says at once whether it is usable.
            Some(_) => self.check_policy(),
            None => self.with_loaded(|_, _| Ok(())),
        };
        with_link(|link| {
            link.after_opening();
            Ok(())
        })?;
        opened
    }

    /// The key as a TSS2 PRIVATE KEY file; `None` for persistent keys.
    pub fn key_file(&self) -> Option<KeyFile> {
        match &self.location {
            KeyLocation::Blob { parent, private } => Some(KeyFile {
                key_type: KeyFileType::Loadable,
                // A derived authValue (token keys) is a password too: only a key with no
                // authValue at all says emptyAuth TRUE.
                empty_auth: !self.has_password && self.auth.is_empty(),
                policy: self.bound.as_ref().and_then(|b| b.policy.clone()),
                secret: None,
                auth_policy: self.bound.as_ref().and_then(|b| b.auth_policy.clone()),
                envelope: None,
                parent: *parent,
                public: self.public.blob.clone(),
                private: private.clone(),
            }),
            KeyLocation::Persistent(_) => None,
        }
    }

    fn loadable(&self) -> Loadable<'_> {
        match &self.location {
            KeyLocation::Blob { parent, private } => Loadable::Blob {
                id: self.id,
                parent: *parent,
                private,
                public: &self.public.blob,
                name: &self.public.name,
            },
            KeyLocation::Persistent(handle) => Loadable::Persistent {
                handle: *handle,
                name: &self.public.name,
            },
        }
    }

    /// Runs `op` with the key loaded and, for a key with a policy, the policy session ready.
    pub(crate) fn with_loaded<R>(
        &self,
        op: impl FnMut(&mut crate::commands::Tpm, &Target) -> Result<R>,
    ) -> Result<R> {
        self.loaded_for(self.bound.is_some(), op)
    }

    /// Runs `op` with the key loaded and the HMAC session ready, whatever the key's policy:
    /// for commands in the key's ADMIN role (TPM2_Certify), which its authValue authorises
    /// (adminWithPolicy is clear).
    pub(crate) fn with_loaded_for_admin<R>(
        &self,
        op: impl FnMut(&mut crate::commands::Tpm, &Target) -> Result<R>,
    ) -> Result<R> {
        self.loaded_for(false, op)
    }

    fn loaded_for<R>(
        &self,
        policy_session: bool,
        mut op: impl FnMut(&mut crate::commands::Tpm, &Target) -> Result<R>,
    ) -> Result<R> {
        let loadable = self.loadable();
        let need = match policy_session {
            true => Need::PolicyKey(&loadable, &self.auth),
            false => Need::Key(&loadable, &self.auth),
        };
        with_link(|link| {
            link.run(need, |tpm, target| {
                let t = target.ok_or_else(|| Error::Integrity("key not loaded".into()))?;
                op(tpm, t)
            })
        })
    }

    /// Runs `op` on the loaded key; a key with a policy has it satisfied first in the
    /// policy session, which then authorises `op`.
    pub(crate) fn with_key<R>(
        &self,
        mut op: impl FnMut(&mut crate::commands::Tpm, u32, &[u8], KeyAuth<'_>) -> Result<R>,
    ) -> Result<R> {
        self.with_loaded(|tpm, t| {
            let Some(bound) = &self.bound else {
                return op(tpm, t.handle, &t.name, KeyAuth::Value(&t.auth));
            };
            policy_session::satisfy(tpm, &bound.run, &t.auth)?;
            op(tpm, t.handle, &t.name, KeyAuth::Policy(&t.auth)).map_err(|e| {
                if e.is_policy_failure() && !matches!(e, Error::PolicyNotSatisfied(_)) {
                    Error::PolicyNotSatisfied(policy_session::use_failure(&bound.run))
                } else {
                    e
                }
            })
        })
    }

    /// The key's policy, if it is used through one.
    pub fn policy(&self) -> Option<&KeyPolicy> {
        self.bound.as_ref().map(|b| &b.run)
    }

    /// Whether the platform state satisfies the key's policy now, found without using the
    /// key (so without a dictionary-attack count): the policy is run and the session's
    /// digest compared with the key's authPolicy. Ok for a key without a policy.
    pub fn check_policy(&self) -> Result<()> {
        let Some(bound) = &self.bound else {
            return Ok(());
        };
        self.with_loaded(|tpm, t| {
            policy_session::satisfy(tpm, &bound.run, &t.auth)?;
            let session = tpm
                .policy
                .session
                .as_ref()
                .map(|s| s.session.handle)
                .ok_or_else(|| Error::Integrity("no policy session".into()))?;
            let digest = tpm.policy_get_digest(session)?;
            if digest != self.public.auth_policy {
                return Err(Error::PolicyNotSatisfied(policy_session::use_failure(
                    &bound.run,
                )));
            }
            Ok(())
        })
    }

    fn modulus_len(&self) -> Result<usize> {
        match &self.public.key {
            PublicKey::Rsa { modulus, .. } => Ok(modulus.len()),
            PublicKey::Ec { .. } => Err(Error::BadInput("an RSA operation on an EC key".into())),
        }
    }

    /// Signs a digest (for `RsaPkcs1Raw`, the bytes to pad). One TPM command when loaded.
    pub fn sign(&self, scheme: SignScheme, digest: &[u8]) -> Result<Signature> {
        if !self.public.can_sign {
            return Err(Error::BadInput(
                "this key may not sign (its sign attribute is clear)".into(),
            ));
        }
        if self.public.restricted {
            return Err(Error::Unsupported(
                crate::message_signing::DIGEST_ON_RESTRICTED.into(),
            ));
        }
        match (scheme, &self.public.key) {
            (SignScheme::Ecdsa(hash), PublicKey::Ec { curve, .. }) => {
                let n = curve.coordinate_len();
                match self.tpm_sign(TPM_ALG_ECDSA, hash, digest)? {
                    TpmSignature::Ecdsa { r, s, .. } => Ok(Signature::Ecdsa {
                        r: left_pad(&r, n),
                        s: left_pad(&s, n),
                    }),
                    other => Err(not_asked_for(&other)),
                }
            }
            (SignScheme::RsaPkcs1(hash), PublicKey::Rsa { .. }) => {
                match self.tpm_sign(TPM_ALG_RSASSA, hash, digest)? {
                    TpmSignature::Rsassa { sig, .. } => Ok(Signature::Rsa(sig)),
                    other => Err(not_asked_for(&other)),
                }
            }
            (SignScheme::RsaPkcs1Raw, PublicKey::Rsa { .. }) => {
                let block = rsa_padding::pkcs1_v15_sign_block(digest, self.modulus_len()?)?;
                Ok(Signature::Rsa(self.rsa_private(&block)?.to_vec()))
            }
            (
                SignScheme::RsaPss {
                    hash,
                    mgf1,
                    salt_len,
                },
                PublicKey::Rsa { .. },
            ) => {
                if self.public.can_decrypt && mgf1 == hash {
                    let block =
                        rsa_padding::pss_encode(hash, digest, salt_len, self.public.bits())?;
                    return Ok(Signature::Rsa(self.rsa_private(&block)?.to_vec()));
                }
                // A sign-only key: the TPM's own PSS, whose salt is the digest length on
                // swtpm but the maximum on many hardware TPMs; checked before use.
                tpm_pss::tpm_can_make(
                    hash,
                    mgf1,
                    salt_len,
                    self.public.bits(),
                    "a key without the decrypt attribute",
                )?;
                match self.tpm_sign(TPM_ALG_RSAPSS, hash, digest)? {
                    TpmSignature::Rsapss { sig, .. } => Ok(Signature::Rsa(checked_tpm_pss(
                        &self.public.key,
                        hash,
                        digest,
                        salt_len,
                        sig,
                    )?)),
                    other => Err(not_asked_for(&other)),
                }
            }
            _ => Err(Error::BadInput(format!(
                "{scheme:?} does not fit a {} key",
                if self.public.is_rsa() { "RSA" } else { "EC" }
            ))),
        }
    }

    /// TPM2_Sign of a digest.
    fn tpm_sign(&self, scheme: u16, hash: Hash, digest: &[u8]) -> Result<TpmSignature> {
        if digest.len() != hash.len() {
            return Err(Error::BadInput(format!(
                "digest is {} bytes, {} needs {}",
                digest.len(),
                hash.name(),
                hash.len()
            )));
        }
        self.with_key(|tpm, h, name, auth| tpm.sign(h, name, auth, digest, scheme, hash.tpm_alg()))
    }

    /// The raw RSA private-key operation x^d mod n (TPM2_RSA_Decrypt, scheme NULL).
    pub fn rsa_private(&self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let k = self.modulus_len()?;
        if !self.public.can_decrypt {
            return Err(Error::Unsupported(
                "raw RSA on a key without the decrypt attribute".into(),
            ));
        }
        if input.len() > k {
            return Err(Error::BadInput(format!(
                "input of {} bytes is longer than the {}-byte modulus",
                input.len(),
                k
            )));
        }
        let input = left_pad(input, k);
        let out = self.with_key(|tpm, h, name, auth| {
            tpm.rsa_decrypt(h, name, auth, &input, TPM_ALG_NULL, 0, &[])
        })?;
        Ok(Zeroizing::new(left_pad(&out, k)))
    }

    /// RSA decryption: the TPM does the raw operation, the padding is removed here.
    pub fn decrypt(
        &self,
        padding: RsaPadding,
        label: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let k = self.modulus_len()?;
        if ciphertext.len() != k {
            return Err(Error::BadInput(format!(
                "ciphertext is {} bytes, the key needs {k}",
                ciphertext.len()
            )));
        }
        let em = self.rsa_private(ciphertext)?;
        match padding {
            RsaPadding::Oaep { hash, mgf1 } => rsa_padding::oaep_decode(hash, mgf1, label, &em),
            RsaPadding::Pkcs1 => rsa_padding::pkcs1_v15_decrypt_decode(&em),
            RsaPadding::None => Ok(em),
        }
    }

    /// ECDH: the shared secret x(d * peer), peer coordinates of the key's curve.
    pub fn ecdh(&self, x: &[u8], y: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let PublicKey::Ec { curve, .. } = &self.public.key else {
            return Err(Error::BadInput("ECDH with an RSA key".into()));
        };
        let n = curve.coordinate_len();
        if x.len() > n || y.len() > n {
            return Err(Error::BadInput(format!(
                "peer point is not on {}",
                curve.name()
            )));
        }
        if !self.public.can_decrypt {
            return Err(Error::Unsupported(
                "ECDH on a key without the decrypt attribute".into(),
            ));
        }
        let (x, y) = (left_pad(x, n), left_pad(y, n));
        let z = self.with_key(|tpm, h, name, auth| tpm.ecdh_zgen(h, name, auth, &x, &y))?;
        Ok(Zeroizing::new(left_pad(&z, n)))
    }

    /// TPM2_ObjectChangeAuth: the same key under `new_auth`, as a new blob under the key's
    /// parent (the TPM checks the current authValue). A persistent key's parent must be the
    /// configured parent or the storage primary (the TPM refuses another). The key file or
    /// persistent object this key came from keeps its old authValue.
    pub fn change_auth(&self, new_auth: &[u8]) -> Result<TpmKey> {
        if new_auth.len() > 32 {
            return Err(Error::BadInput(
                "key password longer than 32 bytes (the TPM's SHA-256 limit)".into(),
            ));
        }
        let (parent, private) = with_link(|link| {
            let parent = match &self.location {
                KeyLocation::Blob { parent, .. } => *parent,
                KeyLocation::Persistent(_) => link.config().parent.unwrap_or(TPM_RH_OWNER),
            };
            let private = link.run(Need::Parent(parent), |tpm, target| {
                let p = target.ok_or_else(|| Error::Integrity("parent not loaded".into()))?;
                let change = |tpm: &mut crate::commands::Tpm, handle| {
                    tpm.object_change_auth(
                        handle,
                        &self.public.name,
                        &self.auth,
                        p.handle,
                        &p.name,
                        new_auth,
                    )
                };
                match &self.location {
                    KeyLocation::Blob { private, .. } => with_blob_loaded(
                        tpm,
                        p,
                        private,
                        &self.public.blob,
                        &self.public.name,
                        change,
                    ),
                    KeyLocation::Persistent(handle) => change(tpm, *handle),
                }
            })?;
            Ok((parent, private))
        })?;
        Self::from_blob(parent, private, &self.public.blob, Some(new_auth))
    }

    /// Stores the key at `handle` (0x81xxxxxx) under the owner hierarchy.
    pub fn persist(&self, handle: u32) -> Result<TpmKey> {
        if !(0x8100_0000..=0x81FF_FFFF).contains(&handle) {
            return Err(Error::BadInput(format!(
                "0x{handle:08x} is not a persistent handle (0x81xxxxxx)"
            )));
        }
        if matches!(self.location, KeyLocation::Persistent(_)) {
            return Err(Error::BadInput("the key is already persistent".into()));
        }
        let owner_auth = with_link(|link| Ok(link.config().parent_auth.clone()))?;
        self.with_loaded(|tpm, t| tpm.evict_control(&owner_auth, t.handle, &t.name, handle))?;
        Ok(TpmKey {
            location: KeyLocation::Persistent(handle),
            public: self.public.clone(),
            has_password: self.has_password,
            auth: self.auth.clone(),
            id: u64::from(handle) << 1,
            bound: self.bound.clone(),
            creation: self.creation.clone(),
        })
    }
}

/// Removes the persistent object at `handle`.
pub fn evict_persistent(handle: u32) -> Result<()> {
    if !(0x8100_0000..=0x81FF_FFFF).contains(&handle) {
        return Err(Error::BadInput(format!(
            "0x{handle:08x} is not a persistent handle (0x81xxxxxx)"
        )));
    }
    with_link(|link| {
        let public = link.read_persistent(handle)?;
        let owner_auth = link.config().parent_auth.clone();
        let r = link.run(Need::Nothing, |tpm, _| {
            tpm.evict_control(&owner_auth, handle, &public.name, handle)
        });
        link.forget_persistent(handle);
        r
    })
}

/// Runs TPM2_Create under `parent` (default: the configured parent, else the storage
/// primary): (parent handle used, TPM2B_PRIVATE, TPM2B_PUBLIC).
pub(crate) fn create_object(
    parent: Option<u32>,
    create: impl FnMut(
        &mut crate::commands::Tpm,
        &crate::connection::Target,
    ) -> Result<(Vec<u8>, Vec<u8>)>,
) -> Result<(u32, Vec<u8>, Vec<u8>)> {
    create_object_under(parent, None, create)
}

/// [`create_object`] with `parent_auth` instead of the configured `parent-auth`.
fn create_object_under(
    parent: Option<u32>,
    parent_auth: Option<&[u8]>,
    mut create: impl FnMut(
        &mut crate::commands::Tpm,
        &crate::connection::Target,
    ) -> Result<(Vec<u8>, Vec<u8>)>,
) -> Result<(u32, Vec<u8>, Vec<u8>)> {
    with_link(|link| {
        let parent = parent.or(link.config().parent).unwrap_or(TPM_RH_OWNER);
        let need = match parent_auth {
            Some(auth) => Need::ParentWithAuth(parent, auth),
            None => Need::Parent(parent),
        };
        let (private, public) = link.run(need, |tpm, target| {
            let t = target.ok_or_else(|| Error::Integrity("parent not loaded".into()))?;
            create(tpm, t)
        })?;
        Ok((parent, private, public))
    })
}

/// Runs `op` on a blob loaded under the loaded parent `parent`, flushing it right after:
/// for objects used once (a login, an authValue change), never taking a slot for long.
/// The TPM's Name for the loaded object must be `name`.
pub(crate) fn with_blob_loaded<R>(
    tpm: &mut crate::commands::Tpm,
    parent: &crate::connection::Target,
    private: &[u8],
    public: &[u8],
    name: &[u8],
    op: impl FnOnce(&mut crate::commands::Tpm, u32) -> Result<R>,
) -> Result<R> {
    let (handle, loaded_name) =
        tpm.load(parent.handle, &parent.name, &parent.auth, private, public)?;
    let result = if loaded_name == name {
        op(tpm, handle)
    } else {
        Err(Error::Integrity(
            "the TPM computed another Name for the loaded object".into(),
        ))
    };
    let flushed = tpm.flush_context(handle);
    let r = result?;
    flushed?;
    Ok(r)
}

/// The current values of the PCRs in `selection`, in selection order (what a key bound
/// to "the state now" is bound to).
pub fn read_pcrs(selection: &crate::policy::PcrSelection) -> Result<Vec<Vec<u8>>> {
    with_link(|link| {
        link.run(Need::Nothing, |tpm, _| {
            policy_session::read_pcrs(tpm, selection)
        })
    })
}

/// TPM properties (TPM_CAP_TPM_PROPERTIES) from `first`, at most `count`: (property, value).
pub fn tpm_properties(first: u32, count: u32) -> Result<Vec<(u32, u32)>> {
    with_link(|link| link.run(Need::Nothing, |tpm, _| tpm.tpm_properties(first, count)))
}

/// Mixes caller entropy into the TPM's random number generator (TPM2_StirRandom).
pub fn stir_random(data: &[u8]) -> Result<()> {
    with_link(|link| {
        for chunk in data.chunks(128) {
            link.run(Need::Nothing, |tpm, _| tpm.stir_random(chunk))?;
        }
        Ok(())
    })
}

/// Fills `out` from the TPM's random number generator (encrypted on the bus).
pub fn random(out: &mut [u8]) -> Result<()> {
    with_link(|link| {
        let mut filled = 0;
        while filled < out.len() {
            let want = (out.len() - filled).min(64) as u16;
            let bytes = link.run(Need::Nothing, |tpm, _| tpm.get_random(want))?;
            if bytes.is_empty() {
                return Err(Error::Integrity("TPM2_GetRandom returned no bytes".into()));
            }
            let n = bytes.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&bytes[..n]);
            filled += n;
        }
        Ok(())
    })
}

/// Whether this TPM accepts a key blob under `parent` now: one TPM2_Load (only the parent
/// authorises it, so no dictionary-attack count can be spent), flushed at once. The TPM's
/// Name for the loaded object must be the Name of `public`.
pub fn check_blob_loads(parent: u32, private: &[u8], public: &[u8]) -> Result<()> {
    let name = crate::policy::statement::public_name(public)?;
    with_link(|link| {
        link.run(Need::Parent(parent), |tpm, target| {
            let t = target.ok_or_else(|| Error::Integrity("parent not loaded".into()))?;
            with_blob_loaded(tpm, t, private, public, &name, |_, _| Ok(()))
        })
    })
}
