//! KEYMGMT for EC, RSA and RSA-PSS: generation in the TPM, loading decoded or stored keys,
//! parameters from cached public data, public import, and export of public parts only
//! (an export that asks for the private key is refused: reference.md §4).

use std::ffi::{c_char, c_int, c_void};

use tpmkey::config::parse_handle;
use tpmkey::key_policy::{self, PolicyRequest};
use tpmkey::policy::{PcrSelection, PolicyRefDialect, SignerKey};
use tpmkey::public_key::{ec_point, Curve, PublicKey};
use tpmkey::{Error, KeySpec, Result, TpmKey};
use zeroize::Zeroizing;

use crate::error::{guard, guard_bool, guard_int};
use crate::ffi::*;
use crate::key::{self, curve_from_name, group_name, Key, KeyType, Material, EC_TYPES};
use crate::params::{describe, ParamList, ParamTable, Params, END};
use crate::{algorithm, dispatch_table, ephemeral_ec, keyexch, opctx, PROPERTIES};

const EC: u8 = 0;
const RSA: u8 = 1;
const RSA_PSS: u8 = 2;

const fn key_type(t: u8) -> KeyType {
    match t {
        EC => KeyType::Ec,
        RSA => KeyType::Rsa,
        _ => KeyType::RsaPss,
    }
}

unsafe extern "C" fn new<const T: u8>(_provctx: *mut c_void) -> *mut c_void {
    guard("keymgmt new", std::ptr::null_mut(), || {
        Ok(key::into_keydata(Key::new(key_type(T), Material::Empty)))
    })
}

unsafe extern "C" fn dup(keydata: *const c_void, selection: c_int) -> *mut c_void {
    guard("keymgmt dup", std::ptr::null_mut(), || {
        // SAFETY: keydata is one of ours, alive during the call.
        let k = unsafe { key::keydata(keydata) }?;
        Ok(key::into_keydata(k.selected(selection)))
    })
}

fn has(k: &Key, selection: c_int) -> bool {
    let wants_private = selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY != 0;
    match &k.material {
        Material::Empty => selection & !OSSL_KEYMGMT_SELECT_OTHER_PARAMETERS == 0,
        Material::Tpm(_) => true,
        Material::Public(_) => !wants_private,
        Material::Domain(_) => {
            selection
                & !(OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS | OSSL_KEYMGMT_SELECT_OTHER_PARAMETERS)
                == 0
        }
    }
}

unsafe extern "C" fn has_fn(keydata: *const c_void, selection: c_int) -> c_int {
    if keydata.is_null() {
        // EVP_PKEY_copy_parameters asks about a key that has no data yet: it has nothing.
        return 0;
    }
    guard_bool("keymgmt has", || {
        // SAFETY: keydata is one of ours (or NULL, refused).
        Ok(has(unsafe { key::keydata(keydata) }?, selection))
    })
}

fn matches(a: &Key, b: &Key, selection: c_int) -> bool {
    let (Ok(pa), Ok(pb)) = (a.public(), b.public()) else {
        return false;
    };
    if selection & OSSL_KEYMGMT_SELECT_KEYPAIR != 0 {
        return pa == pb;
    }
    if selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS != 0 {
        return match (pa, pb) {
            (PublicKey::Ec { curve: c1, .. }, PublicKey::Ec { curve: c2, .. }) => c1 == c2,
            (PublicKey::Rsa { .. }, PublicKey::Rsa { .. }) => true,
            _ => false,
        };
    }
    true
}

unsafe extern "C" fn match_fn(k1: *const c_void, k2: *const c_void, selection: c_int) -> c_int {
    guard_bool("keymgmt match", || {
        // SAFETY: both are keydata of this keymgmt.
        let (a, b) = unsafe { (key::keydata(k1)?, key::keydata(k2)?) };
        Ok(matches(a, b, selection))
    })
}

