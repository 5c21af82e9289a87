//! A hardware TPM's RSA-PSS with the maximum salt, emulated by the wire tap
//! (`fault::max_salt_pss`) on a sign-only imported key whose private half the test holds,
//! with the session off so the tap can replace the signature. tpmkey refuses a salt it did
//! not ask for, takes the maximum when it asked for it, and never returns a TPM-made PSS
//! signature that does not verify.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Verifier};
use tpmkey::hash::Hash;
use tpmkey::import::{self, SoftwareKey};
use tpmkey::{Error, SignScheme, Signature, TpmKey};
use tpmkey_testenv::{fault, Area, Fault, FaultPlan, TempDir};

const SIGN: u32 = 0x15D;
const MESSAGE: &[u8] = b"max salt";

struct SignOnly {
    _tpm: common::TestTpm,
    tap: common::wire_tap::WireTap,
    dir: TempDir,
    key: TpmKey,
}

impl SignOnly {
    fn private_pem(&self) -> std::path::PathBuf {
        self.dir.path().join("soft.pem")
    }
}

/// A software RSA-2048 key imported sign-only (through the salted session, which an
/// import needs), then used with the session off through the tap.
fn sign_only_key() -> SignOnly {
    let (tpm, tap) = common::tapped_tpm(&[]);
    let dir = TempDir::new("max-salt");
    let pem = PKey::from_rsa(Rsa::generate(2048).unwrap())
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
    std::fs::write(dir.path().join("soft.pem"), &pem).unwrap();
    let soft = SoftwareKey::from_pem(&pem).unwrap().sign_only();
    let file = import::import(&soft, None, None).unwrap();
    let tcti = tap.tcti();
    tpmkey::connection::configure(&[("tcti", tcti.as_str()), ("session", "off")]).unwrap();
    let key = TpmKey::from_key_file(&file, None).unwrap();
    assert!(key.public().can_sign && !key.public().can_decrypt);
    SignOnly {
        _tpm: tpm,
        tap,
        dir,
        key,
    }
}

fn pss(salt_len: usize) -> SignScheme {
    SignScheme::RsaPss {
        hash: Hash::Sha256,
        mgf1: Hash::Sha256,
        salt_len,
    }
}

fn sign(key: &TpmKey, salt_len: usize) -> tpmkey::Result<Vec<u8>> {
    match key.sign(pss(salt_len), &Hash::Sha256.digest(&[MESSAGE]))? {
        Signature::Rsa(sig) => Ok(sig),
        other => panic!("not an RSA signature: {other:?}"),
    }
}

/// Whether OpenSSL (software only) accepts `sig` over MESSAGE with this salt setting.
fn verifies(key: &TpmKey, sig: &[u8], salt: RsaPssSaltlen) -> bool {
    let public = common::openssl_public(&key.public().key);
    let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
    v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    v.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    v.set_rsa_pss_saltlen(salt).unwrap();
    v.update(MESSAGE).unwrap();
    v.verify(sig).unwrap_or(false)
}

#[test]
fn a_max_salt_tpm_is_refused_for_the_digest_length_and_taken_for_the_maximum() {
    let k = sign_only_key();
    k.tap.tamper_exchange(fault::max_salt_pss(&k.private_pem()));
    k.tap.take_log();
    let e = sign(&k.key, 32).expect_err("a 222-byte salt returned for a 32-byte request");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    let text = e.to_string();
    for part in [
        "222-byte salt",
        "32 was asked for",
        "TLS 1.3",
        "decrypt attribute",
    ] {
        assert!(text.contains(part), "{part:?} not in: {text}");
    }
    // One TPM2_Sign (after the key's load), no retry behind the error.
    let codes = k.tap.take_codes();
    assert_eq!(
        codes.iter().filter(|c| **c == SIGN).count(),
        1,
        "{codes:x?}"
    );

    let sig = sign(&k.key, 222).unwrap();
    assert!(verifies(&k.key, &sig, RsaPssSaltlen::MAXIMUM_LENGTH));
    assert!(!verifies(&k.key, &sig, RsaPssSaltlen::DIGEST_LENGTH));
}

#[test]
fn swtpm_digest_length_salt_works_and_the_maximum_is_refused_there() {
    let k = sign_only_key();
    let sig = sign(&k.key, 32).unwrap();
    assert!(verifies(&k.key, &sig, RsaPssSaltlen::DIGEST_LENGTH));
    let e = sign(&k.key, 222).expect_err("swtpm salts with the digest length");
    assert!(
        e.to_string().contains("32-byte salt; 222 was asked for"),
        "{e}"
    );
    // A salt neither TPM behaviour gives is refused before the TPM is asked.
    k.tap.take_log();
    assert!(matches!(sign(&k.key, 20), Err(Error::Unsupported(_))));
    assert_eq!(k.tap.take_codes(), Vec::<u32>::new());
}

#[test]
fn a_tpm_pss_signature_altered_on_the_bus_is_refused() {
    let k = sign_only_key();
    for offset in [6, 100, 6 + 255] {
        k.tap.inject(FaultPlan::on(
            SIGN,
            0,
            Fault::Flip(Area::Parameters, offset),
        ));
        let e = sign(&k.key, 32).expect_err("an altered signature was returned");
        assert!(matches!(e, Error::Integrity(_)), "{offset}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("TPM2_Sign") && text.contains("does not verify"),
            "{offset}: {text}"
        );
        let sig = sign(&k.key, 32).unwrap();
        assert!(verifies(&k.key, &sig, RsaPssSaltlen::DIGEST_LENGTH));
    }
}
