//! Signed (authorised) policies: what a signer signs, the two policyRef dialects, the
//! `authPolicy [3]` entries built from a signature, and a key file's policy read as a
//! whole (the AND list plus the signed alternatives) ready to execute.
//!
//! The signer signs `aHash = SHA-256(approvedPolicy ‖ policyRef)`; with OpenSSL that is
//! `openssl dgst -sha256 -sign key` over the bytes `approvedPolicy ‖ policyRef`
//! ([`signed_message`]). TPM2_VerifySignature takes aHash ([`authorization_hash`]) and
//! returns the ticket PolicyAuthorize needs.

use super::digest::policy_digest;
use super::signer::{SignerKey, TpmSignature};
use super::statement::{PolicyAuthorize, Statement};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::{KeyFile, TpmAuthPolicy};
use crate::session_crypto::{SessionCrypto, CRYPTO};

/// Length of the engine dialect's policyRef nonce.
pub const POLICY_REF_NONCE_LEN: usize = 32;

/// Which policyRef a key's signed policies use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyRefDialect {
    /// openssl_tpm2_engine: a random 32-byte nonce per key (stops a signed policy of one
    /// key from being replayed on another key of the same signer).
    EngineNonce,
    /// systemd, GRUB, pcr-oracle: empty (GRUB ignores policyRef when verifying).
    Empty,
}

impl PolicyRefDialect {
    /// A policyRef for a new key in this dialect.
    pub fn new_policy_ref(self) -> Vec<u8> {
        match self {
            PolicyRefDialect::EngineNonce => {
                let mut nonce = vec![0u8; POLICY_REF_NONCE_LEN];
                CRYPTO.random(&mut nonce);
                nonce
            }
            PolicyRefDialect::Empty => Vec::new(),
        }
    }
}

/// The bytes a signer hashes with SHA-256 and signs: `approvedPolicy ‖ policyRef`.
pub fn signed_message(approved_policy: &[u8], policy_ref: &[u8]) -> Vec<u8> {
    [approved_policy, policy_ref].concat()
}

/// aHash = SHA-256(approvedPolicy ‖ policyRef): the digest TPM2_VerifySignature checks.
pub fn authorization_hash(approved_policy: &[u8], policy_ref: &[u8]) -> Vec<u8> {
    Hash::Sha256.digest(&[approved_policy, policy_ref])
}

/// The PolicyAuthorize that opens `policy [1]` of a signed-policy key: signer and policyRef,
/// no signature. A key's authPolicy is [`policy_digest`] of `policy [1]` starting with it.
pub fn authorize_statement(signer: &SignerKey, policy_ref: &[u8]) -> Statement {
    Statement::Authorize(PolicyAuthorize {
        key_sign: signer.tpm2b_public(),
        policy_ref: policy_ref.to_vec(),
        signature: TpmSignature::Null,
    })
}

/// An `authPolicy [3]` entry: `statements` (whose digest the signer approved) followed by
/// PolicyAuthorize with the signature.
pub fn signed_policy_entry(
    name: Option<&str>,
    statements: &[Statement],
    signer: &SignerKey,
    policy_ref: &[u8],
    signature: TpmSignature,
) -> Result<TpmAuthPolicy> {
    if signature.is_null() {
        return Err(Error::BadInput(
            "a signed policy needs a signature (got TPM_ALG_NULL)".into(),
        ));
    }
    if statements
        .iter()
        .any(|s| matches!(s, Statement::Authorize(_)))
    {
        return Err(Error::BadInput(
            "the statements of a signed policy cannot themselves contain PolicyAuthorize".into(),
        ));
    }
    let mut all = statements.to_vec();
    all.push(Statement::Authorize(PolicyAuthorize {
        key_sign: signer.tpm2b_public(),
        policy_ref: policy_ref.to_vec(),
        signature,
    }));
    Ok(TpmAuthPolicy {
        name: name.map(str::to_string),
        policy: Statement::encode_all(&all)?,
    })
}

/// One `authPolicy [3]` entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPolicy {
    pub name: Option<String>,
    /// The statements to run before PolicyAuthorize.
    pub statements: Vec<Statement>,
    pub authorize: PolicyAuthorize,
    /// The approved policy computed on the host, when every statement carries what its
    /// digest needs (a PolicyPCR with an empty digest does not: ask the TPM,
    /// PolicyGetDigest, after running the statements).
    pub approved_policy: Option<Vec<u8>>,
}

