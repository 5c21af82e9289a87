//! The salted session on the wire, seen through a tap between the TCTI and swtpm: the TPM
//! accepts our HMACs, a tampered command is rejected, a tampered response is detected,
//! secrets never cross the bus in clear, and each operation costs the commands it should.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::wire_tap::{command_code, contains};
use openssl::ec::{EcGroup, EcKey};
use openssl::encrypt::Encrypter;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Padding;
use tpmkey::hash::Hash;
use tpmkey::wire::CommandCode as CC;
use tpmkey::{Error, KeyFile, KeySpec, RsaPadding, SignScheme, TpmKey};

const SIGN: u32 = CC::Sign as u32;

fn sign(key: &TpmKey, digest: &[u8]) -> tpmkey::Result<tpmkey::Signature> {
    key.sign(SignScheme::Ecdsa(Hash::Sha256), digest)
}

fn any_command_has(log: &[(Vec<u8>, Vec<u8>)], needle: &[u8]) -> bool {
    log.iter().any(|(c, _)| contains(c, needle))
}

fn any_response_has(log: &[(Vec<u8>, Vec<u8>)], needle: &[u8]) -> bool {
    log.iter().any(|(_, r)| contains(r, needle))
}

#[test]
fn secrets_never_cross_the_bus_in_clear() {
    let (_tpm, tap) = common::tapped_tpm(&[]);
    let password = b"password-on-the-wire?";
    let ec = TpmKey::generate(KeySpec::EcP256, Some(password), None).unwrap();
    let digest = Hash::Sha256.digest(&[b"digest-on-the-wire?"]);
    sign(&ec, &digest).unwrap();

    let rsa = TpmKey::generate(KeySpec::Rsa(2048), None, None).unwrap();
    let pkey = common::openssl_public(&rsa.public().key);
    let mut enc = Encrypter::new(&pkey).unwrap();
    enc.set_rsa_padding(Padding::PKCS1).unwrap();
    let secret = b"decrypted-plaintext-on-the-wire?";
    let mut ct = vec![0u8; enc.encrypt_len(secret).unwrap()];
    let n = enc.encrypt(secret, &mut ct).unwrap();
    ct.truncate(n);
    assert_eq!(
        &rsa.decrypt(RsaPadding::Pkcs1, b"", &ct).unwrap()[..],
        secret
    );

    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let peer = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut bn = openssl::bn::BigNumContext::new().unwrap();
    let (mut x, mut y) = (
        openssl::bn::BigNum::new().unwrap(),
        openssl::bn::BigNum::new().unwrap(),
    );
    peer.ec_key()
        .unwrap()
        .public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut bn)
        .unwrap();
    let mut ec_with_pw = ec.clone();
    ec_with_pw.set_password(password);
    let z = ec_with_pw.ecdh(&x.to_vec(), &y.to_vec()).unwrap();

    let mut random = [0u8; 48];
    tpmkey::keys::random(&mut random).unwrap();

    let log = tap.take_log();
    assert!(log.iter().any(|(c, _)| command_code(c) == SIGN));
    assert!(
        !any_command_has(&log, password),
        "key password in clear on the bus"
    );
    assert!(
        !any_command_has(&log, &digest),
        "digest in clear on the bus"
    );
    assert!(
        !any_command_has(&log, &ct),
        "RSA ciphertext in clear on the bus"
    );
    assert!(
        !any_response_has(&log, secret),
        "decrypted data in clear on the bus"
    );
    assert!(
        !any_response_has(&log, &z[..16]),
        "ECDH secret in clear on the bus"
    );
    assert!(
        !any_response_has(&log, &random[..16]),
        "random bytes in clear on the bus"
    );
    // Every authorised command went through the HMAC session, never a password.
    for (c, _) in &log {
        assert!(
            !contains(c, &0x4000_0009u32.to_be_bytes())
                || command_code(c) == CC::CreatePrimary as u32
        );
    }
}

#[test]
fn with_session_off_the_tap_sees_everything() {
    // The control for the test above: the tap does see plaintext when there is no session.
    let (_tpm, tap) = common::tapped_tpm(&[("session", "off")]);
    let key = TpmKey::generate(KeySpec::EcP256, Some(b"visible-password"), None).unwrap();
    let digest = Hash::Sha256.digest(&[b"visible"]);
    sign(&key, &digest).unwrap();
    let log = tap.take_log();
    assert!(any_command_has(&log, b"visible-password"));
    assert!(any_command_has(&log, &digest));
}

