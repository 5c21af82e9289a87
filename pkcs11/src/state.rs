//! The module's global state behind one lock: slots and their tokens, logins, sessions,
//! object handles. Handles (sessions, objects) come from one process-wide counter and are
//! never reused. The state belongs to the process that called C_Initialize: after fork the
//! child sees CKR_CRYPTOKI_NOT_INITIALIZED until it calls C_Initialize itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use cryptoki_sys::*;
use tpmkey::store::{Attributes, Role, Store, Token, TokenSecret};
use tpmkey::TpmKey;

use crate::attributes::{get_bool, is_private, SecretAttributes};
use crate::digest::DigestOp;
use crate::encrypt_decrypt::{DecryptOp, EncryptOp};
use crate::error::{Error, Result};
use crate::object::FindOp;
use crate::sign_verify::{SignOp, VerifyOp};

static MODULE: Mutex<Option<Module>> = Mutex::new(None);
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

pub(crate) fn new_handle() -> CK_ULONG {
    NEXT_HANDLE.fetch_add(1, Ordering::Relaxed) as CK_ULONG
}

fn lock() -> MutexGuard<'static, Option<Module>> {
    // A panic caught at the FFI edge must not brick the module: take the state as it is.
    MODULE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the state of an initialised module.
pub(crate) fn with<R>(f: impl FnOnce(&mut Module) -> Result<R>) -> Result<R> {
    let mut guard = lock();
    match guard.as_mut() {
        Some(m) if m.pid == std::process::id() => f(m),
        _ => Err(Error::new(
            CKR_CRYPTOKI_NOT_INITIALIZED,
            "C_Initialize first",
        )),
    }
}

/// C_Initialize: a fresh state; a state inherited through fork is dropped, not finalised.
pub(crate) fn initialize() -> Result<()> {
    let mut guard = lock();
    if guard.as_ref().is_some_and(|m| m.pid == std::process::id()) {
        return Err(Error::rv(CKR_CRYPTOKI_ALREADY_INITIALIZED));
    }
    // Reads the configuration afresh (environment and file); the core's connection follows.
    let config = tpmkey::connection::configure(&[])
        .map_err(|e| Error::new(CKR_GENERAL_ERROR, e.to_string()))?;
    let mut module = Module {
        pid: std::process::id(),
        store: Store::new(tpmkey::store::default_root(&config)),
        slots: BTreeMap::new(),
        damaged: BTreeMap::new(),
        empty_slot: 0,
        next_slot: 1,
        sessions: HashMap::new(),
        handles: HashMap::new(),
        refs: HashMap::new(),
        session_objects: HashMap::new(),
        tpm_info: None,
    };
    module.refresh_slots()?;
    *guard = Some(module);
    Ok(())
}

