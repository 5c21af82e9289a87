//! The TPM-free verifier (`tpmkey::attest`) against evidence a real TPM made: swtpm driven by
//! tpm2-tools (and ESAPI where tpm2-tools 5.4 has no option, e.g. Certify's qualifying
//! data). EK, AK, certified keys, quotes and credential activation come from the device
//! side; the verifier only ever sees their bytes.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::str::FromStr;

use openssl::asn1::Asn1Object;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509Builder, X509NameBuilder, X509StoreContext, X509};
use tpmkey::attest::acme::{self, AttestationObject, Challenge};
use tpmkey::attest::certificate::{Certificate, OID_EKU_EK_CERTIFICATE};
use tpmkey::attest::certify::{self, CertifyBundle, PolicyCheck};
use tpmkey::attest::credential::{make_credential, Credential, EkPublic};
use tpmkey::attest::quote::{self, ExpectedPcr, PcrSelection, PcrValue, QuoteFile, QuoteRequest};
use tpmkey::attest::signature::public_key_from_spki;
use tpmkey::attest::{parse_hex, AkPublic, Finding, TpmSignature};
use tpmkey::hash::Hash;
use tpmkey::Error;
use tpmkey_testenv::{Swtpm, TpmEndpoint};

/// One swtpm and a scratch directory for the files tpm2-tools writes.
struct Device {
    tpm: Swtpm,
    dir: PathBuf,
}

impl Device {
    fn new(test: &str) -> Device {
        let tpm = Swtpm::start();
        let dir = tpm.state_dir().join(format!("attest-{test}"));
        std::fs::create_dir_all(&dir).unwrap();
        Device { tpm, dir }
    }

    fn p(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap()
    }

    fn write(&self, file: &str, data: &[u8]) {
        std::fs::write(self.dir.join(file), data).unwrap();
    }

    /// Runs a tpm2-tools command, then flushes what it left loaded (no resource manager:
    /// swtpm has 3 object slots).
    fn tools(&self, args: &[&str]) -> Output {
        let out = self.tpm.tpm2_tools_ok(args);
        self.tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
        out
    }

    /// An EK (`ek.ctx`, `ek.pub`) and an AK under it (`ak.ctx`, TPM2B_PUBLIC `ak.pub`,
    /// `ak.name`, SPKI `ak.pem`).
    fn ek_and_ak(&self, ek_alg: &str, ak_alg: &str, ak_scheme: &str) {
        self.tools(&[
            "tpm2_createek",
            "-c",
            &self.p("ek.ctx"),
            "-G",
            ek_alg,
            "-u",
            &self.p("ek.pub"),
        ]);
        self.ak("ak", ak_alg, ak_scheme);
    }

    /// An AK (`NAME.ctx`, `.pub`, `.name`, `.pem`); SHA-384 for P-384 AKs.
    fn ak(&self, name: &str, alg: &str, scheme: &str) {
        let hash = if alg.ends_with("384") {
            "sha384"
        } else {
            "sha256"
        };
        self.tools(&[
            "tpm2_createak",
            "-C",
            &self.p("ek.ctx"),
            "-c",
            &self.p(&format!("{name}.ctx")),
            "-G",
            alg,
            "-g",
            hash,
            "-s",
            scheme,
            "-u",
            &self.p(&format!("{name}.pub")),
            "-n",
            &self.p(&format!("{name}.name")),
        ]);
        self.tools(&[
            "tpm2_readpublic",
            "-c",
            &self.p(&format!("{name}.ctx")),
            "-f",
            "pem",
            "-o",
            &self.p(&format!("{name}.pem")),
        ]);
    }

    /// An ECC signing key under an owner primary: `NAME.ctx`, `NAME.pub`; `extra` adds
    /// tpm2_create options.
    fn key(&self, name: &str, extra: &[&str]) {
        if !self.dir.join("prim.ctx").exists() {
            self.tools(&[
                "tpm2_createprimary",
                "-C",
                "o",
                "-G",
                "ecc",
                "-c",
                &self.p("prim.ctx"),
            ]);
        }
        let (public, private) = (
            self.p(&format!("{name}.pub")),
            self.p(&format!("{name}.priv")),
        );
        let parent = self.p("prim.ctx");
        let mut args = vec![
            "tpm2_create",
            "-C",
            &parent,
            "-G",
            "ecc",
            "-u",
            &public,
            "-r",
            &private,
        ];
        args.extend_from_slice(extra);
        self.tools(&args);
        self.load(name);
    }

    fn load(&self, name: &str) {
        self.tools(&[
            "tpm2_load",
            "-C",
            &self.p("prim.ctx"),
            "-u",
            &self.p(&format!("{name}.pub")),
            "-r",
            &self.p(&format!("{name}.priv")),
            "-c",
            &self.p(&format!("{name}.ctx")),
        ]);
    }

