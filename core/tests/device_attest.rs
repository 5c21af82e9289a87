//! The device side of attestation on a swtpm provisioned with EK certificates: the EK the
//! core derives matches the manufacturer's certificate (whose chain OpenSSL checks), an AK
//! certifies a tpmkey key and quotes PCRs, and the TPM-free verifier accepts exactly that
//! evidence. Commands per operation are counted on the wire.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use tpmkey::attest::certify::{self, KeyAttributes};
use tpmkey::attest::chain::verify_chain;
use tpmkey::attest::quote::{self, ExpectedPcr, PcrSelection, QuoteRequest};
use tpmkey::attest::{AkPublic, Finding};
use tpmkey::attestation_key::AttestationKey;
use tpmkey::endorsement::{self, EkType};
use tpmkey::hash::Hash;
use tpmkey::{KeySpec, TpmKey};
use tpmkey_testenv::tpm_command::command_name;
use tpmkey_testenv::{EkCa, Swtpm, TpmEndpoint, WireTap};

static SERIAL: Mutex<()> = Mutex::new(());

/// A provisioned swtpm behind a wire tap, the process's connection pointed at the tap.
struct Device {
    tpm: Swtpm,
    ca: EkCa,
    tap: WireTap,
    _serial: MutexGuard<'static, ()>,
}

impl Device {
    fn new() -> Device {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let (tpm, ca) = Swtpm::start_with_ek_certs();
        let tap = WireTap::start(tpm.port());
        tpmkey::connection::configure(&[("tcti", &tap.tcti())]).unwrap();
        Device {
            tpm,
            ca,
            tap,
            _serial: serial,
        }
    }

    /// The TPM commands sent since the last call, by name.
    fn commands(&self) -> Vec<String> {
        self.tap
            .take_codes()
            .into_iter()
            .map(|c| command_name(c).map_or(format!("0x{c:x}"), str::to_string))
            .collect()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        tpmkey::connection::shutdown();
    }
}

