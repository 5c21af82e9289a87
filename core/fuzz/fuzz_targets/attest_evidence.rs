//! Fuzzes the attestation evidence parsers a verifier feeds with untrusted bytes: the certify
//! bundle, the quote file, TPMS_ATTEST, TPMT_SIGNATURE, the ACME attestation object, the AK
//! file, the creation file and EK certificate chains. No
//! input may panic; whatever decodes must encode back to the same value, and verification
//! of it (against a fixed AK) must return findings, never panic.
//!
//! Run from core/: `cargo +nightly fuzz run attest_evidence`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmkey::attest::acme::{self, AttestationObject};
use tpmkey::attest::certify::{self, CertifyBundle, CreationData};
use tpmkey::attest::creation::CreationRecord;
use tpmkey::attest::quote::{self, QuoteFile, QuoteRequest};
use tpmkey::attest::chain::verify_chain;
use tpmkey::attest::{AkPublic, Attestation, TpmSignature};
use tpmkey::attestation_key::AttestationKey;

/// An ECDSA P-256 AK (SubjectPublicKeyInfo), so that signature checks run to the end.
const AK_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJCyaGBpWDkzDD7ZPJVW1yXb4Oe4W\ndMwA9WaUx0Xiu/OIMMW0oqOD1j5mcNtieu/fmbqwtxs9gUQ9tvu/zHOfCQ==\n-----END PUBLIC KEY-----\n";

fuzz_target!(|data: &[u8]| {
    let ak = AkPublic::parse(AK_PEM.as_bytes()).expect("fixed AK parses");
    let _ = Attestation::parse(data);
    if let Ok(sig) = TpmSignature::parse(data) {
        assert_eq!(TpmSignature::parse(&sig.to_bytes()).ok(), Some(sig));
    }
    if let Ok(ak_file) = AttestationKey::decode(data) {
        let again = AttestationKey::decode(ak_file.to_pem().as_bytes()).expect("to_pem parses");
        assert_eq!(again.to_pem(), ak_file.to_pem());
    }
    if let Ok(c) = CreationRecord::decode(data) {
        let again = CreationRecord::decode(c.to_pem().as_bytes()).expect("to_pem parses");
        assert_eq!(again, c);
        let _ = CreationData::parse(&c.creation_data);
    }
    let _ = verify_chain(data, &[], &[data.to_vec()]);
    if let Ok(bundle) = CertifyBundle::decode(data) {
        let again = CertifyBundle::from_bytes(&bundle.to_bytes()).expect("to_bytes output parses");
        assert_eq!(again, bundle);
        let _ = certify::verify(&bundle, &ak, b"nonce");
    }
    if let Ok(q) = QuoteFile::decode(data) {
        let again = QuoteFile::from_bytes(&q.to_bytes()).expect("to_bytes output parses");
        assert_eq!(again, q);
        let _ = quote::verify(&q, &ak, &QuoteRequest::default());
    }
    if let Ok(obj) = AttestationObject::from_cbor(data) {
        let again = AttestationObject::from_cbor(&obj.to_cbor()).expect("to_cbor output parses");
        assert_eq!(again, obj);
        let _ = acme::verify(
            &obj,
            &acme::Challenge {
                key_authorization: "token.thumbprint",
                ..Default::default()
            },
        );
    }
});
