//! Slot and token management: slots, token information from the token and the TPM,
//! mechanisms, C_InitToken, C_InitPIN, C_SetPIN.

use cryptoki_sys::*;
use tpmkey::store::{PinState, Role};
use tpmkey::tpm_identity::TpmIdentity;

use crate::error::{pin_error, Error, Result};
use crate::general::{padded, version};
use crate::mechanism;
use crate::state::{self, Module, Slot};

pub(crate) const MIN_PIN_LEN: usize = 4;
pub(crate) const MAX_PIN_LEN: usize = 255;

/// Every slot holds a token: the last one an uninitialised token for C_InitToken (as
/// pkcs11-tool and p11-kit expect; they read its CK_TOKEN_INFO before initialising it).
/// It is a real token: sessions open on it (read-only or read/write), find no objects and
/// cannot log in (CKR_USER_PIN_NOT_INITIALIZED) until C_InitToken, which needs its
/// sessions closed.
pub(crate) fn slot_list(_token_present: bool) -> Result<Vec<CK_SLOT_ID>> {
    state::with(|m| {
        m.refresh_slots()?;
        let mut ids: Vec<CK_SLOT_ID> = m.slots.keys().chain(m.damaged.keys()).copied().collect();
        ids.push(m.empty_slot);
        ids.sort_unstable();
        Ok(ids)
    })
}

fn slot_id_check(m: &Module, id: CK_SLOT_ID) -> Result<()> {
    if m.is_slot(id) {
        Ok(())
    } else {
        Err(Error::rv(CKR_SLOT_ID_INVALID))
    }
}

pub(crate) fn slot_info(id: CK_SLOT_ID) -> Result<CK_SLOT_INFO> {
    state::with(|m| {
        slot_id_check(m, id)?;
        let tpm = tpm_info(m);
        Ok(CK_SLOT_INFO {
            slotDescription: padded(&format!("tpmkey slot {id} ({})", tpm.model)),
            manufacturerID: padded(&manufacturer(&tpm.vendor)),
            flags: CKF_TOKEN_PRESENT | CKF_HW_SLOT,
            hardwareVersion: CK_VERSION { major: 0, minor: 0 },
            firmwareVersion: CK_VERSION {
                major: tpm.firmware.0,
                minor: tpm.firmware.1,
            },
        })
    })
}

fn manufacturer(vendor: &str) -> String {
    format!("TPM {vendor}")
}

/// Manufacturer, model and firmware of the TPM, asked once per C_Initialize.
fn tpm_info(m: &mut Module) -> TpmIdentity {
    if let Some(i) = &m.tpm_info {
        return i.clone();
    }
    // Token information is still useful without the TPM's own; operations will say what is
    // wrong with the TPM.
    let info = TpmIdentity::read().unwrap_or_else(|_| TpmIdentity {
        vendor: "(not reachable)".into(),
        model: "TPM 2.0".into(),
        firmware: (0, 0),
    });
    m.tpm_info = Some(info.clone());
    info
}

/// The PIN flags of a token: its own wrong-PIN counts since each role's last successful
/// login (never the TPM's machine-wide counter, which other applications move too).
fn pin_flags(state: &PinState) -> CK_FLAGS {
    let role_flags = |role: Role, [low, final_try, locked]: [CK_FLAGS; 3]| {
        if state.is_locked(role) {
            locked
        } else if state.is_final_try(role) {
            final_try | low
        } else if state.failures(role) > 0 {
            low
        } else {
            0
        }
    };
    role_flags(
        Role::User,
        [
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        ],
    ) | role_flags(
        Role::SecurityOfficer,
        [
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        ],
    )
}

