//! Session management: open and close sessions, session information, C_Login (SO, user
//! and CKU_CONTEXT_SPECIFIC) and C_Logout. A login belongs to the token: every session of
//! the application on that token shares it, and it ends with the last session.

use cryptoki_sys::*;
use tpmkey::store::Role;

use crate::error::{pin_error, Error, Result};
use crate::state::{self, new_handle, Login, Session};

pub(crate) fn open(slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
    if flags & CKF_SERIAL_SESSION == 0 {
        return Err(Error::rv(CKR_SESSION_PARALLEL_NOT_SUPPORTED));
    }
    let rw = flags & CKF_RW_SESSION != 0;
    state::with(|m| {
        if !m.is_slot(slot) {
            return Err(Error::rv(CKR_SLOT_ID_INVALID));
        }
        // The uninitialised token has no login to conflict with.
        if slot != m.empty_slot {
            let s = m.slot(slot)?;
            if !rw
                && s.login
                    .as_ref()
                    .is_some_and(|l| l.role == Role::SecurityOfficer)
            {
                return Err(Error::rv(CKR_SESSION_READ_WRITE_SO_EXISTS));
            }
        }
        let h = new_handle();
        m.sessions.insert(
            h,
            Session {
                slot,
                rw,
                ..Session::default()
            },
        );
        Ok(h)
    })
}

pub(crate) fn close(session: CK_SESSION_HANDLE) -> Result<()> {
    state::with(|m| m.close_session(session))
}

pub(crate) fn close_all(slot: CK_SLOT_ID) -> Result<()> {
    state::with(|m| {
        if !m.is_slot(slot) {
            return Err(Error::rv(CKR_SLOT_ID_INVALID));
        }
        let handles: Vec<CK_SESSION_HANDLE> = m
            .sessions
            .iter()
            .filter(|(_, s)| s.slot == slot)
            .map(|(h, _)| *h)
            .collect();
        for h in handles {
            m.close_session(h)?;
        }
        Ok(())
    })
}

pub(crate) fn info(session: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
    state::with(|m| {
        let (slot_id, rw) = m.session_slot(session)?;
        let role = if slot_id == m.empty_slot {
            None
        } else {
            m.slot(slot_id)?.login.as_ref().map(|l| l.role)
        };
        let state = match (role, rw) {
            (None, false) => CKS_RO_PUBLIC_SESSION,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (Some(Role::User), false) => CKS_RO_USER_FUNCTIONS,
            (Some(Role::User), true) => CKS_RW_USER_FUNCTIONS,
            (Some(Role::SecurityOfficer), _) => CKS_RW_SO_FUNCTIONS,
        };
        Ok(CK_SESSION_INFO {
            slotID: slot_id,
            state,
            flags: CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        })
    })
}

pub(crate) fn login(session: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
    let role = match user {
        CKU_SO => Role::SecurityOfficer,
        CKU_USER => Role::User,
        CKU_CONTEXT_SPECIFIC => return login_context_specific(session, pin),
        _ => return Err(Error::rv(CKR_USER_TYPE_INVALID)),
    };
    state::with(|m| {
        let (slot_id, _) = m.session_slot(session)?;
        let read_only_exists = m.sessions.values().any(|s| s.slot == slot_id && !s.rw);
        let slot = m.slot(slot_id)?;
        slot.check_made_here()?;
        match slot.login.as_ref().map(|l| l.role) {
            Some(r) if r == role => return Err(Error::rv(CKR_USER_ALREADY_LOGGED_IN)),
            Some(_) => return Err(Error::rv(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)),
            None => {}
        }
        if role == Role::SecurityOfficer && read_only_exists {
            return Err(Error::rv(CKR_SESSION_READ_ONLY_EXISTS));
        }
        if role == Role::User && !slot.token.user_pin_initialized() {
            return Err(Error::rv(CKR_USER_PIN_NOT_INITIALIZED));
        }
        let secret = slot.token.login(role, pin).map_err(pin_error)?;
        slot.login = Some(Login::new(role, secret));
        Ok(())
    })
}

/// Re-authentication for a key with CKA_ALWAYS_AUTHENTICATE: the TPM checks the PIN again.
fn login_context_specific(session: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
    state::with(|m| {
        let (slot_id, _) = m.session_slot(session)?;
        let slot = m.slot(slot_id)?;
        if !slot.user_logged_in() {
            return Err(Error::rv(CKR_USER_NOT_LOGGED_IN));
        }
        slot.token.login(Role::User, pin).map_err(pin_error)?;
        let s = m.session(session)?;
        match (&mut s.sign, &mut s.decrypt) {
            (Some(op), _) if op.needs_login => op.needs_login = false,
            (_, Some(op)) if op.needs_login => op.needs_login = false,
            _ => return Err(Error::rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
        Ok(())
    })
}

pub(crate) fn logout(session: CK_SESSION_HANDLE) -> Result<()> {
    state::with(|m| {
        let (slot_id, _) = m.session_slot(session)?;
        if slot_id == m.empty_slot {
            return Err(Error::rv(CKR_USER_NOT_LOGGED_IN));
        }
        let slot = m.slot(slot_id)?;
        if slot.login.take().is_none() {
            return Err(Error::rv(CKR_USER_NOT_LOGGED_IN));
        }
        Ok(())
    })
}
