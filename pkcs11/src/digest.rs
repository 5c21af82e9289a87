//! Message digests in software: CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512.

use cryptoki_sys::*;
use tpmkey::hash::Hash;

use crate::error::{Error, Result};
use crate::mechanism::{self, hash_of, Mechanism};
use crate::operation;
use crate::state;

#[derive(Debug)]
pub struct DigestOp {
    hash: Hash,
    data: Vec<u8>,
}

pub fn init(session: CK_SESSION_HANDLE, mech: &Mechanism) -> Result<()> {
    mechanism::check(mech.kind, CKF_DIGEST)?;
    let hash = hash_of(mech.kind).ok_or_else(|| Error::rv(CKR_MECHANISM_INVALID))?;
    state::with(|m| {
        let s = m.session(session)?;
        if s.digest.is_some() {
            return Err(Error::rv(CKR_OPERATION_ACTIVE));
        }
        s.digest = Some(DigestOp {
            hash,
            data: Vec::new(),
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
            operation::check_capacity(capacity, op.hash.len())?;
            Ok(op.hash.digest(&[data.unwrap_or(&op.data)]))
        })
    })
}

pub fn digest(session: CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> Result<Vec<u8>> {
    finish(session, Some(data), capacity)
}

pub fn update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    state::with(|m| {
        operation::active(&mut m.session(session)?.digest)?
            .data
            .extend_from_slice(part);
        Ok(())
    })
}

pub fn digest_final(session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Vec<u8>> {
    finish(session, None, capacity)
}
