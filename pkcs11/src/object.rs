//! Object management: create (certificates, data objects, public keys), destroy, attribute
//! values, C_FindObjects. Token objects live in the store; the CKA_VALUE of a private data
//! object or private certificate is not in its record but sealed (`tpmkey::envelope`, any
//! size) under an authValue derived from the token secret, authenticated together with the
//! object's uid and class, and unsealed only when CKA_VALUE itself is read. In a token with
//! a platform policy the sealed key is bound to it too: in another platform state CKA_VALUE
//! is CKR_ATTRIBUTE_SENSITIVE (the object stays listed, its other attributes readable).

use cryptoki_sys::*;
use tpmkey::envelope::SealedSecret;
use tpmkey::store::{Attributes, Record};

use crate::attributes::{
    boolean, class, get_bool, is_private, is_sensitive, is_settable, matches, to_map, ulong,
    Answer, SecretAttributes, Template,
};
use crate::error::{Error, Result};
use crate::state::{self, new_handle, Module, ObjRef, SessionObject};
use zeroize::Zeroizing;

/// An active C_FindObjects: the handles found at C_FindObjectsInit, handed out in turn.
#[derive(Debug)]
pub(crate) struct FindOp {
    handles: Vec<CK_OBJECT_HANDLE>,
    next: usize,
}

/// Fills in what the specification leaves to the token and checks what it requires.
fn with_defaults(class: CK_OBJECT_CLASS, attrs: &mut Attributes) -> Result<()> {
    let mut default = |t: CK_ATTRIBUTE_TYPE, v: Vec<u8>| {
        attrs.entry(t).or_insert(v);
    };
    default(CKA_TOKEN, boolean(false));
    default(CKA_PRIVATE, boolean(class == CKO_PRIVATE_KEY));
    default(CKA_MODIFIABLE, boolean(true));
    default(CKA_COPYABLE, boolean(false));
    default(CKA_DESTROYABLE, boolean(true));
    default(CKA_LABEL, Vec::new());
    match class {
        CKO_DATA => {
            default(CKA_APPLICATION, Vec::new());
            default(CKA_OBJECT_ID, Vec::new());
            default(CKA_VALUE, Vec::new());
        }
        CKO_CERTIFICATE => {
            default(CKA_CERTIFICATE_TYPE, ulong(CKC_X_509));
            default(CKA_TRUSTED, boolean(false));
            default(
                CKA_CERTIFICATE_CATEGORY,
                ulong(CK_CERTIFICATE_CATEGORY_UNSPECIFIED),
            );
            default(CKA_ID, Vec::new());
            default(CKA_SUBJECT, Vec::new());
            default(CKA_ISSUER, Vec::new());
            default(CKA_SERIAL_NUMBER, Vec::new());
            if !attrs.contains_key(&CKA_VALUE) {
                return Err(Error::new(
                    CKR_TEMPLATE_INCOMPLETE,
                    "a certificate needs CKA_VALUE",
                ));
            }
        }
        CKO_PUBLIC_KEY => {
            default(CKA_ID, Vec::new());
            default(CKA_LOCAL, boolean(false));
            if !attrs.contains_key(&CKA_KEY_TYPE) {
                return Err(Error::new(
                    CKR_TEMPLATE_INCOMPLETE,
                    "a public key needs CKA_KEY_TYPE",
                ));
            }
        }
        _ => {
            return Err(Error::new(
                CKR_ATTRIBUTE_VALUE_INVALID,
                format!(
                "objects of class 0x{class:x} cannot be created (keys come from C_GenerateKeyPair)"
            ),
            ))
        }
    }
    Ok(())
}

/// Checks that the session may create or change an object with these attributes.
pub(crate) fn check_access(
    m: &mut Module,
    session: CK_SESSION_HANDLE,
    attrs: &Attributes,
) -> Result<()> {
    let (slot, rw) = m.session_slot(session)?;
    if is_private(attrs) && !m.slot(slot)?.user_logged_in() {
        return Err(Error::rv(CKR_USER_NOT_LOGGED_IN));
    }
    if get_bool(attrs, CKA_TOKEN) == Some(true) && !rw {
        return Err(Error::rv(CKR_SESSION_READ_ONLY));
    }
    Ok(())
}

/// Stores a new object (token or session) and returns its handle.
pub(crate) fn store(
    m: &mut Module,
    session: CK_SESSION_HANDLE,
    uid: Option<String>,
    parts: Vec<Attributes>,
    key: Option<tpmkey::TpmKey>,
    sealed: Option<SealedSecret>,
) -> Result<Vec<CK_OBJECT_HANDLE>> {
    let (slot, _) = m.session_slot(session)?;
    let is_token = parts
        .first()
        .and_then(|p| get_bool(p, CKA_TOKEN))
        .unwrap_or(false);
    if is_token {
        let token = &mut m.slot(slot)?.token;
        let uid = uid.unwrap_or_else(|| token.new_uid());
        let key_file = key.as_ref().and_then(|k| k.key_file());
        let record = Record {
            parts: parts.clone(),
            ..Record::default()
        };
        token.add(&uid, &record, key_file.as_ref(), sealed.as_ref())?;
        Ok((0..parts.len())
            .map(|part| {
                m.handle_for(ObjRef::Token {
                    slot,
                    uid: uid.clone(),
                    part,
                })
            })
            .collect())
    } else {
        let mut handles = Vec::new();
        for attrs in parts {
            let h = new_handle();
            let is_private_key = class(&attrs) == Some(CKO_PRIVATE_KEY);
            m.session_objects.insert(
                h,
                SessionObject {
                    session,
                    slot,
                    attrs: attrs.into(),
                    key: key.clone().filter(|_| is_private_key),
                },
            );
            handles.push(m.handle_for(ObjRef::Session(h)));
        }
        Ok(handles)
    }
}

