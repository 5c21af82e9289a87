//! Key management: C_GenerateKeyPair (EC P-256/P-384, RSA 2048/3072, created inside the
//! TPM under an authValue derived from the token secret; in a token with a platform policy
//! bound to it AND that authValue, through PolicyAuthValue) and C_DeriveKey (CKM_ECDH1_DERIVE
//! with CKD_NULL, giving a session secret key).

use cryptoki_sys::*;
use tpmkey::public_key::{Curve, KeyPublic, PublicKey};
use tpmkey::{KeySpec, TpmKey};
use zeroize::Zeroizing;

use crate::attributes::{
    boolean, class, get_bool, get_ulong, parse_ulong, to_map, ulong, SecretAttributes, Template,
    CKA_TPMKEY_KEY_AUTH, CKA_TPMKEY_KEY_FILE, CKA_TPMKEY_PERSISTENT_HANDLE,
};
use crate::error::{Error, Result};
use crate::mechanism::{Mechanism, Param};
use crate::object::{check_access, store};
use crate::public_key::{ec_point, exponent_bytes, parse_point};
use crate::state::{self, Module};
use tpmkey::store::Attributes;

const EC_MECHANISMS: &[CK_MECHANISM_TYPE] = &[
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
    CKM_ECDH1_DERIVE,
];
const RSA_MECHANISMS: &[CK_MECHANISM_TYPE] = &[
    CKM_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
    CKM_RSA_PKCS_OAEP,
];
/// Attributes that describe the key itself: a template cannot set them.
const FIXED: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_KEY_TYPE,
    CKA_LOCAL,
    CKA_KEY_GEN_MECHANISM,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PUBLIC_KEY_INFO,
];

/// A curve's name for a log line: the common ones by name, others by their DER.
fn curve_name(params: &[u8]) -> String {
    const P521: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23];
    const P224: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x21];
    const P192: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x01];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2B, 0x65, 0x70];
    match params {
        P521 => "P-521 (secp521r1)".into(),
        P224 => "P-224 (secp224r1)".into(),
        P192 => "P-192 (prime192v1)".into(),
        ED25519 => "Ed25519".into(),
        other => format!("with CKA_EC_PARAMS {}", tpmkey::hex::hex(other)),
    }
}

fn spec(mech: &Mechanism, public: &Attributes) -> Result<KeySpec> {
    if !matches!(mech.param, Param::None) {
        return Err(Error::rv(CKR_MECHANISM_PARAM_INVALID));
    }
    match mech.kind {
        CKM_EC_KEY_PAIR_GEN => {
            let params = public
                .get(&CKA_EC_PARAMS)
                .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is missing"))?;
            match Curve::from_parameters_der(params) {
                Some(Curve::P256) => Ok(KeySpec::EcP256),
                Some(Curve::P384) => Ok(KeySpec::EcP384),
                None => {
                    let why = format!(
                        "key generation: the curve {} is not supported \
                         (CKR_CURVE_NOT_SUPPORTED, 0x140): tpmkey makes P-256 and P-384 keys",
                        curve_name(params)
                    );
                    crate::error::log(&why);
                    Err(Error::new(CKR_CURVE_NOT_SUPPORTED, why))
                }
            }
        }
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            let bits = get_ulong(public, CKA_MODULUS_BITS).ok_or_else(|| {
                Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_MODULUS_BITS is missing")
            })?;
            if let Some(e) = public.get(&CKA_PUBLIC_EXPONENT) {
                let e: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
                if e != [1, 0, 1] {
                    return Err(Error::new(
                        CKR_ATTRIBUTE_VALUE_INVALID,
                        "the TPM creates RSA keys with exponent 65537 only",
                    ));
                }
            }
            match bits {
                2048 | 3072 => Ok(KeySpec::Rsa(bits as u16)),
                _ => Err(Error::new(
                    CKR_KEY_SIZE_RANGE,
                    "RSA keys have 2048 or 3072 bits",
                )),
            }
        }
        _ => Err(Error::rv(CKR_MECHANISM_INVALID)),
    }
}

