//! Bad input gets an error that names the cause, never a panic or a hang.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use tpmkey::hash::Hash;
use tpmkey::{KeyFile, KeySpec, SignScheme, TpmKey};

fn sign(key: &TpmKey) -> tpmkey::Result<tpmkey::Signature> {
    key.sign(SignScheme::Ecdsa(Hash::Sha256), &[7u8; 32])
}

#[test]
fn key_from_another_tpm() {
    let pem = {
        let _a = common::tpm();
        TpmKey::generate(KeySpec::EcP256, None, None)
            .unwrap()
            .key_file()
            .unwrap()
            .to_pem()
    };
    let _b = common::tpm();
    let key = TpmKey::from_key_file(&KeyFile::from_pem(pem.as_bytes()).unwrap(), None).unwrap();
    let e = sign(&key).unwrap_err().to_string();
    assert!(
        e.contains("TPM2_Load") && e.contains("does not belong to this TPM"),
        "{e}"
    );
}

#[test]
fn corrupt_private_blob() {
    let _tpm = common::tpm();
    let mut file = TpmKey::generate(KeySpec::EcP256, None, None)
        .unwrap()
        .key_file()
        .unwrap();
    let n = file.private.len();
    file.private[n - 5] ^= 0x40;
    let key = TpmKey::from_key_file(&file, None).unwrap();
    let e = sign(&key).unwrap_err().to_string();
    assert!(e.contains("TPM2_Load") && e.contains("INTEGRITY"), "{e}");
}

#[test]
fn corrupt_public_area() {
    let _tpm = common::tpm();
    let mut file = TpmKey::generate(KeySpec::EcP256, None, None)
        .unwrap()
        .key_file()
        .unwrap();
    file.public.truncate(20);
    file.public[1] = 18;
    let e = TpmKey::from_key_file(&file, None).unwrap_err().to_string();
    assert!(e.contains("public area"), "{e}");
}

#[test]
fn garbage_and_wrong_label() {
    for (input, expect) in [
        (&b""[..], ""),
        (b"garbage", ""),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "PRIVATE KEY",
        ),
        (
            b"-----BEGIN TSS2 PRIVATE KEY-----\n!!!!\n-----END TSS2 PRIVATE KEY-----\n",
            "base64",
        ),
    ] {
        let e = KeyFile::from_pem_or_der(input).unwrap_err().to_string();
        assert!(e.starts_with("TSS2 key file:") && e.contains(expect), "{e}");
    }
}

#[test]
fn unreachable_tcti() {
    let _serial = common::tpm();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    tpmkey::connection::configure(&[("tcti", &tcti)]).unwrap();
    let mut buf = [0u8; 8];
    let e = tpmkey::keys::random(&mut buf).unwrap_err().to_string();
    assert!(e.contains("TPM not reachable") && e.contains(&tcti), "{e}");
    let e = tpmkey::connection::configure(&[("tcti", "")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("probe"), "{e}");
    let e = tpmkey::connection::configure(&[("objects", "always")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("objects"), "{e}");
}

#[test]
fn wrong_sizes_are_refused_before_the_tpm() {
    let _tpm = common::tpm();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    let e = key
        .sign(SignScheme::Ecdsa(Hash::Sha256), &[0u8; 31])
        .unwrap_err()
        .to_string();
    assert!(e.contains("digest is 31 bytes"), "{e}");
    let e = key
        .sign(SignScheme::RsaPkcs1(Hash::Sha256), &[0u8; 32])
        .unwrap_err()
        .to_string();
    assert!(e.contains("EC key"), "{e}");
    let e = key.ecdh(&[1u8; 40], &[1u8; 32]).unwrap_err().to_string();
    assert!(e.contains("not on P-256"), "{e}");
    // A point not on the curve: the TPM refuses it.
    let e = key.ecdh(&[1u8; 32], &[2u8; 32]).unwrap_err().to_string();
    assert!(e.contains("ECC_POINT") || e.contains("point"), "{e}");
    let e = TpmKey::generate(KeySpec::EcP256, Some(&[b'x'; 33]), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("longer than 32"), "{e}");
}
