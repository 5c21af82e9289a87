//! Keys against a real swtpm: create, sign, decrypt, ECDH, persist, random; every result
//! checked by OpenSSL in software.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::encrypt::Encrypter;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use tpmkey::hash::Hash;
use tpmkey::public_key::PublicKey;
use tpmkey::{KeySpec, RsaPadding, SignScheme, Signature, TpmKey};
use tpmkey_testenv::TpmEndpoint;

fn verify_ecdsa(key: &TpmKey, hash: Hash, msg: &[u8]) {
    let digest = hash.digest(&[msg]);
    let Signature::Ecdsa { r, s } = key.sign(SignScheme::Ecdsa(hash), &digest).unwrap() else {
        panic!()
    };
    let sig = EcdsaSig::from_private_components(
        openssl::bn::BigNum::from_slice(&r).unwrap(),
        openssl::bn::BigNum::from_slice(&s).unwrap(),
    )
    .unwrap();
    let pkey = common::openssl_public(&key.public().key);
    let ec = pkey.ec_key().unwrap();
    assert!(
        sig.verify(&digest, &ec).unwrap(),
        "ECDSA {hash:?} signature does not verify"
    );
}

fn md(hash: Hash) -> MessageDigest {
    match hash {
        Hash::Sha1 => MessageDigest::sha1(),
        Hash::Sha256 => MessageDigest::sha256(),
        Hash::Sha384 => MessageDigest::sha384(),
        Hash::Sha512 => MessageDigest::sha512(),
    }
}

fn verify_rsa(key: &TpmKey, scheme: SignScheme, hash: Hash, msg: &[u8]) {
    let digest = hash.digest(&[msg]);
    let Signature::Rsa(sig) = key.sign(scheme, &digest).unwrap() else {
        panic!()
    };
    let pkey = common::openssl_public(&key.public().key);
    let mut v = Verifier::new(md(hash), &pkey).unwrap();
    if let SignScheme::RsaPss { salt_len, .. } = scheme {
        v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
        // A fixed salt length: verification fails if the produced salt differs.
        v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt_len as i32))
            .unwrap();
    }
    v.update(msg).unwrap();
    assert!(
        v.verify(&sig).unwrap(),
        "{scheme:?} signature does not verify"
    );
}

#[test]
fn ec_p256_and_p384_sign_and_derive() {
    let _tpm = common::tpm();
    for (spec, nid) in [
        (KeySpec::EcP256, Nid::X9_62_PRIME256V1),
        (KeySpec::EcP384, Nid::SECP384R1),
    ] {
        let key = TpmKey::generate(spec, None, None).unwrap();
        assert!(key.public().no_da, "a key without a password is noDA");
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            verify_ecdsa(&key, hash, b"hello tpm");
        }
        // ECDH: the TPM's Z equals OpenSSL's derive with the public half.
        let group = EcGroup::from_curve_name(nid).unwrap();
        let peer = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let mut x = openssl::bn::BigNum::new().unwrap();
        let mut y = openssl::bn::BigNum::new().unwrap();
        peer.ec_key()
            .unwrap()
            .public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let z = key.ecdh(&x.to_vec(), &y.to_vec()).unwrap();
        let tpm_pub = common::openssl_public(&key.public().key);
        let mut d = Deriver::new(&peer).unwrap();
        d.set_peer(&tpm_pub).unwrap();
        assert_eq!(&z[..], &d.derive_to_vec().unwrap()[..]);
    }
}

#[test]
fn rsa_2048_and_3072_sign_and_decrypt() {
    let _tpm = common::tpm();
    for bits in [2048u16, 3072] {
        let key = TpmKey::generate(KeySpec::Rsa(bits), None, None).unwrap();
        assert_eq!(key.public().bits(), u32::from(bits));
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            verify_rsa(&key, SignScheme::RsaPkcs1(hash), hash, b"msg");
            let pss = SignScheme::RsaPss {
                hash,
                mgf1: hash,
                salt_len: hash.len(),
            };
            verify_rsa(&key, pss, hash, b"msg");
        }
        let pkey = common::openssl_public(&key.public().key);
        for (padding, label) in [
            (
                RsaPadding::Oaep {
                    hash: Hash::Sha1,
                    mgf1: Hash::Sha1,
                },
                &b""[..],
            ),
            (
                RsaPadding::Oaep {
                    hash: Hash::Sha256,
                    mgf1: Hash::Sha256,
                },
                &b"a label"[..],
            ),
            (RsaPadding::Pkcs1, &b""[..]),
        ] {
            let mut enc = Encrypter::new(&pkey).unwrap();
            match padding {
                RsaPadding::Oaep { hash, .. } => {
                    enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
                    enc.set_rsa_oaep_md(md(hash)).unwrap();
                    enc.set_rsa_mgf1_md(md(hash)).unwrap();
                    if !label.is_empty() {
                        enc.set_rsa_oaep_label(label).unwrap();
                    }
                }
                _ => enc.set_rsa_padding(Padding::PKCS1).unwrap(),
            }
            let mut ct = vec![0u8; enc.encrypt_len(b"secret").unwrap()];
            let n = enc.encrypt(b"secret", &mut ct).unwrap();
            ct.truncate(n);
            assert_eq!(&key.decrypt(padding, label, &ct).unwrap()[..], b"secret");
            if let RsaPadding::Oaep { .. } = padding {
                assert!(key.decrypt(padding, b"other label", &ct).is_err());
            }
        }
    }
}

