//! The TPM's own count of a token's wrong PINs: per token and role, an NV index of type
//! TPM_NT_PIN_FAIL whose authValue is the PIN's (SHA-256(salt || PIN)). The TPM counts
//! every failed authorisation with it in the index (pinCount), never in its machine-wide
//! dictionary-attack counter (TPMA_NV_NO_DA, which the type requires), resets the count at
//! a successful one, and refuses the authValue once pinCount reaches pinLimit
//! (TPM_RC_AUTH_UNAVAILABLE) — facts checked on swtpm, see the README.
//!
//! The role's PIN object is sealed under PolicySecret(index) + PolicyAuthValue: a login
//! proves the PIN to the index first (a wrong PIN costs one of the index's tries), then to
//! the dictionary-attack protected object. The index is written once, at its definition
//! (policy PolicyNvWritten(NO), the only way to write it): no one can reset its count but
//! a right PIN. The owner hierarchy can delete it; a replacement at the same handle with an
//! authValue of the owner's choosing has the same Name and passes PolicySecret, but the
//! object still wants the PIN, so that path meets the TPM's dictionary-attack lockout.
//!
//! The same policy guards a token's secret index ([`super::secret_index`]), which replaces
//! the PIN object in tokens made since. Indices live in the owner range
//! ([`super::nv_space`]); a PIN object's policy records its index's handle, and a PIN file
//! of the secret-index form names both, so the PIN files name the indices of a token.

use super::nv_space::{self, IndexKind};
use crate::connection::{with_link, Need};
use crate::error::{Error, Result};
use crate::policy::{PolicyDigest, PolicySecret, Statement};
use crate::sealed::SealedData;
use crate::wire::{CommandCode, Writer};

const TPMA_NV_POLICYWRITE: u32 = 1 << 3;
const TPM_NT_PIN_FAIL: u32 = 0x8 << 4;
const TPMA_NV_OWNERREAD: u32 = 1 << 17;
const TPMA_NV_AUTHREAD: u32 = 1 << 18;
const TPMA_NV_NO_DA: u32 = 1 << 25;
/// pinCount readable by the owner or with the PIN (it is no secret); written only through
/// the policy, which allows the first write alone.
const ATTRIBUTES: u32 =
    TPMA_NV_POLICYWRITE | TPM_NT_PIN_FAIL | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;
/// TPMS_NV_PIN_COUNTER_PARAMETERS: pinCount, pinLimit.
const DATA_SIZE: u16 = 8;

const TPM_RC_AUTH_UNAVAILABLE: u32 = 0x12F;

/// The index's authPolicy: PolicyNvWritten(NO), so it can be written only before it was.
fn auth_policy() -> Vec<u8> {
    let mut d = PolicyDigest::default();
    d.policy_nv_written(false);
    d.into_value()
}

fn with_kind<R>(f: impl FnOnce(&IndexKind<'_>) -> R) -> R {
    let policy = auth_policy();
    f(&IndexKind {
        attributes: ATTRIBUTES,
        auth_policy: &policy,
        data_size: DATA_SIZE,
    })
}

/// The Name of the index once written, as PolicySecret and its digest see it.
pub(crate) fn name(handle: u32) -> Vec<u8> {
    with_kind(|k| k.name(handle, true))
}

/// The policy of a PIN object checked by the index at `handle` (PolicyAuthValue is added
/// by the sealing).
pub(crate) fn policy(handle: u32) -> Vec<Statement> {
    vec![Statement::Secret(PolicySecret {
        handle_hint: handle,
        object_name: name(handle),
        policy_ref: Vec::new(),
    })]
}

/// The PIN index a PIN object is sealed against; None for a PIN object of a token made
/// before PIN indices (checked by the TPM's dictionary-attack counter alone).
pub(crate) fn of(sealed: &SealedData) -> Option<u32> {
    let policy = sealed.policy()?;
    policy.statements.iter().find_map(|s| match s {
        Statement::Secret(s)
            if nv_space::in_range(s.handle_hint) && s.object_name == name(s.handle_hint) =>
        {
            Some(s.handle_hint)
        }
        _ => None,
    })
}

/// True when the TPM refused a PIN because its index reached pinLimit.
pub(crate) fn is_exhausted(e: &Error) -> bool {
    matches!(e, Error::Tpm { command, rc } if *command == CommandCode::PolicySecret.name()
        && rc.base() == TPM_RC_AUTH_UNAVAILABLE)
}

/// Starts the HMAC session if the connection has none: PolicySecret with the index runs
/// in it, and the first use of a policy-bound object does not start it.
pub(crate) fn prepare_check() -> Result<()> {
    with_link(|link| link.run(Need::Nothing, |_, _| Ok(())))
}

/// The PIN object refusing a PIN that its index has just accepted: no wrong PIN (it is
/// neither counted nor reported as one) but a session altered on the way to the TPM, or an
/// index deleted and defined again with another authValue.
pub(crate) fn object_refusal(e: Error) -> Error {
    match &e {
        Error::Tpm { command, rc }
            if *command == CommandCode::Unseal.name() && rc.is_bad_auth() =>
        {
            Error::Integrity(format!(
                "{e}: the PIN index accepted the PIN but the PIN object refused it (a command \
                 altered on the way to the TPM, or the index deleted and defined again)"
            ))
        }
        _ => e,
    }
}

/// Defines and writes a PIN index with the authValue `pin_auth` and `limit` tries, at
/// `handle` or, when None, at a free random handle of the owner range: its handle.
pub(crate) fn define(pin_auth: &[u8], limit: u32, handle: Option<u32>) -> Result<u32> {
    let handle = with_kind(|k| nv_space::define(k, handle, pin_auth))?;
    if let Err(e) = write_limit(handle, limit) {
        let _ = undefine(handle);
        return Err(e);
    }
    Ok(handle)
}

/// The one write the index's policy allows: pinCount 0, pinLimit `limit`.
fn write_limit(handle: u32, limit: u32) -> Result<()> {
    let mut data = Writer::new();
    data.u32(0).u32(limit);
    let data = data.into_vec();
    let unwritten = with_kind(|k| k.name(handle, false));
    with_link(|link| {
        link.run(Need::Nothing, |tpm, _| {
            let session = tpm.start_unkeyed_policy_session()?;
            let written = tpm
                .policy_statement(session, CommandCode::PolicyNvWritten, &[0])
                .and_then(|()| tpm.nv_write_with_policy(handle, &unwritten, session, &data));
            if written.is_err() {
                let _ = tpm.flush_context(session);
            }
            written
        })
    })
}

/// Deletes the PIN index at `handle` (owner authorisation); one already gone is fine. An
/// index that is not a PIN index of this module is left alone, whatever a PIN file says.
pub(crate) fn undefine(handle: u32) -> Result<()> {
    with_kind(|k| nv_space::undefine(k, handle, "a PIN index"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_area_and_name() {
        with_kind(|k| {
            let p = k.public(0x0180_0002, true);
            assert_eq!(&p[..4], &[0x01, 0x80, 0x00, 0x02]);
            // policywrite | nt=pinfail | ownerread | authread | no_da | written
            assert_eq!(&p[6..10], &0x2206_0088u32.to_be_bytes());
            assert!(k.is_public_of(&p, 0x0180_0002));
            assert!(k.is_public_of(&k.public(0x0180_0002, false), 0x0180_0002));
            assert!(!k.is_public_of(&p, 0x0180_0003));
        });
        assert_eq!(name(0x0180_0002).len(), 34);
    }
}
