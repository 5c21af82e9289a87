//! A token secret kept in the TPM's NV memory instead of a PIN object: per token and role,
//! an ordinary NV index holding the 32-byte token secret, read and written only through its
//! policy, PolicySecret(the role's PIN index) + PolicyAuthValue — the policy of the PIN
//! object it replaces. A login is that policy and one TPM2_NV_Read in the salted policy
//! session, as the session's last use, with the data encrypted by the session: no PIN
//! object to load and flush (token start-up in 8 TPM commands instead of 10).
//!
//! A wrong PIN fails at PolicySecret, counted by the PIN index, and never reaches this
//! index. Like the PIN object, the index is dictionary-attack protected (no TPMA_NV_NO_DA)
//! and its authValue is the PIN's: an owner who replaces the PIN index by one with a known
//! authValue passes PolicySecret, then meets the TPM's lockout here. Neither the owner nor
//! the authValue alone reads or writes it (no OWNERREAD/AUTHREAD/OWNERWRITE/AUTHWRITE):
//! every path goes through the PIN index's count.
//!
//! The index's Name is computed from the public area defined here, never read from the
//! TPM, and enters the policy session's HMAC of every read: an index replaced at the
//! handle by one with another public area fails the read, reported as such (never as a
//! wrong PIN), at no extra command.

use zeroize::Zeroizing;

use super::nv_space::{self, IndexKind};
use super::pin::SECRET_LEN;
use super::pin_index;
use crate::commands::Tpm;
use crate::connection::with_link;
use crate::error::{Error, Result};
use crate::policy::{policy_digest, KeyPolicy, Statement};
use crate::policy_session;
use crate::wire::CommandCode;

const TPMA_NV_POLICYWRITE: u32 = 1 << 3;
const TPMA_NV_POLICYREAD: u32 = 1 << 19;
/// TPM_NT_ORDINARY (0), read and written through the policy alone, DA-protected.
const ATTRIBUTES: u32 = TPMA_NV_POLICYWRITE | TPMA_NV_POLICYREAD;
const DATA_SIZE: u16 = SECRET_LEN as u16;

/// What NV_Read answers for an index at the handle that is not the one defined here (no
/// policy read, another size, never written), besides a failed HMAC or policy:
/// TPM_RC_AUTH_UNAVAILABLE, TPM_RC_NV_RANGE, TPM_RC_NV_AUTHORIZATION,
/// TPM_RC_NV_UNINITIALIZED.
const OTHER_INDEX_CODES: [u32; 4] = [0x12F, 0x146, 0x149, 0x14A];

/// The statements of the index's policy: those of a PIN object checked by `pin_index`.
fn statements(pin_index: u32) -> Vec<Statement> {
    let mut s = pin_index::policy(pin_index);
    s.push(Statement::AuthValue);
    s
}

