//! Issue 9 (security review) findings in the module, each driven through the built module
//! against a real swtpm: C_FindObjects with the largest count (finding 6), OAEP labels that
//! are not UTF-8, a pending plaintext bound to its ciphertext and token key files that
//! say their key has a password (finding 10), and CKM_RSA_PKCS decryption with implicit
//! rejection (finding 4).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// A swtpm and store, the module, a user session on a new token and an RSA-2048 key pair.
fn rsa_key(label: &str) -> (TestEnv, Pkcs11, Session, ObjectHandle, ObjectHandle) {
    let env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, label);
    let s = user_session(&p, slot);
    let (public, private) = rsa_pair(&s);
    (env, p, s, public, private)
}

fn rsa_pair(s: &Session) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
        ],
        &[Attribute::Token(true)],
    )
    .unwrap()
}

#[test]
fn find_objects_with_the_largest_count() {
    let _env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "find");
    let s = user_session(&p, slot);
    for i in 0..3u8 {
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Id(vec![i]),
        ])
        .unwrap();
    }
    let f = function_list();
    let mut handles = [0 as CK_OBJECT_HANDLE; 16];
    let mut count: CK_ULONG = 0;
    // SAFETY: a live session; `handles` has room for every object there is (the caller's
    // promise of CK_ULONG::MAX entries is what the module must not compute with).
    unsafe {
        assert_eq!(
            f.C_FindObjectsInit.unwrap()(s.handle(), std::ptr::null_mut(), 0),
            CKR_OK
        );
        let rv =
            f.C_FindObjects.unwrap()(s.handle(), handles.as_mut_ptr(), CK_ULONG::MAX, &mut count);
        assert_eq!(rv, CKR_OK, "C_FindObjects(max = ULONG_MAX)");
        assert_eq!(count, 3);
        let rv =
            f.C_FindObjects.unwrap()(s.handle(), handles.as_mut_ptr(), CK_ULONG::MAX, &mut count);
        assert_eq!((rv, count), (CKR_OK, 0));
        assert_eq!(f.C_FindObjectsFinal.unwrap()(s.handle()), CKR_OK);
    }
}

#[test]
fn oaep_labels_are_any_bytes() {
    let (_env, _p, s, public, private) = rsa_key("oaep");
    let label = [0xFFu8, 0x00, 0xC3, 0x28];
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::data_specified(&label),
    );
    let ct = s
        .encrypt(&Mechanism::RsaPkcsOaep(oaep), public, b"binary label")
        .unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcsOaep(oaep), private, &ct)
            .unwrap(),
        b"binary label"
    );
}

#[test]
fn a_pending_plaintext_belongs_to_its_ciphertext() {
    let (_env, _p, s, public, private) = rsa_key("pending");
    let first = s
        .encrypt(&Mechanism::RsaPkcs, public, b"the first secret")
        .unwrap();
    let second = s.encrypt(&Mechanism::RsaPkcs, public, b"second").unwrap();
    let f = function_list();
    let mut mech = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut out = [0u8; 256];
    // SAFETY: a live session and key; buffers with the lengths given.
    unsafe {
        assert_eq!(
            f.C_DecryptInit.unwrap()(s.handle(), &mut mech, private.handle()),
            CKR_OK
        );
        let mut len: CK_ULONG = 4;
        let rv = f.C_Decrypt.unwrap()(
            s.handle(),
            first.as_ptr() as *mut u8,
            first.len() as CK_ULONG,
            out.as_mut_ptr(),
            &mut len,
        );
        assert_eq!((rv, len), (CKR_BUFFER_TOO_SMALL, 16));
        // The next call hands in another ciphertext: it gets that one's plaintext.
        let mut len = out.len() as CK_ULONG;
        let rv = f.C_Decrypt.unwrap()(
            s.handle(),
            second.as_ptr() as *mut u8,
            second.len() as CK_ULONG,
            out.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_OK);
        assert_eq!(&out[..len as usize], b"second");
    }
}

#[test]
fn rsa_pkcs_decryption_rejects_implicitly() {
    let (_env, p, s, public, private) = rsa_key("reject");
    let ct = s
        .encrypt(&Mechanism::RsaPkcs, public, b"the secret")
        .unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, private, &ct).unwrap(),
        b"the secret"
    );
    let mut corrupt = ct.clone();
    corrupt[5] ^= 0x20;
    // CKR_OK with a synthetic message, the same each time (and in another session).
    let first = s.decrypt(&Mechanism::RsaPkcs, private, &corrupt).unwrap();
    let other_session = p.open_rw_session(token_slots(&p)[0]).unwrap();
    let second = other_session
        .decrypt(&Mechanism::RsaPkcs, private, &corrupt)
        .unwrap();
    assert_eq!(first, second);
    assert_ne!(first, b"the secret");
    corrupt[200] ^= 1;
    assert_ne!(
        s.decrypt(&Mechanism::RsaPkcs, private, &corrupt).unwrap(),
        first
    );
}

#[test]
fn token_key_files_say_their_key_has_an_auth_value() {
    let env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "auth");
    let s = user_session(&p, slot);
    rsa_pair(&s);
    let mut key_files = Vec::new();
    let mut dirs = vec![env.store.0.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "key") {
                key_files.push(path);
            }
        }
    }
    assert_eq!(key_files.len(), 1, "{key_files:?}");
    let file = tpmkey::KeyFile::from_pem(&std::fs::read(&key_files[0]).unwrap()).unwrap();
    assert!(
        !file.empty_auth,
        "{}: emptyAuth TRUE",
        key_files[0].display()
    );
}
