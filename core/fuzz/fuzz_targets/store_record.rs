//! Fuzzes the token store's object record decoder. The fuzzer's bytes are a record body;
//! the target appends the checksum a stored record carries, so the decoder behind the
//! checksum is reached. No input may panic, and what decodes encodes to a record that
//! decodes to the same value.
//!
//! Run from core/: `cargo +nightly fuzz run store_record`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmkey::session_crypto::{SessionCrypto, CRYPTO};
use tpmkey::store::record::Record;

fuzz_target!(|data: &[u8]| {
    let _ = Record::decode(data);
    let mut stored = data.to_vec();
    stored.extend_from_slice(&CRYPTO.sha256(&[data]));
    if let Ok(record) = Record::decode(&stored) {
        let again = Record::decode(&record.encode()).expect("encode output decodes");
        assert_eq!(again, record, "decode(encode(r)) != r");
    }
});
