//! The built module driven black-box through the `cryptoki` crate against a real swtpm:
//! tokens and TPM-checked PINs, key pairs, every signature mechanism, decryption, ECDH,
//! attributes, error codes, threads, persistence and TPM command counts.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

const P256_OID: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];

fn ec_pair(s: &Session, oid: &[u8], label: &str) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::EcParams(oid.to_vec()),
            Attribute::Label(label.into()),
        ],
        &[Attribute::Token(true), Attribute::Label(label.into())],
    )
    .unwrap()
}

fn rsa_pair(s: &Session, bits: u64, label: &str) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::ModulusBits(bits.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Label(label.into()),
        ],
        &[Attribute::Token(true), Attribute::Label(label.into())],
    )
    .unwrap()
}

fn sha(m: MechanismType, data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match m {
        MechanismType::SHA256 => sha2::Sha256::digest(data).to_vec(),
        MechanismType::SHA384 => sha2::Sha384::digest(data).to_vec(),
        _ => unreachable!(),
    }
}

#[test]
fn exports_only_the_entry_points() {
    let out = tpmkey_testenv::run(
        std::process::Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(module_path()),
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["C_GetFunctionList", "C_GetInterface", "C_GetInterfaceList"]
    );
}

#[test]
fn token_pins_checked_by_the_tpm() {
    let _env = TestEnv::new("per-operation");
    let p = load();
    assert!(token_slots(&p).is_empty());
    assert_eq!(p.get_all_slots().unwrap().len(), 1);
    let slot = init_token(&p, "pins");
    assert_eq!(token_slots(&p), vec![slot]);
    assert_eq!(
        p.get_all_slots().unwrap().len(),
        2,
        "one uninitialised token stays"
    );

    let info = p.get_token_info(slot).unwrap();
    assert_eq!(info.label(), "pins");
    assert!(info.token_initialized() && info.user_pin_initialized() && info.login_required());
    assert!(
        info.manufacturer_id().starts_with("TPM IBM"),
        "{}",
        info.manufacturer_id()
    );
    assert!(!info.user_pin_count_low());

    let s = p.open_rw_session(slot).unwrap();
    let wrong = s
        .login(UserType::User, Some(&AuthPin::new("000000".into())))
        .unwrap_err();
    assert_eq!(rv(wrong), RvError::PinIncorrect);
    // The token counted the failure: its flags show it until a successful login.
    assert!(p.get_token_info(slot).unwrap().user_pin_count_low());

    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    assert!(!p.get_token_info(slot).unwrap().user_pin_count_low());
    assert_eq!(
        rv(
            s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
                .unwrap_err()
        ),
        RvError::UserAlreadyLoggedIn
    );
    assert_eq!(
        rv(s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
            .unwrap_err()),
        RvError::UserAnotherAlreadyLoggedIn
    );
    s.set_pin(
        &AuthPin::new(USER_PIN.into()),
        &AuthPin::new("654321".into()),
    )
    .unwrap();
    s.logout().unwrap();
    assert_eq!(
        rv(
            s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
                .unwrap_err()
        ),
        RvError::PinIncorrect
    );
    s.login(UserType::User, Some(&AuthPin::new("654321".into())))
        .unwrap();
    s.logout().unwrap();
    assert_eq!(rv(s.logout().unwrap_err()), RvError::UserNotLoggedIn);

    // The wrong old PIN was followed by a successful login: after a new C_Initialize the
    // token still shows no wrong PIN.
    drop(s);
    p.finalize().unwrap();
    let p = load();
    let info = p.get_token_info(slot).unwrap();
    assert!(info.manufacturer_id().starts_with("TPM IBM"));
    assert!(!info.user_pin_count_low());
}