/// True when the parameters carry a private key (EC "priv", RSA "d" or CRT factors).
fn has_private_parts(params: &Params) -> bool {
    params.iter().any(|p| {
        matches!(
            p.key().to_bytes(),
            b"priv" | b"d" | b"rsa-factor1" | b"rsa-exponent1"
        )
    })
}

/// An EC public key from its uncompressed point encoding.
fn ec_public(curve: Curve, point: &[u8]) -> Result<PublicKey> {
    let n = curve.coordinate_len();
    if point.len() != 1 + 2 * n || point[0] != 0x04 {
        return Err(Error::Unsupported(
            "EC public points that are not uncompressed".into(),
        ));
    }
    Ok(PublicKey::Ec {
        curve,
        x: point[1..1 + n].to_vec(),
        y: point[1 + n..].to_vec(),
    })
}

/// KEYMGMT set_params: `encoded-pub-key` gives a curve-only (or public) EC key its point,
/// as `EVP_PKEY_set1_encoded_public_key` does for CMS's peer key. A TPM key's public key
/// is the TPM's and is never replaced.
fn set_params(k: &mut Key, params: &Params) -> Result<()> {
    let Some(point) = params.get(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY) else {
        return Ok(());
    };
    let curve = match &k.material {
        Material::Domain(curve) | Material::Public(PublicKey::Ec { curve, .. }) => *curve,
        Material::Tpm(_) => {
            return Err(Error::BadInput(
                "the public key of a TPM key cannot be replaced".into(),
            ))
        }
        _ => {
            return Err(Error::BadInput(
                "an encoded public key for a key without a curve".into(),
            ))
        }
    };
    k.material = Material::Public(ec_public(curve, point.octets()?)?);
    Ok(())
}

unsafe extern "C" fn set_params_fn(keydata: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    guard_int("keymgmt set_params", || {
        // SAFETY: keydata is one of ours; params the core's terminated array.
        let (k, params) = unsafe { (key::keydata_mut(keydata)?, Params::from_ptr(params)) };
        set_params(k, &params)
    })
}

static EC_SETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, OSSL_PARAM_OCTET_STRING),
    END,
]);

unsafe extern "C" fn settable_params(_provctx: *mut c_void) -> *const OSSL_PARAM {
    EC_SETTABLE.as_ptr()
}

/// Public parts from OpenSSL parameters (EC: group + pub; RSA: n + e).
fn import(k: &mut Key, params: &Params) -> Result<()> {
    let public = match k.key_type {
        KeyType::Ec => {
            let group = params
                .get(OSSL_PKEY_PARAM_GROUP_NAME)
                .ok_or_else(|| Error::BadInput("EC import without a group".into()))?
                .utf8()?;
            let curve = curve_from_name(&group)?;
            let point = params
                .get(OSSL_PKEY_PARAM_PUB_KEY)
                .or_else(|| params.get(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY))
                .ok_or_else(|| Error::BadInput("EC import without a public point".into()))?;
            ec_public(curve, point.octets()?)?
        }
        KeyType::Rsa | KeyType::RsaPss => {
            let n = params
                .get(OSSL_PKEY_PARAM_RSA_N)
                .ok_or_else(|| Error::BadInput("RSA import without n".into()))?
                .big_unsigned()?;
            let e = params
                .get(OSSL_PKEY_PARAM_RSA_E)
                .ok_or_else(|| Error::BadInput("RSA import without e".into()))?
                .big_unsigned()?;
            let e = &e[e.iter().take_while(|b| **b == 0).count()..];
            if e.len() > 4 {
                return Err(Error::Unsupported(
                    "RSA exponents wider than 32 bits".into(),
                ));
            }
            let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            let modulus = n[n.iter().take_while(|b| **b == 0).count()..].to_vec();
            PublicKey::Rsa { modulus, exponent }
        }
    };
    k.material = Material::Public(public);
    Ok(())
}