fn check_class(t: &Attributes, want: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE) -> Result<()> {
    if class(t).is_some_and(|c| c != want)
        || get_ulong(t, CKA_KEY_TYPE).is_some_and(|k| k != key_type)
    {
        return Err(Error::rv(CKR_TEMPLATE_INCONSISTENT));
    }
    Ok(())
}

/// The attributes of both halves of a new key pair; the templates' own values win except
/// for what describes the key itself. `mech`: the generating mechanism, `None` for a key
/// made outside the token (imported).
fn pair_attributes(
    public: &KeyPublic,
    mech: Option<CK_MECHANISM_TYPE>,
    pub_template: &Attributes,
    priv_template: &Attributes,
    token: bool,
) -> (Attributes, Attributes) {
    let (key_type, material, usable) = match &public.key {
        PublicKey::Ec { curve, x, y } => (
            CKK_EC,
            vec![
                (CKA_EC_PARAMS, curve.parameters_der()),
                (CKA_EC_POINT, ec_point(x, y)),
            ],
            EC_MECHANISMS,
        ),
        PublicKey::Rsa { modulus, exponent } => (
            CKK_RSA,
            vec![
                (CKA_MODULUS, modulus.clone()),
                (CKA_PUBLIC_EXPONENT, exponent_bytes(*exponent)),
            ],
            RSA_MECHANISMS,
        ),
    };
    let id = match &public.key {
        PublicKey::Ec { x, y, .. } => tpmkey::hash::Hash::Sha1.digest(&[&[4], x, y]),
        PublicKey::Rsa { modulus, .. } => tpmkey::hash::Hash::Sha1.digest(&[modulus]),
    };
    let is_rsa = key_type == CKK_RSA;
    // RSA decryption and ECDH both need the TPM's decrypt attribute.
    let (sign, decrypt) = (public.can_sign, public.can_decrypt);
    let allowed: Vec<u8> = usable.iter().flat_map(|m| ulong(*m)).collect();
    let common = |class: CK_OBJECT_CLASS| -> Attributes {
        let mut a: Attributes = [
            (CKA_CLASS, ulong(class)),
            (CKA_KEY_TYPE, ulong(key_type)),
            (CKA_TOKEN, boolean(token)),
            (CKA_MODIFIABLE, boolean(true)),
            (CKA_COPYABLE, boolean(false)),
            (CKA_DESTROYABLE, boolean(true)),
            (CKA_LABEL, Vec::new()),
            (CKA_ID, id.clone()),
            (CKA_LOCAL, boolean(mech.is_some())),
            (
                CKA_KEY_GEN_MECHANISM,
                ulong(mech.unwrap_or(CK_UNAVAILABLE_INFORMATION)),
            ),
            (CKA_START_DATE, Vec::new()),
            (CKA_END_DATE, Vec::new()),
            (CKA_SUBJECT, Vec::new()),
            (CKA_ALLOWED_MECHANISMS, allowed.clone()),
            (CKA_PUBLIC_KEY_INFO, public.key.spki_der()),
        ]
        .into_iter()
        .collect();
        a.extend(material.iter().cloned());
        a
    };
    let mut pub_attrs = common(CKO_PUBLIC_KEY);
    pub_attrs.extend([
        (CKA_PRIVATE, boolean(false)),
        (CKA_VERIFY, boolean(sign)),
        (CKA_ENCRYPT, boolean(is_rsa && decrypt)),
        (CKA_VERIFY_RECOVER, boolean(false)),
        (CKA_WRAP, boolean(false)),
        (CKA_DERIVE, boolean(false)),
        (CKA_TRUSTED, boolean(false)),
    ]);
    if is_rsa {
        pub_attrs.insert(CKA_MODULUS_BITS, ulong(CK_ULONG::from(public.bits())));
    }
    let mut priv_attrs = common(CKO_PRIVATE_KEY);
    priv_attrs.extend([
        (CKA_PRIVATE, boolean(true)),
        (CKA_SENSITIVE, boolean(true)),
        // What happened to an imported key before is unknown.
        (CKA_ALWAYS_SENSITIVE, boolean(mech.is_some())),
        (CKA_EXTRACTABLE, boolean(false)),
        (CKA_NEVER_EXTRACTABLE, boolean(mech.is_some())),
        (CKA_SIGN, boolean(sign)),
        (CKA_DECRYPT, boolean(is_rsa && decrypt)),
        (CKA_DERIVE, boolean(!is_rsa && decrypt)),
        (CKA_SIGN_RECOVER, boolean(false)),
        (CKA_UNWRAP, boolean(false)),
        (CKA_ALWAYS_AUTHENTICATE, boolean(false)),
        (CKA_WRAP_WITH_TRUSTED, boolean(false)),
    ]);
    for (attrs, template) in [
        (&mut pub_attrs, pub_template),
        (&mut priv_attrs, priv_template),
    ] {
        for (t, v) in template {
            if !FIXED.contains(t) {
                attrs.insert(*t, v.clone());
            }
        }
        attrs.insert(CKA_TOKEN, boolean(token));
    }
    (pub_attrs, priv_attrs)
}

