//! The DER structures only a signature context writes: ECDSA-Sig-Value and the
//! AlgorithmIdentifiers X.509 and CMS ask it for (over the core's DER element writer; the
//! public-key encodings are the core's, `tpmkey::public_key`).

use tpmkey::hash::Hash;
use tpmkey::keyfile::der::{encode_unsigned, tlv, TAG_INTEGER, TAG_NULL, TAG_OID, TAG_SEQUENCE};
use tpmkey::public_key::{oid as key_oid, Curve};

const NULL: &[u8] = &[TAG_NULL, 0x00];
/// 1.2.840.113549.1.1.x, the arc of the shaXWithRSAEncryption signature OIDs.
const PKCS1_PREFIX: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01];

fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(TAG_SEQUENCE, &parts.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes.
fn unsigned_integer(be: &[u8]) -> Vec<u8> {
    tlv(TAG_INTEGER, &encode_unsigned(be))
}

fn oid(content: &[u8]) -> Vec<u8> {
    tlv(TAG_OID, content)
}

fn pkcs1_oid(last: u8) -> Vec<u8> {
    let mut c = PKCS1_PREFIX.to_vec();
    c.push(last);
    oid(&c)
}

/// ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }
pub(crate) fn ecdsa_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    sequence(&[&unsigned_integer(r), &unsigned_integer(s)])
}

/// The longest ECDSA-Sig-Value for a curve.
pub(crate) fn ecdsa_signature_max(curve: Curve) -> usize {
    let int = 2 + curve.coordinate_len() + 1;
    let content = 2 * int;
    content + if content < 0x80 { 2 } else { 3 }
}

/// A digest's AlgorithmIdentifier, with NULL parameters as OpenSSL writes it in PSS.
fn hash_algorithm(hash: Hash) -> Vec<u8> {
    let id = oid(match hash {
        Hash::Sha1 => &[0x2B, 0x0E, 0x03, 0x02, 0x1A],
        Hash::Sha256 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        Hash::Sha384 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
        Hash::Sha512 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
    });
    sequence(&[&id, NULL])
}

/// AlgorithmIdentifier of ecdsa-with-SHAx (RFC 5758: no parameters).
pub(crate) fn ecdsa_algorithm_id(hash: Hash) -> Vec<u8> {
    let last: &[u8] = match hash {
        Hash::Sha1 => &[0x04, 0x01],
        Hash::Sha256 => &[0x04, 0x03, 0x02],
        Hash::Sha384 => &[0x04, 0x03, 0x03],
        Hash::Sha512 => &[0x04, 0x03, 0x04],
    };
    let content = [&[0x2A, 0x86, 0x48, 0xCE, 0x3D][..], last].concat();
    sequence(&[&oid(&content)])
}

/// AlgorithmIdentifier of shaXWithRSAEncryption (NULL parameters).
pub(crate) fn rsa_pkcs1_algorithm_id(hash: Hash) -> Vec<u8> {
    let last = match hash {
        Hash::Sha1 => 5,
        Hash::Sha256 => 11,
        Hash::Sha384 => 12,
        Hash::Sha512 => 13,
    };
    sequence(&[&pkcs1_oid(last), NULL])
}

/// AlgorithmIdentifier of RSASSA-PSS with its parameters (RFC 4055; defaults omitted).
pub(crate) fn rsa_pss_algorithm_id(hash: Hash, mgf1: Hash, salt_len: usize) -> Vec<u8> {
    let mut params = Vec::new();
    if hash != Hash::Sha1 {
        params.extend(tlv(0xA0, &hash_algorithm(hash)));
    }
    if mgf1 != Hash::Sha1 {
        let mgf = sequence(&[&oid(key_oid::MGF1), &hash_algorithm(mgf1)]);
        params.extend(tlv(0xA1, &mgf));
    }
    if salt_len != 20 {
        params.extend(tlv(
            0xA2,
            &unsigned_integer(&(salt_len as u64).to_be_bytes()),
        ));
    }
    sequence(&[&oid(key_oid::RSASSA_PSS), &tlv(TAG_SEQUENCE, &params)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_lengths() {
        assert_eq!(
            unsigned_integer(&[0x00, 0x80]),
            vec![0x02, 0x02, 0x00, 0x80]
        );
        assert_eq!(unsigned_integer(&[]), vec![0x02, 0x01, 0x00]);
        assert_eq!(tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(ecdsa_signature_max(Curve::P256), 72);
        // RSASSA-PSS SHA-256, MGF1 SHA-256, salt 32: as OpenSSL writes it.
        let id = rsa_pss_algorithm_id(Hash::Sha256, Hash::Sha256, 32);
        assert_eq!(id.len(), 67);
    }
}