    /// tpm2_certify of `key` by `ak` (extraData is always 00ff55aa with tpm2-tools 5.4).
    fn certify(&self, key: &str, ak: &str) -> CertifyBundle {
        self.certify_with(key, ak, &[])
    }

    fn certify_with(&self, key: &str, ak: &str, extra: &[&str]) -> CertifyBundle {
        let mut args = vec![
            "tpm2_certify".to_string(),
            "-c".into(),
            self.p(&format!("{key}.ctx")),
            "-C".into(),
            self.p(&format!("{ak}.ctx")),
            "-g".into(),
            "sha256".into(),
            "-o".into(),
            self.p("certinfo"),
            "-s".into(),
            self.p("certsig"),
        ];
        args.extend(extra.iter().map(ToString::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.tools(&args);
        CertifyBundle {
            cert_info: self.read("certinfo"),
            signature: self.read("certsig"),
            public: self.read(&format!("{key}.pub")),
            creation_data: None,
        }
    }

    /// tpm2_quote by `ak` with `nonce`; the PCR values are those tpm2_quote printed.
    fn quote(&self, ak: &str, pcrs: &str, nonce: &[u8]) -> QuoteFile {
        let out = self.tools(&[
            "tpm2_quote",
            "-c",
            &self.p(&format!("{ak}.ctx")),
            "-l",
            pcrs,
            "-q",
            &hex(nonce),
            "-g",
            "sha256",
            "-m",
            &self.p("quoted"),
            "-s",
            &self.p("quotesig"),
            "-o",
            &self.p("quotepcrs"),
        ]);
        QuoteFile {
            quoted: self.read("quoted"),
            signature: self.read("quotesig"),
            pcrs: printed_pcrs(&String::from_utf8_lossy(&out.stdout)),
        }
    }

    fn ak_public(&self, name: &str) -> AkPublic {
        AkPublic::parse(&self.read(&format!("{name}.pem"))).unwrap()
    }

    /// ActivateCredential with the EK's PolicySecret(endorsement) session.
    fn activate(&self, ak: &str, cred: &str) -> Output {
        let session = self.p("session.ctx");
        self.tpm
            .tpm2_tools_ok(["tpm2_startauthsession", "--policy-session", "-S", &session]);
        self.tpm
            .tpm2_tools_ok(["tpm2_policysecret", "-S", &session, "-c", "e"]);
        let out = self.tpm.tpm2_tools([
            "tpm2_activatecredential",
            "-c",
            &self.p(&format!("{ak}.ctx")),
            "-C",
            &self.p("ek.ctx"),
            "-i",
            &self.p(cred),
            "-o",
            &self.p("recovered"),
            "-P",
            &format!("session:{session}"),
        ]);
        self.tpm.tpm2_tools_ok(["tpm2_flushcontext", &session]);
        self.tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
        out
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The `pcrs:` section of tpm2_quote's output: `  sha256:` then `    16: 0x...` lines.
fn printed_pcrs(stdout: &str) -> Vec<PcrValue> {
    let mut bank = None;
    let mut values = Vec::new();
    let section = stdout
        .split("pcrs:")
        .nth(1)
        .unwrap_or_else(|| panic!("no pcrs in {stdout}"));
    for line in section.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_suffix(':') {
            if let Ok(h) = Hash::from_name(name) {
                bank = Some(h);
                continue;
            }
        }
        if let (Some(h), Some((index, value))) = (bank, t.split_once(':')) {
            if let (Ok(pcr), Some(v)) =
                (index.trim().parse::<u8>(), value.trim().strip_prefix("0x"))
            {
                values.push(PcrValue {
                    hash: h,
                    pcr,
                    value: parse_hex(v).unwrap(),
                });
                continue;
            }
        }
        if !line.starts_with(' ') {
            bank = None;
        }
    }
    values
}

const TOOLS_NONCE: [u8; 4] = [0x00, 0xff, 0x55, 0xaa];

#[test]
fn certify_verifies_and_each_tampering_fails_with_its_own_message() {
    let d = Device::new("certify");
    d.ek_and_ak("rsa", "ecc", "ecdsa");
    d.key("app", &[]);
    let bundle = d.certify("app", "ak");
    // The bundle travels as PEM.
    let bundle = CertifyBundle::decode(bundle.to_pem().as_bytes()).unwrap();

    // The AK public key as SPKI PEM and as the TPM's TPM2B_PUBLIC verify alike.
    for ak in [
        d.ak_public("ak"),
        AkPublic::parse(&d.read("ak.pub")).unwrap(),
    ] {
        let report = certify::verify(&bundle, &ak, &TOOLS_NONCE);
        assert!(report.is_verified(), "{}", report.findings);
        let key = report.key.unwrap();
        let a = key.attributes;
        assert!(a.fixed_tpm && a.fixed_parent && a.sensitive_data_origin && a.user_with_auth);
        assert_eq!(a.origin(), "generated in the TPM");
        assert!(key.auth_policy.is_empty());
    }
    assert_eq!(
        AkPublic::parse(&d.read("ak.pub")).unwrap().name.unwrap(),
        d.read("ak.name")
    );

    let ak = d.ak_public("ak");
    let only = |b: &CertifyBundle, nonce: &[u8]| {
        let f = certify::verify(b, &ak, nonce).findings;
        assert_eq!(f.0.len(), 1, "{f}");
        f.0[0].clone()
    };
    // certInfo: the restartCount byte (parses, but the signature no longer covers it).
    let mut b = bundle.clone();
    b.cert_info[63] ^= 1;
    let f = only(&b, &TOOLS_NONCE);
    assert!(matches!(f, Finding::BadSignature(_)), "{f}");
    assert!(
        f.to_string()
            .starts_with("AK signature over certInfo does not verify"),
        "{f}"
    );
    // pubArea: a byte of the public point.
    let mut b = bundle.clone();
    let last = b.public.len() - 5;
    b.public[last] ^= 1;
    let f = only(&b, &TOOLS_NONCE);
    assert!(
        f.to_string()
            .starts_with("name mismatch: the TPM certified"),
        "{f}"
    );
    // signature: a byte of r.
    let mut b = bundle.clone();
    b.signature[10] ^= 1;
    let f = only(&b, &TOOLS_NONCE);
    assert_eq!(
        f.to_string(),
        "AK signature over certInfo does not verify: ECDSA signature does not match"
    );
    // nonce: the verifier's differs by one byte.
    let mut other = TOOLS_NONCE;
    other[3] ^= 1;
    let f = only(&bundle, &other);
    assert_eq!(
        f.to_string(),
        "nonce mismatch: certInfo extraData is 00ff55aa, expected 00ff55ab"
    );

    // Another AK of the same TPM did not sign this.
    d.ak("ak2", "ecc", "ecdsa");
    let f = certify::verify(&bundle, &d.ak_public("ak2"), &TOOLS_NONCE).findings;
    assert!(matches!(f.0.as_slice(), [Finding::BadSignature(_)]), "{f}");
    // An RSA AK's key cannot have made an ECDSA signature.
    d.ak("akrsa", "rsa", "rsassa");
    let f = certify::verify(&bundle, &d.ak_public("akrsa"), &TOOLS_NONCE).findings;
    assert!(
        f.to_string().contains("cannot come from the RSA-2048 AK"),
        "{f}"
    );
    // A quote is not a certification.
    let q = d.quote("ak", "sha256:0", b"n");
    let b = CertifyBundle {
        cert_info: q.quoted,
        signature: q.signature,
        public: bundle.public.clone(),
        creation_data: None,
    };
    let f = only(&b, b"n");
    assert_eq!(
        f.to_string(),
        "certInfo is a TPM_ST_ATTEST_QUOTE attestation, expected TPM_ST_ATTEST_CERTIFY"
    );
}

#[test]
fn certify_creation_reports_the_creation_pcrs() {
    let d = Device::new("creation");
    d.ek_and_ak("rsa", "ecc", "ecdsa");
    d.key(
        "cc",
        &[
            "-l",
            "sha256:7,16",
            "--creation-data",
            &d.p("cc.data"),
            "--creation-hash",
            &d.p("cc.hash"),
            "--creation-ticket",
            &d.p("cc.ticket"),
        ],
    );
    let nonce = b"creation nonce";
    d.tools(&[
        "tpm2_certifycreation",
        "-C",
        &d.p("ak.ctx"),
        "-c",
        &d.p("cc.ctx"),
        "-d",
        &d.p("cc.hash"),
        "-t",
        &d.p("cc.ticket"),
        "-g",
        "sha256",
        "-q",
        &hex(nonce),
        "-o",
        &d.p("cc.sig"),
        "--attestation",
        &d.p("cc.attest"),
    ]);
    let bundle = CertifyBundle {
        cert_info: d.read("cc.attest"),
        signature: d.read("cc.sig"),
        public: d.read("cc.pub"),
        creation_data: Some(d.read("cc.data")[2..].to_vec()),
    };
    let bundle = CertifyBundle::decode(bundle.to_pem().as_bytes()).unwrap();
    let ak = d.ak_public("ak");
    let report = certify::verify(&bundle, &ak, nonce);
    assert!(report.is_verified(), "{}", report.findings);
    let creation = report.creation.unwrap();
    assert_eq!(
        tpmkey::attest::attestation::selection_text(&creation.pcr_selection),
        "sha256:7,16"
    );
    // PCRs 7 and 16 of a fresh swtpm are zero.
    assert_eq!(creation.pcr_digest, Hash::Sha256.digest(&[&[0u8; 64]]));
    assert_eq!(creation.parent_name.len(), 34);

    let mut b = bundle.clone();
    let data = b.creation_data.as_mut().unwrap();
    data[12] ^= 1;
    let f = certify::verify(&b, &ak, nonce).findings;
    assert!(
        matches!(f.0.as_slice(), [Finding::CreationHashMismatch { .. }]),
        "{f}"
    );
    assert!(f.to_string().starts_with("creation data mismatch"), "{f}");
    let f = certify::verify(&bundle, &ak, b"old nonce").findings;
    assert!(
        matches!(f.0.as_slice(), [Finding::NonceMismatch { .. }]),
        "{f}"
    );
    // Without its creation data the same evidence is not a plain certification.
    let b = CertifyBundle {
        creation_data: None,
        ..bundle
    };
    let f = certify::verify(&b, &ak, nonce).findings;
    assert!(matches!(f.0.as_slice(), [Finding::WrongType { .. }]), "{f}");
}

#[test]
fn rsa_and_p384_aks_sign_with_rsassa_rsapss_and_ecdsa_sha384() {
    let d = Device::new("rsa-ak");
    d.ek_and_ak("rsa", "rsa", "rsassa");
    d.ak("akpss", "rsa", "rsapss");
    d.ak("ak384", "ecc384", "ecdsa");
    d.key("app", &[]);
    for (ak, extra, scheme, hash) in [
        ("ak", &[][..], "RSASSA", Hash::Sha256),
        ("akpss", &["--scheme", "rsapss"][..], "RSAPSS", Hash::Sha256),
        ("ak384", &["-g", "sha384"][..], "ECDSA", Hash::Sha384),
    ] {
        let bundle = d.certify_with("app", ak, extra);
        let sig = TpmSignature::parse(&bundle.signature).unwrap();
        assert_eq!((sig.scheme_name(), sig.hash()), (scheme, hash));
        let report = certify::verify(&bundle, &d.ak_public(ak), &TOOLS_NONCE);
        assert!(report.is_verified(), "{ak}: {}", report.findings);
        let mut bad = bundle.clone();
        bad.signature[20] ^= 1;
        let f = certify::verify(&bad, &d.ak_public(ak), &TOOLS_NONCE).findings;
        assert!(matches!(f.0.as_slice(), [Finding::BadSignature(_)]), "{f}");
    }
}

#[test]
fn policy_bound_and_imported_keys_are_reported() {
    let d = Device::new("policy");
    d.ek_and_ak("rsa", "ecc", "ecdsa");
    // A key usable only under PolicyPCR(sha256:16), no userWithAuth.
    d.tools(&[
        "tpm2_createpolicy",
        "--policy-pcr",
        "-l",
        "sha256:16",
        "-L",
        &d.p("pcr16.policy"),
    ]);
    d.key(
        "bound",
        &[
            "-L",
            &d.p("pcr16.policy"),
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|sign|noda",
        ],
    );
    let bundle = d.certify("bound", "ak");
    let mut report = certify::verify(&bundle, &d.ak_public("ak"), &TOOLS_NONCE);
    assert!(report.is_verified(), "{}", report.findings);
    let key = report.key.clone().unwrap();
    assert!(!key.attributes.user_with_auth);
    assert!(key.attributes.sensitive_data_origin);
    let policy = d.read("pcr16.policy");
    assert_eq!(key.auth_policy_hex(), hex(&policy));
    assert_eq!(key.check_policy(&policy), PolicyCheck::Match);
    report.expect_policy(&policy);
    assert!(report.is_verified());
    report.expect_policy(&[0u8; 32]);
    assert!(
        report
            .findings
            .to_string()
            .starts_with("authPolicy mismatch"),
        "{}",
        report.findings
    );

    // Attestation proves the binding, not the state: still verifies after PCR 16 moves.
    d.tools(&["tpm2_pcrextend", &format!("16:sha256={}", "11".repeat(32))]);
    let bundle = d.certify("bound", "ak");
    assert!(certify::verify(&bundle, &d.ak_public("ak"), &TOOLS_NONCE).is_verified());

    // An imported key: sensitiveDataOrigin clear.
    let ec = EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap();
    d.write(
        "ext.pem",
        &PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap(),
    );
    d.tools(&[
        "tpm2_import",
        "-C",
        &d.p("prim.ctx"),
        "-G",
        "ecc",
        "-i",
        &d.p("ext.pem"),
        "-u",
        &d.p("imported.pub"),
        "-r",
        &d.p("imported.priv"),
    ]);
    d.load("imported");
    let bundle = d.certify("imported", "ak");
    let report = certify::verify(&bundle, &d.ak_public("ak"), &TOOLS_NONCE);
    assert!(report.is_verified(), "{}", report.findings);
    let key = report.key.unwrap();
    assert!(!key.attributes.sensitive_data_origin);
    assert_eq!(key.attributes.origin(), "imported");
    assert!(key
        .attributes
        .to_string()
        .contains("sensitiveDataOrigin=0 (imported)"));
}

#[test]
fn quote_verifies_then_names_the_pcr_that_moved() {
    let d = Device::new("quote");
    d.ek_and_ak("rsa", "ecc", "ecdsa");
    let ak = d.ak_public("ak");
    let nonce = b"quote nonce 1".to_vec();
    let q = d.quote("ak", "sha256:0,7,16", &nonce);
    assert_eq!(q.pcrs.len(), 3);
    let q = QuoteFile::decode(q.to_pem().as_bytes()).unwrap();
    let request = QuoteRequest {
        nonce: nonce.clone(),
        selection: PcrSelection::parse_list("sha256:0,7,16").unwrap(),
        expected: q
            .pcrs
            .iter()
            .map(|v| ExpectedPcr {
                hash: v.hash,
                pcr: v.pcr,
                value: v.value.clone(),
            })
            .collect(),
    };
    let report = quote::verify(&q, &ak, &request);
    assert!(report.is_verified(), "{}", report.findings);
    assert_eq!(
        tpmkey::attest::attestation::selection_text(&report.quoted_selection),
        "sha256:0,7,16"
    );

    // PCR 16 moves: a fresh quote verifies in itself but not against the old values.
    let extend = "ab".repeat(32);
    d.tools(&["tpm2_pcrextend", &format!("16:sha256={extend}")]);
    let new_nonce = b"quote nonce 2".to_vec();
    let q2 = d.quote("ak", "sha256:0,7,16", &new_nonce);
    let request2 = QuoteRequest {
        nonce: new_nonce.clone(),
        ..request.clone()
    };
    let f = quote::verify(&q2, &ak, &request2).findings;
    assert_eq!(f.0.len(), 1, "{f}");
    let new16 = Hash::Sha256.digest(&[&[0u8; 32], &parse_hex(&extend).unwrap()]);
    assert_eq!(
        f.to_string(),
        format!(
            "PCR sha256:16 differs: expected {} got {}",
            "00".repeat(32),
            hex(&new16)
        )
    );

    // A replayed quote: the old one under the new nonce.
    let f = quote::verify(&q, &ak, &request2).findings;
    assert!(
        matches!(f.0.as_slice(), [Finding::NonceMismatch { .. }]),
        "{f}"
    );

    // Reported values that are not the quoted ones.
    let mut lying = q2.clone();
    lying.pcrs[2].value = vec![0; 32];
    let f = quote::verify(&lying, &ak, &request2).findings;
    assert!(
        matches!(f.0.as_slice(), [Finding::PcrDigestMismatch { .. }]),
        "{f}"
    );
    assert!(f.to_string().starts_with("PCR digest mismatch"));

    // Bad signature, and the wrong AK (no expected values: only the signature fails).
    let request2 = QuoteRequest {
        expected: Vec::new(),
        ..request2
    };
    let mut bad = q2.clone();
    bad.signature[12] ^= 1;
    let f = quote::verify(&bad, &ak, &request2).findings;
    assert!(matches!(f.0.as_slice(), [Finding::BadSignature(_)]), "{f}");
    d.ak("ak2", "ecc", "ecdsa");
    let f = quote::verify(&q2, &d.ak_public("ak2"), &request2).findings;
    assert!(matches!(f.0.as_slice(), [Finding::BadSignature(_)]), "{f}");

    // A quote over another bank than asked.
    let q1 = d.quote("ak", "sha1:0,7,16", &new_nonce);
    let request1 = QuoteRequest {
        nonce: new_nonce.clone(),
        ..request
    };
    let f = quote::verify(&q1, &ak, &request1).findings;
    let text = f.to_string();
    assert!(
        text.contains("quote for other PCRs than asked: it covers sha1:0,7,16, the verifier asked for sha256:0,7,16"),
        "{text}"
    );
    assert!(
        text.contains("PCR sha256:16 has an expected value but is not in the quote"),
        "{text}"
    );
}

#[test]
fn make_credential_in_software_activates_only_for_its_ak() {
    for ek_alg in ["rsa", "ecc"] {
        let d = Device::new(&format!("cred-{ek_alg}"));
        d.ek_and_ak(ek_alg, "ecc", "ecdsa");
        d.ak("ak2", "ecc", "ecdsa");
        let ek = EkPublic::parse(&d.read("ek.pub")).unwrap();
        let secret = b"enrolment secret 0123456789abcd";

        let cred = make_credential(&ek, &d.read("ak.name"), secret).unwrap();
        d.write("cred.bin", &cred.to_tpm2_tools());
        let out = d.activate("ak", "cred.bin");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(d.read("recovered"), secret);

        // The EK as a verifier knows it from its certificate (EKU tcg-kp-EKCertificate).
        d.tools(&[
            "tpm2_readpublic",
            "-c",
            &d.p("ek.ctx"),
            "-f",
            "pem",
            "-o",
            &d.p("ek.pem"),
        ]);
        let (_, ek_cert) = attestation_ca(&d.read("ek.pem"), OID_EKU_EK_CERTIFICATE);
        let cert = Certificate::parse(&ek_cert.to_der().unwrap()).unwrap();
        assert!(cert.has_extended_key_usage(OID_EKU_EK_CERTIFICATE));
        assert_eq!(cert.is_ca, Some(false));
        assert_eq!(
            cert.public_key().unwrap(),
            ek.key,
            "EK certificate does not match EK"
        );
        let from_cert = EkPublic::parse(&ek_cert.to_pem().unwrap()).unwrap();
        assert_eq!(from_cert, ek);
        let from_cert =
            make_credential(&from_cert, &d.read("ak.name"), b"from the certificate").unwrap();
        d.write("cred-cert.bin", &from_cert.to_tpm2_tools());
        assert!(d.activate("ak", "cred-cert.bin").status.success());
        assert_eq!(d.read("recovered"), b"from the certificate");

        // Made for ak, presented with ak2: the TPM's integrity check refuses it.
        let out = d.activate("ak2", "cred.bin");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("0x1df") || err.contains("integrity"),
            "{ek_alg}: {err}"
        );

        // tpm2_makecredential's file reads as ours does.
        d.write("secret16", &[7; 16]);
        let theirs = d.p("theirs.bin");
        tpmkey_testenv::run(Command::new("tpm2_makecredential").args([
            "-T",
            "none",
            "-u",
            &d.p("ek.pub"),
            "-s",
            &d.p("secret16"),
            "-n",
            &hex(&d.read("ak.name")),
            "-o",
            &theirs,
        ]));
        let parsed = Credential::from_tpm2_tools(&std::fs::read(&theirs).unwrap()).unwrap();
        assert_eq!(parsed.credential_blob.len(), 2 + 32 + 2 + 16);
        assert_eq!(parsed.secret.len(), cred.secret.len());
    }
}

/// A self-signed CA and an AK certificate as an attestation CA would issue it after a
/// credential-activation round trip.
fn attestation_ca(ak_pem: &[u8], eku: &str) -> (X509, X509) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ca_key: PKey<Private> = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "tpmkey test attestation CA")
        .unwrap();
    let name = name.build();
    let mut ca = X509Builder::new().unwrap();
    ca.set_version(2).unwrap();
    ca.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    ca.set_subject_name(&name).unwrap();
    ca.set_issuer_name(&name).unwrap();
    ca.set_pubkey(&ca_key).unwrap();
    ca.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    ca.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    ca.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    ca.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = ca.build();

