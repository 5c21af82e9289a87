//! KEYMGMT TPMKEY-EPHEMERAL-EC: what libssl does with a TLS group's key (generation with a
//! group or a peer's key as template, the encoded public point both ways, public import and
//! export, matching, validation), in software.

use std::ffi::{c_char, c_int, c_void};

use tpmkey::{Error, Result};

use super::{EphemeralKey, NAME};
use crate::der::ecdsa_signature_max;
use crate::error::{guard, guard_bool, guard_int};
use crate::ffi::*;
use crate::key::{curve_from_name, group_name, EC_TYPES};
use crate::params::{describe, ParamList, ParamTable, Params, END};
use crate::{dispatch_table, opctx};

/// # Safety
/// `p` is NULL or keydata of this key management, with no other reference alive.
unsafe fn key<'a>(p: *mut c_void) -> Result<&'a mut EphemeralKey> {
    // SAFETY: caller's contract.
    unsafe { opctx::borrow(p) }
}

unsafe extern "C" fn new(_provctx: *mut c_void) -> *mut c_void {
    opctx::into_raw(EphemeralKey::default())
}

/// The parts of `k` a selection names.
fn selected(k: &EphemeralKey, selection: c_int) -> EphemeralKey {
    if selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY != 0 {
        k.clone()
    } else if selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY != 0 {
        k.public_only()
    } else {
        k.parameters_only()
    }
}

unsafe extern "C" fn dup(keydata: *const c_void, selection: c_int) -> *mut c_void {
    guard("ephemeral keymgmt dup", std::ptr::null_mut(), || {
        // SAFETY: keydata is one of ours, alive during the call.
        let k = unsafe { key(keydata as *mut c_void) }?;
        Ok(opctx::into_raw(selected(k, selection)))
    })
}

fn has(k: &EphemeralKey, selection: c_int) -> bool {
    (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY == 0 || k.has_private())
        && (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY == 0 || k.has_public())
        && (selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS == 0 || k.curve().is_ok())
}

unsafe extern "C" fn has_fn(keydata: *const c_void, selection: c_int) -> c_int {
    guard_bool("ephemeral keymgmt has", || {
        // SAFETY: keydata is one of ours (or NULL, refused).
        Ok(has(unsafe { key(keydata as *mut c_void) }?, selection))
    })
}

fn matches(a: &EphemeralKey, b: &EphemeralKey, selection: c_int) -> bool {
    if a.curve().ok() != b.curve().ok() {
        return false;
    }
    selection & OSSL_KEYMGMT_SELECT_KEYPAIR == 0 || a.public().ok() == b.public().ok()
}

unsafe extern "C" fn match_fn(k1: *const c_void, k2: *const c_void, selection: c_int) -> c_int {
    guard_bool("ephemeral keymgmt match", || {
        // SAFETY: both are keydata of this key management, only read.
        let (a, b) = unsafe { (key(k1 as *mut c_void)?, key(k2 as *mut c_void)?) };
        Ok(matches(a, b, selection))
    })
}

fn import(k: &mut EphemeralKey, selection: c_int, params: &Params) -> Result<()> {
    if params.get(c"priv").is_some() {
        return Err(Error::Unsupported(
            "importing a private key into an ephemeral TLS key".into(),
        ));
    }
    let group = params
        .get(OSSL_PKEY_PARAM_GROUP_NAME)
        .ok_or_else(|| Error::BadInput("EC import without a group".into()))?;
    k.set_curve(curve_from_name(&group.utf8()?)?);
    if selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY != 0 {
        let point = params
            .get(OSSL_PKEY_PARAM_PUB_KEY)
            .or_else(|| params.get(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY))
            .ok_or_else(|| Error::BadInput("EC import without a public point".into()))?;
        k.set_public(point.octets()?)?;
    }
    Ok(())
}

unsafe extern "C" fn import_fn(
    keydata: *mut c_void,
    selection: c_int,
    params: *const OSSL_PARAM,
) -> c_int {
    guard_int("ephemeral keymgmt import", || {
        // SAFETY: keydata is ours; params is the core's terminated array.
        let (k, params) = unsafe { (key(keydata)?, Params::from_ptr(params)) };
        import(k, selection, &params)
    })
}

