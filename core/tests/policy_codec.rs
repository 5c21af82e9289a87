//! Policy fields of key files written by openssl_tpm2_engine 4.3.0 (tests/data/engine-golden)
//! decode to the statements they were made with, their host-computed digests equal the
//! authPolicy the TPM put in each key's public area, signed policies verify with OpenSSL
//! over the authorisation hash tpmkey computes, systemd PCR signature files are read, and
//! bad policy input gets an error naming the cause. No TPM is involved at this layer.

#![allow(clippy::unwrap_used, clippy::panic)]

use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::sign::{Signer, Verifier};
use tpmkey::hash::Hash;
use tpmkey::keyfile::{KeyFile, TpmAuthPolicy, TpmPolicy};
use tpmkey::policy::{
    authorization_hash, authorize_statement, policy_digest, signed_message, signed_policy_entry,
    systemd, BodyForm, KeyPolicy, PcrSelection, PolicyPcr, PolicyRefDialect, SignedPolicy,
    SignerKey, Statement, TpmSignature,
};

fn golden(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/engine-golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn key(name: &str) -> KeyFile {
    KeyFile::from_pem(&golden(name)).unwrap()
}

/// The authPolicy of a key file's TPM2B_PUBLIC: size(2) type(2) nameAlg(2) attributes(4),
/// then TPM2B_DIGEST authPolicy.
fn auth_policy_of(k: &KeyFile) -> Vec<u8> {
    let p = &k.public;
    let len = usize::from(u16::from_be_bytes([p[10], p[11]]));
    p[12..12 + len].to_vec()
}

/// The userWithAuth attribute of a key file's public area.
fn user_with_auth(k: &KeyFile) -> bool {
    u32::from_be_bytes([k.public[6], k.public[7], k.public[8], k.public[9]]) & 0x40 != 0
}

/// PCR 16 in the approved state: extended once with SHA-256("config-v1") from zeros.
fn approved_pcr16() -> Vec<u8> {
    let event = Hash::Sha256.digest(&[b"config-v1"]);
    Hash::Sha256.digest(&[&[0u8; 32], &event])
}

fn approved_pcr16_statement() -> Statement {
    let selection = PcrSelection::parse("sha256:16").unwrap();
    Statement::Pcr(PolicyPcr::from_values(selection, &[approved_pcr16()]).unwrap())
}

fn policy_of(k: &KeyFile) -> KeyPolicy {
    KeyPolicy::from_key_file(k).unwrap().unwrap()
}

#[test]
fn engine_pcr_keys_decode_and_match_their_auth_policy() {
    for file in ["ec-pcr16.pem", "rsa-pcr16.pem", "sealed-pcr16.tpm"] {
        let k = key(file);
        let p = policy_of(&k);
        assert_eq!(p.statements, [approved_pcr16_statement()], "{file}");
        assert!(p.authorize.is_none() && p.signed.is_empty());
        assert_eq!(
            p.auth_policy_digest().unwrap(),
            auth_policy_of(&k),
            "{file}"
        );
        assert!(
            !user_with_auth(&k),
            "{file}: the engine clears userWithAuth"
        );
        // Statements encode back to the bytes the engine wrote, the file to its DER.
        let again = Statement::encode_all(&p.statements).unwrap();
        assert_eq!(Some(again), k.policy, "{file}");
        assert_eq!(KeyFile::from_der(&k.to_der()).unwrap(), k);
    }
}

#[test]
fn engine_pcr_and_password_key() {
    let k = key("ec-pcr16-auth.pem");
    assert!(!k.empty_auth);
    let p = policy_of(&k);
    assert_eq!(
        p.statements,
        [Statement::AuthValue, approved_pcr16_statement()]
    );
    assert!(p.needs_auth_value());
    assert_eq!(p.auth_policy_digest().unwrap(), auth_policy_of(&k));
}

#[test]
fn engine_locality_keys() {
    for (file, bitmap) in [("ec-loc1f.pem", 0x1f), ("ec-loc1e.pem", 0x1e)] {
        let k = key(file);
        let p = policy_of(&k);
        assert_eq!(p.statements, [Statement::Locality(bitmap)], "{file}");
        assert_eq!(
            p.auth_policy_digest().unwrap(),
            auth_policy_of(&k),
            "{file}"
        );
    }
}

#[test]
fn keys_without_policy_have_none() {
    for file in [
        "ec-importable.pem",
        "sealed-auth.tpm",
        "sealed-importable.tpm",
    ] {
        assert_eq!(
            KeyPolicy::from_key_file(&key(file)).unwrap(),
            None,
            "{file}"
        );
    }
}

#[test]
fn engine_signed_policy_key() {
    let k = key("ec-signed.pem");
    let signer = SignerKey::from_pem(&golden("signer.pub")).unwrap();
    let p = policy_of(&k);

    // policy [1] = PolicyAuthorize(signer, 32-byte nonce, no signature): the public area
    // tpmkey builds for the signer is byte for byte the engine's.
    let a = p.authorize.clone().unwrap();
    assert_eq!(a.key_sign, signer.tpm2b_public());
    assert_eq!(a.signer_name().unwrap(), signer.name());
    assert_eq!(a.policy_ref.len(), 32);
    assert!(a.signature.is_null());
    assert!(p.statements.is_empty());
    assert_eq!(
        p.auth_policy_digest().unwrap(),
        auth_policy_of(&k),
        "PolicyAuthorize digest"
    );
    assert_eq!(
        policy_digest(&[authorize_statement(&signer, &a.policy_ref)]).unwrap(),
        auth_policy_of(&k)
    );

    // authPolicy [3] = "config-v1": PolicyPCR(16 approved) + PolicyAuthorize with an ECDSA
    // signature over aHash = SHA-256(approvedPolicy ‖ nonce).
    assert_eq!(p.signed.len(), 1);
    let s = &p.signed[0];
    assert_eq!(s.name.as_deref(), Some("config-v1"));
    assert_eq!(s.label(0), "config-v1");
    assert_eq!(s.statements, [approved_pcr16_statement()]);
    let approved = s.approved_policy.clone().unwrap();
    assert_eq!(
        approved,
        policy_digest(&[approved_pcr16_statement()]).unwrap()
    );
    let TpmSignature::Ecdsa { hash, r, s: sv } = &s.authorize.signature else {
        panic!("expected ECDSA, got {:?}", s.authorize.signature)
    };
    assert_eq!(*hash, Hash::Sha256);
    let ahash = s.authorization_hash(&approved);
    assert_eq!(ahash, authorization_hash(&approved, &a.policy_ref));
    assert_eq!(
        ahash,
        Hash::Sha256.digest(&[&signed_message(&approved, &a.policy_ref)])
    );
    let sig = EcdsaSig::from_private_components(
        BigNum::from_slice(r).unwrap(),
        BigNum::from_slice(sv).unwrap(),
    )
    .unwrap();
    let pubkey = PKey::public_key_from_pem(&golden("signer.pub")).unwrap();
    assert!(sig.verify(&ahash, &pubkey.ec_key().unwrap()).unwrap());

    // Re-encoding the whole key gives the engine's bytes.
    assert_eq!(
        k.to_der(),
        KeyFile::from_pem(&golden("ec-signed.pem"))
            .unwrap()
            .to_der()
    );
    let entry = &k.signed_policies()[0];
    let rebuilt = signed_policy_entry(
        Some("config-v1"),
        &[approved_pcr16_statement()],
        &signer,
        &a.policy_ref,
        s.authorize.signature.clone(),
    )
    .unwrap();
    assert_eq!(&rebuilt, entry);
}

/// A policy signed offline with OpenSSL (as `tpmkey policy sign` will), added to the
/// engine's key next to its own: both decode, the new one first, and its signature
/// verifies over the hash tpmkey computes.
#[test]
fn offline_signed_policy_added_listed_removed() {
    let mut k = key("ec-signed.pem");
    let signer = SignerKey::from_pem(&golden("signer.pub")).unwrap();
    let policy_ref = policy_of(&k).authorize.unwrap().policy_ref;

    // Predicted state v2: PCR 16 extended with "config-v2" instead.
    let selection = PcrSelection::parse("sha256:16").unwrap();
    let pcr16 = Hash::Sha256.digest(&[&[0u8; 32], &Hash::Sha256.digest(&[b"config-v2"])]);
    let st = Statement::Pcr(PolicyPcr {
        pcr_digest: selection.pcr_digest(&[pcr16], Hash::Sha256).unwrap(),
        selection,
        form: BodyForm::Engine,
    });
    let approved = policy_digest(std::slice::from_ref(&st)).unwrap();
    let private = PKey::private_key_from_pem(&golden("signer.key")).unwrap();
    let mut sgn = Signer::new(MessageDigest::sha256(), &private).unwrap();
    sgn.update(&signed_message(&approved, &policy_ref)).unwrap();
    let der_sig = sgn.sign_to_vec().unwrap();
    let sig = signer.signature(&der_sig, Hash::Sha256).unwrap();

    let entry = signed_policy_entry(
        Some("config-v2"),
        std::slice::from_ref(&st),
        &signer,
        &policy_ref,
        sig,
    )
    .unwrap();
    k.add_signed_policy(entry).unwrap();
    let reread = KeyFile::from_der(&k.to_der()).unwrap();
    let p = policy_of(&reread);
    let names: Vec<String> = p
        .signed
        .iter()
        .enumerate()
        .map(|(i, s)| s.label(i))
        .collect();
    assert_eq!(names, ["config-v2", "config-v1"]);
    let newest: &SignedPolicy = &p.signed[0];
    assert_eq!(newest.statements, [st]);
    let TpmSignature::Ecdsa { r, s, .. } = &newest.authorize.signature else {
        panic!()
    };
    let sig = EcdsaSig::from_private_components(
        BigNum::from_slice(r).unwrap(),
        BigNum::from_slice(s).unwrap(),
    )
    .unwrap();
    let ahash = newest.authorization_hash(newest.approved_policy.as_ref().unwrap());
    assert!(sig.verify(&ahash, &private.ec_key().unwrap()).unwrap());

    k.remove_signed_policy("config-v1").unwrap();
    assert_eq!(policy_of(&k).signed.len(), 1);
    let e = k.remove_signed_policy("config-v1").unwrap_err().to_string();
    assert!(e.contains("1 \"config-v2\""), "{e}");
}

#[test]
fn policy_ref_dialects() {
    let a = PolicyRefDialect::EngineNonce.new_policy_ref();
    let b = PolicyRefDialect::EngineNonce.new_policy_ref();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    assert!(PolicyRefDialect::Empty.new_policy_ref().is_empty());
    // Empty policyRef: aHash is the hash of the approved policy alone (systemd, GRUB).
    assert_eq!(
        authorization_hash(&[5; 32], &[]),
        Hash::Sha256.digest(&[&[5u8; 32]])
    );
}

/// The GRUB / pcr-oracle form of the same PolicyPCR (empty TPM2B_DIGEST first) is read
/// and written back unchanged; the engine key's statement can be written in that form.
#[test]
fn command_body_form_key_file() {
    let mut k = key("ec-pcr16.pem");
    let st = policy_of(&k).statements[0].in_form(BodyForm::Command);
    k.policy = Some(Statement::encode_all(std::slice::from_ref(&st)).unwrap());
    let body = &k.policy.as_ref().unwrap()[0].command_policy;
    assert_eq!(&body[..2], &[0x00, 0x20]);
    let reread = KeyFile::from_pem(k.to_pem().as_bytes()).unwrap();
    let p = policy_of(&reread);
    assert_eq!(p.statements, [st]);
    assert_eq!(p.auth_policy_digest().unwrap(), auth_policy_of(&k));

    let grub = vec![TpmPolicy {
        command_code: 0x17F,
        command_policy: vec![0, 0, 0, 0, 0, 1, 0, 0x0B, 3, 0, 0, 1],
    }];
    k.policy = Some(grub.clone());
    let p = policy_of(&KeyFile::from_der(&k.to_der()).unwrap());
    let Statement::Pcr(pcr) = &p.statements[0] else {
        panic!()
    };
    assert!(pcr.pcr_digest.is_empty() && pcr.form == BodyForm::Command);
    assert_eq!(Statement::encode_all(&p.statements).unwrap(), grub);
    // Its digest needs the PCR values: the error says so instead of guessing.
    let e = p.auth_policy_digest().unwrap_err().to_string();
    assert!(e.contains("current values"), "{e}");
}

fn with_policy(policy: Vec<TpmPolicy>) -> KeyFile {
    let mut k = key("ec-pcr16.pem");
    k.policy = Some(policy);
    // Through DER, as a file would arrive.
    KeyFile::from_der(&k.to_der()).unwrap()
}

#[test]
fn bad_policy_input_is_named() {
    let cases: &[(u32, &[u8], &str)] = &[
        (0x160, &[], "unsupported policy command PolicySigned"),
        (0x17F, &[0, 0, 0, 1, 0, 0x0B, 3, 0], "truncated"),
        (
            0x17F,
            &[0, 0, 0, 1, 0, 0x99, 3, 0, 0, 1],
            "PCR bank 0x0099 out of range",
        ),
        (
            0x17F,
            &[0, 0, 0, 1, 0, 0x0B, 4, 0, 0, 0, 1],
            "PCR index 24 out of range",
        ),
        (0x16A, &[0, 0x56, 0, 0x23], "truncated body"),
        (0x16D, &[0, 8], "too short"),
        (0x16F, &[], "1 byte"),
        (0x151, &[0x40, 0, 0, 0x0B, 0, 4], "truncated body"),
    ];
    for (code, body, want) in cases {
        let k = with_policy(vec![TpmPolicy {
            command_code: *code,
            command_policy: body.to_vec(),
        }]);
        let e = KeyPolicy::from_key_file(&k).unwrap_err().to_string();
        assert!(e.contains(want), "0x{code:x}: {e}");
        assert!(e.contains("policy [1] statement 1"), "0x{code:x}: {e}");
    }
    // PolicyAuthorize anywhere but first.
    let signer = SignerKey::from_pem(&golden("signer.pub")).unwrap();
    let k = with_policy(
        Statement::encode_all(&[Statement::AuthValue, authorize_statement(&signer, &[])]).unwrap(),
    );
    let e = KeyPolicy::from_key_file(&k).unwrap_err().to_string();
    assert!(
        e.contains("statement 2: PolicyAuthorize is only valid as the first"),
        "{e}"
    );
    // A signed entry without a signature, and one signed by another key.
    let mut k = key("ec-signed.pem");
    let mut entry = k.signed_policies()[0].clone();
    let last = entry.policy.last_mut().unwrap();
    let n = last.command_policy.len();
    last.command_policy.truncate(n - 72);
    last.command_policy.extend([0x00, 0x10]);
    entry.name = Some("unsigned".into());
    k.add_signed_policy(entry).unwrap();
    let e = KeyPolicy::from_key_file(&k).unwrap_err().to_string();
    assert!(
        e.contains("\"unsigned\": its PolicyAuthorize carries no signature"),
        "{e}"
    );
    let mut k = key("ec-signed.pem");
    let other = SignerKey::from_pem(&golden("srk.pub")).unwrap();
    let entry = signed_policy_entry(
        Some("foreign"),
        &[approved_pcr16_statement()],
        &other,
        &[],
        TpmSignature::Ecdsa {
            hash: Hash::Sha256,
            r: vec![1; 32],
            s: vec![1; 32],
        },
    )
    .unwrap();
    k.add_signed_policy(entry).unwrap();
    let e = KeyPolicy::from_key_file(&k).unwrap_err().to_string();
    assert!(e.contains("foreign is signed by another key"), "{e}");
}

/// Every truncation and single-byte change of a golden policy key file: no panic, and what
/// still parses decodes (or is refused) without panicking either.
#[test]
fn no_panic_on_mutated_policy_files() {
    for file in ["ec-signed.pem", "ec-pcr16-auth.pem"] {
        let der = key(file).to_der();
        for len in 0..der.len() {
            assert!(KeyFile::from_der(&der[..len]).is_err());
        }
        for pos in 0..der.len() {
            for v in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                let mut m = der.clone();
                m[pos] = v;
                if let Ok(k) = KeyFile::from_der(&m) {
                    let _ = KeyPolicy::from_key_file(&k);
                    assert_eq!(KeyFile::from_der(&k.to_der()).unwrap(), k);
                }
            }
        }
    }
}

