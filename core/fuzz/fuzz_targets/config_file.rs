//! Fuzzes the configuration file parser (`key = value` lines): no input may panic, and a
//! file that parses parses the same when read again.
//!
//! Run from core/: `cargo +nightly fuzz run config_file`

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tpmkey::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/tpmkey.conf");
    if let Ok(c) = Config::from_file_text(path, text) {
        let again = Config::from_file_text(path, text).expect("parses twice");
        assert_eq!(format!("{c:?}"), format!("{again:?}"));
        let _ = c.object_policy();
    }
});
