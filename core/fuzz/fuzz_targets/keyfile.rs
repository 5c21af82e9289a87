//! Fuzzes the TSS2 PRIVATE KEY parser: no input may panic, and whatever parses must survive
//! a round trip through strict DER (and PEM) unchanged.
//!
//! Run from core/: `cargo +nightly fuzz run keyfile`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmkey::keyfile::KeyFile;

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
    }
});