    let ak = PKey::public_key_from_pem(ak_pem).unwrap();
    let mut c = X509Builder::new().unwrap();
    c.set_version(2).unwrap();
    c.set_serial_number(&BigNum::from_u32(2).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    c.set_subject_name(&X509NameBuilder::new().unwrap().build())
        .unwrap();
    c.set_issuer_name(&name).unwrap();
    c.set_pubkey(&ak).unwrap();
    c.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    c.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    c.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    c.append_extension(ExtendedKeyUsage::new().other(eku).build().unwrap())
        .unwrap();
    // SAN otherName PermanentIdentifier { identifierValue "device-1234" } (RFC 4043).
    let id = [&[0x30, 0x0d, 0x0c, 0x0b][..], b"device-1234"].concat();
    let san = SubjectAlternativeName::new()
        .critical()
        .other_name2(Asn1Object::from_str("1.3.6.1.5.5.7.8.3").unwrap(), &id)
        .build(&c.x509v3_context(Some(&ca), None))
        .unwrap();
    c.append_extension(san).unwrap();
    c.sign(&ca_key, MessageDigest::sha256()).unwrap();
    (ca, c.build())
}

/// TPM2_Certify with qualifying data, which tpm2-tools 5.4 cannot send: through ESAPI on
/// the same swtpm, with the AK and the key made persistent by tpm2-tools.
fn certify_with_nonce(
    d: &Device,
    key_handle: u32,
    ak_handle: u32,
    nonce: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    use tss_esapi::handles::{PersistentTpmHandle, TpmHandle};
    use tss_esapi::interface_types::session_handles::AuthSession;
    use tss_esapi::structures::{Data, SignatureScheme};
    use tss_esapi::traits::Marshall;
    use tss_esapi::{Context, TctiNameConf};

    let mut ctx = Context::new(TctiNameConf::from_str(&d.tpm.tcti()).unwrap()).unwrap();
    let handle = |h: u32| TpmHandle::Persistent(PersistentTpmHandle::new(h).unwrap());
    let key = ctx.tr_from_tpm_public(handle(key_handle)).unwrap();
    let ak = ctx.tr_from_tpm_public(handle(ak_handle)).unwrap();
    ctx.set_sessions((
        Some(AuthSession::Password),
        Some(AuthSession::Password),
        None,
    ));
    let (attest, sig) = ctx
        .certify(
            key,
            ak.into(),
            Data::try_from(nonce.to_vec()).unwrap(),
            SignatureScheme::Null,
        )
        .unwrap();
    (attest.marshall().unwrap(), sig.marshall().unwrap())
}

#[test]
fn acme_attestation_object_passes_step_ca_checks() {
    let d = Device::new("acme");
    d.ek_and_ak("rsa", "ecc", "ecdsa");
    d.key("tls", &[]);
    d.tools(&[
        "tpm2_evictcontrol",
        "-C",
        "o",
        "-c",
        &d.p("ak.ctx"),
        "0x81010020",
    ]);
    d.tools(&[
        "tpm2_evictcontrol",
        "-C",
        "o",
        "-c",
        &d.p("tls.ctx"),
        "0x81000020",
    ]);

    // The AK certificate, issued after the enrolment round trip.
    let ek = EkPublic::parse(&d.read("ek.pub")).unwrap();
    let cred = make_credential(&ek, &d.read("ak.name"), b"attestation CA challenge").unwrap();
    d.write("cred.bin", &cred.to_tpm2_tools());
    assert!(d.activate("ak", "cred.bin").status.success());
    assert_eq!(d.read("recovered"), b"attestation CA challenge");
    let (ca, ak_cert) = attestation_ca(&d.read("ak.pem"), "2.23.133.8.3");

    let key_authorization = "token-123.thumbprint-abc";
    let (cert_info, sig) = certify_with_nonce(
        &d,
        0x8100_0020,
        0x8101_0020,
        &acme::key_authorization_digest(key_authorization),
    );
    let tls_public = d.read("tls.pub");
    let obj = AttestationObject {
        alg: acme::COSE_ES256,
        x5c: vec![ak_cert.to_der().unwrap()],
        sig,
        cert_info,
        pub_area: tls_public[2..].to_vec(),
    };
    let att_obj = obj.to_base64url();

    // An independent CBOR decoder sees the draft's structure.
    let cbor = AttestationObject::from_base64url(&att_obj)
        .unwrap()
        .to_cbor();
    d.write("attobj.cbor", &cbor);
    assert_eq!(
        tpmkey_testenv::cbor2::attestation_object_summary(&d.dir.join("attobj.cbor")),
        "tpm 2.0 -7 1 bytes bytes bytes"
    );

    // The verifier: the chain with OpenSSL (the caller's part), then the statement.
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca.clone()).unwrap();
    let store = store.build();
    let mut chain_ctx = X509StoreContext::new().unwrap();
    let parsed = AttestationObject::from_base64url(&att_obj).unwrap();
    let leaf = X509::from_der(&parsed.x5c[0]).unwrap();
    assert!(chain_ctx
        .init(&store, &leaf, &Stack::new().unwrap(), |c| c.verify_cert())
        .unwrap());
    // The CSR's key: the TLS key's public part as SPKI, as a CSR carries it.
    d.tools(&[
        "tpm2_readpublic",
        "-c",
        "0x81000020",
        "-f",
        "pem",
        "-o",
        &d.p("tls.pem"),
    ]);
    let tls_spki = PKey::public_key_from_pem(&d.read("tls.pem"))
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let csr_key = public_key_from_spki(&tls_spki).unwrap();
    let challenge = Challenge {
        key_authorization,
        csr_key: Some(&csr_key),
        permanent_identifier: Some("device-1234"),
    };
    let report = acme::verify(&parsed, &challenge);
    assert_eq!(
        report
            .ak_certificate
            .as_ref()
            .unwrap()
            .permanent_identifiers,
        vec!["device-1234".to_string()]
    );
    assert!(report.is_verified(), "{}", report.findings);

