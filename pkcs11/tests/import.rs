//! Bringing existing TPM keys into a token: C_CreateObject of a private key with tpmkey's
//! vendor attributes (include/tpmkey_pkcs11.h) naming a TSS2 key file made by
//! `openssl genpkey -provider tpm2` (tpm2-openssl), a password-protected key file made by
//! tpmkey, or a persistent handle. The token key signs; the key file handed in keeps its
//! own password; a wrong password or a damaged file is CKR_ATTRIBUTE_VALUE_INVALID.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use tpmkey::{KeyFile, KeySpec, SignScheme, TpmKey};

const CKA_TPMKEY_VENDOR: u64 = 0x8000_0000 | 0x5450_4B00;
const CKA_TPMKEY_KEY_FILE: u64 = CKA_TPMKEY_VENDOR + 1;
const CKA_TPMKEY_PERSISTENT_HANDLE: u64 = CKA_TPMKEY_VENDOR + 2;
const CKA_TPMKEY_KEY_AUTH: u64 = CKA_TPMKEY_VENDOR + 3;

fn vendor(t: u64, value: Vec<u8>) -> Attribute {
    Attribute::VendorDefined((AttributeType::VendorDefined(t), value))
}

fn import(
    s: &Session,
    id: u8,
    source: Attribute,
    password: Option<&[u8]>,
) -> cryptoki::error::Result<ObjectHandle> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Token(true),
        Attribute::Id(vec![id]),
        Attribute::Label(format!("imported-{id}").into()),
        source,
    ];
    if let Some(p) = password {
        template.push(vendor(CKA_TPMKEY_KEY_AUTH, p.to_vec()));
    }
    s.create_object(&template)
}

fn spki(s: &Session, h: ObjectHandle) -> Vec<u8> {
    match s
        .get_attributes(h, &[AttributeType::PublicKeyInfo])
        .unwrap()
        .pop()
    {
        Some(Attribute::PublicKeyInfo(v)) => v,
        other => panic!("{other:?}"),
    }
}

/// Signs with the private key `id` and verifies with its public key object; returns the
/// public key object's CKA_PUBLIC_KEY_INFO.
fn signs(s: &Session, id: u8, mechanism: &Mechanism) -> Vec<u8> {
    let key = private_key(s, &[id]);
    let public = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(vec![id]),
        ])
        .unwrap()[0];
    let sig = s.sign(mechanism, key, b"imported").unwrap();
    s.verify(mechanism, public, b"imported", &sig).unwrap();
    assert_eq!(spki(s, key), spki(s, public));
    spki(s, public)
}

#[test]
fn imports_key_files_and_persistent_keys() {
    let env = TestEnv::new("per-operation");
    let dir = TempDir::new("import");
    // tpm2-openssl's key file: EC P-256 without a password.
    let openssl_key = dir.0.join("openssl-tpm2.pem");
    tpmkey_testenv::run(
        std::process::Command::new("openssl")
            .args(["genpkey", "-provider", "tpm2", "-algorithm", "EC"])
            .args(["-pkeyopt", "group:P-256", "-out"])
            .arg(&openssl_key)
            .env("TPM2OPENSSL_TCTI", env.swtpm.tcti()),
    );
    let openssl_public = tpmkey_testenv::run(
        std::process::Command::new("openssl")
            .args([
                "pkey",
                "-provider",
                "tpm2",
                "-provider",
                "default",
                "-pubout",
                "-outform",
                "DER",
                "-in",
            ])
            .arg(&openssl_key)
            .env("TPM2OPENSSL_TCTI", env.swtpm.tcti()),
    )
    .stdout;
    // tpmkey's own key file with a password, and a persistent key.
    let rsa = TpmKey::generate(KeySpec::Rsa(2048), Some(b"key password"), None).unwrap();
    let rsa_file = rsa.key_file().unwrap();
    let persistent = TpmKey::generate(KeySpec::EcP384, None, None)
        .unwrap()
        .persist(0x8100_0042)
        .unwrap();

    let p = load();
    let slot = init_token(&p, "import");
    let s = user_session(&p, slot);

    let wrong = import(
        &s,
        9,
        vendor(CKA_TPMKEY_KEY_FILE, rsa_file.to_pem().into_bytes()),
        Some(b"wrong"),
    )
    .unwrap_err();
    assert_eq!(rv(wrong), RvError::AttributeValueInvalid);
    let damaged = import(
        &s,
        9,
        vendor(CKA_TPMKEY_KEY_FILE, b"-----BEGIN TSS2".to_vec()),
        None,
    )
    .unwrap_err();
    assert_eq!(rv(damaged), RvError::AttributeValueInvalid);

    import(
        &s,
        1,
        vendor(CKA_TPMKEY_KEY_FILE, std::fs::read(&openssl_key).unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(signs(&s, 1, &Mechanism::EcdsaSha256), openssl_public);
    import(
        &s,
        2,
        vendor(CKA_TPMKEY_KEY_FILE, rsa_file.to_der()),
        Some(b"key password"),
    )
    .unwrap();
    signs(&s, 2, &Mechanism::Sha256RsaPkcs);
    import(
        &s,
        3,
        vendor(
            CKA_TPMKEY_PERSISTENT_HANDLE,
            0x8100_0042u64.to_ne_bytes().to_vec(),
        ),
        None,
    )
    .unwrap();
    signs(&s, 3, &Mechanism::EcdsaSha384);
    drop(s);
    p.finalize().unwrap();

    // The originals keep their own passwords.
    let original = TpmKey::from_key_file(&rsa_file, Some(b"key password")).unwrap();
    original
        .sign(SignScheme::RsaPkcs1(tpmkey::hash::Hash::Sha256), &[7; 32])
        .unwrap();
    persistent
        .sign(SignScheme::Ecdsa(tpmkey::hash::Hash::Sha384), &[7; 48])
        .unwrap();
    // The token's copies work in a new process run of the module, from the store alone.
    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    for (id, mechanism) in [
        (1, Mechanism::EcdsaSha256),
        (2, Mechanism::Sha256RsaPkcs),
        (3, Mechanism::EcdsaSha384),
    ] {
        signs(&s, id, &mechanism);
    }
    // The token's key files hold the new blobs, not the imported files.
    let stored: Vec<KeyFile> = std::fs::read_dir(&env.store.0)
        .unwrap()
        .flat_map(|t| std::fs::read_dir(t.unwrap().path().join("objects")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .map(|p| KeyFile::from_pem(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|k| k.private != rsa_file.private));
    tpmkey::keys::evict_persistent(0x8100_0042).unwrap();
}