unsafe extern "C" fn import_fn(
    keydata: *mut c_void,
    _selection: c_int,
    params: *const OSSL_PARAM,
) -> c_int {
    // SAFETY: params is the core's terminated array (or NULL).
    if has_private_parts(&unsafe { Params::from_ptr(params) }) && !keyexch::peer_expected() {
        // A software private key stays with its own provider: refused quietly, OpenSSL
        // then runs the operation there and nothing failed. (An ECDH peer is the
        // exception: its public half is all the exchange needs.)
        return 0;
    }
    guard_int("keymgmt import", || {
        // SAFETY: keydata is a fresh object of ours; params is the core's terminated array.
        let (k, params) = unsafe { (key::keydata_mut(keydata)?, Params::from_ptr(params)) };
        import(k, &params)
    })
}

/// The public (and domain) parameters of a key, as an export or import hands them.
pub(crate) fn public_params(k: &Key, selection: c_int) -> Result<ParamList> {
    let mut list = ParamList::new();
    match k.public()? {
        PublicKey::Ec { curve, x, y } => {
            if selection & (OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS | OSSL_KEYMGMT_SELECT_PUBLIC_KEY)
                != 0
            {
                list.utf8(OSSL_PKEY_PARAM_GROUP_NAME, group_name(*curve));
            }
            if selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY != 0 {
                list.octets(OSSL_PKEY_PARAM_PUB_KEY, &ec_point(x, y));
            }
        }
        PublicKey::Rsa { modulus, exponent } => {
            if selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY != 0 {
                list.big_unsigned(OSSL_PKEY_PARAM_RSA_N, modulus);
                list.big_unsigned(OSSL_PKEY_PARAM_RSA_E, &exponent.to_be_bytes());
            }
        }
    }
    Ok(list)
}

unsafe extern "C" fn export_fn(
    keydata: *mut c_void,
    selection: c_int,
    cb: Option<OSSL_CALLBACK>,
    cbarg: *mut c_void,
) -> c_int {
    // SAFETY: keydata is one of ours (NULL gives false).
    let tpm = unsafe { key::keydata(keydata) }.is_ok_and(Key::is_tpm);
    if selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY != 0 && tpm {
        // Refused quietly: OpenSSL then runs the operation in this provider, nothing failed.
        return 0;
    }
    guard_int("keymgmt export", || {
        // SAFETY: keydata is one of ours.
        let k = unsafe { key::keydata(keydata) }?;
        // SAFETY: the core's callback with its argument.
        unsafe { public_params(k, selection)?.hand_to(cb, cbarg, "the exported key") }
    })
}

static RSA_TYPES: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_RSA_N, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(OSSL_PKEY_PARAM_RSA_E, OSSL_PARAM_UNSIGNED_INTEGER),
    END,
]);

unsafe extern "C" fn types<const T: u8>(selection: c_int) -> *const OSSL_PARAM {
    if selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) == 0 {
        return std::ptr::null();
    }
    match key_type(T) {
        KeyType::Ec => EC_TYPES.as_ptr(),
        _ => RSA_TYPES.as_ptr(),
    }
}

fn get_params(k: &Key, params: &Params) -> Result<()> {
    if let Material::Domain(curve) = &k.material {
        for mut p in params.iter() {
            match p.key().to_bytes() {
                b"bits" => p.set_int(i64::from(k.bits()?))?,
                b"security-bits" => p.set_int(i64::from(k.security_bits()?))?,
                b"group" => p.set_utf8(group_name(*curve))?,
                _ => {}
            }
        }
        return Ok(());
    }
    let public = k.public()?;
    for mut p in params.iter() {
        let name = p.key().to_bytes().to_vec();
        match (name.as_slice(), public) {
            (b"bits", _) => p.set_int(i64::from(k.bits()?))?,
            (b"security-bits", _) => p.set_int(i64::from(k.security_bits()?))?,
            (b"max-size", _) => p.set_int(k.max_size()? as i64)?,
            (b"default-digest", _) => {
                p.set_utf8(k.fixed_scheme().map_or("SHA256", |s| s.hash.name()))?
            }
            (b"mandatory-digest", _) => {
                if let Some(s) = k.fixed_scheme() {
                    p.set_utf8(s.hash.name())?
                }
            }
            (b"group", PublicKey::Ec { curve, .. }) => p.set_utf8(group_name(*curve))?,
            (b"encoded-pub-key" | b"pub", PublicKey::Ec { x, y, .. }) => {
                p.set_octets(&ec_point(x, y))?
            }
            (b"qx", PublicKey::Ec { x, .. }) => p.set_big_unsigned(x)?,
            (b"qy", PublicKey::Ec { y, .. }) => p.set_big_unsigned(y)?,
            (b"point-format", PublicKey::Ec { .. }) => p.set_utf8("uncompressed")?,
            (b"encoding", PublicKey::Ec { .. }) => p.set_utf8("named_curve")?,
            (b"n", PublicKey::Rsa { modulus, .. }) => p.set_big_unsigned(modulus)?,
            (b"e", PublicKey::Rsa { exponent, .. }) => {
                p.set_big_unsigned(&exponent.to_be_bytes())?
            }
            _ => {}
        }
    }
    Ok(())
}