/// Stores a new object of `class` (anything but a private key to import into the TPM).
pub(crate) fn create(
    session: CK_SESSION_HANDLE,
    mut attrs: SecretAttributes,
    class: CK_OBJECT_CLASS,
) -> Result<CK_OBJECT_HANDLE> {
    with_defaults(class, &mut attrs)?;
    state::with(|m| {
        check_access(m, session, &attrs)?;
        let (slot, _) = m.session_slot(session)?;
        let token = get_bool(&attrs, CKA_TOKEN) == Some(true);
        let mut uid = None;
        let mut sealed = None;
        if token && has_sealed_value(class) && is_private(&attrs) {
            let value = Zeroizing::new(attrs.remove(&CKA_VALUE).unwrap_or_default());
            if !value.is_empty() {
                let id = m.slot(slot)?.token.new_uid();
                let auth = m.user_secret(slot)?.object_auth(&id);
                let context = value_context(&id, class);
                let policy = m.slot(slot)?.token.platform_policy()?.unwrap_or_default();
                sealed = Some(SealedSecret::seal_enveloped_with_policy(
                    &value, &auth, false, None, &context, policy,
                )?);
                uid = Some(id);
            }
        }
        let handles = store(m, session, uid, vec![attrs.into_inner()], None, sealed)?;
        handles
            .first()
            .copied()
            .ok_or_else(|| Error::rv(CKR_GENERAL_ERROR))
    })
}

pub(crate) fn destroy(session: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE) -> Result<()> {
    state::with(|m| {
        let (r, attrs) = m.object(session, h)?;
        if get_bool(&attrs, CKA_DESTROYABLE) == Some(false) {
            return Err(Error::rv(CKR_ACTION_PROHIBITED));
        }
        check_access(m, session, &attrs)?;
        if let ObjRef::Token { slot, uid, part } = &r {
            let token = &mut m.slot(*slot)?.token;
            let record = token
                .object(uid)?
                .ok_or_else(|| Error::rv(CKR_OBJECT_HANDLE_INVALID))?;
            let mut record = (*record).clone();
            if let Some(p) = record.parts.get_mut(*part) {
                p.clear();
            }
            if record.parts.iter().all(|p| p.is_empty()) {
                token.remove(uid)?;
            } else {
                // The private half goes with its key file; the public half may stay.
                record.has_key &= class(&attrs) != Some(CKO_PRIVATE_KEY);
                token.update(uid, &record)?;
            }
        }
        m.forget_handle(h);
        Ok(())
    })
}

