//! Attribute values as stored (CK_ULONG in host byte order, CK_BBOOL as one byte), the
//! templates callers hand in, and the answers C_GetAttributeValue gives.

use cryptoki_sys::*;
use tpmkey::store::Attributes;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// A caller's template, copied out of its CK_ATTRIBUTE array; the copies zeroize when
/// dropped (a template may carry a key password or a secret value).
pub(crate) type Template = Vec<(CK_ATTRIBUTE_TYPE, Zeroizing<Vec<u8>>)>;

/// Attributes that may hold secrets (a template's key password, an ECDH secret, a session
/// object's value): every value is zeroized when the map is dropped. Token objects'
/// attributes, stored in files, hold no secrets (private values are sealed by the TPM).
#[derive(Clone, Default)]
pub(crate) struct SecretAttributes(Attributes);

impl SecretAttributes {
    /// The attributes, to be kept where no secret is (a token object's record).
    pub(crate) fn into_inner(mut self) -> Attributes {
        std::mem::take(&mut self.0)
    }
}

impl From<Attributes> for SecretAttributes {
    fn from(attrs: Attributes) -> Self {
        SecretAttributes(attrs)
    }
}

impl std::ops::Deref for SecretAttributes {
    type Target = Attributes;
    fn deref(&self) -> &Attributes {
        &self.0
    }
}

impl std::ops::DerefMut for SecretAttributes {
    fn deref_mut(&mut self) -> &mut Attributes {
        &mut self.0
    }
}

impl Drop for SecretAttributes {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

/// Attribute types only: values may be secret.
impl std::fmt::Debug for SecretAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// tpmkey's vendor-defined attributes (include/tpmkey_pkcs11.h): importing a TPM key.
pub(crate) const CKA_TPMKEY_VENDOR: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x5450_4B00;
pub(crate) const CKA_TPMKEY_KEY_FILE: CK_ATTRIBUTE_TYPE = CKA_TPMKEY_VENDOR + 1;
pub(crate) const CKA_TPMKEY_PERSISTENT_HANDLE: CK_ATTRIBUTE_TYPE = CKA_TPMKEY_VENDOR + 2;
pub(crate) const CKA_TPMKEY_KEY_AUTH: CK_ATTRIBUTE_TYPE = CKA_TPMKEY_VENDOR + 3;

pub(crate) fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub(crate) fn boolean(b: bool) -> Vec<u8> {
    vec![u8::from(b)]
}

pub(crate) fn get_ulong(attrs: &Attributes, t: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
    attrs.get(&t).and_then(|v| parse_ulong(v))
}

pub(crate) fn get_bool(attrs: &Attributes, t: CK_ATTRIBUTE_TYPE) -> Option<bool> {
    attrs.get(&t).and_then(|v| parse_bool(v))
}

pub(crate) fn parse_ulong(v: &[u8]) -> Option<CK_ULONG> {
    Some(CK_ULONG::from_ne_bytes(v.try_into().ok()?))
}

pub(crate) fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        [b] => Some(*b != 0),
        _ => None,
    }
}

pub(crate) fn is_private(attrs: &Attributes) -> bool {
    get_bool(attrs, CKA_PRIVATE).unwrap_or(false)
}

pub(crate) fn class(attrs: &Attributes) -> Option<CK_OBJECT_CLASS> {
    get_ulong(attrs, CKA_CLASS)
}

/// Attributes whose value is a CK_ULONG or a CK_BBOOL, checked for size when a template
/// sets them (a wrong size is CKR_ATTRIBUTE_VALUE_INVALID).
fn expected_len(t: CK_ATTRIBUTE_TYPE) -> Option<usize> {
    match t {
        CKA_CLASS
        | CKA_KEY_TYPE
        | CKA_CERTIFICATE_TYPE
        | CKA_MODULUS_BITS
        | CKA_VALUE_LEN
        | CKA_CERTIFICATE_CATEGORY
        | CKA_KEY_GEN_MECHANISM
        | CKA_NAME_HASH_ALGORITHM
        | CKA_TPMKEY_PERSISTENT_HANDLE => Some(std::mem::size_of::<CK_ULONG>()),
        CKA_TOKEN
        | CKA_PRIVATE
        | CKA_MODIFIABLE
        | CKA_COPYABLE
        | CKA_DESTROYABLE
        | CKA_SENSITIVE
        | CKA_EXTRACTABLE
        | CKA_SIGN
        | CKA_VERIFY
        | CKA_ENCRYPT
        | CKA_DECRYPT
        | CKA_DERIVE
        | CKA_WRAP
        | CKA_UNWRAP
        | CKA_SIGN_RECOVER
        | CKA_VERIFY_RECOVER
        | CKA_TRUSTED
        | CKA_ALWAYS_AUTHENTICATE
        | CKA_LOCAL
        | CKA_ALWAYS_SENSITIVE
        | CKA_NEVER_EXTRACTABLE
        | CKA_WRAP_WITH_TRUSTED => Some(1),
        _ => None,
    }
}

/// A template as an attribute map; a value of the wrong size is rejected.
pub(crate) fn to_map(template: &Template) -> Result<SecretAttributes> {
    let mut out = SecretAttributes::default();
    for (t, v) in template {
        if expected_len(*t).is_some_and(|n| n != v.len()) {
            return Err(Error::new(
                CKR_ATTRIBUTE_VALUE_INVALID,
                format!("attribute 0x{t:x} has {} bytes", v.len()),
            ));
        }
        out.insert(*t, v.to_vec());
    }
    Ok(out)
}

/// Whether every attribute of `template` is present in `attrs` with the same value.
pub(crate) fn matches(attrs: &Attributes, template: &Attributes) -> bool {
    template.iter().all(|(t, v)| attrs.get(t) == Some(v))
}

/// C_GetAttributeValue's answer for one attribute.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A copy of the value, zeroized when dropped (it may be a secret).
    Value(Zeroizing<Vec<u8>>),
    Sensitive,
    Invalid,
}

/// Secret parts of keys: never revealed.
pub(crate) fn is_sensitive(attrs: &Attributes, t: CK_ATTRIBUTE_TYPE) -> bool {
    match class(attrs) {
        Some(CKO_PRIVATE_KEY) => matches!(
            t,
            CKA_VALUE
                | CKA_PRIVATE_EXPONENT
                | CKA_PRIME_1
                | CKA_PRIME_2
                | CKA_EXPONENT_1
                | CKA_EXPONENT_2
                | CKA_COEFFICIENT
        ),
        Some(CKO_SECRET_KEY) => {
            t == CKA_VALUE
                && (get_bool(attrs, CKA_SENSITIVE) == Some(true)
                    || get_bool(attrs, CKA_EXTRACTABLE) == Some(false))
        }
        _ => false,
    }
}

/// Attributes a caller may change with C_SetAttributeValue.
pub(crate) fn is_settable(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_LABEL | CKA_ID | CKA_SUBJECT | CKA_APPLICATION | CKA_START_DATE | CKA_END_DATE
    )
}
