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

/// tpm2-openssl's `genpkey -algorithm RSA-PSS` key file, made in `tcti`'s TPM.
fn tpm2_openssl_rsa_pss_key(tcti: &str) -> TpmKey {
    let path = tmp("theirs-RSA-PSS.pem");
    run(openssl_tpm2(tcti)
        .args(["genpkey", "-provider", "tpm2", "-algorithm", "RSA-PSS"])
        .args(["-pkeyopt", "bits:2048", "-pkeyopt", "digest:sha256", "-out"])
        .arg(&path));
    let file = KeyFile::from_pem(&std::fs::read(&path).unwrap()).unwrap();
    TpmKey::from_key_file(&file, None).unwrap()
}

const PSS_SHA256: SignScheme = SignScheme::RsaPss {
    hash: Hash::Sha256,
    mgf1: Hash::Sha256,
    salt_len: 32,
};

fn verify_pss(key: &TpmKey, msg: &[u8], sig: &Signature) -> bool {
    let Signature::Rsa(sig) = sig else {
        panic!("not an RSA signature: {sig:?}");
    };
    let pkey = common::openssl_public(&key.public().key);
    let mut v = Verifier::new(MessageDigest::sha256(), &pkey).unwrap();
    v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS).unwrap();
    v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
        .unwrap();
    v.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    v.update(msg).unwrap();
    v.verify(sig).unwrap()
}