#[test]
fn ek_certificates_chain_to_the_ca_and_match_the_derived_ek() {
    let d = Device::new();
    for kind in [EkType::Rsa2048, EkType::EccP256] {
        let der = endorsement::certificate(kind).unwrap();
        println!("{kind:?} certificate: {:?}", d.commands());
        let path = d.ca.path().join(format!("{kind:?}.der"));
        std::fs::write(&path, &der).unwrap();
        // An independent party checks the chain: OpenSSL, root trusted, issuer untrusted.
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(d.ca.root_cert())
            .arg("-untrusted")
            .arg(d.ca.issuer_cert())
            .arg(&path)
            .output()
            .unwrap();
        let pem = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{pem}{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let ek = endorsement::public(kind).unwrap();
        println!("{kind:?} public: {:?}", d.commands());
        endorsement::check_certificate(&der, &ek.key).unwrap();

        // The core's own chain check agrees with OpenSSL, and refuses what OpenSSL would.
        let root = std::fs::read(d.ca.root_cert()).unwrap();
        let issuer = std::fs::read(d.ca.issuer_cert()).unwrap();
        assert_eq!(
            verify_chain(
                &der,
                std::slice::from_ref(&issuer),
                std::slice::from_ref(&root)
            )
            .unwrap(),
            1
        );
        assert_eq!(
            verify_chain(&der, &[], std::slice::from_ref(&issuer)).unwrap(),
            0
        );
        let e = verify_chain(&der, &[], std::slice::from_ref(&root)).unwrap_err();
        assert!(e.to_string().contains("certificate chain"), "{e}");
        let mut forged = der.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let e = verify_chain(
            &forged,
            std::slice::from_ref(&issuer),
            std::slice::from_ref(&root),
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not"), "{e}");
        // Truncated certificates are errors, never a panic.
        for n in (0..der.len()).step_by(7) {
            assert!(verify_chain(&der[..n], &[], std::slice::from_ref(&issuer)).is_err());
        }
        // The root cannot stand in for the intermediate (its name is not the issuer's).
        assert!(verify_chain(
            &der,
            std::slice::from_ref(&root),
            std::slice::from_ref(&root)
        )
        .is_err());
    }
    // A certificate from the other index (or another TPM) does not match this EK.
    let rsa_cert = endorsement::certificate(EkType::Rsa2048).unwrap();
    let ecc_ek = endorsement::public(EkType::EccP256).unwrap();
    let e = endorsement::check_certificate(&rsa_cert, &ecc_ek.key).unwrap_err();
    assert!(
        e.to_string().contains("EK certificate does not match EK"),
        "{e}"
    );
    // Neither is an AK's or a TLS certificate: the CA certificate has no EK usage.
    let ca_pem = std::fs::read(d.ca.issuer_cert()).unwrap();
    assert!(endorsement::check_certificate(&ca_pem, &ecc_ek.key).is_err());
}

#[test]
fn ak_certifies_a_key_and_the_verifier_reads_its_attributes() {
    let d = Device::new();
    let ak = AttestationKey::create(KeySpec::EcP256).unwrap();
    println!("ak create: {:?}", d.commands());
    let ak = AttestationKey::decode(ak.to_pem().as_bytes()).unwrap();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    d.commands();
    let nonce = b"verifier nonce 1";
    let bundle = ak.certify(&key, nonce).unwrap();
    println!("certify: {:?}", d.commands());

    let ak_public = AkPublic::from_tpm2b_public(&ak.public().blob).unwrap();
    let bundle = certify::CertifyBundle::decode(bundle.to_pem().as_bytes()).unwrap();
    let report = certify::verify(&bundle, &ak_public, nonce);
    report.findings.check().unwrap();
    let certified = report.key.unwrap();
    let KeyAttributes {
        fixed_tpm,
        sensitive_data_origin,
        user_with_auth,
        ..
    } = certified.attributes;
    assert!(fixed_tpm && sensitive_data_origin && user_with_auth);
    assert_eq!(certified.name, key.public().name);

    // The same bundle against another nonce (a replay) fails.
    let replay = certify::verify(&bundle, &ak_public, b"verifier nonce 2");
    assert!(replay
        .findings
        .iter()
        .any(|f| matches!(f, Finding::NonceMismatch { .. })));

    // An RSA AK certifies too.
    let rsa_ak = AttestationKey::create(KeySpec::Rsa(2048)).unwrap();
    let bundle = rsa_ak.certify(&key, nonce).unwrap();
    let rsa_public = AkPublic::from_tpm2b_public(&rsa_ak.public().blob).unwrap();
    certify::verify(&bundle, &rsa_public, nonce)
        .findings
        .check()
        .unwrap();
    // Evidence of one AK does not verify under the other.
    assert!(!certify::verify(&bundle, &ak_public, nonce).is_verified());
}

#[test]
fn quote_verifies_then_names_the_extended_pcr() {
    let d = Device::new();
    let ak = AttestationKey::create(KeySpec::EcP256).unwrap();
    let ak_public = AkPublic::from_tpm2b_public(&ak.public().blob).unwrap();
    let selection = PcrSelection::parse_list("sha256:0,7,16").unwrap();
    d.commands();
    let q = ak.quote(&selection, b"fresh nonce").unwrap();
    println!("quote: {:?}", d.commands());
    let q = quote::QuoteFile::decode(q.to_pem().as_bytes()).unwrap();
    let pcr16 = q.pcrs.iter().find(|v| v.pcr == 16).unwrap().value.clone();
    let expected = ExpectedPcr::parse(&format!("sha256:16={}", tpmkey::hex::hex(&pcr16))).unwrap();
    let request = QuoteRequest {
        nonce: b"fresh nonce".to_vec(),
        selection: selection.clone(),
        expected: vec![expected.clone()],
    };
    quote::verify(&q, &ak_public, &request)
        .findings
        .check()
        .unwrap();

    // A replayed quote: the verifier's new nonce is not in it.
    let replayed = QuoteRequest {
        nonce: b"next nonce".to_vec(),
        ..request.clone()
    };
    let e = quote::verify(&q, &ak_public, &replayed)
        .findings
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("nonce mismatch"), "{e}");

    // PCR 16 extended: a new quote verifies as a quote but names PCR 16.
    d.tpm
        .tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={}", "ab".repeat(32))]);
    let q2 = ak.quote(&selection, b"nonce three").unwrap();
    let request2 = QuoteRequest {
        nonce: b"nonce three".to_vec(),
        ..request
    };
    let findings = quote::verify(&q2, &ak_public, &request2).findings;
    assert_eq!(findings.0.len(), 1, "{findings}");
    assert!(
        matches!(
            &findings.0[0],
            Finding::PcrDiffers {
                hash: Hash::Sha256,
                pcr: 16,
                ..
            }
        ),
        "{findings}"
    );
    assert!(findings.to_string().contains("PCR sha256:16 differs"));

    // A bank the TPM does not run (swtpm_setup activated SHA-256 only) is not quoted.
    let sha1 = PcrSelection::parse_list("sha1:0").unwrap();
    let q3 = ak.quote(&sha1, b"n").unwrap();
    let asked = QuoteRequest {
        nonce: b"n".to_vec(),
        selection: sha1,
        expected: Vec::new(),
    };
    let e = quote::verify(&q3, &ak_public, &asked)
        .findings
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("quote for other PCRs"), "{e}");
}

