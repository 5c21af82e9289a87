//! The raw PKCS#11 entry points: every `extern "C"` function is a short shim that checks the
//! caller's pointers, runs the safe function of its group under `catch_unwind` and maps the
//! result to a CK_RV. Only C_GetFunctionList, C_GetInterface and C_GetInterfaceList are
//! exported (the version script in build.rs hides everything else); the rest are reached
//! through the function lists.

#![allow(non_snake_case)]

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use cryptoki_sys::*;

use crate::attributes::{Answer, Template};
use crate::error::{Error, Result};
use crate::general::InitArgs;
use crate::mechanism::{Mechanism, Param};
use crate::{
    create_object, digest, encrypt_decrypt, general, key_management, object, operation, random,
    session, sign_verify, slot_token,
};

/// Runs `f`, turning a panic into CKR_GENERAL_ERROR and an error into its CK_RV.
fn guard(name: &str, f: impl FnOnce() -> Result<()>) -> CK_RV {
    let result = catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(Error::new(CKR_GENERAL_ERROR, "panic caught")));
    match result {
        Ok(()) => CKR_OK,
        Err(e) => {
            crate::error::debug(&format!(
                "{name}: {} (0x{:x}): {}",
                crate::error::rv_name(e.code()),
                e.code(),
                e.cause()
            ));
            e.code()
        }
    }
}

fn bad() -> Error {
    Error::rv(CKR_ARGUMENTS_BAD)
}

/// The caller's input bytes.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes (the PKCS#11 calling contract).
unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if p.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(bad()) };
    }
    // SAFETY: non-NULL and `len` readable bytes, per this function's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len as usize) })
}

/// A value the caller wants written.
///
/// # Safety
/// `p` is NULL or points to a writable, aligned `T`.
unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T> {
    // SAFETY: per this function's contract; NULL becomes None.
    unsafe { p.as_mut() }.ok_or_else(bad)
}

