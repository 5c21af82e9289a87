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
//! Indices live in the owner range, at random handles (another on TPM_RC_NV_DEFINED); a
//! PIN object's policy records its index's handle, so the PIN files name the indices of a
//! token. The owner hierarchy's authValue is taken to be empty.

use crate::connection::{with_link, Need};
use crate::error::{Error, Result};
use crate::policy::{PolicyDigest, PolicySecret, Statement};
use crate::sealed::SealedData;
use crate::session_crypto::{SessionCrypto, CRYPTO};
use crate::wire::{CommandCode, Reader, Writer, TPM_ALG_SHA256};

/// The owner's range of NV indices (TCG handle registry).
const OWNER_FIRST: u32 = 0x0180_0000;
const OWNER_COUNT: u32 = 0x0040_0000;

const TPMA_NV_POLICYWRITE: u32 = 1 << 3;
const TPM_NT_PIN_FAIL: u32 = 0x8 << 4;
const TPMA_NV_OWNERREAD: u32 = 1 << 17;
const TPMA_NV_AUTHREAD: u32 = 1 << 18;
const TPMA_NV_NO_DA: u32 = 1 << 25;
const TPMA_NV_WRITTEN: u32 = 1 << 29;
/// pinCount readable by the owner or with the PIN (it is no secret); written only through
/// the policy, which allows the first write alone.
const ATTRIBUTES: u32 =
    TPMA_NV_POLICYWRITE | TPM_NT_PIN_FAIL | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;
/// TPMS_NV_PIN_COUNTER_PARAMETERS: pinCount, pinLimit.
const DATA_SIZE: u16 = 8;

const OWNER_AUTH: &[u8] = &[];
/// Handles tried before giving up when the TPM answers TPM_RC_NV_DEFINED.
const DEFINE_TRIES: u32 = 8;

const TPM_RC_HANDLE: u32 = 0x08B;
const TPM_RC_NV_DEFINED: u32 = 0x14C;
const TPM_RC_NV_SPACE: u32 = 0x14B;
const NO_FREE_INDEX: &str = "no free NV index for a PIN";
const TPM_RC_AUTH_UNAVAILABLE: u32 = 0x12F;

/// True for a handle in the range this module allocates from.
fn in_range(handle: u32) -> bool {
    handle.wrapping_sub(OWNER_FIRST) < OWNER_COUNT
}

/// The index's authPolicy: PolicyNvWritten(NO), so it can be written only before it was.
fn auth_policy() -> Vec<u8> {
    let mut d = PolicyDigest::default();
    d.policy_nv_written(false);
    d.into_value()
}

/// TPMS_NV_PUBLIC of a PIN index at `handle`.
fn public(handle: u32, written: bool) -> Vec<u8> {
    let attributes = if written {
        ATTRIBUTES | TPMA_NV_WRITTEN
    } else {
        ATTRIBUTES
    };
    let mut w = Writer::new();
    w.u32(handle)
        .u16(TPM_ALG_SHA256)
        .u32(attributes)
        .tpm2b(&auth_policy())
        .u16(DATA_SIZE);
    w.into_vec()
}

/// The Name of the index once written, as PolicySecret and its digest see it.
pub(crate) fn name(handle: u32) -> Vec<u8> {
    name_of(handle, true)
}

