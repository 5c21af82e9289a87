//! Sealed data objects against a real swtpm: seal, unseal, wrong authValue, change of
//! authValue, and the TSS2 sealed-data file form.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use tpmkey::sealed::SealedData;
use tpmkey::KeyFile;

#[test]
fn seal_unseal_change_auth() {
    let _tpm = common::tpm();
    let secret = [7u8; 32];
    let sealed = SealedData::seal(&secret, b"first", true, None).unwrap();
    assert!(sealed.is_da_protected());
    assert_eq!(sealed.unseal(b"first").unwrap().as_slice(), &secret);

    let wrong = sealed.unseal(b"second").unwrap_err();
    assert!(wrong.is_bad_auth(), "{wrong}");

    let changed = sealed.change_auth(b"first", b"second").unwrap();
    assert_eq!(changed.unseal(b"second").unwrap().as_slice(), &secret);
    assert!(changed.unseal(b"first").unwrap_err().is_bad_auth());
    let refused = sealed.change_auth(b"nope", b"x").unwrap_err();
    assert!(refused.is_bad_auth(), "{refused}");

    // Through its TSS2 file (sealed data OID), as the token store keeps it.
    let pem = changed.key_file().to_pem();
    assert!(pem.contains("TSS2 PRIVATE KEY"));
    let back = SealedData::from_key_file(&KeyFile::from_pem(pem.as_bytes()).unwrap()).unwrap();
    assert_eq!(back.unseal(b"second").unwrap().as_slice(), &secret);
}

#[test]
fn no_da_objects_and_limits() {
    let _tpm = common::tpm();
    let sealed = SealedData::seal(b"value", &[1u8; 32], false, None).unwrap();
    assert!(!sealed.is_da_protected());
    assert_eq!(sealed.unseal(&[1u8; 32]).unwrap().as_slice(), b"value");
    assert!(SealedData::seal(&[0u8; 129], b"", false, None).is_err());
    assert!(SealedData::seal(b"", b"", false, None).is_err());
    // A key file is not sealed data.
    let key = tpmkey::TpmKey::generate(tpmkey::KeySpec::EcP256, None, None).unwrap();
    assert!(SealedData::from_key_file(&key.key_file().unwrap()).is_err());
}