pub(crate) fn get_attributes(
    session: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> Result<Vec<Answer>> {
    state::with(|m| {
        let (r, attrs) = m.object(session, h)?;
        let mut answers = Vec::with_capacity(types.len());
        for t in types {
            let answer = if is_sensitive(&attrs, *t) {
                Answer::Sensitive
            } else if let Some(v) = attrs.get(t) {
                Answer::Value(Zeroizing::new(v.clone()))
            } else if let Some(c) =
                class(&attrs).filter(|c| *t == CKA_VALUE && has_sealed_value(*c))
            {
                match unseal_value(m, &r, c)? {
                    Some(value) => Answer::Value(value),
                    None => Answer::Sensitive,
                }
            } else {
                Answer::Invalid
            };
            answers.push(answer);
        }
        Ok(answers)
    })
}

/// Classes whose private token objects keep CKA_VALUE sealed.
fn has_sealed_value(class: CK_OBJECT_CLASS) -> bool {
    matches!(class, CKO_DATA | CKO_CERTIFICATE)
}

/// What a sealed value is authenticated with besides its sealed key: the object it belongs
/// to, so a value file moved to another object, or a record whose class was changed, fails.
fn value_context(uid: &str, class: CK_OBJECT_CLASS) -> Vec<u8> {
    [
        b"tpmkey token object\0".as_slice(),
        uid.as_bytes(),
        b"\0",
        &class.to_be_bytes(),
    ]
    .concat()
}

/// The sealed CKA_VALUE of a private data object or certificate: TPM2_Load and
/// TPM2_Unseal, then for an envelope AES-256-GCM in software. None when the platform state
/// does not satisfy the value's policy (logged with the policy).
fn unseal_value(
    m: &mut Module,
    r: &ObjRef,
    class: CK_OBJECT_CLASS,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let ObjRef::Token { slot, uid, .. } = r else {
        return Ok(Some(Zeroizing::new(Vec::new())));
    };
    let auth = m.user_secret(*slot)?.object_auth(uid);
    let token = &mut m.slot(*slot)?.token;
    let has_sealed = token.object(uid)?.is_some_and(|rec| rec.has_sealed);
    if !has_sealed {
        return Ok(Some(Zeroizing::new(Vec::new())));
    }
    let sealed = token.sealed(uid)?;
    match sealed.unseal(&auth, &value_context(uid, class)) {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_policy_failure() => {
            let policy = sealed
                .sealed_object()
                .policy()
                .map(|p| p.statements.as_slice());
            let what = format!("CKA_VALUE of object {uid} in token {:?}", token.label());
            crate::error::not_usable_now(&what, policy, &e, CKR_ATTRIBUTE_SENSITIVE);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn set_attributes(
    session: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
    template: &Template,
) -> Result<()> {
    let changes = to_map(template)?;
    if let Some(t) = changes.keys().find(|t| !is_settable(**t)) {
        return Err(Error::new(
            CKR_ATTRIBUTE_READ_ONLY,
            format!("attribute 0x{t:x} cannot be changed"),
        ));
    }
    state::with(|m| {
        let (r, attrs) = m.object(session, h)?;
        if get_bool(&attrs, CKA_MODIFIABLE) == Some(false) {
            return Err(Error::rv(CKR_ACTION_PROHIBITED));
        }
        check_access(m, session, &attrs)?;
        match &r {
            ObjRef::Session(_) => {
                if let Some(o) = m.session_objects.get_mut(&h) {
                    o.attrs.extend(changes.into_inner());
                }
            }
            ObjRef::Token { slot, uid, part } => {
                let token = &mut m.slot(*slot)?.token;
                let record = token
                    .object(uid)?
                    .ok_or_else(|| Error::rv(CKR_OBJECT_HANDLE_INVALID))?;
                let mut record = (*record).clone();
                if let Some(p) = record.parts.get_mut(*part) {
                    p.extend(changes.into_inner());
                }
                token.update(uid, &record)?;
            }
        }
        Ok(())
    })
}

pub(crate) fn size(session: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE) -> Result<CK_ULONG> {
    state::with(|m| {
        let (_, attrs) = m.object(session, h)?;
        Ok(attrs.values().map(Vec::len).sum::<usize>() as CK_ULONG)
    })
}

pub(crate) fn find_init(session: CK_SESSION_HANDLE, template: &Template) -> Result<()> {
    let wanted = to_map(template)?;
    state::with(|m| {
        let (slot_id, _) = m.session_slot(session)?;
        crate::operation::begin(&m.session(session)?.find)?;
        if slot_id == m.empty_slot {
            // The uninitialised token holds no objects.
            m.session(session)?.find = Some(FindOp {
                handles: Vec::new(),
                next: 0,
            });
            return Ok(());
        }
        let slot = m.slot(slot_id)?;
        let user = slot.user_logged_in();
        let visible = |a: &Attributes| (user || !is_private(a)) && matches(a, &wanted);
        let objects = slot.token.objects()?;
        let damaged = slot.token.damaged_records();
        if !damaged.is_empty() {
            let files: Vec<String> = damaged
                .iter()
                .map(|(file, why)| format!("{}: {why}", file.display()))
                .collect();
            let files = files.join("; ");
            crate::error::log(&format!("damaged object records: {files}"));
            return Err(Error::new(
                CKR_DEVICE_ERROR,
                format!("damaged object records: {files}"),
            ));
        }
        let mut found: Vec<ObjRef> = objects
            .candidates(&wanted)
            .into_iter()
            .filter(|(_, _, attrs)| !attrs.is_empty() && visible(attrs))
            .map(|(uid, part, _)| ObjRef::Token {
                slot: slot_id,
                uid: uid.to_string(),
                part,
            })
            .collect();
        let mut session_objects: Vec<CK_OBJECT_HANDLE> = m
            .session_objects
            .iter()
            .filter(|(_, o)| o.slot == slot_id && visible(&o.attrs))
            .map(|(h, _)| *h)
            .collect();
        session_objects.sort_unstable();
        found.extend(session_objects.into_iter().map(ObjRef::Session));
        let handles = found.into_iter().map(|r| m.handle_for(r)).collect();
        m.session(session)?.find = Some(FindOp { handles, next: 0 });
        Ok(())
    })
}

pub(crate) fn find(session: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
    state::with(|m| {
        let op = crate::operation::active(&mut m.session(session)?.find)?;
        let end = op.next.saturating_add(max).min(op.handles.len());
        let out = op.handles[op.next..end].to_vec();
        op.next = end;
        Ok(out)
    })
}

pub(crate) fn find_final(session: CK_SESSION_HANDLE) -> Result<()> {
    state::with(|m| crate::operation::finish(&mut m.session(session)?.find, |_| Ok(())))
}