pub(crate) fn generate_key_pair(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    pub_template: &Template,
    priv_template: &Template,
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    let pub_in = to_map(pub_template)?;
    let priv_in = to_map(priv_template)?;
    let spec = spec(mech, &pub_in)?;
    let key_type = if matches!(spec, KeySpec::Rsa(_)) {
        CKK_RSA
    } else {
        CKK_EC
    };
    check_class(&pub_in, CKO_PUBLIC_KEY, key_type)?;
    check_class(&priv_in, CKO_PRIVATE_KEY, key_type)?;
    if get_bool(&priv_in, CKA_SENSITIVE) == Some(false)
        || get_bool(&priv_in, CKA_EXTRACTABLE) == Some(true)
    {
        return Err(Error::new(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "TPM keys are sensitive and never extractable",
        ));
    }
    let token =
        get_bool(&priv_in, CKA_TOKEN) == Some(true) || get_bool(&pub_in, CKA_TOKEN) == Some(true);
    state::with(|m| {
        let (uid, auth) = new_private_key(m, session, token)?;
        let (slot, _) = m.session_slot(session)?;
        let key = match m.slot(slot)?.token.platform_policy()? {
            Some(policy) => TpmKey::generate_with_secret_and_policy(spec, &auth, None, policy)?,
            None => TpmKey::generate_with_secret(spec, &auth, None)?,
        };
        store_pair(
            m,
            session,
            uid,
            key,
            Some(mech.kind),
            &pub_in,
            &priv_in,
            token,
        )
    })
}

/// Checks that the session may create a private key (a token one if `token`) and gives
/// the new object's id and the authValue its TPM key gets: derived from the token secret,
/// or random for a session key (nothing will ever need to derive it again).
fn new_private_key(
    m: &mut Module,
    session: CK_SESSION_HANDLE,
    token: bool,
) -> Result<(String, Zeroizing<Vec<u8>>)> {
    let (slot, _) = m.session_slot(session)?;
    let mut probe = Attributes::new();
    probe.insert(CKA_TOKEN, boolean(token));
    probe.insert(CKA_PRIVATE, boolean(true));
    check_access(m, session, &probe)?;
    let secret = m.user_secret(slot)?;
    let uid = m.slot(slot)?.token.new_uid();
    let auth = if token {
        secret.object_auth(&uid)
    } else {
        random_auth()?
    };
    Ok((uid, auth))
}

/// Stores a TPM key as a key pair (public and private key object): (public, private).
#[allow(clippy::too_many_arguments)]
fn store_pair(
    m: &mut Module,
    session: CK_SESSION_HANDLE,
    uid: String,
    key: TpmKey,
    mech: Option<CK_MECHANISM_TYPE>,
    pub_in: &Attributes,
    priv_in: &Attributes,
    token: bool,
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    let (pub_attrs, priv_attrs) = pair_attributes(key.public(), mech, pub_in, priv_in, token);
    let handles = store(
        m,
        session,
        Some(uid),
        vec![pub_attrs, priv_attrs],
        Some(key),
        None,
    )?;
    match handles.as_slice() {
        [p, k] => Ok((*p, *k)),
        _ => Err(Error::rv(CKR_GENERAL_ERROR)),
    }
}