/// Copies the caller's template.
///
/// # Safety
/// `p` is NULL or points to `n` CK_ATTRIBUTEs whose values are readable.
unsafe fn template(p: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Template> {
    if p.is_null() {
        return if n == 0 { Ok(Vec::new()) } else { Err(bad()) };
    }
    // SAFETY: `n` attributes at `p`, per this function's contract.
    let attrs = unsafe { std::slice::from_raw_parts(p, n as usize) };
    attrs
        .iter()
        .map(|a| {
            // SAFETY: each attribute's pValue holds ulValueLen bytes (or is NULL with 0).
            let v = unsafe { bytes(a.pValue as *const u8, a.ulValueLen) }?;
            Ok((a.type_, zeroize::Zeroizing::new(v.to_vec())))
        })
        .collect()
}

/// Reads a parameter structure of type `T` if the length matches.
///
/// # Safety
/// `m.pParameter` points to `m.ulParameterLen` readable bytes.
unsafe fn param<T: Copy>(m: &CK_MECHANISM) -> Result<T> {
    if m.pParameter.is_null() || m.ulParameterLen as usize != std::mem::size_of::<T>() {
        return Err(Error::rv(CKR_MECHANISM_PARAM_INVALID));
    }
    // SAFETY: non-NULL with exactly size_of::<T>() bytes; read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(m.pParameter as *const T) })
}

/// Copies the caller's mechanism and its parameters.
///
/// # Safety
/// `p` is NULL or points to a CK_MECHANISM whose parameter (and the buffers the
/// parameter structure names) are readable.
unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<Mechanism> {
    // SAFETY: per this function's contract.
    let m = unsafe { p.as_ref() }.ok_or_else(bad)?;
    let param = match m.mechanism {
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS
            if !m.pParameter.is_null() =>
        {
            // SAFETY: per this function's contract.
            let p: CK_RSA_PKCS_PSS_PARAMS = unsafe { param(m) }?;
            Param::Pss {
                hash: p.hashAlg,
                mgf: p.mgf,
                salt_len: p.sLen,
            }
        }
        CKM_RSA_PKCS_OAEP => {
            // SAFETY: per this function's contract.
            let p: CK_RSA_PKCS_OAEP_PARAMS = unsafe { param(m) }?;
            // SAFETY: the label buffer holds ulSourceDataLen bytes.
            let label = unsafe { bytes(p.pSourceData as *const u8, p.ulSourceDataLen) }?;
            if !label.is_empty() && p.source != CKZ_DATA_SPECIFIED {
                return Err(Error::rv(CKR_MECHANISM_PARAM_INVALID));
            }
            Param::Oaep {
                hash: p.hashAlg,
                mgf: p.mgf,
                label: label.to_vec(),
            }
        }
        CKM_ECDH1_DERIVE => {
            // SAFETY: per this function's contract.
            let p: CK_ECDH1_DERIVE_PARAMS = unsafe { param(m) }?;
            // SAFETY: the buffers hold the lengths the parameter structure gives.
            let (shared, public) = unsafe {
                (
                    bytes(p.pSharedData, p.ulSharedDataLen)?,
                    bytes(p.pPublicData, p.ulPublicDataLen)?,
                )
            };
            Param::Ecdh {
                kdf: p.kdf,
                shared_data: shared.to_vec(),
                public_data: public.to_vec(),
            }
        }
        _ => {
            // SAFETY: the parameter holds ulParameterLen bytes.
            let raw = unsafe { bytes(m.pParameter as *const u8, m.ulParameterLen) }?;
            if raw.is_empty() {
                Param::None
            } else {
                Param::Other(raw.to_vec())
            }
        }
    };
    Ok(Mechanism {
        kind: m.mechanism,
        param,
    })
}

/// The PKCS#11 output convention: a NULL buffer asks for the size (CKR_OK), a short one
/// gets CKR_BUFFER_TOO_SMALL with the size; `produce` gets the capacity (None for NULL).
///
/// # Safety
/// `buf` is NULL or points to `*len` writable bytes; `len` is NULL or a writable CK_ULONG.
unsafe fn write_output<V: AsRef<[u8]>>(
    buf: *mut u8,
    len: *mut CK_ULONG,
    produce: impl FnOnce(Option<usize>) -> Result<V>,
) -> Result<()> {
    // SAFETY: per this function's contract.
    let len = unsafe { out(len) }?;
    let capacity = (!buf.is_null()).then_some(*len as usize);
    match produce(capacity) {
        Ok(v) => {
            let v = v.as_ref();
            if v.len() > capacity.unwrap_or(0) {
                return Err(Error::rv(CKR_GENERAL_ERROR));
            }
            // SAFETY: `buf` has at least `capacity` >= v.len() writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), buf, v.len()) };
            *len = v.len() as CK_ULONG;
            Ok(())
        }
        Err(e) => {
            if let Some(n) = e.needed() {
                *len = n as CK_ULONG;
                if buf.is_null() {
                    return Ok(());
                }
            }
            Err(e)
        }
    }
}

/// A list output (slots, mechanisms, interfaces) with the same size-query convention.
///
/// # Safety
/// `buf` is NULL or points to `*count` writable `T`s; `count` is NULL or writable.
unsafe fn write_list<T: Copy>(buf: *mut T, count: *mut CK_ULONG, items: &[T]) -> Result<()> {
    // SAFETY: per this function's contract.
    let count = unsafe { out(count) }?;
    if buf.is_null() {
        *count = items.len() as CK_ULONG;
        return Ok(());
    }
    if (*count as usize) < items.len() {
        *count = items.len() as CK_ULONG;
        return Err(Error::buffer_too_small(items.len()));
    }
    // SAFETY: `buf` has room for `*count` >= items.len() elements.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), buf, items.len()) };
    *count = items.len() as CK_ULONG;
    Ok(())
}

// ---- general ---------------------------------------------------------------------------

unsafe extern "C" fn C_Initialize(init_args: *mut c_void) -> CK_RV {
    guard("C_Initialize", || {
        // SAFETY: NULL or a CK_C_INITIALIZE_ARGS, per the specification.
        let args = unsafe { (init_args as *const CK_C_INITIALIZE_ARGS).as_ref() };
        let args = args.map(|a| InitArgs {
            flags: a.flags,
            mutex_callbacks: [
                a.CreateMutex.is_some(),
                a.DestroyMutex.is_some(),
                a.LockMutex.is_some(),
                a.UnlockMutex.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count(),
            reserved_is_null: a.pReserved.is_null(),
        });
        general::initialize(args)
    })
}

unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard("C_Finalize", || {
        if !reserved.is_null() {
            return Err(bad());
        }
        general::finalize()
    })
}

unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    guard("C_GetInfo", || {
        // SAFETY: NULL or a writable CK_INFO.
        let info = unsafe { out(info) }?;
        *info = general::info()?;
        Ok(())
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard("C_GetFunctionList", || {
        // SAFETY: NULL or a writable pointer.
        let list = unsafe { out(list) }?;
        *list = &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        Ok(())
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn C_GetInterfaceList(
    list: *mut CK_INTERFACE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetInterfaceList", || {
        // SAFETY: NULL or room for *count interfaces; count writable.
        unsafe { write_list(list, count, &INTERFACES.0) }
    })
}

#[no_mangle]
pub(crate) unsafe extern "C" fn C_GetInterface(
    name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    interface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    guard("C_GetInterface", || {
        // SAFETY: NULL or a writable pointer.
        let interface = unsafe { out(interface) }?;
        if !name.is_null() {
            // SAFETY: a NUL-terminated string, per the specification.
            let name = unsafe { std::ffi::CStr::from_ptr(name as *const std::ffi::c_char) };
            if name.to_bytes() != &INTERFACE_NAME[..INTERFACE_NAME.len() - 1] {
                return Err(bad());
            }
        }
        // SAFETY: NULL or a readable CK_VERSION.
        let wanted = unsafe { version.as_ref() }.map(|v| (v.major, v.minor));
        if flags != 0 {
            return Err(bad());
        }
        let found = INTERFACES.0.iter().find(|i| {
            // SAFETY: our function lists all start with their CK_VERSION.
            let v = unsafe { *(i.pFunctionList as *const CK_VERSION) };
            wanted.is_none_or(|w| w == (v.major, v.minor))
        });
        *interface = found.ok_or_else(bad)? as *const CK_INTERFACE as *mut CK_INTERFACE;
        Ok(())
    })
}

// ---- slots and tokens ------------------------------------------------------------------

unsafe extern "C" fn C_GetSlotList(
    present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetSlotList", || {
        let slots = slot_token::slot_list(present != 0)?;
        // SAFETY: NULL or room for *count slot ids; count writable.
        unsafe { write_list(list, count, &slots) }
    })
}

unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    guard("C_GetSlotInfo", || {
        // SAFETY: NULL or a writable CK_SLOT_INFO.
        let info = unsafe { out(info) }?;
        *info = slot_token::slot_info(slot)?;
        Ok(())
    })
}

unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard("C_GetTokenInfo", || {
        // SAFETY: NULL or a writable CK_TOKEN_INFO.
        let info = unsafe { out(info) }?;
        *info = slot_token::token_info(slot)?;
        Ok(())
    })
}

unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetMechanismList", || {
        let mechanisms = slot_token::mechanism_list(slot)?;
        // SAFETY: NULL or room for *count mechanisms; count writable.
        unsafe { write_list(list, count, &mechanisms) }
    })
}

unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    kind: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard("C_GetMechanismInfo", || {
        // SAFETY: NULL or a writable CK_MECHANISM_INFO.
        let info = unsafe { out(info) }?;
        *info = slot_token::mechanism_info(slot, kind)?;
        Ok(())
    })
}

unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    guard("C_InitToken", || {
        // SAFETY: the PIN has pin_len bytes; the label is 32 bytes (the specification's size).
        let (pin, label) = unsafe { (bytes(pin, pin_len)?, bytes(label, 32)?) };
        let label: &[u8; 32] = label.try_into().map_err(|_| bad())?;
        slot_token::init_token(slot, pin, label)
    })
}

unsafe extern "C" fn C_InitPIN(
    session: CK_SESSION_HANDLE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_InitPIN", || {
        // SAFETY: the PIN has len bytes.
        let pin = unsafe { bytes(pin, len) }?;
        slot_token::init_pin(session, pin)
    })
}

