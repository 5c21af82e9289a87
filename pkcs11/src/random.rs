//! Random numbers from the TPM (encrypted on the bus by the core's session):
//! C_GenerateRandom and C_SeedRandom (TPM2_StirRandom).

use cryptoki_sys::CK_SESSION_HANDLE;

use crate::error::Result;
use crate::state;

pub(crate) fn generate(session: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
    state::with(|m| {
        m.session(session)?;
        Ok(tpmkey::keys::random(out)?)
    })
}

pub(crate) fn seed(session: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
    state::with(|m| {
        m.session(session)?;
        Ok(tpmkey::keys::stir_random(data)?)
    })
}