#[test]
fn keys_sign_verify_every_mechanism() {
    let _env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "sign");
    let s = user_session(&p, slot);
    let data = b"the quick brown fox";

    for (oid, hash, ecdsa_sha) in [
        (P256_OID, MechanismType::SHA256, Mechanism::EcdsaSha256),
        (P384_OID, MechanismType::SHA384, Mechanism::EcdsaSha384),
    ] {
        let (public, private) = ec_pair(&s, oid, "ec");
        for m in [
            Mechanism::EcdsaSha1,
            Mechanism::EcdsaSha256,
            Mechanism::EcdsaSha384,
            Mechanism::EcdsaSha512,
        ] {
            let sig = s.sign(&m, private, data).unwrap();
            s.verify(&m, public, data, &sig).unwrap();
        }
        let digest = sha(hash, data);
        let sig = s.sign(&Mechanism::Ecdsa, private, &digest).unwrap();
        s.verify(&ecdsa_sha, public, data, &sig).unwrap();
        let mut bad = sig.clone();
        bad[5] ^= 1;
        assert_eq!(
            rv(s.verify(&Mechanism::Ecdsa, public, &digest, &bad)
                .unwrap_err()),
            RvError::SignatureInvalid
        );
        // Multi-part.
        s.sign_init(&ecdsa_sha, private).unwrap();
        s.sign_update(&data[..5]).unwrap();
        s.sign_update(&data[5..]).unwrap();
        let sig = s.sign_final().unwrap();
        s.verify(&ecdsa_sha, public, data, &sig).unwrap();
        // An RSA mechanism on an EC key; a public key to sign.
        assert_eq!(
            rv(s.sign(&Mechanism::RsaPkcs, private, data).unwrap_err()),
            RvError::KeyTypeInconsistent
        );
        assert_eq!(
            rv(s.sign(&Mechanism::EcdsaSha256, public, data).unwrap_err()),
            RvError::KeyTypeInconsistent
        );
    }

    let (public, private) = rsa_pair(&s, 2048, "rsa");
    let pss = PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    };
    for m in [
        Mechanism::Sha1RsaPkcs,
        Mechanism::Sha256RsaPkcs,
        Mechanism::Sha384RsaPkcs,
        Mechanism::Sha512RsaPkcs,
        Mechanism::Sha256RsaPkcsPss(pss),
    ] {
        let sig = s.sign(&m, private, data).unwrap();
        assert_eq!(sig.len(), 256);
        s.verify(&m, public, data, &sig).unwrap();
    }
    let digest = sha(MechanismType::SHA256, data);
    for salt in [0u64, 32, 64] {
        let params = PkcsPssParams {
            s_len: salt.into(),
            ..pss
        };
        let sig = s
            .sign(&Mechanism::RsaPkcsPss(params), private, &digest)
            .unwrap();
        s.verify(&Mechanism::RsaPkcsPss(params), public, &digest, &sig)
            .unwrap();
    }
    // CKM_RSA_PKCS signs a DigestInfo built by the caller.
    let mut info = tpmkey::hash::Hash::Sha256.digest_info_prefix().to_vec();
    info.extend_from_slice(&digest);
    let sig = s.sign(&Mechanism::RsaPkcs, private, &info).unwrap();
    s.verify(&Mechanism::Sha256RsaPkcs, public, data, &sig)
        .unwrap();
    assert_eq!(
        rv(s.sign(&Mechanism::RsaPkcs, private, &[0u8; 250])
            .unwrap_err()),
        RvError::DataLenRange
    );
    assert_eq!(
        rv(s.sign(&Mechanism::EcdsaSha256, private, data).unwrap_err()),
        RvError::KeyTypeInconsistent
    );
    let bad_pss = PkcsPssParams {
        s_len: 1000.into(),
        ..pss
    };
    assert_eq!(
        rv(s.sign(&Mechanism::RsaPkcsPss(bad_pss), private, &digest)
            .unwrap_err()),
        RvError::MechanismParamInvalid
    );
    assert_eq!(
        rv(s.sign(&Mechanism::AesCbc([0; 16]), private, data)
            .unwrap_err()),
        RvError::MechanismInvalid
    );
}

#[test]
fn rsa_3072_and_decryption() {
    let _env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "rsa");
    let s = user_session(&p, slot);
    let (public, private) = rsa_pair(&s, 3072, "rsa3072");
    let bits = s
        .get_attributes(public, &[AttributeType::ModulusBits])
        .unwrap();
    assert!(matches!(bits[0], Attribute::ModulusBits(b) if u64::from(b) == 3072));

    let secret = b"session key bytes";
    let enc = s.encrypt(&Mechanism::RsaPkcs, public, secret).unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, private, &enc).unwrap(),
        secret
    );

    let label = b"my label";
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::data_specified(label),
    );
    let enc = s
        .encrypt(&Mechanism::RsaPkcsOaep(oaep), public, secret)
        .unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcsOaep(oaep), private, &enc)
            .unwrap(),
        secret
    );
    let other = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::data_specified(b"other"),
    );
    assert_eq!(
        rv(s.decrypt(&Mechanism::RsaPkcsOaep(other), private, &enc)
            .unwrap_err()),
        RvError::EncryptedDataInvalid
    );
    assert_eq!(
        rv(s.decrypt(&Mechanism::RsaPkcs, private, &enc[1..])
            .unwrap_err()),
        RvError::EncryptedDataLenRange
    );
}