/// C_Finalize: forget everything and flush what this process holds in the TPM.
pub(crate) fn finalize() -> Result<()> {
    let mut guard = lock();
    match guard.as_ref() {
        Some(m) if m.pid == std::process::id() => {
            *guard = None;
            drop(guard);
            tpmkey::connection::shutdown();
            Ok(())
        }
        _ => Err(Error::rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

#[derive(Debug)]
pub(crate) struct Login {
    pub role: Role,
    pub secret: TokenSecret,
    /// Keys of this token in use, built on first use from their key files.
    keys: HashMap<String, TpmKey>,
}

impl Login {
    pub(crate) fn new(role: Role, secret: TokenSecret) -> Login {
        Login {
            role,
            secret,
            keys: HashMap::new(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub token: Token,
    pub login: Option<Login>,
    /// Why the token cannot be used with this TPM (None: it can), once asked.
    foreign: Option<Option<String>>,
}

impl Slot {
    pub(crate) fn new(token: Token) -> Slot {
        Slot {
            token,
            login: None,
            foreign: None,
        }
    }

    pub(crate) fn user_logged_in(&self) -> bool {
        self.login.as_ref().is_some_and(|l| l.role == Role::User)
    }

    /// CKR_TOKEN_NOT_RECOGNIZED, logged with the cause, for a token made on another TPM or
    /// on this one before a clear. Asked once per C_Initialize; a TPM that cannot be
    /// reached now is asked again next time (the operation will say what is wrong).
    pub(crate) fn check_made_here(&mut self) -> Result<()> {
        if self.foreign.is_none() {
            match self.token.foreign_to_this_tpm() {
                Ok(answer) => {
                    if let Some(why) = &answer {
                        crate::error::log(&format!("{why} (CKR_TOKEN_NOT_RECOGNIZED)"));
                    }
                    self.foreign = Some(answer);
                }
                // A storage key that does not match its pinned Name (a cleared TPM, or
                // something answering in its place) is for the administrator to see.
                Err(e @ tpmkey::Error::Integrity(_)) => {
                    crate::error::log(&e.to_string());
                    return Ok(());
                }
                Err(_) => return Ok(()),
            }
        }
        match &self.foreign {
            Some(Some(why)) => Err(Error::new(CKR_TOKEN_NOT_RECOGNIZED, why.clone())),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Session {
    pub slot: CK_SLOT_ID,
    pub rw: bool,
    pub find: Option<FindOp>,
    pub sign: Option<SignOp>,
    pub verify: Option<VerifyOp>,
    pub encrypt: Option<EncryptOp>,
    pub decrypt: Option<DecryptOp>,
    pub digest: Option<DigestOp>,
}

/// What an object handle stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ObjRef {
    /// Part `part` of the record `uid` of the token in `slot`.
    Token {
        slot: CK_SLOT_ID,
        uid: String,
        part: usize,
    },
    /// A session object (lives in `Module::session_objects` under this handle).
    Session(CK_OBJECT_HANDLE),
}

#[derive(Debug)]
pub(crate) struct SessionObject {
    pub session: CK_SESSION_HANDLE,
    pub slot: CK_SLOT_ID,
    pub attrs: SecretAttributes,
    /// The TPM key of a session private key.
    pub key: Option<TpmKey>,
}

/// What the TPM says about itself, read once per C_Initialize.
#[derive(Debug)]
pub(crate) struct Module {
    pid: u32,
    pub store: Store,
    pub slots: BTreeMap<CK_SLOT_ID, Slot>,
    /// Slots whose token is damaged: (serial, what is wrong). They are listed, report
    /// CKR_TOKEN_NOT_RECOGNIZED for everything, and are never initialised over.
    pub damaged: BTreeMap<CK_SLOT_ID, (String, String)>,
    /// The slot without a token, where C_InitToken creates one.
    pub empty_slot: CK_SLOT_ID,
    next_slot: CK_SLOT_ID,
    pub sessions: HashMap<CK_SESSION_HANDLE, Session>,
    handles: HashMap<CK_OBJECT_HANDLE, ObjRef>,
    refs: HashMap<ObjRef, CK_OBJECT_HANDLE>,
    pub session_objects: HashMap<CK_OBJECT_HANDLE, SessionObject>,
    pub tpm_info: Option<tpmkey::tpm_identity::TpmIdentity>,
}

impl Module {
    /// Picks up tokens created or removed by other processes; known tokens keep their slot.
    pub(crate) fn refresh_slots(&mut self) -> Result<()> {
        let serials = self.store.serials()?;
        self.slots
            .retain(|_, s| serials.iter().any(|x| x == s.token.serial()));
        self.damaged.retain(|_, (x, _)| serials.contains(x));
        for serial in serials {
            if self.slots.values().any(|s| s.token.serial() == serial) {
                continue;
            }
            let damaged_id = self
                .damaged
                .iter()
                .find(|(_, (x, _))| *x == serial)
                .map(|(id, _)| *id);
            match self.store.open(&serial) {
                Ok(token) => {
                    // A damaged token that was repaired keeps its slot.
                    let id = damaged_id.unwrap_or_else(|| self.allocate_slot());
                    self.damaged.remove(&id);
                    self.slots.insert(id, Slot::new(token));
                }
                Err(e) if damaged_id.is_none() => {
                    let why = e.to_string();
                    crate::error::log(&format!(
                        "token {serial} is damaged and left alone (CKR_TOKEN_NOT_RECOGNIZED): {why}"
                    ));
                    let id = self.allocate_slot();
                    self.damaged.insert(id, (serial, why));
                }
                Err(_) => {}
            }
        }
        if self.empty_slot == 0 || self.slots.contains_key(&self.empty_slot) {
            self.empty_slot = self.allocate_slot();
        }
        Ok(())
    }

    fn allocate_slot(&mut self) -> CK_SLOT_ID {
        let id = self.next_slot;
        self.next_slot += 1;
        id
    }

    pub(crate) fn is_slot(&self, id: CK_SLOT_ID) -> bool {
        id == self.empty_slot || self.slots.contains_key(&id) || self.damaged.contains_key(&id)
    }

    pub(crate) fn slot(&mut self, id: CK_SLOT_ID) -> Result<&mut Slot> {
        if id == self.empty_slot {
            return Err(Error::new(
                CKR_USER_PIN_NOT_INITIALIZED,
                "the token in this slot is not initialised (C_InitToken first)",
            ));
        }
        if let Some((serial, why)) = self.damaged.get(&id) {
            return Err(Error::new(
                CKR_TOKEN_NOT_RECOGNIZED,
                format!("token {serial} is damaged: {why}"),
            ));
        }
        self.slots
            .get_mut(&id)
            .ok_or_else(|| Error::rv(CKR_SLOT_ID_INVALID))
    }

    pub(crate) fn session(&mut self, h: CK_SESSION_HANDLE) -> Result<&mut Session> {
        self.sessions
            .get_mut(&h)
            .ok_or_else(|| Error::rv(CKR_SESSION_HANDLE_INVALID))
    }

    /// The slot of a session, with the token in it.
    pub(crate) fn session_slot(&mut self, h: CK_SESSION_HANDLE) -> Result<(CK_SLOT_ID, bool)> {
        let s = self.session(h)?;
        Ok((s.slot, s.rw))
    }

    pub(crate) fn handle_for(&mut self, r: ObjRef) -> CK_OBJECT_HANDLE {
        if let Some(h) = self.refs.get(&r) {
            return *h;
        }
        let h = match &r {
            ObjRef::Session(h) => *h,
            ObjRef::Token { .. } => new_handle(),
        };
        self.refs.insert(r.clone(), h);
        self.handles.insert(h, r);
        h
    }

    pub(crate) fn forget_handle(&mut self, h: CK_OBJECT_HANDLE) {
        if let Some(r) = self.handles.remove(&h) {
            self.refs.remove(&r);
        }
        self.session_objects.remove(&h);
    }

    /// The object `h` as seen from session `session`: its reference and attributes.
    /// Objects of other tokens, destroyed objects and private objects without a user
    /// login are CKR_OBJECT_HANDLE_INVALID.
    pub(crate) fn object(
        &mut self,
        session: CK_SESSION_HANDLE,
        h: CK_OBJECT_HANDLE,
    ) -> Result<(ObjRef, SecretAttributes)> {
        let (slot_id, _) = self.session_slot(session)?;
        let invalid = || Error::new(CKR_OBJECT_HANDLE_INVALID, format!("object {h}"));
        let r = self.handles.get(&h).cloned().ok_or_else(invalid)?;
        let attrs = match &r {
            ObjRef::Session(_) => {
                let o = self.session_objects.get(&h).ok_or_else(invalid)?;
                if o.slot != slot_id {
                    return Err(invalid());
                }
                o.attrs.clone()
            }
            ObjRef::Token { slot, uid, part } => {
                if *slot != slot_id {
                    return Err(invalid());
                }
                let token = &mut self.slot(*slot)?.token;
                let record = token.object(uid)?.ok_or_else(invalid)?;
                record
                    .parts
                    .get(*part)
                    .filter(|p| !p.is_empty())
                    .cloned()
                    .ok_or_else(invalid)?
                    .into()
            }
        };
        if is_private(&attrs) && !self.slot(slot_id)?.user_logged_in() {
            return Err(invalid());
        }
        Ok((r, attrs))
    }

    /// The TPM key behind a private key object (built from its key file on first use).
    pub(crate) fn tpm_key(&mut self, r: &ObjRef) -> Result<TpmKey> {
        match r {
            ObjRef::Session(h) => self
                .session_objects
                .get(h)
                .and_then(|o| o.key.clone())
                .ok_or_else(|| Error::rv(CKR_KEY_HANDLE_INVALID)),
            ObjRef::Token { slot, uid, .. } => {
                let slot = self.slot(*slot)?;
                let login = slot
                    .login
                    .as_mut()
                    .filter(|l| l.role == Role::User)
                    .ok_or_else(|| Error::rv(CKR_USER_NOT_LOGGED_IN))?;
                if let Some(k) = login.keys.get(uid) {
                    return Ok(k.clone());
                }
                let file = slot.token.key_file(uid)?;
                let auth = login.secret.object_auth(uid);
                let key = TpmKey::from_key_file(&file, Some(&auth))?;
                login.keys.insert(uid.clone(), key.clone());
                Ok(key)
            }
        }
    }

    /// The token secret of a slot where the user is logged in.
    pub(crate) fn user_secret(&mut self, slot: CK_SLOT_ID) -> Result<TokenSecret> {
        self.slot(slot)?
            .login
            .as_ref()
            .filter(|l| l.role == Role::User)
            .map(|l| l.secret.clone())
            .ok_or_else(|| Error::rv(CKR_USER_NOT_LOGGED_IN))
    }

    /// Drops the session objects of `session` and the session itself.
    pub(crate) fn close_session(&mut self, session: CK_SESSION_HANDLE) -> Result<()> {
        let s = self
            .sessions
            .remove(&session)
            .ok_or_else(|| Error::rv(CKR_SESSION_HANDLE_INVALID))?;
        let owned: Vec<CK_OBJECT_HANDLE> = self
            .session_objects
            .iter()
            .filter(|(_, o)| o.session == session)
            .map(|(h, _)| *h)
            .collect();
        for h in owned {
            self.forget_handle(h);
        }
        // The last session of a token ends its login.
        if !self.sessions.values().any(|x| x.slot == s.slot) {
            if let Some(slot) = self.slots.get_mut(&s.slot) {
                slot.login = None;
            }
        }
        Ok(())
    }

    /// Whether the key object may be used by a signing or decrypting operation.
    pub(crate) fn check_usage(attrs: &Attributes, usage: CK_ATTRIBUTE_TYPE) -> Result<()> {
        if get_bool(attrs, usage) == Some(true) {
            Ok(())
        } else {
            Err(Error::new(
                CKR_KEY_FUNCTION_NOT_PERMITTED,
                format!("key attribute 0x{usage:x} is not set"),
            ))
        }
    }
}