unsafe extern "C" fn get_params_fn(keydata: *mut c_void, params: *mut OSSL_PARAM) -> c_int {
    guard_int("keymgmt get_params", || {
        // SAFETY: keydata is one of ours; params the core's terminated array.
        let (k, params) = unsafe { (key::keydata(keydata)?, Params::from_ptr(params)) };
        get_params(k, &params)
    })
}

static EC_GETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_BITS, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_SECURITY_BITS, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_MAX_SIZE, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_DEFAULT_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, OSSL_PARAM_OCTET_STRING),
    describe(OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING),
    describe(OSSL_PKEY_PARAM_EC_PUB_X, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(OSSL_PKEY_PARAM_EC_PUB_Y, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(
        OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
        OSSL_PARAM_UTF8_STRING,
    ),
    describe(OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PARAM_UTF8_STRING),
    END,
]);
static RSA_GETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_BITS, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_SECURITY_BITS, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_MAX_SIZE, OSSL_PARAM_INTEGER),
    describe(OSSL_PKEY_PARAM_DEFAULT_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_PKEY_PARAM_MANDATORY_DIGEST, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_PKEY_PARAM_RSA_N, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(OSSL_PKEY_PARAM_RSA_E, OSSL_PARAM_UNSIGNED_INTEGER),
    END,
]);

unsafe extern "C" fn gettable_params<const T: u8>(_provctx: *mut c_void) -> *const OSSL_PARAM {
    match key_type(T) {
        KeyType::Ec => EC_GETTABLE.as_ptr(),
        _ => RSA_GETTABLE.as_ptr(),
    }
}

/// EVP_PKEY_check and `openssl pkey -check`: the public half is checked in software (the
/// point lies on its curve; the RSA modulus and exponent are plausible). A TPM key's
/// private half is the TPM's: it is checked when the TPM loads it, at first use.
fn validate(k: &Key, selection: c_int) -> Result<bool> {
    if !has(k, selection) {
        return Ok(false);
    }
    if selection & OSSL_KEYMGMT_SELECT_KEYPAIR == 0 {
        return Ok(true);
    }
    match k.public()? {
        PublicKey::Ec { curve, x, y } => {
            ephemeral_ec::check_point(*curve, &ec_point(x, y))?;
        }
        PublicKey::Rsa { modulus, exponent } => {
            let odd = |last: Option<&u8>| last.is_some_and(|b| b & 1 == 1);
            if !odd(modulus.last()) || k.bits()? < 1024 {
                return Err(Error::BadInput(format!(
                    "the RSA modulus ({} bits) is not a plausible RSA modulus",
                    k.bits()?
                )));
            }
            if *exponent < 3 || exponent & 1 == 0 {
                return Err(Error::BadInput(format!(
                    "the RSA public exponent {exponent} is not valid"
                )));
            }
        }
    }
    Ok(true)
}

unsafe extern "C" fn validate_fn(keydata: *const c_void, selection: c_int, _check: c_int) -> c_int {
    guard_bool("keymgmt validate", || {
        // SAFETY: keydata is one of ours (or NULL, refused).
        validate(unsafe { key::keydata(keydata) }?, selection)
    })
}