/// Flips one byte of the (encrypted) digest in TPM2_Sign.
#[allow(clippy::ptr_arg)] // the wire tap hands a Vec
fn flip_sign_digest(cmd: &mut Vec<u8>) -> bool {
    if command_code(cmd) != SIGN {
        return false;
    }
    // header 10, key handle 4, authSize 4, auth area, then the encrypted digest TPM2B.
    let auth_size = u32::from_be_bytes([cmd[14], cmd[15], cmd[16], cmd[17]]) as usize;
    cmd[18 + auth_size + 2] ^= 0x01;
    true
}

/// A command altered on the bus fails its HMAC in the TPM and is not executed. The key has
/// no password, so that failure cannot be a wrong password: tpmkey starts over once on a
/// new connection and the signature is made from the caller's digest. Altered again on the
/// retry, the operation fails, naming the alteration.
#[test]
fn tampered_command_is_rejected() {
    let (_tpm, tap) = common::tapped_tpm(&[]);
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    sign(&key, &[1u8; 32]).unwrap();
    tap.take_log();
    tap.tamper_command(flip_sign_digest);
    sign(&key, &[1u8; 32]).unwrap();
    let rejected = tap.take_log().iter().any(|(cmd, rsp)| {
        command_code(cmd) == SIGN && rsp.len() >= 10 && {
            let rc = u32::from_be_bytes([rsp[6], rsp[7], rsp[8], rsp[9]]);
            tpmkey::response_code::ResponseCode(rc).is_bad_auth()
        }
    });
    assert!(
        rejected,
        "the altered TPM2_Sign was not rejected by the TPM"
    );

    // Altered every time: a clear error.
    tap.tamper_command(|cmd| {
        flip_sign_digest(cmd);
        false
    });
    let e = sign(&key, &[1u8; 32]).unwrap_err();
    assert!(e.is_bad_auth(), "{e}");
    assert!(e.to_string().contains("altered"), "{e}");
    tap.tamper_command(|_| true);
    sign(&key, &[1u8; 32]).unwrap();
}

#[test]
fn tampered_response_is_detected() {
    let (_tpm, tap) = common::tapped_tpm(&[]);
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    sign(&key, &[2u8; 32]).unwrap();
    tap.tamper_response(|rsp| {
        // A Sign response: header 10, parameterSize 4, sigAlg 2, hash 2, r TPM2B: flip r.
        if rsp.len() > 100 && u32::from_be_bytes([rsp[6], rsp[7], rsp[8], rsp[9]]) == 0 {
            rsp[22] ^= 0x80;
            return true;
        }
        false
    });
    let e = sign(&key, &[2u8; 32]).unwrap_err();
    assert!(matches!(e, Error::Integrity(_)), "{e}");
    assert!(e.to_string().contains("altered"), "{e}");
    // A new session is started and work goes on.
    sign(&key, &[2u8; 32]).unwrap();
}

fn fresh_key_file() -> KeyFile {
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    key.key_file().unwrap()
}

#[test]
fn command_counts_keep() {
    let (tpm, tap) = common::tapped_tpm(&[("objects", "keep")]);
    let file = fresh_key_file();
    // A new process: nothing loaded, no session, no storage key.
    tpmkey::connection::configure(&[("tcti", &tap.tcti()), ("objects", "keep")]).unwrap();
    tap.take_log();
    let key = TpmKey::from_key_file(&file, None).unwrap();
    assert!(
        tap.take_log().is_empty(),
        "loading a key file sends nothing to the TPM"
    );
    sign(&key, &[3u8; 32]).unwrap();
    // The session is salted with the key itself (its public area is in the key file).
    let expect: Vec<u32> = [CC::CreatePrimary, CC::Load, CC::StartAuthSession, CC::Sign]
        .iter()
        .map(|c| *c as u32)
        .collect();
    assert_eq!(tap.take_codes(), expect, "process start to first signature");
    // The first operation that does not need the storage key saves and flushes it.
    sign(&key, &[3u8; 32]).unwrap();
    let expect: Vec<u32> = [CC::Sign, CC::ContextSave, CC::FlushContext]
        .iter()
        .map(|c| *c as u32)
        .collect();
    assert_eq!(tap.take_codes(), expect);
    for _ in 0..3 {
        sign(&key, &[3u8; 32]).unwrap();
        assert_eq!(
            tap.take_codes(),
            vec![SIGN],
            "keep: one TPM command per signature"
        );
    }
    drop(tpm);
}

