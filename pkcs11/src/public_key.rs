//! Public keys in the DER forms PKCS#11 attributes carry: CKA_EC_PARAMS (named curve OID),
//! CKA_EC_POINT (OCTET STRING of the uncompressed point), CKA_PUBLIC_KEY_INFO
//! (SubjectPublicKeyInfo), and back from them for software verification and encryption.

use tpmkey::public_key::{Curve, PublicKey};

const OID_P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];
const DER_NULL: &[u8] = &[0x05, 0x00];

/// One DER element.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of an unsigned big-endian value.
fn integer(v: &[u8]) -> Vec<u8> {
    let v = &v[v.iter().take_while(|b| **b == 0).count()..];
    let mut content = Vec::with_capacity(v.len() + 1);
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(v);
    tlv(0x02, &content)
}

pub fn ec_params(curve: Curve) -> Vec<u8> {
    match curve {
        Curve::P256 => OID_P256.to_vec(),
        Curve::P384 => OID_P384.to_vec(),
    }
}

pub fn curve_from_params(params: &[u8]) -> Option<Curve> {
    match params {
        p if p == OID_P256 => Some(Curve::P256),
        p if p == OID_P384 => Some(Curve::P384),
        _ => None,
    }
}

fn uncompressed(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut point = vec![4u8];
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    point
}

/// CKA_EC_POINT: the uncompressed point in a DER OCTET STRING.
pub fn ec_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    tlv(0x04, &uncompressed(x, y))
}

/// A peer's point as CKM_ECDH1_DERIVE receives it: raw uncompressed, or in an OCTET
/// STRING. Returns (x, y) with `coordinate_len` bytes each.
pub fn parse_point(data: &[u8], coordinate_len: usize) -> Option<(Vec<u8>, Vec<u8>)> {
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

/// CKA_PUBLIC_KEY_INFO: the SubjectPublicKeyInfo.
pub fn spki(key: &PublicKey) -> Vec<u8> {
    let (algorithm, bits) = match key {
        PublicKey::Ec { curve, x, y } => {
            let alg = [OID_EC_PUBLIC_KEY, &ec_params(*curve)].concat();
            (alg, uncompressed(x, y))
        }
        PublicKey::Rsa { modulus, exponent } => {
            let alg = [OID_RSA_ENCRYPTION, DER_NULL].concat();
            let rsa = tlv(
                0x30,
                &[integer(modulus), integer(&exponent.to_be_bytes())].concat(),
            );
            (alg, rsa)
        }
    };
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(&bits);
    tlv(
        0x30,
        &[tlv(0x30, &algorithm), tlv(0x03, &bit_string)].concat(),
    )
}

/// A public exponent as PKCS#11 stores it: big-endian, no leading zeros.
pub fn exponent_bytes(e: u32) -> Vec<u8> {
    e.to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect()
}

/// The public key an object's attributes describe (public or private key objects).
pub fn from_attributes(attrs: &tpmkey::store::Attributes) -> Option<PublicKey> {
    use cryptoki_sys::*;
    match crate::attributes::get_ulong(attrs, CKA_KEY_TYPE)? {
        CKK_EC => {
            let curve = curve_from_params(attrs.get(&CKA_EC_PARAMS)?)?;
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

    #[test]
    fn long_lengths_and_integers() {
        assert_eq!(tlv(0x04, &[0u8; 300])[..4], [0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0, 1]), vec![0x02, 0x01, 0x01]);
    }
}
