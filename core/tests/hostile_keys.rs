//! Key files whose public area lies (issue 9, finding 5): an RSA modulus shorter than its
//! keyBits, an EC point off its curve. They are refused when the key is parsed, with an
//! error naming the cause; nothing reaches the padding code, so nothing aborts.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use tpmkey::hash::Hash;
use tpmkey::{KeyFile, KeySpec, SignScheme, TpmKey};

/// `file` with its TPMT_PUBLIC's trailing `unique` field (`unique_len` bytes: the RSA
/// modulus TPM2B, or the EC point's two TPM2Bs) replaced by `unique`.
fn with_unique(file: &KeyFile, unique_len: usize, unique: &[u8]) -> KeyFile {
    let mut tpmt = file.public[2..file.public.len() - unique_len].to_vec();
    tpmt.extend_from_slice(unique);
    let mut public = (tpmt.len() as u16).to_be_bytes().to_vec();
    public.extend_from_slice(&tpmt);
    KeyFile {
        public,
        ..file.clone()
    }
}

#[test]
fn rsa_modulus_shorter_than_its_key_bits_is_refused() {
    let _tpm = common::tpm();
    let file = TpmKey::generate(KeySpec::Rsa(2048), None, None)
        .unwrap()
        .key_file()
        .unwrap();
    // unique: a TPM2B of 256 bytes. Empty; one byte short; the right length with the top
    // bits clear (a 2040-bit modulus).
    let mut short = vec![0x00, 0xFF];
    short.extend_from_slice(&[0xC5; 255]);
    let mut small = vec![0x01, 0x00, 0x00];
    small.extend_from_slice(&[0xC5; 255]);
    for unique in [vec![0, 0], short, small] {
        let hostile = with_unique(&file, 258, &unique);
        let result = TpmKey::from_key_file(&hostile, None).and_then(|key| {
            key.sign(
                SignScheme::RsaPss {
                    hash: Hash::Sha256,
                    mgf1: Hash::Sha256,
                    salt_len: 32,
                },
                &[7; 32],
            )
        });
        let e = result.unwrap_err().to_string();
        assert!(e.contains("modulus"), "{e}");
    }
}

#[test]
fn ec_point_off_the_curve_is_refused() {
    let _tpm = common::tpm();
    let file = TpmKey::generate(KeySpec::EcP256, None, None)
        .unwrap()
        .key_file()
        .unwrap();
    let mut unique = file.public[file.public.len() - 68..].to_vec();
    let last = unique.len() - 1;
    unique[last] ^= 1;
    let hostile = with_unique(&file, 68, &unique);
    let e = TpmKey::from_key_file(&hostile, None)
        .and_then(|key| key.sign(SignScheme::Ecdsa(Hash::Sha256), &[7; 32]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not on P-256"), "{e}");
}