#[test]
fn command_counts_per_operation() {
    let (_tpm, tap) = common::tapped_tpm(&[("objects", "per-operation")]);
    let file = fresh_key_file();
    let key = TpmKey::from_key_file(&file, None).unwrap();
    sign(&key, &[4u8; 32]).unwrap();
    tap.take_log();
    sign(&key, &[4u8; 32]).unwrap();
    let expect: Vec<u32> = [
        CC::ContextLoad,
        CC::ContextLoad,
        CC::Sign,
        CC::FlushContext,
        CC::ContextSave,
    ]
    .iter()
    .map(|c| *c as u32)
    .collect();
    assert_eq!(
        tap.take_codes(),
        expect,
        "per-operation: session and key loaded around the signature"
    );
}

#[test]
fn command_counts_with_a_persistent_storage_key() {
    let (tpm, tap) = common::tapped_tpm(&[("objects", "keep")]);
    common::persistent_storage_key(&tpm.swtpm, "0x81000001");
    let settings = [
        ("tcti", tap.tcti()),
        ("objects", "keep".into()),
        ("parent", "0x81000001".into()),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tpmkey::connection::configure(&settings).unwrap();
    let file = fresh_key_file();
    assert_eq!(file.parent, 0x8100_0001);
    tpmkey::connection::configure(&settings).unwrap();
    tap.take_log();
    let key = TpmKey::from_key_file(&file, None).unwrap();
    sign(&key, &[6u8; 32]).unwrap();
    let expect: Vec<u32> = [CC::Load, CC::StartAuthSession, CC::Sign]
        .iter()
        .map(|c| *c as u32)
        .collect();
    assert_eq!(
        tap.take_codes(),
        expect,
        "process start to first signature, persistent storage key"
    );
    sign(&key, &[6u8; 32]).unwrap();
    assert_eq!(tap.take_codes(), vec![SIGN]);
}

/// Appends five bytes to the next response to a `code` command, with its header's size
/// made to match, so the response reaches the parsers whole.
fn extend_next_response(tap: &common::wire_tap::WireTap, code: u32) {
    tap.tamper_exchange(move |cmd, rsp| {
        let hit = command_code(cmd) == code && rsp.get(6..10) == Some(&[0u8; 4][..]);
        if hit {
            rsp.extend_from_slice(&[0xA5; 5]);
            let size = u32::try_from(rsp.len()).unwrap().to_be_bytes();
            rsp[2..6].copy_from_slice(&size);
        }
        hit
    });
}

/// A response longer than its structure (bytes after the session area of an HMAC'd
/// response, or after the parameters of one without a session) is malformed: it is refused
/// and not used, and the next operation works.
#[test]
fn bytes_after_a_response_are_refused() {
    let (tpm, tap) = common::tapped_tpm(&[("objects", "keep")]);
    common::persistent_storage_key(&tpm.swtpm, "0x81000124");
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    let digest = [5u8; 32];
    sign(&key, &digest).unwrap();
    extend_next_response(&tap, SIGN);
    let e = sign(&key, &digest).unwrap_err().to_string();
    assert!(e.contains("5 bytes after its end"), "{e}");
    sign(&key, &digest).unwrap();

    // TPM2_ReadPublic has no session: its parameters run to the end of the response.
    let read_public = || {
        tpmkey::connection::with_link(|l| {
            l.run(tpmkey::connection::Need::Nothing, |tpm, _| {
                tpm.read_public(0x8100_0124)
            })
        })
    };
    read_public().unwrap();
    extend_next_response(&tap, CC::ReadPublic as u32);
    let e = read_public().unwrap_err().to_string();
    assert!(e.contains("5 bytes after its end"), "{e}");
    read_public().unwrap();
}