    // Each of step-ca's checks, failing.
    let other = Challenge {
        key_authorization: "token-123.other",
        ..challenge
    };
    let f = acme::verify(&parsed, &other).findings;
    assert!(
        matches!(f.0.as_slice(), [Finding::NonceMismatch { .. }]),
        "{f}"
    );
    let ak_pub = public_key_from_spki(
        &PKey::public_key_from_pem(&d.read("ak.pem"))
            .unwrap()
            .public_key_to_der()
            .unwrap(),
    )
    .unwrap();
    let other = Challenge {
        csr_key: Some(&ak_pub),
        ..challenge
    };
    let f = acme::verify(&parsed, &other).findings;
    assert!(f.to_string().starts_with("attested key mismatch"), "{f}");
    let (_, wrong_eku) = attestation_ca(&d.read("ak.pem"), "1.3.6.1.5.5.7.3.1");
    let wrong = AttestationObject {
        x5c: vec![wrong_eku.to_der().unwrap()],
        ..parsed.clone()
    };
    let f = acme::verify(&wrong, &challenge).findings;
    assert_eq!(
        f.to_string(),
        "attestation statement: x5c[0] lacks the extended key usage tcg-kp-AIKCertificate 2.23.133.8.3 (it has: 1.3.6.1.5.5.7.3.1)"
    );
    let rs256 = AttestationObject {
        alg: acme::COSE_RS256,
        ..parsed.clone()
    };
    let other = Challenge {
        permanent_identifier: Some("device-9999"),
        ..challenge
    };
    let f = acme::verify(&parsed, &other).findings;
    assert_eq!(
        f.to_string(),
        "attestation statement: x5c[0] PermanentIdentifier device-1234 is not the challenged \"device-9999\""
    );
    let f = acme::verify(&rs256, &challenge).findings;
    assert!(
        f.to_string()
            .contains("alg -257 does not match the ECDSA SHA256 signature"),
        "{f}"
    );
    let mut other_fmt = cbor.clone();
    let at = other_fmt.windows(3).position(|w| w == b"tpm").unwrap();
    other_fmt[at] = b'x';
    let e = AttestationObject::from_cbor(&other_fmt).unwrap_err();
    assert_eq!(
        e.to_string(),
        "attestation evidence rejected: attestation object fmt is \"xpm\", not \"tpm\""
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let d = Device::new("bad-input");
    d.ek_and_ak("ecc", "ecc", "ecdsa");
    d.key("app", &[]);
    let ak = d.ak_public("ak");
    let bundle = d.certify("app", "ak");
    let q = d.quote("ak", "sha256:0,7,16", b"n");

    let evidence = |e: Error| match e {
        Error::Evidence(m) => m,
        other => panic!("not an evidence error: {other}"),
    };
    let bytes = bundle.to_bytes();
    for n in 0..bytes.len() {
        let m = evidence(CertifyBundle::from_bytes(&bytes[..n]).unwrap_err());
        assert!(m.contains("truncated") || m.contains("version"), "{n}: {m}");
    }
    let qb = q.to_bytes();
    for n in 0..qb.len() {
        let m = evidence(QuoteFile::from_bytes(&qb[..n]).unwrap_err());
        assert!(!m.is_empty());
    }
    let m = evidence(CertifyBundle::decode(q.to_pem().as_bytes()).unwrap_err());
    assert_eq!(
        m,
        "PEM label is \"TPMKEY QUOTE\", expected \"TPMKEY CERTIFY BUNDLE\""
    );

    // Inner fields truncated: reported as findings, never a panic.
    let mut b = bundle.clone();
    b.cert_info.truncate(50);
    let f = certify::verify(&b, &ak, &TOOLS_NONCE).findings;
    assert!(
        f.to_string()
            .contains("certInfo (TPMS_ATTEST) is truncated"),
        "{f}"
    );
    let mut b = bundle.clone();
    b.public = vec![0, 2, 0, 0x23];
    let f = certify::verify(&b, &ak, &TOOLS_NONCE).findings;
    assert!(f.to_string().contains("pubArea does not parse"), "{f}");
    let mut b = bundle.clone();
    b.signature.truncate(7);
    let f = certify::verify(&b, &ak, &TOOLS_NONCE).findings;
    assert!(
        f.to_string()
            .contains("signature (TPMT_SIGNATURE) is truncated"),
        "{f}"
    );

    // Keys that are no AK.
    assert!(AkPublic::parse(b"not a key").is_err());
    assert!(AkPublic::parse(&d.read("ak.pem")[..40]).is_err());
    let e = EkPublic::parse(&d.read("app.pub")).unwrap_err();
    assert!(e.to_string().contains("EK"), "{e}");
}
