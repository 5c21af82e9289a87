//! The key object behind OpenSSL's `keydata` pointer: a TPM key (with its cached public
//! data) or a public-only key (imported parts, for verification and peers). Every key
//! parameter is answered from here, never from the TPM.

use std::ffi::c_void;

use tpmkey::keys::KeyLocation;
use tpmkey::public_key::{Curve, FixedScheme, PublicKey};
use tpmkey::wire::TPM_ALG_RSAPSS;
use tpmkey::{Error, Result, TpmKey};

use crate::der;
use crate::ffi::{
    OSSL_PARAM_OCTET_STRING, OSSL_PARAM_UTF8_STRING, OSSL_PKEY_PARAM_GROUP_NAME,
    OSSL_PKEY_PARAM_PUB_KEY,
};
use crate::params::{describe, ParamTable, END};

/// The OpenSSL key type a keymgmt serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    Ec,
    Rsa,
    RsaPss,
}

impl KeyType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyType::Ec => "EC",
            KeyType::Rsa => "RSA",
            KeyType::RsaPss => "RSA-PSS",
        }
    }

    /// The type `tpm` is served as when asked for as `self`: RSA-PSS for an RSA key whose
    /// public area fixes RSASSA-PSS (tpm2-openssl's RSA-PSS keys), so that OpenSSL signs
    /// PSS with it.
    pub(crate) fn served_as(self, tpm: &TpmKey) -> KeyType {
        match tpm.public().sign_scheme {
            Some(FixedScheme {
                alg: TPM_ALG_RSAPSS,
                ..
            }) if self == KeyType::Rsa => KeyType::RsaPss,
            _ => self,
        }
    }

    pub(crate) fn fits(self, key: &PublicKey) -> bool {
        matches!(
            (self, key),
            (KeyType::Ec, PublicKey::Ec { .. })
                | (KeyType::Rsa | KeyType::RsaPss, PublicKey::Rsa { .. })
        )
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Material {
    /// Nothing yet (KEYMGMT_NEW before an import).
    Empty,
    Tpm(TpmKey),
    Public(PublicKey),
    /// Only the curve (a copy of a key's domain parameters, waiting for a public point:
    /// CMS builds its peer key this way).
    Domain(Curve),
}

#[derive(Clone, Debug)]
pub(crate) struct Key {
    pub key_type: KeyType,
    pub material: Material,
    /// The TPM key needs a password the application did not supply (no tty, EOF, no
    /// `-passin`): its public half serves, private operations say why they cannot.
    pub password_missing: bool,
}

/// What private operations of a key without its password say.
pub(crate) const NO_PASSWORD: &str = "the key needs a password and none was supplied \
     (give it with -passin, or ssl_password_file in nginx)";

pub(crate) fn group_name(curve: Curve) -> &'static str {
    match curve {
        Curve::P256 => "prime256v1",
        Curve::P384 => "secp384r1",
    }
}

/// The curve an OpenSSL group name (or a common alias) names.
pub(crate) fn curve_from_name(name: &str) -> Result<Curve> {
    match name.to_ascii_lowercase().as_str() {
        "p-256" | "p256" | "prime256v1" | "secp256r1" => Ok(Curve::P256),
        "p-384" | "p384" | "secp384r1" => Ok(Curve::P384),
        other => Err(Error::Unsupported(format!(
            "EC group \"{other}\" (the TPM keys are P-256 or P-384)"
        ))),
    }
}

/// The parameters an EC key (TPM or ephemeral) imports and exports.
pub(crate) static EC_TYPES: ParamTable = ParamTable(&[
    describe(OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING),
    describe(OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING),
    END,
]);

impl Key {
    pub(crate) fn new(key_type: KeyType, material: Material) -> Key {
        Key {
            key_type,
            material,
            password_missing: false,
        }
    }

    pub(crate) fn public(&self) -> Result<&PublicKey> {
        match &self.material {
            Material::Tpm(k) => Ok(&k.public().key),
            Material::Public(p) => Ok(p),
            Material::Domain(_) => Err(Error::BadInput(
                "the key object holds only its curve, no public key".into(),
            )),
            Material::Empty => Err(Error::BadInput("the key object is empty".into())),
        }
    }

    /// The TPM key, for private-key operations.
    pub(crate) fn tpm(&self) -> Result<&TpmKey> {
        if self.password_missing {
            return Err(Error::BadInput(NO_PASSWORD.into()));
        }
        self.tpm_unauthorised()
    }