unsafe extern "C" fn query_operation_name<const T: u8>(op: c_int) -> *const c_char {
    match (key_type(T), op) {
        (KeyType::Ec, OSSL_OP_SIGNATURE) => c"ECDSA".as_ptr(),
        (KeyType::Ec, OSSL_OP_KEYEXCH) => c"ECDH".as_ptr(),
        (KeyType::Rsa | KeyType::RsaPss, OSSL_OP_SIGNATURE | OSSL_OP_ASYM_CIPHER) => {
            c"RSA".as_ptr()
        }
        _ => std::ptr::null(),
    }
}

/// What `genpkey` asked for.
#[derive(Debug)]
struct GenCtx {
    key_type: KeyType,
    curve: Curve,
    bits: u32,
    password: Option<Zeroizing<Vec<u8>>>,
    parent: Option<u32>,
    parent_auth: Option<Zeroizing<Vec<u8>>>,
    persist: Option<u32>,
    policy: PolicyRequest,
}

fn handle_param(name: &str, v: &str) -> Result<u32> {
    parse_handle(v).ok_or_else(|| Error::BadInput(format!("{name}: \"{v}\" is not a TPM handle")))
}

fn gen_set_params(g: &mut GenCtx, params: &Params) -> Result<()> {
    for p in params.iter() {
        match p.key().to_bytes() {
            b"group" => g.curve = curve_from_name(&p.utf8()?)?,
            b"bits" => {
                g.bits = u32::try_from(p.int()?)
                    .map_err(|_| Error::BadInput("bits out of range".into()))?
            }
            b"primes" if p.int()? != 2 => {
                return Err(Error::Unsupported("multi-prime RSA keys".into()))
            }
            b"e" => {
                let e = p.big_unsigned()?;
                let e = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                if e != 65537 {
                    return Err(Error::Unsupported(format!(
                        "RSA exponent {e} (TPM keys use 65537)"
                    )));
                }
            }
            b"user-auth" => g.password = Some(Zeroizing::new(p.utf8()?.into_bytes())),
            b"parent" => g.parent = Some(handle_param("parent", &p.utf8()?)?),
            b"parent-auth" => g.parent_auth = Some(Zeroizing::new(p.utf8()?.into_bytes())),
            b"persist" => g.persist = Some(handle_param("persist", &p.utf8()?)?),
            b"pcr" => g.policy.pcrs = Some(PcrSelection::parse(&p.utf8()?)?),
            b"pcr-values" => {
                let path = p.utf8()?;
                let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                g.policy.pcr_values = Some(key_policy::parse_pcr_values(&text, &path)?);
            }
            b"policy-signer" => {
                let path = p.utf8()?;
                let pem = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                g.policy.signer = Some(SignerKey::from_pem(&pem)?);
            }
            b"policy-ref" => {
                g.policy.policy_ref = Some(match p.utf8()?.as_str() {
                    "nonce" => PolicyRefDialect::EngineNonce,
                    "empty" => PolicyRefDialect::Empty,
                    other => {
                        return Err(Error::BadInput(format!(
                            "policy-ref:{other} (use nonce or empty)"
                        )))
                    }
                })
            }
            _ => {}
        }
    }
    Ok(())
}

unsafe extern "C" fn gen_init<const T: u8>(
    _provctx: *mut c_void,
    _selection: c_int,
    params: *const OSSL_PARAM,
) -> *mut c_void {
    guard("keymgmt gen_init", std::ptr::null_mut(), || {
        let mut g = GenCtx {
            key_type: key_type(T),
            curve: Curve::P256,
            bits: 2048,
            password: None,
            parent: None,
            parent_auth: None,
            persist: None,
            policy: PolicyRequest::default(),
        };
        // SAFETY: params is the core's terminated array or NULL.
        gen_set_params(&mut g, &unsafe { Params::from_ptr(params) })?;
        Ok(opctx::into_raw(g))
    })
}