unsafe extern "C" fn export_fn(
    keydata: *mut c_void,
    selection: c_int,
    cb: Option<OSSL_CALLBACK>,
    cbarg: *mut c_void,
) -> c_int {
    guard_int("ephemeral keymgmt export", || {
        if selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY != 0 {
            return Err(Error::Unsupported(
                "exporting the private part of an ephemeral TLS key".into(),
            ));
        }
        // SAFETY: keydata is ours.
        let k = unsafe { key(keydata) }?;
        let mut list = ParamList::new();
        list.utf8(OSSL_PKEY_PARAM_GROUP_NAME, group_name(k.curve()?));
        if selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY != 0 {
            list.octets(OSSL_PKEY_PARAM_PUB_KEY, k.public()?);
        }
        // SAFETY: the core's callback with its argument.
        unsafe { list.hand_to(cb, cbarg, "the exported key") }
    })
}

unsafe extern "C" fn types(_selection: c_int) -> *const OSSL_PARAM {
    EC_TYPES.as_ptr()
}

fn get_params(k: &EphemeralKey, params: &Params) -> Result<()> {
    let curve = k.curve()?;
    for mut p in params.iter() {
        match p.key().to_bytes() {
            b"bits" => p.set_int(i64::from(curve.bits()))?,
            b"security-bits" => p.set_int(i64::from(curve.bits() / 2))?,
            b"max-size" => p.set_int(ecdsa_signature_max(curve) as i64)?,
            b"group" => p.set_utf8(group_name(curve))?,
            b"encoded-pub-key" | b"pub" => p.set_octets(k.public()?)?,
            _ => {}
        }
    }
    Ok(())
}

unsafe extern "C" fn get_params_fn(keydata: *mut c_void, params: *mut OSSL_PARAM) -> c_int {
    guard_int("ephemeral keymgmt get_params", || {
        // SAFETY: keydata is ours; params the core's terminated array.
        let (k, params) = unsafe { (key(keydata)?, Params::from_ptr(params)) };
        get_params(k, &params)
    })
}

static GETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_BITS, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_SECURITY_BITS, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_MAX_SIZE, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, OSSL_PARAM_OCTET_STRING),
    describe(OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING),
    END,
]);

unsafe extern "C" fn gettable_params(_provctx: *mut c_void) -> *const OSSL_PARAM {
    GETTABLE.as_ptr()
}

/// libssl hands the peer's key share here (EVP_PKEY_set1_encoded_public_key).
fn set_params(k: &mut EphemeralKey, params: &Params) -> Result<()> {
    if let Some(p) = params.get(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY) {
        k.set_public(p.octets()?)?;
    }
    Ok(())
}

unsafe extern "C" fn set_params_fn(keydata: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    guard_int("ephemeral keymgmt set_params", || {
        // SAFETY: keydata is ours; params the core's terminated array.
        let (k, params) = unsafe { (key(keydata)?, Params::from_ptr(params)) };
        set_params(k, &params)
    })
}

static SETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, OSSL_PARAM_OCTET_STRING),
    END,
]);

unsafe extern "C" fn settable_params(_provctx: *mut c_void) -> *const OSSL_PARAM {
    SETTABLE.as_ptr()
}

/// The public point was checked when it was set; a private key is the one generated here.
fn validate(k: &EphemeralKey, selection: c_int) -> bool {
    has(k, selection)
}

unsafe extern "C" fn validate_fn(keydata: *const c_void, selection: c_int, _check: c_int) -> c_int {
    guard_bool("ephemeral keymgmt validate", || {
        // SAFETY: keydata is ours.
        Ok(validate(unsafe { key(keydata as *mut c_void) }?, selection))
    })
}

unsafe extern "C" fn query_operation_name(op: c_int) -> *const c_char {
    match op {
        OSSL_OP_KEYEXCH => NAME.as_ptr(),
        _ => std::ptr::null(),
    }
}

/// What a generation asked for: a group (set, or taken from a template key), and whether a
/// key pair or only domain parameters.
#[derive(Debug)]
struct GenCtx {
    curve: Option<tpmkey::public_key::Curve>,
    selection: c_int,
}

unsafe fn gen_ctx<'a>(p: *mut c_void) -> Result<&'a mut GenCtx> {
    // SAFETY: p is a context gen_init created (the core passes it back).
    unsafe { opctx::borrow(p) }
}

