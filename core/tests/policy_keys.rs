//! Keys bound to the platform state, on a real swtpm: PCR policies, PCR AND password, both
//! PolicyPCR encodings, signed policies that survive a state change, and what each failure
//! costs (TPM commands, dictionary-attack counts).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::signing::{p256_signer, sign_and_verify, sign_policy};
use common::{tapped_tpm, tpm};
use tpmkey::keys::read_pcrs;
use tpmkey::policy::{authorize_statement, BodyForm, PcrSelection, PolicyPcr, Statement};
use tpmkey::{Error, KeyFile, KeySpec, TpmKey};
use tpmkey_testenv::wire_tap;
use tpmkey_testenv::TpmEndpoint;

const PCR16: &str = "sha256:16";
/// TPM_PT_LOCKOUT_COUNTER.
const LOCKOUT_COUNTER: u32 = 0x20E;

fn lockout_counter() -> u32 {
    tpmkey::keys::tpm_properties(LOCKOUT_COUNTER, 1).unwrap()[0].1
}

fn extend_pcr16(swtpm: &tpmkey_testenv::Swtpm) {
    swtpm.tpm2_tools_ok([
        "tpm2_pcrextend",
        "16:sha256=0000000000000000000000000000000000000000000000000000000000000001",
    ]);
}

fn pcr16_now() -> Statement {
    let sel = PcrSelection::parse(PCR16).unwrap();
    let values = read_pcrs(&sel).unwrap();
    Statement::Pcr(PolicyPcr::from_values(sel, &values).unwrap())
}

fn policy_message(r: Result<(), Error>) -> String {
    match r {
        Err(e @ Error::PolicyNotSatisfied(_)) => e.to_string(),
        other => panic!("expected a policy error, got {other:?}"),
    }
}

/// Round trip through the key file, as an application would load it.
fn reload(key: &TpmKey, password: Option<&[u8]>) -> TpmKey {
    let pem = key.key_file().unwrap().to_pem();
    TpmKey::from_key_file(&KeyFile::from_pem(pem.as_bytes()).unwrap(), password).unwrap()
}

#[test]
fn pcr_key_stops_on_extend_and_works_after_reboot() {
    let mut t = tpm();
    let key =
        TpmKey::generate_with_policy(KeySpec::EcP256, None, None, None, vec![pcr16_now()]).unwrap();
    assert!(!key.public().user_with_auth, "userWithAuth is clear");
    let key = reload(&key, None);
    sign_and_verify(&key).unwrap();
    key.check_policy().unwrap();

    extend_pcr16(&t.swtpm);
    let before = lockout_counter();
    let m = policy_message(sign_and_verify(&key));
    assert!(m.contains("PCR") && m.contains("sha256:16"), "{m}");
    let m = policy_message(key.check_policy());
    assert!(m.contains("sha256:16"), "{m}");
    assert_eq!(lockout_counter(), before, "no dictionary-attack count");

    t.swtpm.reboot();
    sign_and_verify(&key).unwrap();
}

#[test]
fn pcr_key_signs_with_two_tpm_commands() {
    let (_t, tap) = tapped_tpm(&[("objects", "keep")]);
    let key =
        TpmKey::generate_with_policy(KeySpec::EcP256, None, None, None, vec![pcr16_now()]).unwrap();
    let key = reload(&key, None);
    // The first use loads the key and lets the storage key go.
    sign_and_verify(&key).unwrap();
    sign_and_verify(&key).unwrap();
    tap.take_codes();
    for _ in 0..5 {
        sign_and_verify(&key).unwrap();
    }
    let codes = tap.take_codes();
    assert_eq!(
        codes.len(),
        10,
        "PolicyPCR + Sign per signature: {codes:x?}"
    );
    assert!(codes.chunks(2).all(|c| c == [0x17F, 0x15D]), "{codes:x?}");
}