/// Whether a C_CreateObject template of a private key brings in an existing TPM key.
pub(crate) fn is_import(attrs: &Attributes) -> bool {
    attrs.contains_key(&CKA_TPMKEY_KEY_FILE) || attrs.contains_key(&CKA_TPMKEY_PERSISTENT_HANDLE)
}

/// C_CreateObject of a private key naming a TPM key (include/tpmkey_pkcs11.h): the key gets
/// the token's authValue for a new object by TPM2_ObjectChangeAuth and is stored as a key
/// pair; the key file or persistent object handed in keeps its own password. Returns the
/// private key's handle.
pub(crate) fn import(
    session: CK_SESSION_HANDLE,
    mut attrs: SecretAttributes,
) -> Result<CK_OBJECT_HANDLE> {
    let password = Zeroizing::new(attrs.remove(&CKA_TPMKEY_KEY_AUTH).unwrap_or_default());
    let key = match (
        attrs.remove(&CKA_TPMKEY_KEY_FILE),
        attrs.remove(&CKA_TPMKEY_PERSISTENT_HANDLE),
    ) {
        (Some(file), None) => {
            let file = tpmkey::KeyFile::from_pem_or_der(&file).map_err(|e| {
                Error::new(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    format!("CKA_TPMKEY_KEY_FILE: {e}"),
                )
            })?;
            TpmKey::from_key_file(&file, Some(&password))
        }
        (None, Some(handle)) => {
            let handle = parse_ulong(&handle)
                .and_then(|h| u32::try_from(h).ok())
                .ok_or_else(|| Error::rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
            TpmKey::from_persistent(handle, Some(&password))
        }
        _ => {
            return Err(Error::new(
                CKR_TEMPLATE_INCONSISTENT,
                "one of CKA_TPMKEY_KEY_FILE and CKA_TPMKEY_PERSISTENT_HANDLE",
            ))
        }
    }
    .map_err(import_error)?;
    check_class(&attrs, CKO_PRIVATE_KEY, key_type(key.public()))?;
    let token = get_bool(&attrs, CKA_TOKEN) == Some(true);
    // The public half takes the caller's names for the pair.
    let pub_in: Attributes = [CKA_ID, CKA_LABEL, CKA_SUBJECT]
        .into_iter()
        .filter_map(|t| attrs.get(&t).map(|v| (t, v.clone())))
        .collect();
    state::with(|m| {
        let (slot, _) = m.session_slot(session)?;
        if m.slot(slot)?.token.platform_policy()?.is_some() {
            let why = "a token with a platform policy holds only keys generated in it \
                       (C_GenerateKeyPair binds them to the policy); a linked key keeps its own";
            crate::error::log(why);
            return Err(Error::new(CKR_TEMPLATE_INCONSISTENT, why));
        }
        let (uid, auth) = new_private_key(m, session, token)?;
        let imported = key.change_auth(&auth).map_err(import_error)?;
        let (_, private) = store_pair(m, session, uid, imported, None, &pub_in, &attrs, token)?;
        Ok(private)
    })
}

fn key_type(public: &KeyPublic) -> CK_KEY_TYPE {
    if public.is_rsa() {
        CKK_RSA
    } else {
        CKK_EC
    }
}

/// A key that cannot be brought in (wrong password, not a usable key, another parent) is a
/// fault of the template, with the cause; a TPM or store that fails is not.
fn import_error(e: tpmkey::Error) -> Error {
    match e {
        tpmkey::Error::KeyFile(_)
        | tpmkey::Error::BadInput(_)
        | tpmkey::Error::Unsupported(_)
        | tpmkey::Error::Tpm { .. } => Error::new(
            CKR_ATTRIBUTE_VALUE_INVALID,
            format!("importing the TPM key: {e}"),
        ),
        e => e.into(),
    }
}

fn random_auth() -> Result<Zeroizing<Vec<u8>>> {
    let mut auth = Zeroizing::new(vec![0u8; 32]);
    tpmkey::keys::random(&mut auth)?;
    Ok(auth)
}

pub(crate) fn derive_key(
    session: CK_SESSION_HANDLE,
    mech: &Mechanism,
    base: CK_OBJECT_HANDLE,
    template: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    if mech.kind != CKM_ECDH1_DERIVE {
        return Err(Error::rv(CKR_MECHANISM_INVALID));
    }
    let Param::Ecdh {
        kdf,
        shared_data,
        public_data,
    } = &mech.param
    else {
        return Err(Error::rv(CKR_MECHANISM_PARAM_INVALID));
    };
    if *kdf != CKD_NULL || !shared_data.is_empty() {
        return Err(Error::new(
            CKR_MECHANISM_PARAM_INVALID,
            "only CKD_NULL without shared data",
        ));
    }
    let mut wanted = to_map(template)?;
    if get_bool(&wanted, CKA_TOKEN) == Some(true) {
        return Err(Error::new(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "derived keys are session objects",
        ));
    }
    state::with(|m| {
        let (r, attrs) = m.object(session, base)?;
        if class(&attrs) != Some(CKO_PRIVATE_KEY) || get_ulong(&attrs, CKA_KEY_TYPE) != Some(CKK_EC)
        {
            return Err(Error::rv(CKR_KEY_TYPE_INCONSISTENT));
        }
        crate::mechanism::allowed(&attrs, mech.kind)?;
        Module::check_usage(&attrs, CKA_DERIVE)?;
        let curve = attrs
            .get(&CKA_EC_PARAMS)
            .and_then(|p| Curve::from_parameters_der(p))
            .ok_or_else(|| Error::rv(CKR_KEY_TYPE_INCONSISTENT))?;
        let (x, y) = parse_point(public_data, curve.coordinate_len())
            .ok_or_else(|| Error::new(CKR_MECHANISM_PARAM_INVALID, "peer point"))?;
        let key = m.tpm_key(&r)?;
        let z = key.ecdh(&x, &y).map_err(|e| match e {
            e if e.is_policy_failure() => crate::error::key_use(&key, e),
            tpmkey::Error::BadInput(_) | tpmkey::Error::Tpm { .. } if !e.is_bad_auth() => {
                Error::new(CKR_MECHANISM_PARAM_INVALID, e.to_string())
            }
            e => e.into(),
        })?;
        let len = get_ulong(&wanted, CKA_VALUE_LEN).map_or(z.len(), |l| l as usize);
        if len == 0 || len > z.len() {
            return Err(Error::new(CKR_TEMPLATE_INCONSISTENT, "CKA_VALUE_LEN"));
        }
        let mut out = SecretAttributes::from(Attributes::from([
            (CKA_CLASS, ulong(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ulong(CKK_GENERIC_SECRET)),
            (CKA_TOKEN, boolean(false)),
            (CKA_PRIVATE, boolean(true)),
            (CKA_SENSITIVE, boolean(false)),
            (CKA_EXTRACTABLE, boolean(true)),
            (CKA_LOCAL, boolean(false)),
            (CKA_LABEL, Vec::new()),
            (CKA_ID, Vec::new()),
            (CKA_MODIFIABLE, boolean(true)),
            (CKA_DESTROYABLE, boolean(true)),
            (CKA_DERIVE, boolean(false)),
        ]));
        wanted.remove(&CKA_VALUE);
        out.extend(wanted.into_inner());
        out.insert(CKA_VALUE, z[..len].to_vec());
        out.insert(CKA_VALUE_LEN, ulong(len as CK_ULONG));
        let handles = store(m, session, None, vec![out.into_inner()], None, None)?;
        handles
            .first()
            .copied()
            .ok_or_else(|| Error::rv(CKR_GENERAL_ERROR))
    })
}
