//! The owner range of NV indices as the token store uses it: indices defined at a given or
//! a free random handle (another on TPM_RC_NV_DEFINED), deleted only when their public area
//! is one this module's callers define, and the failures that mean the TPM has no room for
//! one. The owner hierarchy's authValue is taken to be empty.

use crate::connection::{with_link, Need};
use crate::error::{Error, Result};
use crate::session_crypto::{SessionCrypto, CRYPTO};
use crate::wire::{CommandCode, Reader, Writer, TPM_ALG_SHA256};

/// The owner's range of NV indices (TCG handle registry).
const OWNER_FIRST: u32 = 0x0180_0000;
const OWNER_COUNT: u32 = 0x0040_0000;

const OWNER_AUTH: &[u8] = &[];
/// Handles tried before giving up when the TPM answers TPM_RC_NV_DEFINED.
const DEFINE_TRIES: u32 = 8;

const TPM_RC_HANDLE: u32 = 0x08B;
const TPM_RC_NV_DEFINED: u32 = 0x14C;
const TPM_RC_NV_SPACE: u32 = 0x14B;
const NO_FREE_INDEX: &str = "no free NV index";

const TPMA_NV_WRITTEN: u32 = 1 << 29;

/// What an index is defined as, apart from its handle: the TPMS_NV_PUBLIC fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexKind<'a> {
    pub attributes: u32,
    pub auth_policy: &'a [u8],
    pub data_size: u16,
}

impl IndexKind<'_> {
    /// TPMS_NV_PUBLIC of the index at `handle`, before or after its first write.
    pub(crate) fn public(&self, handle: u32, written: bool) -> Vec<u8> {
        let attributes = if written {
            self.attributes | TPMA_NV_WRITTEN
        } else {
            self.attributes
        };
        let mut w = Writer::new();
        w.u32(handle)
            .u16(TPM_ALG_SHA256)
            .u32(attributes)
            .tpm2b(self.auth_policy)
            .u16(self.data_size);
        w.into_vec()
    }

    /// The index's Name (nameAlg ‖ SHA-256 of its public area), as the TPM computes it.
    pub(crate) fn name(&self, handle: u32, written: bool) -> Vec<u8> {
        let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&CRYPTO.sha256(&[&self.public(handle, written)]));
        name
    }

    /// Whether a TPMS_NV_PUBLIC is this kind's at `handle` (written or not).
    pub(crate) fn is_public_of(&self, public_area: &[u8], handle: u32) -> bool {
        let mut r = Reader::new(public_area);
        let fields = (|| -> Result<(u32, u16, u32, Vec<u8>, u16)> {
            Ok((r.u32()?, r.u16()?, r.u32()?, r.tpm2b()?.to_vec(), r.u16()?))
        })();
        matches!(fields, Ok((h, alg, attrs, policy, size))
            if h == handle && alg == TPM_ALG_SHA256 && attrs & !TPMA_NV_WRITTEN == self.attributes
                && policy == self.auth_policy && size == self.data_size)
    }
}

/// True for a handle in the range indices are allocated from.
pub(crate) fn in_range(handle: u32) -> bool {
    handle.wrapping_sub(OWNER_FIRST) < OWNER_COUNT
}

/// Defines an index of `kind` with the authValue `auth`, at `handle` or, when None, at a
/// free random handle: its handle.
pub(crate) fn define(kind: &IndexKind<'_>, handle: Option<u32>, auth: &[u8]) -> Result<u32> {
    let public = |h| kind.public(h, false);
    if let Some(h) = handle {
        return define_space(&public(h), auth).map(|()| h);
    }
    for _ in 0..DEFINE_TRIES {
        let mut r = [0u8; 4];
        CRYPTO.random(&mut r);
        let h = OWNER_FIRST + u32::from_be_bytes(r) % OWNER_COUNT;
        match define_space(&public(h), auth) {
            Err(e)
                if e.response_code()
                    .is_some_and(|rc| rc.base() == TPM_RC_NV_DEFINED) => {}
            other => return other.map(|()| h),
        }
    }
    Err(Error::Unsupported(format!(
        "{NO_FREE_INDEX} after {DEFINE_TRIES} random handles of the owner range"
    )))
}

fn define_space(public: &[u8], auth: &[u8]) -> Result<()> {
    with_link(|link| {
        link.run(Need::Nothing, |tpm, _| {
            tpm.nv_define_space(OWNER_AUTH, auth, public)
        })
    })
}

/// Deletes the index of `kind` at `handle` (owner authorisation); one already gone is
/// fine. An index of another kind is left alone, whatever a store file says, and said so
/// in the log (`what` names the kind): it is not tpmkey's to delete, nor a reason to keep
/// a token that is being removed.
pub(crate) fn undefine(kind: &IndexKind<'_>, handle: u32, what: &str) -> Result<()> {
    if !in_range(handle) {
        return Ok(());
    }
    with_link(|link| {
        link.run(Need::Nothing, |tpm, _| {
            let (public_area, index_name) = match tpm.nv_read_public(handle) {
                Ok(p) => p,
                Err(e) if is_missing(&e) => return Ok(()),
                Err(e) => return Err(e),
            };
            if !kind.is_public_of(&public_area, handle) {
                crate::log::write(
                    crate::log::Level::Error,
                    "tpmkey",
                    &format!("NV index 0x{handle:08x} is not {what} of tpmkey: left as it is"),
                );
                return Ok(());
            }
            tpm.nv_undefine_space(OWNER_AUTH, handle, &index_name)
        })
    })
}

/// True when the TPM answered that a handle names nothing (TPM_RC_HANDLE).
fn is_missing(e: &Error) -> bool {
    e.response_code()
        .is_some_and(|rc| rc.base() == TPM_RC_HANDLE)
}

/// Why this TPM cannot give the token an index, when `e` (from [`define`]) says so: the
/// owner hierarchy has an authValue, or NV memory is full.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_range() {
        assert!(in_range(0x0180_0000) && in_range(0x01BF_FFFF));
        assert!(!in_range(0x01C0_0002) && !in_range(0x0100_0000) && !in_range(0x017F_FFFF));
    }
}