#[test]
fn rsa_4096_is_a_clear_error() {
    let _tpm = common::tpm();
    let e = TpmKey::generate(KeySpec::Rsa(4096), None, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("TPM2_Create") && (e.contains("VALUE") || e.contains("KEY_SIZE")),
        "{e}"
    );
}

#[test]
fn password_keys_are_da_protected_and_check_the_password() {
    let _tpm = common::tpm();
    let key = TpmKey::generate(KeySpec::EcP256, Some(b"correct horse"), None).unwrap();
    assert!(!key.public().no_da);
    assert!(key.needs_password());
    verify_ecdsa(&key, Hash::Sha256, b"m");
    let file = key.key_file().unwrap();
    assert!(!file.empty_auth);
    let mut wrong = TpmKey::from_key_file(&file, Some(b"wrong")).unwrap();
    let e = wrong
        .sign(SignScheme::Ecdsa(Hash::Sha256), &[0u8; 32])
        .unwrap_err();
    assert!(e.is_bad_auth(), "{e}");
    assert!(e.to_string().contains("wrong password"), "{e}");
    wrong.set_password(b"correct horse");
    verify_ecdsa(&wrong, Hash::Sha256, b"m");
}

#[test]
fn persist_use_and_evict() {
    let tpm = common::tpm();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    let persistent = key.persist(0x8100_0100).unwrap();
    verify_ecdsa(&persistent, Hash::Sha256, b"persistent");
    let again = TpmKey::from_persistent(0x8100_0100, None).unwrap();
    assert_eq!(again.public().key, key.public().key);
    verify_ecdsa(&again, Hash::Sha256, b"again");
    let out = tpm
        .swtpm
        .tpm2_tools(["tpm2_readpublic", "-c", "0x81000100"]);
    assert!(out.status.success());
    tpmkey::keys::evict_persistent(0x8100_0100).unwrap();
    let e = TpmKey::from_persistent(0x8100_0100, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("HANDLE") || e.contains("not loaded"), "{e}");
    let e = TpmKey::from_persistent(0x1234, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a persistent handle"), "{e}");
}

#[test]
fn random_bytes_come_from_the_tpm() {
    let (_tpm, tap) = common::tapped_tpm(&[("objects", "keep")]);
    let mut a = [0u8; 200];
    let mut b = [0u8; 200];
    tpmkey::keys::random(&mut a).unwrap();
    tpmkey::keys::random(&mut b).unwrap();
    assert_ne!(a, b);
    // The bytes came from TPM2_GetRandom (at most 64 per command), not from the host.
    let get_random = tpmkey::wire::CommandCode::GetRandom as u32;
    let calls = tap
        .take_log()
        .iter()
        .filter(|(c, _)| common::wire_tap::command_code(c) == get_random)
        .count();
    assert!(calls >= 8, "{calls} TPM2_GetRandom commands for 400 bytes");
}

#[test]
fn key_file_round_trip_loads_in_a_new_connection() {
    let _tpm = common::tpm();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    let pem = key.key_file().unwrap().to_pem();
    tpmkey::connection::shutdown();
    let file = tpmkey::KeyFile::from_pem(pem.as_bytes()).unwrap();
    let loaded = TpmKey::from_key_file(&file, None).unwrap();
    verify_ecdsa(&loaded, Hash::Sha256, b"reloaded");
    let PublicKey::Ec { .. } = loaded.public().key else {
        panic!()
    };
}

#[test]
fn keys_under_a_persistent_storage_key() {
    let tpm = common::tpm();
    common::persistent_storage_key(&tpm.swtpm, "0x81000001");
    tpmkey::connection::configure(&[("tcti", &tpm.swtpm.tcti()), ("parent", "0x81000001")])
        .unwrap();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    let file = key.key_file().unwrap();
    assert_eq!(file.parent, 0x8100_0001);
    verify_ecdsa(&key, Hash::Sha256, b"under a persistent parent");
    // The same file loads in a process that salts with the transient primary.
    tpmkey::connection::configure(&[("tcti", &tpm.swtpm.tcti())]).unwrap();
    let again = TpmKey::from_key_file(&file, None).unwrap();
    verify_ecdsa(&again, Hash::Sha256, b"transient salt, persistent parent");
}