unsafe extern "C" fn C_SetPIN(
    session: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    guard("C_SetPIN", || {
        // SAFETY: the PINs have the lengths given.
        let (old, new) = unsafe { (bytes(old, old_len)?, bytes(new, new_len)?) };
        slot_token::set_pin(session, old, new)
    })
}

// ---- sessions --------------------------------------------------------------------------

unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut c_void,
    _notify: CK_NOTIFY,
    handle: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard("C_OpenSession", || {
        // SAFETY: NULL or a writable handle.
        let handle = unsafe { out(handle) }?;
        *handle = session::open(slot, flags)?;
        Ok(())
    })
}

unsafe extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_CloseSession", || session::close(session))
}

unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard("C_CloseAllSessions", || session::close_all(slot))
}

unsafe extern "C" fn C_GetSessionInfo(
    session: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    guard("C_GetSessionInfo", || {
        // SAFETY: NULL or a writable CK_SESSION_INFO.
        let info = unsafe { out(info) }?;
        *info = session::info(session)?;
        Ok(())
    })
}

unsafe extern "C" fn C_Login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_Login", || {
        // SAFETY: the PIN has len bytes.
        let pin = unsafe { bytes(pin, len) }?;
        session::login(session, user, pin)
    })
}

unsafe extern "C" fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_Logout", || session::logout(session))
}

// ---- objects ---------------------------------------------------------------------------

unsafe extern "C" fn C_CreateObject(
    session: CK_SESSION_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    handle: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_CreateObject", || {
        // SAFETY: `count` attributes; NULL or a writable handle.
        let (t, handle) = unsafe { (template(attrs, count)?, out(handle)?) };
        *handle = create_object::create_object(session, &t)?;
        Ok(())
    })
}

unsafe extern "C" fn C_DestroyObject(session: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE) -> CK_RV {
    guard("C_DestroyObject", || object::destroy(session, h))
}

unsafe extern "C" fn C_GetObjectSize(
    session: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetObjectSize", || {
        // SAFETY: NULL or a writable CK_ULONG.
        let size = unsafe { out(size) }?;
        *size = object::size(session, h)?;
        Ok(())
    })
}

unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard("C_GetAttributeValue", || {
        if attrs.is_null() && count != 0 {
            return Err(bad());
        }
        let attrs = if count == 0 {
            &mut [][..]
        } else {
            // SAFETY: `count` writable attributes at `attrs` (checked non-NULL above).
            unsafe { std::slice::from_raw_parts_mut(attrs, count as usize) }
        };
        let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
        let answers = object::get_attributes(session, h, &types)?;
        let mut rv = CKR_OK;
        for (a, answer) in attrs.iter_mut().zip(answers) {
            let failed = match answer {
                Answer::Value(v) if a.pValue.is_null() => {
                    a.ulValueLen = v.len() as CK_ULONG;
                    None
                }
                Answer::Value(v) if (a.ulValueLen as usize) >= v.len() => {
                    // SAFETY: pValue has ulValueLen >= v.len() writable bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len())
                    };
                    a.ulValueLen = v.len() as CK_ULONG;
                    None
                }
                Answer::Value(_) => Some(CKR_BUFFER_TOO_SMALL),
                Answer::Sensitive => Some(CKR_ATTRIBUTE_SENSITIVE),
                Answer::Invalid => Some(CKR_ATTRIBUTE_TYPE_INVALID),
            };
            if let Some(code) = failed {
                a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                if rv == CKR_OK {
                    rv = code;
                }
            }
        }
        if rv == CKR_OK {
            Ok(())
        } else {
            Err(Error::rv(rv))
        }
    })
}