impl SignedPolicy {
    pub fn decode(entry: &TpmAuthPolicy, what: &str) -> Result<SignedPolicy> {
        let what = match &entry.name {
            Some(n) => format!("{what} \"{n}\""),
            None => what.to_string(),
        };
        let mut statements = Statement::decode_all(&entry.policy, &what)?;
        let authorize = match statements.pop() {
            Some(Statement::Authorize(a)) if !a.signature.is_null() => a,
            Some(Statement::Authorize(_)) => {
                return Err(Error::KeyFile(format!(
                    "{what}: its PolicyAuthorize carries no signature"
                )))
            }
            _ => {
                return Err(Error::KeyFile(format!(
                    "{what}: a signed policy must end with PolicyAuthorize"
                )))
            }
        };
        if statements
            .iter()
            .any(|s| matches!(s, Statement::Authorize(_)))
        {
            return Err(Error::KeyFile(format!(
                "{what}: PolicyAuthorize before the last statement"
            )));
        }
        let approved_policy = policy_digest(&statements).ok();
        Ok(SignedPolicy {
            name: entry.name.clone(),
            statements,
            authorize,
            approved_policy,
        })
    }

    /// The name to report ("config-v1", or "#2" for an unnamed second entry).
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("#{}", index + 1),
        }
    }

    /// aHash for TPM2_VerifySignature, given the approved policy (the host's, or the TPM's
    /// PolicyGetDigest after the statements ran).
    pub fn authorization_hash(&self, approved_policy: &[u8]) -> Vec<u8> {
        authorization_hash(approved_policy, &self.authorize.policy_ref)
    }
}

/// A key file's policy: what to execute, in order.
///
/// Without signed policies: run `statements`. With them: for each entry of `signed` (in
/// order, PolicyRestart between attempts) run its statements and PolicyAuthorize; after the
/// first that succeeds, run `statements` (the rest of `policy [1]` after its leading
/// PolicyAuthorize, which `authorize` holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    pub authorize: Option<PolicyAuthorize>,
    pub statements: Vec<Statement>,
    pub signed: Vec<SignedPolicy>,
}

impl KeyPolicy {
    /// Decodes `policy [1]` and `authPolicy [3]`; None if the key has neither. Files that
    /// carry signed policies without the leading PolicyAuthorize the draft requires (as
    /// pcr-oracle writes them) are accepted as GRUB reads them: a signed entry, then
    /// `policy [1]`.
    pub fn from_key_file(key: &KeyFile) -> Result<Option<KeyPolicy>> {
        if key.policy.is_none() && key.auth_policy.is_none() {
            return Ok(None);
        }
        let mut statements =
            Statement::decode_all(key.policy.as_deref().unwrap_or_default(), "policy [1]")?;
        let authorize = match statements.first() {
            Some(Statement::Authorize(a)) => {
                let a = a.clone();
                statements.remove(0);
                Some(a)
            }
            _ => None,
        };
        if let Some(i) = statements
            .iter()
            .position(|s| matches!(s, Statement::Authorize(_)))
        {
            return Err(Error::KeyFile(format!(
                "policy [1] statement {}: PolicyAuthorize is only valid as the first statement",
                i + if authorize.is_some() { 2 } else { 1 }
            )));
        }
        let signed = key
            .signed_policies()
            .iter()
            .enumerate()
            .map(|(i, e)| SignedPolicy::decode(e, &format!("authPolicy [3] entry {}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(a) = &authorize {
            for (i, s) in signed.iter().enumerate() {
                if s.authorize.key_sign != a.key_sign || s.authorize.policy_ref != a.policy_ref {
                    return Err(Error::KeyFile(format!(
                        "signed policy {} is signed by another key or for another policyRef \
                         than the key's PolicyAuthorize",
                        s.label(i)
                    )));
                }
            }
        }
        Ok(Some(KeyPolicy {
            authorize,
            statements,
            signed,
        }))
    }

    /// The digest the key's authPolicy must equal, when the host can compute it.
    pub fn auth_policy_digest(&self) -> Result<Vec<u8>> {
        let mut all = Vec::with_capacity(self.statements.len() + 1);
        let authorize = self
            .authorize
            .as_ref()
            .or_else(|| self.signed.first().map(|s| &s.authorize));
        if let Some(a) = authorize {
            all.push(Statement::Authorize(a.clone()));
        }
        all.extend(self.statements.iter().cloned());
        policy_digest(&all)
    }

    /// True if a password is part of the policy (PolicyAuthValue or PolicyPassword, in the
    /// AND list or in any signed policy).
    pub fn needs_auth_value(&self) -> bool {
        let has = |v: &[Statement]| {
            v.iter()
                .any(|s| matches!(s, Statement::AuthValue | Statement::Password))
        };
        has(&self.statements) || self.signed.iter().any(|s| has(&s.statements))
    }
}
