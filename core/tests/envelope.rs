//! Sealed secrets of any size against a real swtpm: up to 128 bytes in the sealed object,
//! beyond in an envelope whose key only the TPM gives back; the envelope authenticates its
//! sealed key and the caller's context.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use tpmkey::envelope::SealedSecret;
use tpmkey::KeyFile;

fn through_file(s: &SealedSecret) -> SealedSecret {
    let pem = s.key_file().to_pem();
    SealedSecret::from_key_file(&KeyFile::from_pem(pem.as_bytes()).unwrap()).unwrap()
}

#[test]
fn sizes_and_forms() {
    let _tpm = common::tpm();
    for len in [1usize, 128, 129, 4096, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let sealed = SealedSecret::seal(&data, b"pw", true, None).unwrap();
        assert_eq!(sealed.is_enveloped(), len > 128, "{len}");
        let back = through_file(&sealed);
        assert_eq!(back.envelope_data_len(), (len > 128).then_some(len));
        assert!(back.unseal(b"pw", &[]).unwrap().as_slice() == data, "{len}");
        assert!(back.unseal(b"nope", &[]).unwrap_err().is_bad_auth());
    }
    let empty = SealedSecret::seal(b"", b"", false, None).unwrap_err();
    assert!(empty.to_string().contains("empty"), "{empty}");
}

#[test]
fn envelope_authenticates_context_key_and_ciphertext() {
    let _tpm = common::tpm();
    let data = [0xA5u8; 40];
    let sealed = SealedSecret::seal_enveloped(&data, &[3; 32], false, None, b"object 1").unwrap();
    assert!(sealed.is_enveloped());
    assert_eq!(
        sealed.unseal(&[3; 32], b"object 1").unwrap().as_slice(),
        &data
    );
    let moved = sealed.unseal(&[3; 32], b"object 2").unwrap_err();
    assert!(matches!(moved, tpmkey::Error::Integrity(_)), "{moved}");

    // A flipped ciphertext bit, and a ciphertext put under another sealed key.
    let mut file = sealed.key_file();
    if let Some(e) = file.envelope.as_mut() {
        e.ciphertext[5] ^= 1;
    }
    let flipped = SealedSecret::from_key_file(&file).unwrap();
    assert!(matches!(
        flipped.unseal(&[3; 32], b"object 1"),
        Err(tpmkey::Error::Integrity(_))
    ));
    let other = SealedSecret::seal_enveloped(&data, &[3; 32], false, None, b"object 1").unwrap();
    let swapped = KeyFile {
        envelope: sealed.key_file().envelope,
        ..other.key_file()
    };
    let swapped = SealedSecret::from_key_file(&swapped).unwrap();
    assert!(matches!(
        swapped.unseal(&[3; 32], b"object 1"),
        Err(tpmkey::Error::Integrity(_))
    ));
}

/// A 32-byte secret bound to PCR 16, unsealed by a process that has not talked to the TPM
/// yet (`objects = keep`; per-operation adds a ContextSave of the loaded object):
/// CreatePrimary (the transient storage key), Load, StartAuthSession (the policy session,
/// salted with the storage key; no HMAC session), PolicyPCR, Unseal.
#[test]
fn pcr_bound_unseal_from_process_start_costs_five_commands() {
    let (_tpm, tap) = common::tapped_tpm(&[("objects", "keep")]);
    let sel = tpmkey::policy::PcrSelection::parse("sha256:16").unwrap();
    let values = tpmkey::keys::read_pcrs(&sel).unwrap();
    let pcr = tpmkey::policy::PolicyPcr::from_values(sel, &values).unwrap();
    let secret = [0x42u8; 32];
    let sealed = SealedSecret::seal_with_policy(
        &secret,
        &[],
        false,
        None,
        vec![tpmkey::policy::Statement::Pcr(pcr)],
    )
    .unwrap();
    let file = sealed.key_file();
    tpmkey::connection::shutdown();
    tap.take_codes();
    let back = SealedSecret::from_key_file(&file).unwrap();
    assert_eq!(back.unseal(&[], &[]).unwrap().as_slice(), secret);
    let codes = tap.take_codes();
    let until_unseal = codes.iter().position(|c| *c == 0x15E).unwrap() + 1;
    assert_eq!(
        &codes[..until_unseal],
        &[0x131, 0x157, 0x176, 0x17F, 0x15E],
        "{codes:x?}"
    );
}