fn name_of(handle: u32, written: bool) -> Vec<u8> {
    let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&CRYPTO.sha256(&[&public(handle, written)]));
    name
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
        Statement::Secret(s) if in_range(s.handle_hint) && s.object_name == name(s.handle_hint) => {
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

/// Why this TPM cannot give a token PIN indices, when `e` (from [`define`]) says so: the
/// owner hierarchy has an authValue, or NV memory is full. The token's PINs are then
/// checked as before PIN indices (the TPM's dictionary-attack counter).
pub(crate) fn unavailable(e: &Error) -> Option<String> {
    let define = CommandCode::NvDefineSpace.name();
    match e {
        Error::Tpm { command, rc } if *command == define && rc.is_bad_auth() => {
            Some("the owner hierarchy has an authValue (tpmkey assumes an empty one)".to_string())
        }
        Error::Tpm { command, rc } if *command == define && rc.base() == TPM_RC_NV_SPACE => {
            Some("the TPM's NV memory is full".to_string())
        }
        Error::Unsupported(m) if m.starts_with(NO_FREE_INDEX) => Some(m.clone()),
        _ => None,
    }
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
    let handle = match handle {
        Some(h) => {
            define_space(h, pin_auth)?;
            h
        }
        None => define_somewhere(pin_auth)?,
    };
    if let Err(e) = write_limit(handle, limit) {
        let _ = undefine(handle);
        return Err(e);
    }
    Ok(handle)
}

fn define_somewhere(pin_auth: &[u8]) -> Result<u32> {
    for _ in 0..DEFINE_TRIES {
        let mut r = [0u8; 4];
        CRYPTO.random(&mut r);
        let handle = OWNER_FIRST + u32::from_be_bytes(r) % OWNER_COUNT;
        match define_space(handle, pin_auth) {
            Err(e)
                if e.response_code()
                    .is_some_and(|rc| rc.base() == TPM_RC_NV_DEFINED) => {}
            other => return other.map(|()| handle),
        }
    }
    Err(Error::Unsupported(format!(
        "{NO_FREE_INDEX} after {DEFINE_TRIES} random handles of the owner range"
    )))
}

fn define_space(handle: u32, pin_auth: &[u8]) -> Result<()> {
    let public = public(handle, false);
    with_link(|link| {
        link.run(Need::Nothing, |tpm, _| {
            tpm.nv_define_space(OWNER_AUTH, pin_auth, &public)
        })
    })
}

/// The one write the index's policy allows: pinCount 0, pinLimit `limit`.
fn write_limit(handle: u32, limit: u32) -> Result<()> {
    let mut data = Writer::new();
    data.u32(0).u32(limit);
    let data = data.into_vec();
    let unwritten = name_of(handle, false);
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
    if !in_range(handle) {
        return Ok(());
    }
    with_link(|link| {
        link.run(Need::Nothing, |tpm, _| {
            let (public_area, index_name) = match tpm.nv_read_public(handle) {
                Ok(p) => p,
                Err(e)
                    if e.response_code()
                        .is_some_and(|rc| rc.base() == TPM_RC_HANDLE) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e),
            };
            if !is_pin_index(&public_area, handle) {
                return Err(Error::Integrity(format!(
                    "NV index 0x{handle:08x} is not a PIN index of tpmkey: left as it is"
                )));
            }
            tpm.nv_undefine_space(OWNER_AUTH, handle, &index_name)
        })
    })
}

/// Whether a TPMS_NV_PUBLIC is one this module defines at `handle` (written or not).
fn is_pin_index(public_area: &[u8], handle: u32) -> bool {
    let mut r = Reader::new(public_area);
    let fields = (|| -> Result<(u32, u16, u32, Vec<u8>, u16)> {
        Ok((r.u32()?, r.u16()?, r.u32()?, r.tpm2b()?.to_vec(), r.u16()?))
    })();
    matches!(fields, Ok((h, alg, attrs, policy, size))
        if h == handle && alg == TPM_ALG_SHA256 && attrs & !TPMA_NV_WRITTEN == ATTRIBUTES
            && policy == auth_policy() && size == DATA_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_area_and_name() {
        let p = public(0x0180_0002, true);
        assert_eq!(&p[..4], &[0x01, 0x80, 0x00, 0x02]);
        // policywrite | nt=pinfail | ownerread | authread | no_da | written
        assert_eq!(&p[6..10], &0x2206_0088u32.to_be_bytes());
        assert!(is_pin_index(&p, 0x0180_0002));
        assert!(is_pin_index(&public(0x0180_0002, false), 0x0180_0002));
        assert!(!is_pin_index(&p, 0x0180_0003));
        assert_eq!(name(0x0180_0002).len(), 34);
        assert!(in_range(0x01BF_FFFF) && !in_range(0x01C0_0002) && !in_range(0x0100_0000));
    }
}