#[test]
fn attributes_find_and_objects() {
    let _env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "attrs");
    let s = user_session(&p, slot);
    let (public, private) = ec_pair(&s, P256_OID, "mine");

    let attrs = s
        .get_attributes(
            public,
            &[
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::PublicKeyInfo,
                AttributeType::Id,
                AttributeType::AllowedMechanisms,
            ],
        )
        .unwrap();
    let Attribute::EcPoint(point) = &attrs[1] else {
        panic!("{attrs:?}")
    };
    assert_eq!(
        point[..3],
        [0x04, 65, 0x04],
        "DER OCTET STRING of an uncompressed point"
    );
    let Attribute::PublicKeyInfo(spki) = &attrs[2] else {
        panic!()
    };
    assert!(p256::PublicKey::from_sec1_bytes(&point[2..]).is_ok());
    assert_eq!(spki[spki.len() - 65..], point[2..]);
    let Attribute::AllowedMechanisms(mechs) = &attrs[4] else {
        panic!()
    };
    assert!(mechs.contains(&MechanismType::ECDSA));

    // The private value is sensitive; the label and id can change.
    let secret = s.get_attributes(private, &[AttributeType::Value]).unwrap();
    assert!(
        secret.is_empty(),
        "sensitive attributes are not returned: {secret:?}"
    );
    s.update_attributes(
        private,
        &[Attribute::Label("renamed".into()), Attribute::Id(vec![7])],
    )
    .unwrap();
    let found = s
        .find_objects(&[
            Attribute::Label("renamed".into()),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
        ])
        .unwrap();
    assert_eq!(found, vec![private]);
    assert!(s
        .find_objects(&[Attribute::KeyType(KeyType::RSA)])
        .unwrap()
        .is_empty());

    // Certificates and data objects; a private data object's value is sealed by the TPM.
    let cert = s
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Value(b"not really DER".to_vec()),
            Attribute::Id(vec![7]),
        ])
        .unwrap();
    let data = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label("secret".into()),
            Attribute::Value(b"sealed-value-0123456789".to_vec()),
        ])
        .unwrap();
    let value = s.get_attributes(data, &[AttributeType::Value]).unwrap();
    assert!(matches!(&value[0], Attribute::Value(v) if v == b"sealed-value-0123456789"));
    let on_disk: Vec<u8> = walk(&_env.store.0)
        .into_iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(!on_disk
        .windows(b"sealed-value".len())
        .any(|w| w == b"sealed-value"));
    assert_eq!(s.find_objects(&[Attribute::Id(vec![7])]).unwrap().len(), 2);

    // Logged out, private objects are invisible.
    s.logout().unwrap();
    let visible = s.find_objects(&[]).unwrap();
    assert!(visible.contains(&public) && visible.contains(&cert));
    assert!(!visible.contains(&private) && !visible.contains(&data));
    assert!(s
        .find_objects(&[Attribute::Label("secret".into())])
        .unwrap()
        .is_empty());
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    s.destroy_object(cert).unwrap();
    s.destroy_object(private).unwrap();
    let left = s.find_objects(&[]).unwrap();
    assert!(left.contains(&public) && !left.contains(&private) && !left.contains(&cert));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn ecdh_derive_and_random() {
    let _env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "ecdh");
    let s = user_session(&p, slot);
    let (public, private) = ec_pair(&s, P256_OID, "ecdh");
    let peer = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
    let peer_point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&peer.public_key(), false);
    let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point.as_bytes());
    let derived = s
        .derive_key(
            &Mechanism::Ecdh1Derive(params),
            private,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    let value = s.get_attributes(derived, &[AttributeType::Value]).unwrap();
    let Attribute::Value(z) = &value[0] else {
        panic!()
    };
    let point = s.get_attributes(public, &[AttributeType::EcPoint]).unwrap();
    let Attribute::EcPoint(point) = &point[0] else {
        panic!()
    };
    let ours = p256::PublicKey::from_sec1_bytes(&point[2..]).unwrap();
    let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), ours.as_affine());
    assert_eq!(z.as_slice(), expected.raw_secret_bytes().as_slice());

    let a = s.generate_random_vec(100).unwrap();
    let b = s.generate_random_vec(100).unwrap();
    assert_ne!(a, b);
    s.seed_random(b"more entropy").unwrap();
}