fn with_kind<R>(pin_index: u32, f: impl FnOnce(&IndexKind<'_>) -> Result<R>) -> Result<R> {
    let policy = policy_digest(&statements(pin_index))?;
    f(&IndexKind {
        attributes: ATTRIBUTES,
        auth_policy: &policy,
        data_size: DATA_SIZE,
    })
}

/// Defines a secret index checked by `pin_index`, at `handle` or at a free handle, and
/// writes `secret` to it (proving `pin_auth` to both indices): its handle.
pub(crate) fn define(
    secret: &[u8],
    pin_auth: &[u8],
    pin_index: u32,
    handle: Option<u32>,
) -> Result<u32> {
    if secret.len() != SECRET_LEN {
        return Err(Error::BadInput(format!(
            "a token secret of {} bytes ({SECRET_LEN} expected)",
            secret.len()
        )));
    }
    let (handle, unwritten) = with_kind(pin_index, |k| {
        let h = nv_space::define(k, handle, pin_auth)?;
        Ok((h, k.name(h, false)))
    })?;
    let written = under_policy(pin_index, pin_auth, |tpm, auth| {
        tpm.nv_write_by_policy(handle, &unwritten, auth, secret)
    });
    if let Err(e) = written {
        let _ = undefine(handle, pin_index);
        return Err(e);
    }
    Ok(handle)
}

/// The token secret in the index at `handle`, read with the PIN whose authValue is
/// `pin_auth`: a wrong PIN is refused by `pin_index` (`Error::is_bad_auth`, counted there).
pub(crate) fn read(handle: u32, pin_index: u32, pin_auth: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let name = with_kind(pin_index, |k| Ok(k.name(handle, true)))?;
    under_policy(pin_index, pin_auth, |tpm, auth| {
        tpm.nv_read_by_policy(handle, &name, auth, DATA_SIZE)
    })
    .map_err(|e| refusal(e, handle))
}

/// Deletes the secret index at `handle` checked by `pin_index` (owner authorisation); one
/// already gone is fine, an index defined otherwise is left alone.
pub(crate) fn undefine(handle: u32, pin_index: u32) -> Result<()> {
    with_kind(pin_index, |k| {
        nv_space::undefine(k, handle, "a secret index")
    })
}

/// Runs `op`, an NV command on a secret index, as the last use of the connection's policy
/// session after PolicySecret(`pin_index`) + PolicyAuthValue. The session is gone after
/// (ended by `op` when it succeeded, flushed otherwise): a login keeps no session slot.
fn under_policy<R>(
    pin_index: u32,
    pin_auth: &[u8],
    mut op: impl FnMut(&mut Tpm, &[u8]) -> Result<R>,
) -> Result<R> {
    let policy = KeyPolicy {
        authorize: None,
        statements: statements(pin_index),
        signed: Vec::new(),
    };
    with_link(|link| {
        let result = link.run_with_policy_session(|tpm| {
            policy_session::satisfy(tpm, &policy, pin_auth)?;
            tpm.policy.end_after_next = true;
            let done = op(tpm, pin_auth);
            // Never left set for a later command when `op` did not reach the TPM.
            tpm.policy.end_after_next = false;
            done
        });
        link.discard_policy_session();
        result
    })
}

/// The secret index refusing a read whose PIN its PIN index has just accepted: not a wrong
/// PIN (neither counted nor reported as one) but another index at the handle, or a command
/// altered on the way to the TPM. A missing index stays the TPM's TPM_RC_HANDLE, as a
/// missing PIN index does at PolicySecret: the token is not this TPM's.
fn refusal(e: Error, handle: u32) -> Error {
    let Error::Tpm { command, .. } = &e else {
        return e;
    };
    if *command != CommandCode::NvRead.name() {
        return e;
    }
    let other_index = e
        .response_code()
        .is_some_and(|rc| OTHER_INDEX_CODES.contains(&rc.base()));
    if e.is_bad_auth() || e.is_policy_failure() || other_index {
        return Error::Integrity(format!(
            "{e}: the PIN index accepted the PIN but the token's secret index 0x{handle:08x} \
             refused the read: the index at that handle is not the one the token defined \
             (deleted and defined again: its Name or authValue differs), or a command was \
             altered on the way to the TPM"
        ));
    }
    e
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn public_area_and_name() {
        let pin = 0x0180_0010;
        with_kind(pin, |k| {
            let p = k.public(0x0180_0002, false);
            // policywrite | policyread, TPM_NT_ORDINARY, dictionary-attack protected
            assert_eq!(&p[6..10], &0x0008_0008u32.to_be_bytes());
            assert_eq!(&p[p.len() - 2..], &32u16.to_be_bytes());
            assert!(k.is_public_of(&k.public(0x0180_0002, true), 0x0180_0002));
            assert_ne!(k.name(0x0180_0002, true), k.name(0x0180_0002, false));
            Ok(())
        })
        .unwrap();
        // The policy names the PIN index: another PIN index, another secret index Name.
        let name = |pin| with_kind(pin, |k| Ok(k.name(0x0180_0002, true))).unwrap();
        assert_ne!(name(pin), name(pin + 1));
    }
}
