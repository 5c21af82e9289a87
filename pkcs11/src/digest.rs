//! Message digests in software: CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512; multi-part
//! digests hash each part as it arrives.

use cryptoki_sys::*;
use tpmkey::hash::Hasher;

use crate::error::{Error, Result};
use crate::mechanism::{self, hash_of, Mechanism};
use crate::operation;
use crate::state;

#[derive(Debug)]
pub(crate) struct DigestOp {
    hasher: Hasher,
}

pub(crate) fn init(session: CK_SESSION_HANDLE, mech: &Mechanism) -> Result<()> {
    mechanism::check(mech.kind, CKF_DIGEST)?;
    let hash = hash_of(mech.kind).ok_or_else(|| Error::rv(CKR_MECHANISM_INVALID))?;
    state::with(|m| {
        let s = m.session(session)?;
        operation::begin(&s.digest)?;
        s.digest = Some(DigestOp {
            hasher: Hasher::new(hash),
        });
        Ok(())
    })
}

fn finish(
    session: CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    capacity: Option<usize>,
) -> Result<Vec<u8>> {
    state::with(|m| {
        operation::finish(&mut m.session(session)?.digest, |op| {
            operation::check_capacity(capacity, op.hasher.hash().len())?;
            Ok(match data {
                Some(data) => op.hasher.hash().digest(&[data]),
                None => op.hasher.digest_so_far(),
            })
        })
    })
}

pub(crate) fn digest(
    session: CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> Result<Vec<u8>> {
    finish(session, Some(data), capacity)
}

pub(crate) fn update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::active(&mut m.session(session)?.digest)?
            .hasher
            .update(part);
        Ok(())
    })
}

pub(crate) fn digest_final(session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Vec<u8>> {
    finish(session, None, capacity)
}