#[test]
fn password_alone_cannot_bypass_the_policy() {
    let t = tpm();
    let pw = b"pcr-and-password".as_slice();
    let key =
        TpmKey::generate_with_policy(KeySpec::EcP256, Some(pw), None, None, vec![pcr16_now()])
            .unwrap();
    // The same blob without its policy fields: used with the password through an HMAC
    // session, the TPM refuses (TPM_RC_AUTH_UNAVAILABLE).
    let mut file = key.key_file().unwrap();
    file.policy = None;
    file.auth_policy = None;
    let bare = TpmKey::from_key_file(&file, Some(pw)).unwrap();
    let e = sign_and_verify(&bare).unwrap_err();
    assert_eq!(e.response_code().map(|rc| rc.base()), Some(0x12F), "{e}");
    drop(t);
}

#[test]
fn pcr_and_password() {
    let (t, tap) = tapped_tpm(&[]);
    let pw = b"correct horse".as_slice();
    let key =
        TpmKey::generate_with_policy(KeySpec::EcP256, Some(pw), None, None, vec![pcr16_now()])
            .unwrap();
    let file = key.key_file().unwrap();
    assert!(!file.empty_auth);
    let right = TpmKey::from_key_file(&file, Some(pw)).unwrap();
    let wrong = TpmKey::from_key_file(&file, Some(b"wrong")).unwrap();
    sign_and_verify(&right).unwrap();

    let before = lockout_counter();
    let e = sign_and_verify(&wrong).unwrap_err();
    assert!(e.is_bad_auth(), "wrong password: {e}");
    assert_eq!(lockout_counter(), before + 1, "a wrong password counts");

    extend_pcr16(&t.swtpm);
    let before = lockout_counter();
    let m = policy_message(sign_and_verify(&right));
    assert!(m.contains("sha256:16"), "{m}");
    assert_eq!(lockout_counter(), before, "the wrong state does not count");

    for (command, _) in tap.take_log() {
        assert!(!wire_tap::contains(&command, pw), "password on the wire");
    }
}

#[test]
fn both_policy_pcr_encodings_work() {
    let mut t = tpm();
    let Statement::Pcr(now) = pcr16_now() else {
        unreachable!()
    };
    let command_form = Statement::Pcr(PolicyPcr {
        form: BodyForm::Command,
        ..now.clone()
    });
    // GRUB / pcr-oracle: command-body form with an empty digest (the TPM's current values);
    // the key's authPolicy is still the digest of the values now.
    let current = Statement::Pcr(PolicyPcr {
        form: BodyForm::Command,
        pcr_digest: Vec::new(),
        ..now.clone()
    });
    let engine = TpmKey::generate_with_policy(
        KeySpec::EcP256,
        None,
        None,
        None,
        vec![Statement::Pcr(now.clone())],
    )
    .unwrap();
    let command =
        TpmKey::generate_with_policy(KeySpec::EcP256, None, None, None, vec![command_form])
            .unwrap();
    let mut grub_file = command.key_file().unwrap();
    grub_file.policy = Some(Statement::encode_all(&[current]).unwrap());
    let grub = TpmKey::from_key_file(&grub_file, None).unwrap();

    let keys = [reload(&engine, None), reload(&command, None), grub];
    for k in &keys {
        sign_and_verify(k).unwrap();
    }
    extend_pcr16(&t.swtpm);
    for k in &keys {
        let m = policy_message(sign_and_verify(k));
        assert!(m.contains("sha256:16"), "{m}");
    }
    t.swtpm.reboot();
    for k in &keys {
        sign_and_verify(k).unwrap();
    }
}

/// PolicyPCR of PCR 16 as it was at power-on (all zero), a state other than now.
fn state_a_again() -> Statement {
    let sel = PcrSelection::parse(PCR16).unwrap();
    Statement::Pcr(PolicyPcr::from_values(sel, &[vec![0u8; 32]]).unwrap())
}