    /// The TPM key for what needs no password (its key file, its description).
    pub(crate) fn tpm_unauthorised(&self) -> Result<&TpmKey> {
        match &self.material {
            Material::Tpm(k) => Ok(k),
            _ => Err(Error::BadInput(
                "a public key cannot sign, decrypt or derive (no TPM key)".into(),
            )),
        }
    }

    /// True when using the key takes a password: its key file says so (emptyAuth FALSE),
    /// or, for a persistent key, its public area lacks noDA (DA-protected keys are the
    /// ones made with a password a person chooses).
    pub(crate) fn needs_password(&self) -> bool {
        match &self.material {
            Material::Tpm(t) => {
                t.needs_password()
                    || (matches!(t.location(), KeyLocation::Persistent(_)) && !t.public().no_da)
            }
            _ => false,
        }
    }

    /// The signing scheme a TPM key's public area fixes, if any.
    pub(crate) fn fixed_scheme(&self) -> Option<FixedScheme> {
        match &self.material {
            Material::Tpm(t) => t.public().sign_scheme,
            _ => None,
        }
    }

    /// A restricted signing key: the TPM must hash what it signs.
    pub(crate) fn is_restricted(&self) -> bool {
        matches!(&self.material, Material::Tpm(t) if t.public().restricted)
    }

    pub(crate) fn is_tpm(&self) -> bool {
        matches!(self.material, Material::Tpm(_))
    }

    pub(crate) fn bits(&self) -> Result<u32> {
        match &self.material {
            Material::Domain(curve) => Ok(curve.coordinate_len() as u32 * 8),
            _ => Ok(self.public()?.bits()),
        }
    }

    /// A copy holding only what `selection` names: without the private key a TPM key
    /// becomes its public key, without the public key an EC key its curve.
    pub(crate) fn selected(&self, selection: i32) -> Key {
        use crate::ffi::{OSSL_KEYMGMT_SELECT_PRIVATE_KEY, OSSL_KEYMGMT_SELECT_PUBLIC_KEY};
        let mut copy = self.clone();
        if selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY != 0 {
            return copy;
        }
        copy.password_missing = false;
        copy.material = match (&self.material, self.public()) {
            (Material::Tpm(_) | Material::Public(_), Ok(public))
                if selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY != 0 =>
            {
                Material::Public(public.clone())
            }
            (_, Ok(PublicKey::Ec { curve, .. })) => Material::Domain(*curve),
            (Material::Domain(curve), _) => Material::Domain(*curve),
            _ => Material::Empty,
        };
        copy
    }

    /// Security strength in bits (SP 800-57 part 1, table 2).
    pub(crate) fn security_bits(&self) -> Result<u32> {
        let bits = self.bits()?;
        if let Material::Domain(_) = self.material {
            return Ok(bits / 2);
        }
        Ok(match self.public()? {
            PublicKey::Ec { .. } => bits / 2,
            PublicKey::Rsa { .. } => match bits {
                b if b >= 15360 => 256,
                b if b >= 7680 => 192,
                b if b >= 3072 => 128,
                b if b >= 2048 => 112,
                _ => 80,
            },
        })
    }

    /// The largest signature (or RSA output) in bytes.
    pub(crate) fn max_size(&self) -> Result<usize> {
        Ok(match self.public()? {
            PublicKey::Ec { curve, .. } => der::ecdsa_signature_max(*curve),
            PublicKey::Rsa { .. } => (self.bits()? as usize).div_ceil(8),
        })
    }

    pub(crate) fn spki(&self) -> Result<Vec<u8>> {
        let public = self.public()?;
        Ok(if self.key_type == KeyType::RsaPss {
            public.spki_der_pss()
        } else {
            public.spki_der()
        })
    }
}

/// Hands a key object to OpenSSL as `keydata`.
pub(crate) fn into_keydata(key: Key) -> *mut c_void {
    crate::opctx::into_raw(key)
}

/// # Safety
/// `p` is NULL or a pointer from [`into_keydata`] not yet freed, not used elsewhere mutably.
pub(crate) unsafe fn keydata<'a>(p: *const c_void) -> Result<&'a Key> {
    // SAFETY: caller's contract.
    unsafe { crate::opctx::borrow::<Key>(p as *mut c_void) }.map(|k| &*k)
}

/// # Safety
/// As [`keydata`], and no other reference to the object is alive during the borrow.
pub(crate) unsafe fn keydata_mut<'a>(p: *mut c_void) -> Result<&'a mut Key> {
    // SAFETY: caller's contract.
    unsafe { crate::opctx::borrow(p) }
}