unsafe fn gen_ctx<'a>(p: *mut c_void) -> Result<&'a mut GenCtx> {
    // SAFETY: p is a context gen_init created (the core passes it back).
    unsafe { opctx::borrow(p) }
}

unsafe extern "C" fn gen_set_params_fn(genctx: *mut c_void, params: *const OSSL_PARAM) -> c_int {
    guard_int("keymgmt gen_set_params", || {
        // SAFETY: genctx from gen_init; params the core's terminated array.
        let (g, params) = unsafe { (gen_ctx(genctx)?, Params::from_ptr(params)) };
        gen_set_params(g, &params)
    })
}

static GEN_SETTABLE: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_PKEY_PARAM_BITS, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(OSSL_PKEY_PARAM_RSA_PRIMES, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(OSSL_PKEY_PARAM_RSA_E, OSSL_PARAM_UNSIGNED_INTEGER),
    describe(tpm_names::USER_AUTH, OSSL_PARAM_UTF8_STRING),
    describe(tpm_names::PARENT, OSSL_PARAM_UTF8_STRING),
    describe(tpm_names::PARENT_AUTH, OSSL_PARAM_UTF8_STRING),
    describe(tpm_names::PERSIST, OSSL_PARAM_UTF8_STRING),
    describe(tpm_names::PCR, OSSL_PARAM_UTF8_STRING),
    describe(tpm_names::PCR_VALUES, OSSL_PARAM_UTF8_STRING),
    describe(tpm_names::POLICY_SIGNER, OSSL_PARAM_UTF8_STRING),
    describe(tpm_names::POLICY_REF, OSSL_PARAM_UTF8_STRING),
    END,
]);

unsafe extern "C" fn gen_settable_params(
    _genctx: *mut c_void,
    _provctx: *mut c_void,
) -> *const OSSL_PARAM {
    GEN_SETTABLE.as_ptr()
}

fn generate(g: &GenCtx) -> Result<Key> {
    let spec = match g.key_type {
        KeyType::Ec => match g.curve {
            Curve::P256 => KeySpec::EcP256,
            Curve::P384 => KeySpec::EcP384,
        },
        _ => match g.bits {
            2048 | 3072 => KeySpec::Rsa(g.bits as u16),
            other => {
                return Err(Error::Unsupported(format!(
                    "RSA keys of {other} bits (the TPM makes 2048 or 3072)"
                )))
            }
        },
    };
    let password = g.password.as_deref().map(|p| &p[..]);
    let parent_auth = g.parent_auth.as_deref().map(|a| &a[..]);
    let key = if g.policy.is_empty() {
        TpmKey::generate_under(spec, password, g.parent, parent_auth)?
    } else {
        let statements = g.policy.statements()?;
        TpmKey::generate_with_policy(spec, password, g.parent, parent_auth, statements)?
    };
    if let Some(handle) = g.persist {
        // The blob stays the key written out; the persistent copy answers at handle:.
        key.persist(handle)?;
    }
    Ok(Key::new(g.key_type, Material::Tpm(key)))
}

unsafe extern "C" fn gen_fn(
    genctx: *mut c_void,
    _cb: Option<OSSL_CALLBACK>,
    _cbarg: *mut c_void,
) -> *mut c_void {
    guard("keymgmt gen", std::ptr::null_mut(), || {
        // SAFETY: genctx from gen_init.
        let g = unsafe { gen_ctx(genctx) }?;
        Ok(key::into_keydata(generate(g)?))
    })
}

/// The object reference decoders and the store hand out: the address of a key object they
/// keep alive during the callback. LOAD copies it.
pub(crate) fn reference_bytes(k: &Key) -> [u8; std::mem::size_of::<usize>()] {
    (k as *const Key as usize).to_ne_bytes()
}