#[test]
fn signed_policies_survive_a_state_change() {
    let (mut t, tap) = tapped_tpm(&[("objects", "keep")]);
    let (signer_key, signer) = p256_signer();
    let policy_ref = [7u8; 32];
    let key = TpmKey::generate_with_policy(
        KeySpec::EcP256,
        None,
        None,
        None,
        vec![authorize_statement(&signer, &policy_ref)],
    )
    .unwrap();
    let mut file = key.key_file().unwrap();
    let blobs = (file.public.clone(), file.private.clone());

    let bare = TpmKey::from_key_file(&file, None).unwrap();
    let m = policy_message(sign_and_verify(&bare));
    assert!(m.contains("no signed policy"), "{m}");

    let state_a = pcr16_now();
    file.add_signed_policy(sign_policy(
        &signer_key,
        &signer,
        &policy_ref,
        &[state_a],
        "state-a",
    ))
    .unwrap();
    let key = TpmKey::from_key_file(&file, None).unwrap();
    sign_and_verify(&key).unwrap();
    tap.take_codes();
    for _ in 0..3 {
        sign_and_verify(&key).unwrap();
    }
    let codes = tap.take_codes();
    assert_eq!(
        codes.len(),
        9,
        "PolicyPCR + PolicyAuthorize + Sign: {codes:x?}"
    );

    extend_pcr16(&t.swtpm);
    let m = policy_message(sign_and_verify(&key));
    assert!(m.contains("state-a"), "names the policies tried: {m}");

    let state_b = pcr16_now();
    file.add_signed_policy(sign_policy(
        &signer_key,
        &signer,
        &policy_ref,
        &[state_b],
        "state-b",
    ))
    .unwrap();
    assert_eq!(
        (file.public.clone(), file.private.clone()),
        blobs,
        "key blobs unchanged"
    );
    let key = TpmKey::from_key_file(&file, None).unwrap();
    sign_and_verify(&key).unwrap();

    // A policy signed for another key's policyRef is refused when the file is read.
    let mut other_key = file.clone();
    other_key
        .add_signed_policy(sign_policy(
            &signer_key,
            &signer,
            &[9u8; 32],
            &[pcr16_now()],
            "other",
        ))
        .unwrap();
    let e = TpmKey::from_key_file(&other_key, None).unwrap_err();
    assert!(e.to_string().contains("policyRef"), "{e}");

    // A third, unsigned state: every policy is tried and named; an entry whose signature
    // is over another policy is refused by the TPM's VerifySignature, without a crash.
    extend_pcr16(&t.swtpm);
    let mut forged = file.clone();
    let mut entry = sign_policy(&signer_key, &signer, &policy_ref, &[pcr16_now()], "forged");
    let other = sign_policy(&signer_key, &signer, &policy_ref, &[state_a_again()], "x");
    let n = entry.policy.len();
    entry.policy[n - 1] = other.policy[other.policy.len() - 1].clone();
    forged.add_signed_policy(entry).unwrap();
    let key = TpmKey::from_key_file(&forged, None).unwrap();
    let m = policy_message(sign_and_verify(&key));
    for name in ["state-a", "state-b", "forged"] {
        assert!(m.contains(name), "{name}: {m}");
    }
    assert!(m.contains("signature does not verify"), "{m}");
    let key = TpmKey::from_key_file(&file, None).unwrap();

    t.swtpm.reboot();
    sign_and_verify(&key).unwrap();
}

#[test]
fn expiry_on_the_tpm_clock_and_boot_count() {
    let mut t = tpm();
    let bound = |request: tpmkey::key_policy::PolicyRequest| {
        TpmKey::generate_with_policy(
            KeySpec::EcP256,
            None,
            None,
            None,
            request.statements().unwrap(),
        )
        .unwrap()
    };
    let boots = bound(tpmkey::key_policy::PolicyRequest {
        pcrs: Some(PcrSelection::parse(PCR16).unwrap()),
        boots: Some(1),
        ..Default::default()
    });
    let clock = bound(tpmkey::key_policy::PolicyRequest {
        expires_ms: Some(tpmkey::key_policy::parse_duration("1h").unwrap()),
        ..Default::default()
    });
    sign_and_verify(&boots).unwrap();
    sign_and_verify(&clock).unwrap();

    let now = tpmkey::key_policy::read_clock().unwrap().clock_ms;
    t.swtpm
        .tpm2_tools_ok(["tpm2_setclock", &(now + 2 * 3_600_000).to_string()]);
    let m = policy_message(sign_and_verify(&clock));
    assert!(m.contains("time or boot limit"), "{m}");

    t.swtpm.reboot();
    sign_and_verify(&boots).unwrap();
    t.swtpm.reboot();
    let m = policy_message(sign_and_verify(&boots));
    assert!(m.contains("time or boot limit"), "{m}");
}
