//! Which key salts the session, and what is left in the TPM after errors (security review
//! findings 1, 3 and 9): a persistent key's unauthenticated public area never salts; the
//! storage key is pinned on first use and a different one is refused; a wrong handle is the
//! caller's error and leaks no session.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use tpmkey::hash::Hash;
use tpmkey::{KeySpec, SignScheme, TpmKey};
use tpmkey_testenv::TpmEndpoint;

fn sign(key: &TpmKey) -> tpmkey::Result<tpmkey::Signature> {
    key.sign(SignScheme::Ecdsa(Hash::Sha256), &[7u8; 32])
}

/// Finding 1: `handle:` ECC P-256 keys used to salt the session with the public area that an
/// unauthenticated ReadPublic returned, bypassing `storage-key-name`.
#[test]
fn persistent_key_never_salts_past_the_pin() {
    let t = common::tpm();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    assert!(
        key.public().can_decrypt,
        "the key must be one that could salt"
    );
    key.persist(0x8100_0010).unwrap();
    let wrong = format!("000b{}", "ab".repeat(32));
    let tcti = t.swtpm.tcti();
    tpmkey::connection::configure(&[("tcti", tcti.as_str()), ("storage-key-name", &wrong)])
        .unwrap();
    let key = TpmKey::from_persistent(0x8100_0010, None).unwrap();
    let e = sign(&key).unwrap_err().to_string();
    assert!(
        e.contains("does not match the pinned storage-key-name"),
        "a persistent key signed past a wrong storage-key-name: {e}"
    );
    // With the pin removed it works, salted by the storage key.
    tpmkey::connection::configure(&[("tcti", tcti.as_str())]).unwrap();
    let key = TpmKey::from_persistent(0x8100_0010, None).unwrap();
    sign(&key).unwrap();
    tpmkey::keys::evict_persistent(0x8100_0010).unwrap();
}

/// Finding 9: the storage key's Name is recorded on first use and a different one refused,
/// with a message that says how to re-pin after a TPM clear.
#[test]
fn storage_key_is_pinned_on_first_use() {
    let t = common::tpm();
    let state = tpmkey_testenv::TempDir::new("pin-state");
    let store = state.path();
    let tcti = t.swtpm.tcti();
    let settings = [("tcti", tcti.as_str()), ("state", store.to_str().unwrap())];
    tpmkey::connection::configure(&settings).unwrap();
    let key = TpmKey::generate(KeySpec::EcP256, Some(b"pw"), None).unwrap();
    sign(&key).unwrap();
    let records: Vec<_> = std::fs::read_dir(store.join("storage-keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    let recorded = std::fs::read_to_string(record).unwrap();
    assert_eq!(
        recorded.trim().len(),
        68,
        "a SHA-256 Name in hex: {recorded}"
    );

    // Another storage key answering for this TPM (here: a record that disagrees).
    std::fs::write(record, format!("000b{}\n", "cd".repeat(32))).unwrap();
    tpmkey::connection::configure(&settings).unwrap();
    let e = TpmKey::generate(KeySpec::EcP256, Some(b"pw"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("was recorded for this TPM") && e.contains("delete that file"),
        "{e}"
    );
    let lockout = t
        .swtpm
        .tpm2_tools_ok(["tpm2_getcap", "properties-variable"])
        .stdout;
    assert!(
        String::from_utf8_lossy(&lockout).contains("TPM2_PT_LOCKOUT_COUNTER: 0x0"),
        "a refused storage key must cost no dictionary-attack count"
    );
    // Re-pin as the message says.
    std::fs::remove_file(record).unwrap();
    tpmkey::connection::configure(&settings).unwrap();
    let key = TpmKey::generate(KeySpec::EcP256, Some(b"pw"), None).unwrap();
    sign(&key).unwrap();
    assert_eq!(std::fs::read_to_string(record).unwrap(), recorded);
}

/// Finding 3: a wrong persistent handle used to count as a lost connection; the reconnect
/// left the session in the TPM, and after about 64 of them no process could start one.
#[test]
fn wrong_handles_leak_no_sessions() {
    let t = common::tpm();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    sign(&key).unwrap();
    for _ in 0..200 {
        let e = TpmKey::from_persistent(0x8100_0099, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HANDLE"), "{e}");
    }
    sign(&key).unwrap();
    tpmkey::connection::shutdown();
    let left = tpmkey_testenv::leftovers(&t.swtpm);
    assert!(left.is_empty(), "after 200 wrong handles: {left:?}");
}