#[test]
fn four_threads_sign_with_own_and_shared_sessions() {
    let _env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "threads");
    let s = user_session(&p, slot);
    let (public, private) = ec_pair(&s, P256_OID, "t");
    let shared = Arc::new(std::sync::Mutex::new(s));
    let p = Arc::new(p);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let p: Arc<Pkcs11> = p.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                let own = p.open_ro_session(slot).unwrap();
                for n in 0..100u32 {
                    let data = format!("{i}-{n}");
                    let sig = if n % 2 == 0 {
                        own.sign(&Mechanism::EcdsaSha256, private, data.as_bytes())
                            .unwrap()
                    } else {
                        let s = shared.lock().unwrap();
                        s.sign(&Mechanism::EcdsaSha256, private, data.as_bytes())
                            .unwrap()
                    };
                    own.verify(&Mechanism::EcdsaSha256, public, data.as_bytes(), &sig)
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn persists_across_processes_and_tpm_restart() {
    let mut env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "persist");
    let s = user_session(&p, slot);
    let (public, _) = ec_pair(&s, P384_OID, "kept");
    let point = s.get_attributes(public, &[AttributeType::EcPoint]).unwrap();
    drop(s);
    p.finalize().unwrap();

    env.swtpm.restart();
    let p = load();
    let slot = token_slots(&p)[0];
    let s = user_session(&p, slot);
    let keys = s
        .find_objects(&[
            Attribute::Label("kept".into()),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
        ])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let public = s
        .find_objects(&[
            Attribute::Label("kept".into()),
            Attribute::Class(ObjectClass::PUBLIC_KEY),
        ])
        .unwrap()[0];
    assert_eq!(
        s.get_attributes(public, &[AttributeType::EcPoint]).unwrap(),
        point
    );
    let sig = s.sign(&Mechanism::EcdsaSha384, keys[0], b"x").unwrap();
    s.verify(&Mechanism::EcdsaSha384, public, b"x", &sig)
        .unwrap();
}

#[test]
fn tpm_commands_per_login_and_signature() {
    let env = TestEnv::new("keep");
    let p = load();
    let slot = init_token(&p, "count");
    let s = user_session(&p, slot);
    let (_, private) = ec_pair(&s, P256_OID, "c");
    drop(s);
    p.finalize().unwrap();

    let tap = tpmkey_testenv::WireTap::start(env.swtpm.port());
    std::env::set_var("TPMKEY_TCTI", tap.tcti());
    let p = load();
    // As applications do: find the token by its label first.
    assert_eq!(p.get_token_info(slot).unwrap().label(), "count");
    let s = p.open_ro_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let key = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()[0];
    let _ = private;
    s.sign(&Mechanism::EcdsaSha256, key, b"first").unwrap();
    let first_log = tap.take_log();
    let first: Vec<u32> = first_log
        .iter()
        .map(|(c, _)| u32::from_be_bytes([c[6], c[7], c[8], c[9]]))
        .collect();
    s.sign(&Mechanism::EcdsaSha256, key, b"second").unwrap();
    let second = tap.take_codes();
    eprintln!(
        "C_Initialize + C_GetTokenInfo + C_Login + first C_Sign: {} TPM commands {first:x?}",
        first.len()
    );
    eprintln!("next C_Sign: {} TPM commands {second:x?}", second.len());
    // CreatePrimary, StartAuthSession; the login: StartAuthSession of the policy session,
    // PolicySecret (the PIN index), PolicyAuthValue, NV_Read of the token secret from the
    // secret index (the policy session's last use: the TPM ends it, so a forked child that
    // logs in finds a session slot); the first C_Sign: Load, Sign. No PIN object to load
    // and flush: 8 commands.
    assert_eq!(
        first,
        vec![0x131, 0x176, 0x176, 0x151, 0x16B, 0x14E, 0x157, 0x15D]
    );
    // The first operation that no longer needs the storage key saves and flushes it.
    assert_eq!(second, vec![0x15D, 0x162, 0x165]);
    s.sign(&Mechanism::EcdsaSha256, key, b"third").unwrap();
    assert_eq!(tap.take_codes(), vec![0x15D], "one TPM2_Sign per signature");

    // A second login: the storage key back (ContextLoad: it salts the policy session), the
    // policy session, its two statements and the NV_Read. The token
    // secret never crosses the bus in clear: the NV_Read asks for its response to be
    // encrypted, and the 32 bytes it returns differ from one login to the next (session
    // nonces), while the secret is the same.
    s.logout().unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let again = tap.take_log();
    let codes: Vec<u32> = again
        .iter()
        .map(|(c, _)| u32::from_be_bytes([c[6], c[7], c[8], c[9]]))
        .collect();
    assert_eq!(codes, vec![0x161, 0x176, 0x151, 0x16B, 0x14E]);
    let nv_read = |log: &[(Vec<u8>, Vec<u8>)]| {
        let (cmd, rsp) = log
            .iter()
            .find(|(c, _)| c[6..10] == 0x14Eu32.to_be_bytes())
            .unwrap()
            .clone();
        // Handles (index twice), authorisation size, session handle, nonceCaller, attributes.
        let nonce_len = usize::from(u16::from_be_bytes([cmd[26], cmd[27]]));
        let attributes = cmd[28 + nonce_len];
        assert_eq!(attributes & 0x40, 0x40, "the NV_Read response is encrypted");
        assert_eq!(attributes & 0x01, 0, "the NV_Read ends the policy session");
        // Header, parameterSize, TPM2B size 32, then the data.
        assert_eq!(&rsp[14..16], &[0, 32]);
        rsp[16..48].to_vec()
    };
    assert_ne!(nv_read(&first_log), nv_read(&again));
}