unsafe extern "C" fn C_SetAttributeValue(
    session: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard("C_SetAttributeValue", || {
        // SAFETY: `count` attributes at `attrs`.
        let t = unsafe { template(attrs, count) }?;
        object::set_attributes(session, h, &t)
    })
}

unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard("C_FindObjectsInit", || {
        // SAFETY: `count` attributes at `attrs`.
        let t = unsafe { template(attrs, count) }?;
        object::find_init(session, &t)
    })
}

unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    handles: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard("C_FindObjects", || {
        // SAFETY: NULL or a writable CK_ULONG.
        let count = unsafe { out(count) }?;
        if handles.is_null() && max != 0 {
            return Err(bad());
        }
        let found = object::find(session, max as usize)?;
        // SAFETY: `handles` has room for `max` >= found.len() handles.
        unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), handles, found.len()) };
        *count = found.len() as CK_ULONG;
        Ok(())
    })
}

unsafe extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_FindObjectsFinal", || object::find_final(session))
}

// ---- encryption and decryption ---------------------------------------------------------

unsafe extern "C" fn C_EncryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_EncryptInit", || {
        // SAFETY: NULL or a readable CK_MECHANISM.
        let mech = unsafe { mechanism(mech) }?;
        encrypt_decrypt::encrypt_init(session, &mech, key)
    })
}

unsafe extern "C" fn C_Encrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard("C_Encrypt", || {
        // SAFETY: input of `len` bytes; output buffer of *out_len bytes or NULL.
        unsafe {
            let data = bytes(data, len)?;
            write_output(out_buf, out_len, |cap| {
                encrypt_decrypt::encrypt(session, data, cap)
            })
        }
    })
}

unsafe extern "C" fn C_DecryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_DecryptInit", || {
        // SAFETY: NULL or a readable CK_MECHANISM.
        let mech = unsafe { mechanism(mech) }?;
        encrypt_decrypt::decrypt_init(session, &mech, key)
    })
}

unsafe extern "C" fn C_Decrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard("C_Decrypt", || {
        // SAFETY: input of `len` bytes; output buffer of *out_len bytes or NULL.
        unsafe {
            let data = bytes(data, len)?;
            write_output(out_buf, out_len, |cap| {
                encrypt_decrypt::decrypt(session, data, cap)
            })
        }
    })
}

// ---- digests ---------------------------------------------------------------------------

unsafe extern "C" fn C_DigestInit(session: CK_SESSION_HANDLE, mech: *mut CK_MECHANISM) -> CK_RV {
    guard("C_DigestInit", || {
        // SAFETY: NULL or a readable CK_MECHANISM.
        let mech = unsafe { mechanism(mech) }?;
        digest::init(session, &mech)
    })
}

unsafe extern "C" fn C_Digest(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard("C_Digest", || {
        // SAFETY: input of `len` bytes; output buffer of *out_len bytes or NULL.
        unsafe {
            let data = bytes(data, len)?;
            write_output(out_buf, out_len, |cap| digest::digest(session, data, cap))
        }
    })
}

unsafe extern "C" fn C_DigestUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_DigestUpdate", || {
        // SAFETY: input of `len` bytes.
        let part = unsafe { bytes(part, len) }?;
        digest::update(session, part)
    })
}

unsafe extern "C" fn C_DigestFinal(
    session: CK_SESSION_HANDLE,
    out_buf: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard("C_DigestFinal", || {
        // SAFETY: output buffer of *out_len bytes or NULL.
        unsafe { write_output(out_buf, out_len, |cap| digest::digest_final(session, cap)) }
    })
}

// ---- signatures ------------------------------------------------------------------------

unsafe extern "C" fn C_SignInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_SignInit", || {
        // SAFETY: NULL or a readable CK_MECHANISM.
        let mech = unsafe { mechanism(mech) }?;
        sign_verify::sign_init(session, &mech, key)
    })
}

