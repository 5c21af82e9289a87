//! RSA padding modes and PSS salt lengths as OpenSSL's parameters name and number them
//! (RSA_PKCS1_PADDING, RSA_PSS_SALTLEN_DIGEST, ...): one table each, read by SIGNATURE and
//! ASYM_CIPHER alike.

use tpmkey::hash::Hash;
use tpmkey::rsa_padding::pss_max_salt;
use tpmkey::{Error, Result};

use crate::params::Param;

/// RSA padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Padding {
    Pkcs1,
    None,
    Oaep,
    Pss,
    /// RSA_PKCS1_WITH_TLS_PADDING: TLS key transport (decryption only).
    Pkcs1Tls,
}

/// Each mode with OpenSSL's number (rsa.h) and its name in string parameters; a name read
/// back finds its first row (TLS key transport has no name of its own).
const PADDINGS: [(Padding, i64, &str); 5] = [
    (Padding::Pkcs1, 1, "pkcs1"),
    (Padding::None, 3, "none"),
    (Padding::Oaep, 4, "oaep"),
    (Padding::Pss, 6, "pss"),
    (Padding::Pkcs1Tls, 7, "pkcs1"),
];

impl Padding {
    /// From a "pad-mode" parameter, by name or number.
    pub(crate) fn from_param(p: &Param<'_>) -> Result<Padding> {
        if p.is_string() {
            let name = p.utf8()?;
            // OpenSSL has long accepted its own misspelling.
            let wanted = if name == "oeap" { "oaep" } else { &name };
            PADDINGS
                .iter()
                .find(|(_, _, n)| *n == wanted)
                .map(|(padding, ..)| *padding)
                .ok_or_else(|| Error::Unsupported(format!("RSA padding \"{name}\"")))
        } else {
            let id = p.int()?;
            PADDINGS
                .iter()
                .find(|(_, i, _)| *i == id)
                .map(|(padding, ..)| *padding)
                .ok_or_else(|| Error::Unsupported(format!("RSA padding mode {id}")))
        }
    }

    fn row(self) -> (Padding, i64, &'static str) {
        PADDINGS
            .into_iter()
            .find(|(padding, ..)| *padding == self)
            .unwrap_or(PADDINGS[0])
    }

    pub(crate) fn name(self) -> &'static str {
        self.row().2
    }

    /// OpenSSL's number for the mode, for integer parameters.
    pub(crate) fn openssl_id(self) -> i64 {
        self.row().1
    }
}

/// PSS salt length as OpenSSL lets callers give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Salt {
    Digest,
    Max,
    Auto,
    Len(usize),
}

/// The special lengths with OpenSSL's numbers (RSA_PSS_SALTLEN_*) and names.
const SALTS: [(Salt, i64, &str); 3] = [
    (Salt::Digest, -1, "digest"),
    (Salt::Auto, -2, "auto"),
    (Salt::Max, -3, "max"),
];

impl Salt {
    /// From a "saltlen" parameter: a name, or a number (as an integer or in a string).
    pub(crate) fn from_param(p: &Param<'_>) -> Result<Salt> {
        let id = if p.is_string() {
            let text = p.utf8()?;
            if let Some((salt, ..)) = SALTS.iter().find(|(_, _, n)| *n == text) {
                return Ok(*salt);
            }
            text.parse::<i64>()
                .map_err(|_| Error::BadInput(format!("PSS salt length \"{text}\"")))?
        } else {
            p.int()?
        };
        if let Some((salt, ..)) = SALTS.iter().find(|(_, i, _)| *i == id) {
            return Ok(*salt);
        }
        usize::try_from(id)
            .map(Salt::Len)
            .map_err(|_| Error::BadInput(format!("PSS salt length {id}")))
    }

    /// The salt length this key and digest give when signing (auto signs with max).
    pub(crate) fn resolve(self, hash: Hash, bits: u32) -> usize {
        match self {
            Salt::Digest => hash.len(),
            Salt::Max | Salt::Auto => pss_max_salt(hash, bits),
            Salt::Len(n) => n,
        }
    }

    /// The length as a string parameter gives it back.
    pub(crate) fn name(self) -> String {
        match self {
            Salt::Len(n) => n.to_string(),
            special => SALTS
                .iter()
                .find(|(salt, ..)| *salt == special)
                .map_or("", |(_, _, name)| name)
                .to_string(),
        }
    }

    /// OpenSSL's number for the length, for integer parameters.
    pub(crate) fn openssl_id(self) -> i64 {
        match self {
            Salt::Len(n) => i64::try_from(n).unwrap_or(i64::MAX),
            special => SALTS
                .iter()
                .find(|(salt, ..)| *salt == special)
                .map_or(0, |(_, id, _)| *id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenSSL's numbers (rsa.h: RSA_*_PADDING, RSA_PSS_SALTLEN_*) and names.
    #[test]
    fn numbers_and_names_are_openssls() {
        let paddings = [
            (Padding::Pkcs1, 1, "pkcs1"),
            (Padding::None, 3, "none"),
            (Padding::Oaep, 4, "oaep"),
            (Padding::Pss, 6, "pss"),
            (Padding::Pkcs1Tls, 7, "pkcs1"),
        ];
        for (padding, id, name) in paddings {
            assert_eq!((padding.openssl_id(), padding.name()), (id, name));
        }
        let salts = [
            (Salt::Digest, -1, "digest"),
            (Salt::Auto, -2, "auto"),
            (Salt::Max, -3, "max"),
            (Salt::Len(32), 32, "32"),
        ];
        for (salt, id, name) in salts {
            assert_eq!((salt.openssl_id(), salt.name().as_str()), (id, name));
        }
        assert_eq!(Salt::Digest.resolve(Hash::Sha384, 2048), 48);
        assert_eq!(Salt::Len(7).resolve(Hash::Sha256, 2048), 7);
    }
}