pub(crate) fn token_info(id: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
    state::with(|m| {
        slot_id_check(m, id)?;
        let sessions: Vec<bool> = m
            .sessions
            .values()
            .filter(|s| s.slot == id)
            .map(|s| s.rw)
            .collect();
        let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED;
        let (label, serial, recorded) = if id == m.empty_slot {
            (String::new(), String::new(), None)
        } else {
            let slot = m.slot(id)?;
            slot.check_made_here()?;
            flags |= CKF_TOKEN_INITIALIZED;
            if slot.token.user_pin_initialized() {
                flags |= CKF_USER_PIN_INITIALIZED;
            }
            match slot.token.pin_state() {
                Ok(state) => flags |= pin_flags(&state),
                Err(e) => crate::error::log(&format!("PIN flags left clear: {e}")),
            }
            let recorded = slot
                .token
                .tpm_vendor_model()
                .map(|(v, m)| (v.to_string(), m.to_string()));
            (
                slot.token.label().to_string(),
                slot.token.serial().to_string(),
                recorded,
            )
        };
        // The token's own record of its TPM, else the TPM asked.
        let (vendor, model) = recorded.unwrap_or_else(|| {
            let tpm = tpm_info(m);
            (tpm.vendor, tpm.model)
        });
        let unavailable = CK_UNAVAILABLE_INFORMATION;
        Ok(CK_TOKEN_INFO {
            label: padded(&label),
            manufacturerID: padded(&manufacturer(&vendor)),
            model: padded(&model),
            serialNumber: padded(&serial),
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: sessions.len() as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: sessions.iter().filter(|rw| **rw).count() as CK_ULONG,
            ulMaxPinLen: MAX_PIN_LEN as CK_ULONG,
            ulMinPinLen: MIN_PIN_LEN as CK_ULONG,
            ulTotalPublicMemory: unavailable,
            ulFreePublicMemory: unavailable,
            ulTotalPrivateMemory: unavailable,
            ulFreePrivateMemory: unavailable,
            hardwareVersion: CK_VERSION { major: 2, minor: 0 },
            firmwareVersion: version(),
            utcTime: padded(""),
        })
    })
}

pub(crate) fn mechanism_list(id: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
    state::with(|m| {
        slot_id_check(m, id)?;
        Ok(mechanism::list())
    })
}

pub(crate) fn mechanism_info(id: CK_SLOT_ID, kind: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    state::with(|m| {
        slot_id_check(m, id)?;
        mechanism::info(kind)
    })
}

pub(crate) fn check_pin(pin: &[u8]) -> Result<()> {
    if !(MIN_PIN_LEN..=MAX_PIN_LEN).contains(&pin.len()) {
        return Err(Error::new(
            CKR_PIN_LEN_RANGE,
            format!("PINs have {MIN_PIN_LEN} to {MAX_PIN_LEN} bytes"),
        ));
    }
    Ok(())
}

fn label_text(label: &[u8; 32]) -> Result<String> {
    let text = std::str::from_utf8(label)
        .map_err(|_| Error::new(CKR_ARGUMENTS_BAD, "token label is not UTF-8"))?;
    Ok(text.trim_end_matches([' ', '\0']).to_string())
}

pub(crate) fn init_token(id: CK_SLOT_ID, so_pin: &[u8], label: &[u8; 32]) -> Result<()> {
    let label = label_text(label)?;
    state::with(|m| {
        slot_id_check(m, id)?;
        if m.sessions.values().any(|s| s.slot == id) {
            return Err(Error::rv(CKR_SESSION_EXISTS));
        }
        if id == m.empty_slot {
            check_pin(so_pin)?;
            let token = m.store.create_token(&label, so_pin)?;
            m.slots.insert(id, Slot::new(token));
            m.refresh_slots()?;
            return Ok(());
        }
        let slot = m.slot(id)?;
        slot.token.reinitialize(so_pin, &label).map_err(pin_error)?;
        slot.login = None;
        Ok(())
    })
}

pub(crate) fn init_pin(session: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
    check_pin(pin)?;
    state::with(|m| {
        let (slot_id, rw) = m.session_slot(session)?;
        let slot = m.slot(slot_id)?;
        let login = slot
            .login
            .as_ref()
            .filter(|l| l.role == Role::SecurityOfficer && rw)
            .ok_or_else(|| Error::new(CKR_USER_NOT_LOGGED_IN, "C_InitPIN needs an SO session"))?;
        slot.token.init_user_pin(&login.secret, pin)?;
        Ok(())
    })
}

pub(crate) fn set_pin(session: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
    check_pin(new)?;
    state::with(|m| {
        let (slot_id, rw) = m.session_slot(session)?;
        if !rw {
            return Err(Error::rv(CKR_SESSION_READ_ONLY));
        }
        let slot = m.slot(slot_id)?;
        let role = slot.login.as_ref().map_or(Role::User, |l| l.role);
        if role == Role::User && !slot.token.user_pin_initialized() {
            return Err(Error::rv(CKR_USER_PIN_NOT_INITIALIZED));
        }
        slot.token.change_pin(role, old, new).map_err(pin_error)
    })
}