unsafe extern "C" fn load<const T: u8>(reference: *const c_void, size: usize) -> *mut c_void {
    guard("keymgmt load", std::ptr::null_mut(), || {
        if reference.is_null() || size != std::mem::size_of::<usize>() {
            return Err(Error::BadInput("not a tpmkey object reference".into()));
        }
        // SAFETY: reference points at `size` bytes holding the address written by
        // reference_bytes; the decoder or store keeps that key alive during the callback.
        let k = unsafe {
            let addr = std::ptr::read_unaligned(reference.cast::<usize>());
            key::keydata(addr as *const c_void)?
        };
        if !key_type(T).fits(k.public()?) {
            return Err(Error::BadInput(format!(
                "the key is not a {} key",
                key_type(T).name()
            )));
        }
        // A key file that is corrupt or from another TPM fails here, when the application
        // opens it (`openssl pkey`, `nginx -t`, server start-up), not at its first use. The
        // Load is the one its first operation would make. OpenSSL's file store discards
        // the errors of this path, so the cause also goes to stderr.
        if let Material::Tpm(tpm_key) = &k.material {
            if let Err(e) = tpm_key.load() {
                crate::error::log(&format!("the key cannot be used with this TPM: {e}"));
                return Err(e);
            }
        }
        let mut copy = k.clone();
        copy.key_type = key_type(T);
        Ok(key::into_keydata(copy))
    })
}

macro_rules! keymgmt_table {
    ($t:expr) => {
        dispatch_table![
            OSSL_FUNC_KEYMGMT_NEW => new::<{ $t }>,
            OSSL_FUNC_KEYMGMT_FREE => opctx::freectx::<Key>,
            OSSL_FUNC_KEYMGMT_DUP => dup,
            OSSL_FUNC_KEYMGMT_GEN_INIT => gen_init::<{ $t }>,
            OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS => gen_set_params_fn,
            OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS => gen_settable_params,
            OSSL_FUNC_KEYMGMT_GEN => gen_fn,
            OSSL_FUNC_KEYMGMT_GEN_CLEANUP => opctx::freectx::<GenCtx>,
            OSSL_FUNC_KEYMGMT_LOAD => load::<{ $t }>,
            OSSL_FUNC_KEYMGMT_GET_PARAMS => get_params_fn,
            OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS => gettable_params::<{ $t }>,
            OSSL_FUNC_KEYMGMT_SET_PARAMS => set_params_fn,
            OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS => settable_params,
            OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME => query_operation_name::<{ $t }>,
            OSSL_FUNC_KEYMGMT_HAS => has_fn,
            OSSL_FUNC_KEYMGMT_MATCH => match_fn,
            OSSL_FUNC_KEYMGMT_VALIDATE => validate_fn,
            OSSL_FUNC_KEYMGMT_IMPORT => import_fn,
            OSSL_FUNC_KEYMGMT_IMPORT_TYPES => types::<{ $t }>,
            OSSL_FUNC_KEYMGMT_EXPORT => export_fn,
            OSSL_FUNC_KEYMGMT_EXPORT_TYPES => types::<{ $t }>,
        ]
    };
}

static EC_FUNCTIONS: &[OSSL_DISPATCH] = keymgmt_table!(EC);
static RSA_FUNCTIONS: &[OSSL_DISPATCH] = keymgmt_table!(RSA);
static RSA_PSS_FUNCTIONS: &[OSSL_DISPATCH] = keymgmt_table!(RSA_PSS);

pub(crate) static ALGORITHMS: [OSSL_ALGORITHM; 5] = [
    algorithm!(
        c"EC:id-ecPublicKey:1.2.840.10045.2.1",
        PROPERTIES,
        EC_FUNCTIONS
    ),
    algorithm!(
        c"RSA:rsaEncryption:1.2.840.113549.1.1.1",
        PROPERTIES,
        RSA_FUNCTIONS
    ),
    algorithm!(
        c"RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10",
        PROPERTIES,
        RSA_PSS_FUNCTIONS
    ),
    algorithm!(
        ephemeral_ec::NAME,
        PROPERTIES,
        ephemeral_ec::keymgmt::FUNCTIONS
    ),
    OSSL_ALGORITHM::END,
];
