//! Public keys in the forms PKCS#11 attributes carry that the core does not write itself:
//! CKA_EC_POINT (OCTET STRING of the uncompressed point), CKA_PUBLIC_EXPONENT, and back from
//! the attributes for software verification and encryption (CKA_EC_PARAMS and
//! CKA_PUBLIC_KEY_INFO are the core's `Curve::parameters_der` and `PublicKey::spki_der`).

use tpmkey::keyfile::der::{tlv, TAG_OCTET_STRING};
use tpmkey::public_key::{self as core_key, Curve, PublicKey};

/// CKA_EC_POINT: the uncompressed point in a DER OCTET STRING.
pub(crate) fn ec_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    tlv(TAG_OCTET_STRING, &core_key::ec_point(x, y))
}

/// A peer's point as CKM_ECDH1_DERIVE receives it: raw uncompressed, or in an OCTET
/// STRING. Returns (x, y) with `coordinate_len` bytes each.
pub(crate) fn parse_point(data: &[u8], coordinate_len: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let raw = if data.len() == 1 + 2 * coordinate_len {
        data
    } else {
        let inner = data.strip_prefix(&[0x04])?;
        let (len, rest) = inner.split_first()?;
        if usize::from(*len) != rest.len() || rest.len() != 1 + 2 * coordinate_len {
            return None;
        }
        rest
    };
    let xy = raw.strip_prefix(&[0x04])?;
    let (x, y) = xy.split_at(coordinate_len);
    Some((x.to_vec(), y.to_vec()))
}

/// A public exponent as PKCS#11 stores it: big-endian, no leading zeros.
pub(crate) fn exponent_bytes(e: u32) -> Vec<u8> {
    e.to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect()
}

/// The public key an object's attributes describe (public or private key objects).
pub(crate) fn from_attributes(attrs: &tpmkey::store::Attributes) -> Option<PublicKey> {
    use cryptoki_sys::*;
    match crate::attributes::get_ulong(attrs, CKA_KEY_TYPE)? {
        CKK_EC => {
            let curve = Curve::from_parameters_der(attrs.get(&CKA_EC_PARAMS)?)?;
            let (x, y) = parse_point(attrs.get(&CKA_EC_POINT)?, curve.coordinate_len())?;
            Some(PublicKey::Ec { curve, x, y })
        }
        CKK_RSA => {
            let e = attrs.get(&CKA_PUBLIC_EXPONENT)?;
            if e.len() > 4 {
                return None;
            }
            let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            Some(PublicKey::Rsa {
                modulus: attrs.get(&CKA_MODULUS)?.clone(),
                exponent,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn point_forms() {
        let (x, y) = (vec![1u8; 32], vec![2u8; 32]);
        let der = ec_point(&x, &y);
        assert_eq!(der[..2], [0x04, 65]);
        assert_eq!(parse_point(&der, 32).unwrap(), (x.clone(), y.clone()));
        assert_eq!(parse_point(&der[2..], 32).unwrap(), (x, y));
        assert!(parse_point(&der[3..], 32).is_none());
    }

    /// The core's DER writer, as these attributes use it.
    #[test]
    fn long_lengths_and_integers() {
        use tpmkey::keyfile::der::{encode_unsigned, TAG_INTEGER};
        let integer = |v: &[u8]| tlv(TAG_INTEGER, &encode_unsigned(v));
        assert_eq!(tlv(0x04, &[0u8; 300])[..4], [0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0, 1]), vec![0x02, 0x01, 0x01]);
    }
}