#[test]
fn an_ak_file_from_another_tpm_is_refused() {
    let d = Device::new();
    let ak = AttestationKey::create(KeySpec::EcP256).unwrap();
    let pem = ak.to_pem();
    drop(d);
    let _other = Device::new();
    let ak = AttestationKey::decode(pem.as_bytes()).unwrap();
    let e = ak
        .quote(&PcrSelection::parse_list("sha256:0").unwrap(), b"n")
        .unwrap_err();
    assert!(e.to_string().contains("does not derive the AK"), "{e}");
    // Garbage and truncation are clear errors.
    assert!(AttestationKey::decode(b"").is_err());
    let body = pem.as_bytes();
    assert!(AttestationKey::decode(&body[..body.len() / 2]).is_err());
}

#[test]
fn enrolment_round_trip_proves_the_ak_lives_with_the_ek() {
    use tpmkey::attest::credential::{make_credential, EkPublic};

    let d = Device::new();
    let ak = AttestationKey::create(KeySpec::EcP256).unwrap();
    let other = AttestationKey::create(KeySpec::EcP256).unwrap();
    for kind in [EkType::Rsa2048, EkType::EccP256] {
        // The verifier: the EK from its (chain-checked) certificate, a fresh secret.
        let cert = endorsement::certificate(kind).unwrap();
        let ek = EkPublic::from_certificate(&cert).unwrap();
        let secret = format!("challenge for {kind:?}");
        let cred = make_credential(&ek, &ak.public().name, secret.as_bytes()).unwrap();
        d.commands();
        let recovered = ak.activate_credential(kind, &cred).unwrap();
        println!("activate ({kind:?}): {:?}", d.commands());
        assert_eq!(recovered.as_slice(), secret.as_bytes());
        // The same credential is useless to another AK of the same TPM.
        let e = other.activate_credential(kind, &cred).unwrap_err();
        assert_eq!(e.response_code().map(|rc| rc.base()), Some(0x09F), "{e}");
        // And a credential for the other EK type does not open with this one.
        let wrong = if kind == EkType::Rsa2048 {
            EkType::EccP256
        } else {
            EkType::Rsa2048
        };
        assert!(ak.activate_credential(wrong, &cred).is_err());
    }
}

#[test]
fn certify_creation_names_the_parent_the_storage_key_certification_proves() {
    let d = Device::new();
    let ak = AttestationKey::create(KeySpec::EcP256).unwrap();
    let ak_public = AkPublic::from_tpm2b_public(&ak.public().blob).unwrap();
    let key = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    let creation = key.creation().unwrap().clone();
    d.commands();
    let bundle = ak.certify_creation(&key, &creation, b"n1").unwrap();
    println!("certify creation: {:?}", d.commands());
    let report = certify::verify(&bundle, &ak_public, b"n1");
    report.findings.check().unwrap();
    let created = report.creation.unwrap();
    // The parent in the creation data is the storage key a certification names.
    let srk = ak.certify_storage_key(b"n2").unwrap();
    let srk_report = certify::verify(&srk, &ak_public, b"n2");
    srk_report.findings.check().unwrap();
    assert_eq!(created.parent_name, srk_report.key.unwrap().name);
    assert!(created.pcr_selection.is_empty());

    // The creation data of another key: the TPM refuses the ticket.
    let other = TpmKey::generate(KeySpec::EcP256, None, None).unwrap();
    let e = ak
        .certify_creation(&key, other.creation().unwrap(), b"n3")
        .unwrap_err();
    assert!(e.to_string().contains("not this key's"), "{e}");
    // A plain Certify bundle is not accepted as creation evidence, nor the reverse.
    let mut as_creation = ak.certify(&key, b"n4").unwrap();
    as_creation.creation_data = Some(creation.creation_data.clone());
    let findings = certify::verify(&as_creation, &ak_public, b"n4").findings;
    assert!(
        findings
            .iter()
            .any(|f| matches!(f, Finding::WrongType { .. })),
        "{findings}"
    );
}

#[test]
fn a_persistent_ak_quotes_with_quote_and_pcr_read_only() {
    let d = Device::new();
    let ak = AttestationKey::create_persistent(KeySpec::EcP256, 0x8100_0ab1).unwrap();
    let ak = AttestationKey::decode(ak.to_pem().as_bytes()).unwrap();
    assert_eq!(ak.persistent_handle(), Some(0x8100_0ab1));
    let ak_public = AkPublic::from_tpm2b_public(&ak.public().blob).unwrap();
    let selection = PcrSelection::parse_list("sha256:0,7,16").unwrap();
    d.commands();
    for nonce in [&b"q1"[..], b"q2", b"q3"] {
        let q = ak.quote(&selection, nonce).unwrap();
        assert_eq!(d.commands(), ["Quote", "PCR_Read"]);
        let request = QuoteRequest {
            nonce: nonce.to_vec(),
            selection: selection.clone(),
            expected: Vec::new(),
        };
        quote::verify(&q, &ak_public, &request)
            .findings
            .check()
            .unwrap();
    }
    tpmkey::keys::evict_persistent(0x8100_0ab1).unwrap();
}