/// systemd-measure's JSON: entries of the signer's key are picked by pkfp and become an
/// authPolicy entry whose signature verifies (RSASSA-PKCS1-v1_5/SHA-256 over `pol`).
#[test]
fn systemd_pcr_signature_json() {
    let rsa = Rsa::generate(2048).unwrap();
    let private = PKey::from_rsa(rsa).unwrap();
    let spki = private.public_key_to_der().unwrap();
    let signer = SignerKey::from_spki_der(&spki).unwrap();
    let pkfp = Hash::Sha256.digest(&[&private.rsa().unwrap().public_key_to_der_pkcs1().unwrap()]);
    assert_eq!(signer.systemd_fingerprint().unwrap(), pkfp);

    // PCR 11 predicted for a UKI, one phase.
    let selection = PcrSelection::parse("sha256:11").unwrap();
    let pcr11 = Hash::Sha256.digest(&[b"uki v1"]);
    let pol = policy_digest(&[Statement::Pcr(PolicyPcr {
        pcr_digest: selection.pcr_digest(&[pcr11], Hash::Sha256).unwrap(),
        selection: selection.clone(),
        form: BodyForm::Engine,
    })])
    .unwrap();
    let mut sgn = Signer::new(MessageDigest::sha256(), &private).unwrap();
    sgn.update(&pol).unwrap();
    let sig = sgn.sign_to_vec().unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let b64 = openssl::base64::encode_block(&sig);
    let json = format!(
        r#"{{"sha1":[{{"pcrs":[11],"pkfp":"{fp}","pol":"{p}","sig":"{b64}"}}],
            "sm3_256":[{{"pcrs":[11],"pkfp":"00","pol":"00","sig":""}}],
            "sha256":[{{"pcrs":[11],"pkfp":"{other}","pol":"{p}","sig":"{b64}"}},
                      {{"pcrs":[11],"pkfp":"{fp}","pol":"{p}","sig":"{b64}"}}]}}"#,
        fp = hex(&pkfp),
        p = hex(&pol),
        other = hex(&[0xAB; 32]),
    );
    let entries = systemd::parse(json.as_bytes()).unwrap();
    assert_eq!(entries.len(), 3, "the unknown sm3_256 bank is skipped");
    let mine = systemd::for_signer(&entries, &signer);
    assert_eq!(mine.len(), 2);
    let e = mine
        .iter()
        .find(|e| e.selection.to_string() == "sha256:11")
        .unwrap();
    assert_eq!(e.approved_policy, pol);
    assert!(entries[1].tpm_signature(&signer).is_err(), "foreign pkfp");

    let entry: TpmAuthPolicy = e.to_auth_policy(Some("uki-v1"), &signer).unwrap();
    let sp = SignedPolicy::decode(&entry, "authPolicy [3] entry 1").unwrap();
    let Statement::Pcr(p) = &sp.statements[0] else {
        panic!()
    };
    assert_eq!(p.selection, selection);
    assert!(p.pcr_digest.is_empty(), "the TPM takes PCR 11 as it is");
    assert_eq!(
        sp.approved_policy, None,
        "known only from pol / PolicyGetDigest"
    );
    assert!(sp.authorize.policy_ref.is_empty());
    let TpmSignature::RsaSsa { hash, signature } = &sp.authorize.signature else {
        panic!()
    };
    assert_eq!(*hash, Hash::Sha256);
    // aHash with the empty policyRef is SHA-256(pol): OpenSSL verifies sig over pol.
    assert_eq!(sp.authorization_hash(&pol), Hash::Sha256.digest(&[&pol]));
    let mut v = Verifier::new(MessageDigest::sha256(), &private).unwrap();
    v.update(&pol).unwrap();
    assert!(v.verify(signature).unwrap());

    for (bad, want) in [
        (r#"[]"#, "top level is not an object"),
        (r#"{"sha256":{}}"#, "\"sha256\" is not an array"),
        (
            r#"{"sha256":[{"pcrs":[24],"pkfp":"","pol":"","sig":""}]}"#,
            "PCR index 24",
        ),
        (
            r#"{"sha256":[{"pcrs":[300]}]}"#,
            "PCR index 300 out of range",
        ),
        (
            r#"{"sha256":[{"pcrs":[11],"pol":"zz"}]}"#,
            "\"pol\" is not hex",
        ),
        (
            r#"{"sha256":[{"pcrs":[11],"pol":"00"}]}"#,
            "\"pol\" is 1 bytes",
        ),
        (r#"{"sha256":[{"pcrs":[11]"#, "JSON at byte"),
    ] {
        let e = systemd::parse(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

/// Policy signatures are checked in software before use; a signature of a scheme the
/// signer cannot make is an error.
#[test]
fn offline_signature_check() {
    let k = key("ec-signed.pem");
    let signer = SignerKey::from_pem(&golden("signer.pub")).unwrap();
    let s = &policy_of(&k).signed[0];
    let ahash = s.authorization_hash(s.approved_policy.as_ref().unwrap());
    assert!(signer
        .verify_digest(&ahash, &s.authorize.signature)
        .unwrap());
    let mut wrong = ahash.clone();
    wrong[0] ^= 1;
    assert!(!signer
        .verify_digest(&wrong, &s.authorize.signature)
        .unwrap());
    let TpmSignature::Ecdsa { hash, r, s: sv } = s.authorize.signature.clone() else {
        panic!()
    };
    let swapped = TpmSignature::Ecdsa { hash, r: sv, s: r };
    assert!(!signer.verify_digest(&ahash, &swapped).unwrap());
    let rsa = SignerKey::from_spki_der(
        &PKey::from_rsa(Rsa::generate(2048).unwrap())
            .unwrap()
            .public_key_to_der()
            .unwrap(),
    )
    .unwrap();
    let e = rsa
        .verify_digest(&ahash, &s.authorize.signature)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot come from the RSA-2048 policy signer"),
        "{e}"
    );
}