unsafe extern "C" fn C_Sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    guard("C_Sign", || {
        // SAFETY: input of `len` bytes; output buffer of *sig_len bytes or NULL.
        unsafe {
            let data = bytes(data, len)?;
            write_output(sig, sig_len, |cap| sign_verify::sign(session, data, cap))
        }
    })
}

unsafe extern "C" fn C_SignUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_SignUpdate", || {
        // SAFETY: input of `len` bytes.
        let part = unsafe { bytes(part, len) }?;
        sign_verify::sign_update(session, part)
    })
}

unsafe extern "C" fn C_SignFinal(
    session: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    guard("C_SignFinal", || {
        // SAFETY: output buffer of *sig_len bytes or NULL.
        unsafe { write_output(sig, sig_len, |cap| sign_verify::sign_final(session, cap)) }
    })
}

unsafe extern "C" fn C_VerifyInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_VerifyInit", || {
        // SAFETY: NULL or a readable CK_MECHANISM.
        let mech = unsafe { mechanism(mech) }?;
        sign_verify::verify_init(session, &mech, key)
    })
}

unsafe extern "C" fn C_Verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard("C_Verify", || {
        // SAFETY: input of `len` bytes, signature of `sig_len` bytes.
        let (data, sig) = unsafe { (bytes(data, len)?, bytes(sig, sig_len)?) };
        sign_verify::verify(session, data, sig)
    })
}

unsafe extern "C" fn C_VerifyUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_VerifyUpdate", || {
        // SAFETY: input of `len` bytes.
        let part = unsafe { bytes(part, len) }?;
        sign_verify::verify_update(session, part)
    })
}

unsafe extern "C" fn C_VerifyFinal(
    session: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_VerifyFinal", || {
        // SAFETY: signature of `len` bytes.
        let sig = unsafe { bytes(sig, len) }?;
        sign_verify::verify_final(session, sig)
    })
}

// ---- keys and random numbers -----------------------------------------------------------

unsafe extern "C" fn C_GenerateKeyPair(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    pub_attrs: *mut CK_ATTRIBUTE,
    pub_count: CK_ULONG,
    priv_attrs: *mut CK_ATTRIBUTE,
    priv_count: CK_ULONG,
    pub_key: *mut CK_OBJECT_HANDLE,
    priv_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_GenerateKeyPair", || {
        // SAFETY: a readable mechanism, the templates with their counts, writable handles.
        let (mech, pub_t, priv_t, pub_key, priv_key) = unsafe {
            (
                mechanism(mech)?,
                template(pub_attrs, pub_count)?,
                template(priv_attrs, priv_count)?,
                out(pub_key)?,
                out(priv_key)?,
            )
        };
        (*pub_key, *priv_key) = key_management::generate_key_pair(session, &mech, &pub_t, &priv_t)?;
        Ok(())
    })
}

unsafe extern "C" fn C_DeriveKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_DeriveKey", || {
        // SAFETY: a readable mechanism, the template with its count, a writable handle.
        let (mech, t, key) = unsafe { (mechanism(mech)?, template(attrs, count)?, out(key)?) };
        *key = key_management::derive_key(session, &mech, base, &t)?;
        Ok(())
    })
}

unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_SeedRandom", || {
        // SAFETY: `len` bytes of seed.
        let seed = unsafe { bytes(seed, len) }?;
        random::seed(session, seed)
    })
}

unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    buf: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_GenerateRandom", || {
        if buf.is_null() && len != 0 {
            return Err(bad());
        }
        if len == 0 {
            return random::generate(session, &mut []);
        }
        // Filled in place: a huge `len` must not become an allocation that aborts.
        // SAFETY: `buf` has `len` writable bytes (checked non-NULL when len > 0).
        let out = unsafe { std::slice::from_raw_parts_mut(buf, len as usize) };
        random::generate(session, out)
    })
}