fn gen_set_params(g: &mut GenCtx, params: &Params) -> Result<()> {
    if let Some(p) = params.get(OSSL_PKEY_PARAM_GROUP_NAME) {
        g.curve = Some(curve_from_name(&p.utf8()?)?);
    }
    Ok(())
}

unsafe extern "C" fn gen_init(
    _provctx: *mut c_void,
    selection: c_int,
    params: *const OSSL_PARAM,
) -> *mut c_void {
    guard("ephemeral keymgmt gen_init", std::ptr::null_mut(), || {
        let mut g = GenCtx {
            curve: None,
            selection,
        };
        // SAFETY: params is the core's terminated array or NULL.
        gen_set_params(&mut g, &unsafe { Params::from_ptr(params) })?;
        Ok(opctx::into_raw(g))
    })
}

unsafe extern "C" fn gen_set_params_fn(genctx: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    guard_int("ephemeral keymgmt gen_set_params", || {
        // SAFETY: genctx from gen_init; params the core's terminated array.
        let (g, params) = unsafe { (gen_ctx(genctx)?, Params::from_ptr(params)) };
        gen_set_params(g, &params)
    })
}

/// A peer's key as template (libssl's client side of TLS 1.2, server side of TLS 1.3).
unsafe extern "C" fn gen_set_template(genctx: *mut c_void, template: *mut c_void) -> c_int {
    guard_int("ephemeral keymgmt gen_set_template", || {
        // SAFETY: genctx from gen_init; the template is keydata of this key management.
        let (g, t) = unsafe { (gen_ctx(genctx)?, key(template)?) };
        g.curve = Some(t.curve()?);
        Ok(())
    })
}

static GEN_SETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING),
    END,
]);

unsafe extern "C" fn gen_settable_params(
    _genctx: *mut c_void,
    _provctx: *mut c_void,
) -> *const OSSL_PARAM {
    GEN_SETTABLE.as_ptr()
}

fn generate(g: &GenCtx) -> Result<EphemeralKey> {
    let curve = g
        .curve
        .ok_or_else(|| Error::BadInput("ephemeral EC generation without a group".into()))?;
    Ok(if g.selection & OSSL_KEYMGMT_SELECT_KEYPAIR != 0 {
        EphemeralKey::generate(curve)
    } else {
        EphemeralKey::for_curve(curve)
    })
}

unsafe extern "C" fn gen_fn(
    genctx: *mut c_void,
    _cb: Option<OSSL_CALLBACK>,
    _cbarg: *mut c_void,
) -> *mut c_void {
    guard("ephemeral keymgmt gen", std::ptr::null_mut(), || {
        // SAFETY: genctx from gen_init.
        let g = unsafe { gen_ctx(genctx) }?;
        Ok(opctx::into_raw(generate(g)?))
    })
}

pub(crate) static FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_KEYMGMT_NEW => new,
    OSSL_FUNC_KEYMGMT_FREE => opctx::freectx::<EphemeralKey>,
    OSSL_FUNC_KEYMGMT_DUP => dup,
    OSSL_FUNC_KEYMGMT_GEN_INIT => gen_init,
    OSSL_FUNC_KEYMGMT_GEN_SET_TEMPLATE => gen_set_template,
    OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS => gen_set_params_fn,
    OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS => gen_settable_params,
    OSSL_FUNC_KEYMGMT_GEN => gen_fn,
    OSSL_FUNC_KEYMGMT_GEN_CLEANUP => opctx::freectx::<GenCtx>,
    OSSL_FUNC_KEYMGMT_GET_PARAMS => get_params_fn,
    OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS => gettable_params,
    OSSL_FUNC_KEYMGMT_SET_PARAMS => set_params_fn,
    OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS => settable_params,
    OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME => query_operation_name,
    OSSL_FUNC_KEYMGMT_HAS => has_fn,
    OSSL_FUNC_KEYMGMT_MATCH => match_fn,
    OSSL_FUNC_KEYMGMT_VALIDATE => validate_fn,
    OSSL_FUNC_KEYMGMT_IMPORT => import_fn,
    OSSL_FUNC_KEYMGMT_IMPORT_TYPES => types,
    OSSL_FUNC_KEYMGMT_EXPORT => export_fn,
    OSSL_FUNC_KEYMGMT_EXPORT_TYPES => types,
];
