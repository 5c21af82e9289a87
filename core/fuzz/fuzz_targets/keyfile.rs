//! Fuzzes the TSS2 PRIVATE KEY parser and its policy fields: no input may panic, whatever
//! parses must survive a round trip through strict DER (and PEM) unchanged, and policy
//! statements that decode must encode back to the bytes they came from.
//!
//! Run from core/: `cargo +nightly fuzz run keyfile`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmkey::keyfile::KeyFile;
use tpmkey::policy::{KeyPolicy, SignedPolicy, Statement};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = KeyFile::from_pem_or_der(data) {
        let der = key.to_der();
        let again = KeyFile::from_der(&der).expect("to_der output must parse");
        assert_eq!(again, key, "from_der(to_der(k)) != k");
        // Strict DER is canonical: encoding the re-read key gives the same bytes.
        assert_eq!(again.to_der(), der, "to_der is not canonical");
        let from_pem =
            KeyFile::from_pem(key.to_pem().as_bytes()).expect("to_pem output must parse");
        assert_eq!(from_pem, key, "from_pem(to_pem(k)) != k");

        // Policy fields: each statement that decodes encodes back to its stored bytes.
        let lists = key
            .policy
            .iter()
            .chain(key.signed_policies().iter().map(|e| &e.policy));
        for list in lists {
            for stored in list {
                if let Ok(st) = Statement::decode(stored, "fuzz") {
                    let enc = st.encode().expect("a decoded statement encodes");
                    assert_eq!(&enc, stored, "statement does not encode back: {st}");
                    let _ = tpmkey::policy::policy_digest(std::slice::from_ref(&st));
                }
            }
        }
        for entry in key.signed_policies() {
            let _ = SignedPolicy::decode(entry, "fuzz");
        }
        if let Ok(Some(p)) = KeyPolicy::from_key_file(&key) {
            let _ = p.auth_policy_digest();
        }
    }
    // The bytes as a bare statement body of each policy command.
    for code in [
        0x151u32, 0x16A, 0x16B, 0x16C, 0x16D, 0x16F, 0x171, 0x17F, 0x18C,
    ] {
        let stored = tpmkey::keyfile::TpmPolicy {
            command_code: code,
            command_policy: data.to_vec(),
        };
        if let Ok(st) = Statement::decode(&stored, "fuzz") {
            assert_eq!(st.encode().expect("encodes"), stored, "{st}");
        }
    }
});