unsafe extern "C" fn C_LoginUser(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
    _username: *mut CK_UTF8CHAR,
    _username_len: CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded unchanged; this token has no user names.
    unsafe { C_Login(session, user, pin, len) }
}

unsafe extern "C" fn C_SessionCancel(session: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    guard("C_SessionCancel", || operation::cancel(session, flags))
}

// ---- not supported ---------------------------------------------------------------------

/// Functions this token does not offer: each answers CKR_FUNCTION_NOT_SUPPORTED.
macro_rules! not_supported {
    ($($name:ident($($arg:ty),*);)*) => {
        $(unsafe extern "C" fn $name($(_: $arg),*) -> CK_RV {
            CKR_FUNCTION_NOT_SUPPORTED
        })*
    };
}

not_supported! {
    C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE);
    C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_EncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_GenerateKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_WrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_UnwrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_WaitForSlotEvent(CK_FLAGS, *mut CK_SLOT_ID, *mut c_void);
    C_MessageEncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_EncryptMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_EncryptMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG, CK_FLAGS);
    C_MessageEncryptFinal(CK_SESSION_HANDLE);
    C_MessageDecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_DecryptMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_DecryptMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG, CK_FLAGS);
    C_MessageDecryptFinal(CK_SESSION_HANDLE);
    C_MessageSignInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG);
    C_SignMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_MessageSignFinal(CK_SESSION_HANDLE);
    C_MessageVerifyInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_VerifyMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG);
    C_VerifyMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_MessageVerifyFinal(CK_SESSION_HANDLE);
}

/// Legacy parallel-session functions (PKCS#11 2.x): CKR_FUNCTION_NOT_PARALLEL.
unsafe extern "C" fn C_CancelFunction(_: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_PARALLEL
}

unsafe extern "C" fn C_GetFunctionStatus(_: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_PARALLEL
}

// ---- function lists and interfaces ----------------------------------------------------

static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};

static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
    version: CK_VERSION { major: 3, minor: 0 },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
    C_GetInterfaceList: Some(C_GetInterfaceList),
    C_GetInterface: Some(C_GetInterface),
    C_LoginUser: Some(C_LoginUser),
    C_SessionCancel: Some(C_SessionCancel),
    C_MessageEncryptInit: Some(C_MessageEncryptInit),
    C_EncryptMessage: Some(C_EncryptMessage),
    C_EncryptMessageBegin: Some(C_EncryptMessageBegin),
    C_EncryptMessageNext: Some(C_EncryptMessageNext),
    C_MessageEncryptFinal: Some(C_MessageEncryptFinal),
    C_MessageDecryptInit: Some(C_MessageDecryptInit),
    C_DecryptMessage: Some(C_DecryptMessage),
    C_DecryptMessageBegin: Some(C_DecryptMessageBegin),
    C_DecryptMessageNext: Some(C_DecryptMessageNext),
    C_MessageDecryptFinal: Some(C_MessageDecryptFinal),
    C_MessageSignInit: Some(C_MessageSignInit),
    C_SignMessage: Some(C_SignMessage),
    C_SignMessageBegin: Some(C_SignMessageBegin),
    C_SignMessageNext: Some(C_SignMessageNext),
    C_MessageSignFinal: Some(C_MessageSignFinal),
    C_MessageVerifyInit: Some(C_MessageVerifyInit),
    C_VerifyMessage: Some(C_VerifyMessage),
    C_VerifyMessageBegin: Some(C_VerifyMessageBegin),
    C_VerifyMessageNext: Some(C_VerifyMessageNext),
    C_MessageVerifyFinal: Some(C_MessageVerifyFinal),
};

const INTERFACE_NAME: &[u8] = b"PKCS 11\0";

struct Interfaces([CK_INTERFACE; 2]);

// SAFETY: the interfaces point to immutable statics only; nothing writes through them.
unsafe impl Sync for Interfaces {}

/// The "PKCS 11" interface in version 3.0 (the default, first) and 2.40.
static INTERFACES: Interfaces = Interfaces([
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut c_void,
        flags: 0,
    },
]);
