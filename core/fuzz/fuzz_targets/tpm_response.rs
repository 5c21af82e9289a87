//! Fuzzes the response parser of every TPM command tpmkey sends: an in-process TCTI
//! answers each command with the fuzzer's bytes (the first byte picks the command, the
//! rest is the response; a command sent after it gets TPM_RC_FAILURE). No input may
//! panic; the parsers work without sessions here
//! (the password authorisation is not checked), so every one of them is reached.
//!
//! Run from core/: `cargo +nightly fuzz run tpm_response`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmkey::commands::Tpm;
use tpmkey::public_key::KeyPublic;
use tpmkey::session::SaltKey;
use tpmkey::tcti::Tcti;
use tpmkey::wire::{TPM_ALG_ECDSA, TPM_ALG_OAEP, TPM_ALG_SHA256};

const HANDLE: u32 = 0x8000_0001;
const NAME: &[u8] = &[0, 0x0B, 1, 2, 3];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, response)) = data.split_first() else {
        return;
    };
    // The fuzzer's response once; then TPM_RC_FAILURE, which ends the retries that a
    // RETRY, YIELDED or TESTING answer starts (each after a sleep).
    let mut answers = vec![response.to_vec()];
    let failure = vec![0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];
    let mut tpm = Tpm::new(
        Tcti::scripted(move |_| answers.pop().unwrap_or_else(|| failure.clone())),
        false,
    );
    let point = SaltKey {
        x: vec![1; 32],
        y: vec![2; 32],
    };
    let _ = match pick % 16 {
        0 => tpm.start_salted_session(HANDLE, &point).map(|_| ()),
        1 => tpm.context_save(HANDLE).map(|_| ()),
        2 => tpm.context_load(&[0; 16]).map(|_| ()),
        3 => tpm.flush_context(HANDLE),
        4 => tpm.read_public(HANDLE).and_then(|(public, _)| {
            KeyPublic::parse(&public).map(|_| ())
        }),
        5 => tpm.get_capability(6, 0x100, 8).map(|_| ()),
        6 => tpm.create_primary(0x4000_0001, b"", &[0; 8]).map(|_| ()),
        7 => tpm.create(HANDLE, NAME, &b""[..], b"", b"", &[0; 8]).map(|_| ()),
        8 => tpm.load(HANDLE, NAME, &b""[..], &[0, 0], &[0, 0]).map(|_| ()),
        9 => tpm.load_before_session(HANDLE, &[0, 0], &[0, 0]).map(|_| ()),
        10 => tpm
            .sign(HANDLE, NAME, &b""[..], &[7; 32], TPM_ALG_ECDSA, TPM_ALG_SHA256)
            .map(|_| ()),
        11 => tpm
            .rsa_decrypt(HANDLE, NAME, &b""[..], &[3; 256], TPM_ALG_OAEP, TPM_ALG_SHA256, b"")
            .map(|_| ()),
        12 => tpm.ecdh_zgen(HANDLE, NAME, &b""[..], &[1; 32], &[2; 32]).map(|_| ()),
        13 => tpm.unseal(HANDLE, NAME, &b""[..]).map(|_| ()),
        14 => tpm
            .object_change_auth(HANDLE, NAME, &b""[..], HANDLE, NAME, b"new")
            .map(|_| ()),
        _ => tpm.get_random(32).map(|_| ()),
    };
});