/// tpm2-openssl makes its RSA-PSS keys restricted signing keys (RSAPSS-SHA256 fixed): the
/// TPM signs only what it hashed. A message signs with TPM2_Hash + TPM2_Sign (a longer
/// one through a hash sequence) and verifies as PSS with salt = digest length; a digest,
/// another scheme, or a message that looks like a TPM attestation is refused naming why.
#[test]
fn tpm2_openssl_rsa_pss_key_signs_messages_the_tpm_hashes() {
    let (tpm, tap) = common::tapped_tpm(&[("objects", "keep")]);
    let key = tpm2_openssl_rsa_pss_key(&tpm.swtpm.tcti());
    let public = key.public();
    assert!(public.restricted && public.can_sign && !public.can_decrypt);
    assert_eq!(
        public.sign_scheme.map(|s| s.name()).as_deref(),
        Some("RSAPSS-SHA256")
    );
    // A TLS 1.3 CertificateVerify input is about 130 bytes.
    let short = [
        &[0x20u8; 64][..],
        b"TLS 1.3, server CertificateVerify\0",
        &[7; 32],
    ]
    .concat();
    tap.take_codes();
    let sig = key.sign_message(PSS_SHA256, &short).unwrap();
    assert!(verify_pss(&key, &short, &sig));
    // swtpm answers the first private-key operation of an RSA key TPM_RC_RETRY, which the
    // core repeats: not counted.
    let first: Vec<u32> = tap
        .take_log()
        .iter()
        .filter(|(_, rsp)| rsp.get(6..10) != Some(&0x922u32.to_be_bytes()[..]))
        .map(|(cmd, _)| u32::from_be_bytes([cmd[6], cmd[7], cmd[8], cmd[9]]))
        .collect();
    assert_eq!(
        first,
        [0x131, 0x176, 0x157, 0x17D, 0x15D],
        "first signature: CreatePrimary, StartAuthSession, Load, then Hash and Sign"
    );
    // The next operation saves and flushes the storage key (objects = keep), then each
    // signature is exactly Hash and Sign.
    let sig = key.sign_message(PSS_SHA256, &short).unwrap();
    assert!(verify_pss(&key, &short, &sig));
    assert_eq!(tap.take_codes(), [0x17D, 0x15D, 0x162, 0x165]);
    for len in [short.len(), 0, 1024] {
        let msg = vec![0x5a; len];
        let sig = key.sign_message(PSS_SHA256, &msg).unwrap();
        assert!(verify_pss(&key, &msg, &sig), "{len} bytes");
        assert_eq!(tap.take_codes(), [0x17D, 0x15D], "{len} bytes");
    }
    // Longer than TPM2_Hash takes: a hash sequence, its last bytes with SequenceComplete.
    for (len, updates) in [(1025, 1), (2048, 1), (5000, 4)] {
        let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sig = key.sign_message(PSS_SHA256, &msg).unwrap();
        assert!(verify_pss(&key, &msg, &sig), "{len} bytes");
        let expected: Vec<u32> = [0x186]
            .into_iter()
            .chain(std::iter::repeat_n(0x15C, updates))
            .chain([0x13E, 0x15D])
            .collect();
        assert_eq!(tap.take_codes(), expected, "{len} bytes");
    }
    // A digest cannot be signed: the TPM must have hashed it.
    let digest = Hash::Sha256.digest(&[&short]);
    let e = key.sign(PSS_SHA256, &digest).unwrap_err().to_string();
    assert!(e.contains("sign the message, not a digest"), "{e}");
    // Another scheme than the fixed one is named before the TPM sees it.
    for scheme in [
        SignScheme::RsaPkcs1(Hash::Sha256),
        SignScheme::RsaPss {
            hash: Hash::Sha384,
            mgf1: Hash::Sha384,
            salt_len: 48,
        },
    ] {
        let e = key.sign_message(scheme, &short).unwrap_err().to_string();
        assert!(e.contains("signs only RSAPSS-SHA256"), "{scheme:?}: {e}");
    }
    let e = key
        .sign_message(
            SignScheme::RsaPss {
                hash: Hash::Sha256,
                mgf1: Hash::Sha256,
                salt_len: 100,
            },
            &short,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("a salt of the digest length (32)"), "{e}");
    let e = key
        .sign_message(PSS_SHA256, &[0xFF, 0x54, 0x43, 0x47, 1, 2, 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("TPM_GENERATED_VALUE"), "{e}");
    assert_eq!(tap.take_codes(), Vec::<u32>::new(), "refusals reach no TPM");
    // The maximum salt is what many hardware TPMs give; swtpm gives the digest length, and
    // the host's check of the TPM's signature says so.
    let max_salt = SignScheme::RsaPss {
        hash: Hash::Sha256,
        mgf1: Hash::Sha256,
        salt_len: 222,
    };
    let e = key.sign_message(max_salt, &short).unwrap_err().to_string();
    assert!(e.contains("32-byte salt; 222 was asked for"), "{e}");
    assert_eq!(tap.take_codes(), [0x17D, 0x15D]);
    // TPM2_Hash has no session: a message or digest altered on the bus is caught by the
    // host's own digest, and nothing is signed.
    // Byte 12 is the message's first in the command and the digest's first in the
    // response: after the 10-byte header and a 2-byte size.
    for on_response in [false, true] {
        let flip = move |m: &mut Vec<u8>| {
            let hit = on_response || m.get(6..10) == Some(&0x17Du32.to_be_bytes()[..]);
            if hit {
                m[12] ^= 1;
            }
            hit
        };
        match on_response {
            false => tap.tamper_command(flip),
            true => tap.tamper_response(flip),
        }
        let e = key
            .sign_message(PSS_SHA256, &short)
            .unwrap_err()
            .to_string();
        assert!(e.contains("altered on the bus"), "{e}");
        assert_eq!(tap.take_codes(), [0x17D], "nothing signed");
    }
    let sig = key.sign_message(PSS_SHA256, &short).unwrap();
    assert!(
        verify_pss(&key, &short, &sig),
        "the next signature is sound"
    );
}

/// With the session off nothing authenticates TPM2_Sign's response: a restricted key's
/// PSS signature altered on the bus fails the host's check and is never returned.
#[test]
fn a_restricted_keys_signature_altered_on_the_bus_is_refused() {
    let (tpm, tap) = common::tapped_tpm(&[("objects", "keep"), ("session", "off")]);
    let key = tpm2_openssl_rsa_pss_key(&tpm.swtpm.tcti());
    let msg = b"altered on the way back";
    assert!(verify_pss(
        &key,
        msg,
        &key.sign_message(PSS_SHA256, msg).unwrap()
    ));
    // Byte 120 lies inside the 256-byte signature, with or without a parameterSize.
    tap.tamper_response(|m: &mut Vec<u8>| {
        let hit = m.len() > 256 && m.get(6..10) == Some(&[0u8; 4][..]);
        if hit {
            m[120] ^= 1;
        }
        hit
    });
    let e = key.sign_message(PSS_SHA256, msg).unwrap_err().to_string();
    assert!(
        e.contains("does not verify with the key's public key"),
        "{e}"
    );
    assert!(verify_pss(
        &key,
        msg,
        &key.sign_message(PSS_SHA256, msg).unwrap()
    ));
}

/// An unrestricted key signs a message as it signs its digest: hashed on the host, one
/// TPM2_Sign.
#[test]
fn an_unrestricted_key_signs_a_message_hashed_on_the_host() {
    let (_tpm, tap) = common::tapped_tpm(&[("objects", "keep")]);
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    for _ in 0..2 {
        key.sign_message(SignScheme::Ecdsa(Hash::Sha256), b"warm up")
            .unwrap();
    }
    tap.take_codes();
    let msg = vec![1u8; 5000];
    let Signature::Ecdsa { r, s } = key
        .sign_message(SignScheme::Ecdsa(Hash::Sha256), &msg)
        .unwrap()
    else {
        panic!("not ECDSA");
    };
    assert_eq!(tap.take_codes(), [0x15D]);
    let der = EcdsaSig::from_private_components(
        openssl::bn::BigNum::from_slice(&r).unwrap(),
        openssl::bn::BigNum::from_slice(&s).unwrap(),
    )
    .unwrap()
    .to_der()
    .unwrap();
    assert!(verify(&key, &msg, &der));
}

/// A restricted signing key outside the owner hierarchy (an AK-like primary of the
/// endorsement hierarchy, made persistent by tpm2-tools) signs a message too: the TPM
/// checks the ticket against the hierarchy the ticket names, so the owner's serves. A
/// persistent storage key is still no application key.
#[test]
fn a_persistent_restricted_signing_key_of_the_endorsement_hierarchy_signs_messages() {
    use common::TpmEndpoint;
    let tpm = common::tpm();
    let ctx = tmp("ak-like.ctx");
    run(tpm
        .swtpm
        .tpm2_command("tpm2_createprimary")
        .args(["-C", "e", "-G", "rsa2048:rsapss-sha256:null", "-a"])
        .arg("restricted|sign|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda")
        .arg("-c")
        .arg(&ctx));
    run(tpm
        .swtpm
        .tpm2_command("tpm2_evictcontrol")
        .args(["-C", "o", "-c"])
        .arg(&ctx)
        .arg("0x81000123"));
    // Without a resource manager the transient primary stays loaded after the tool exits.
    run(tpm.swtpm.tpm2_command("tpm2_flushcontext").arg("-t"));
    common::persistent_storage_key(&tpm.swtpm, "0x81000124");
    let key = TpmKey::from_persistent(0x8100_0123, None).unwrap();
    assert!(key.public().restricted);
    let msg = b"signed by a key of the endorsement hierarchy";
    let sig = key.sign_message(PSS_SHA256, msg).unwrap();
    assert!(verify_pss(&key, msg, &sig));
    // A restricted decryption key (a storage key) stays refused.
    let e = TpmKey::from_persistent(0x8100_0124, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("restricted decryption (storage) key"), "{e}");
}
