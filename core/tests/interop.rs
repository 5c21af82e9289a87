//! Key files interchange with Debian's tpm2-openssl both ways: its files load and sign
//! here, ours load and sign there. Signatures are checked by OpenSSL's default provider.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use tpmkey::hash::Hash;
use tpmkey::{KeyFile, KeySpec, SignScheme, Signature, TpmKey};
use tpmkey_testenv::run;

fn openssl_tpm2(tcti: &str) -> Command {
    let mut c = Command::new("openssl");
    c.env("TPM2OPENSSL_TCTI", tcti);
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tpmkey-interop-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn verify(key: &TpmKey, msg: &[u8], sig: &[u8]) -> bool {
    let pkey = common::openssl_public(&key.public().key);
    let mut v = Verifier::new(MessageDigest::sha256(), &pkey).unwrap();
    v.update(msg).unwrap();
    v.verify(sig).unwrap()
}

#[test]
fn tpm2_openssl_keys_sign_here() {
    let tpm = common::tpm();
    for (alg, opt) in [("EC", "group:P-256"), ("RSA", "bits:2048")] {
        let path = tmp(&format!("theirs-{alg}.pem"));
        run(openssl_tpm2(&tpm.swtpm.tcti())
            .args([
                "genpkey",
                "-provider",
                "tpm2",
                "-algorithm",
                alg,
                "-pkeyopt",
                opt,
                "-out",
            ])
            .arg(&path));
        let file = KeyFile::from_pem(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(file.parent, 0x4000_0001);
        let key = TpmKey::from_key_file(&file, None).unwrap();
        let digest = Hash::Sha256.digest(&[b"interop"]);
        let sig = match key.sign(
            if alg == "EC" {
                SignScheme::Ecdsa(Hash::Sha256)
            } else {
                SignScheme::RsaPkcs1(Hash::Sha256)
            },
            &digest,
        ) {
            Ok(Signature::Ecdsa { r, s }) => EcdsaSig::from_private_components(
                openssl::bn::BigNum::from_slice(&r).unwrap(),
                openssl::bn::BigNum::from_slice(&s).unwrap(),
            )
            .unwrap()
            .to_der()
            .unwrap(),
            Ok(Signature::Rsa(s)) => s,
            Err(e) => panic!("{alg} key from tpm2-openssl: {e}"),
        };
        assert!(verify(&key, b"interop", &sig), "{alg}");
        // Re-encoding keeps the file loadable by its writer: strict DER, same fields.
        assert_eq!(KeyFile::from_der(&file.to_der()).unwrap(), file);
    }
}

fn sign_with_tpm2_openssl(tcti: &str, key_path: &Path, msg_path: &Path) -> Vec<u8> {
    let sig = tmp("sig.bin");
    run(openssl_tpm2(tcti)
        // tpm2-openssl needs the property query: without it the default provider signs and
        // fails with "missing private key" (reference.md §4).
        .args([
            "dgst",
            "-sha256",
            "-provider",
            "tpm2",
            "-provider",
            "default",
            "-propquery",
            "?provider=tpm2",
            "-sign",
        ])
        .arg(key_path)
        .arg("-out")
        .arg(&sig)
        .arg(msg_path));
    std::fs::read(sig).unwrap()
}

#[test]
fn tpmkey_keys_sign_in_tpm2_openssl() {
    let tpm = common::tpm();
    let msg = tmp("msg.txt");
    std::fs::write(&msg, b"made by tpmkey").unwrap();
    for spec in [KeySpec::EcP256, KeySpec::Rsa(2048)] {
        let key = TpmKey::generate(spec, None, None).unwrap();
        let path = tmp(&format!("ours-{spec:?}.pem"));
        std::fs::write(&path, key.key_file().unwrap().to_pem()).unwrap();
        // Nothing of ours may hold a slot while the other stack works.
        tpmkey::connection::shutdown();
        let sig = sign_with_tpm2_openssl(&tpm.swtpm.tcti(), &path, &msg);
        assert!(verify(&key, b"made by tpmkey", &sig), "{spec:?}");
    }
}
