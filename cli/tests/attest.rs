//! Device identity and proof with the `tpmkey` command on a swtpm provisioned with EK
//! certificates: `ek cert` (chain checked by OpenSSL, a swapped NV certificate refused),
//! `ak create`, `makecred` and `verify` with the TCTI pointing nowhere, `attest` of a key
//! made by `keygen`, `quote` with a fresh nonce, a replayed nonce refused, an extended PCR
//! named; every bad input a clear error. TPM commands per operation counted on the wire.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{stderr, tpmkey_with};
use tpmkey::attest::certify::CertifyBundle;
use tpmkey::attest::quote::QuoteFile;
use tpmkey_testenv::tpm_command::command_name;
use tpmkey_testenv::{EkCa, StoragePrimary, Swtpm, TempDir, TpmEndpoint, WireTap};

/// A TCTI where no TPM listens: the verifier's commands must not need one.
const NOWHERE: &str = "swtpm:host=127.0.0.1,port=1";

struct Device {
    tpm: Swtpm,
    ca: EkCa,
    tap: WireTap,
    dir: TempDir,
}

impl Device {
    fn new() -> Device {
        let (tpm, ca) = Swtpm::start_with_ek_certs();
        let tap = WireTap::start(tpm.port());
        Device {
            tpm,
            ca,
            tap,
            dir: TempDir::new("cli-attest"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// `tpmkey ARGS` on the device (through the wire tap).
    fn tpmkey(&self, args: &[&str]) -> Output {
        tpmkey_with(&self.tap.tcti(), self.dir.path(), args)
    }

    /// [`Device::tpmkey`] that must succeed: (stdout, the TPM commands it sent).
    fn tpmkey_ok(&self, args: &[&str]) -> (String, Vec<String>) {
        self.tap.take_codes();
        let out = self.tpmkey(args);
        assert!(out.status.success(), "tpmkey {args:?}: {}", stderr(&out));
        let commands = self
            .tap
            .take_codes()
            .into_iter()
            .map(|c| command_name(c).map_or(format!("0x{c:x}"), str::to_string))
            .collect();
        (String::from_utf8_lossy(&out.stdout).into_owned(), commands)
    }

    /// `tpmkey ak create -o FILE --public FILE.pem ARGS`: (stdout, the TPM commands sent).
    fn ak_create(&self, ak: &str, args: &[&str]) -> (String, Vec<String>) {
        let (file, public) = (self.p(ak), self.p(&ak.replace(".tpm", ".pem")));
        let mut all = vec!["ak", "create", "-o", &file, "--public", &public];
        all.extend_from_slice(args);
        self.tpmkey_ok(&all)
    }

    /// The verifier: `tpmkey verify KIND FILE --ak-pub ak.pem --nonce NONCE`.
    fn verify_evidence(&self, kind: &str, file: &str, nonce: &str) -> Output {
        let (file, ak) = (self.p(file), self.p("ak.pem"));
        self.verifier(&["verify", kind, &file, "--ak-pub", &ak, "--nonce", nonce])
    }

    /// The verifier: `tpmkey ARGS` with no TPM reachable.
    fn verifier(&self, args: &[&str]) -> Output {
        tpmkey_with(NOWHERE, self.dir.path(), args)
    }

    fn verifier_ok(&self, args: &[&str]) -> String {
        let out = self.verifier(args);
        assert!(out.status.success(), "tpmkey {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The verifier's command must fail with exit 1 and say `why`.
    fn verifier_refuses(&self, args: &[&str], why: &str) {
        let out = self.verifier(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
}

fn openssl_verify(ca: &EkCa, cert: &Path) -> Output {
    Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ca.root_cert())
        .arg("-untrusted")
        .arg(ca.issuer_cert())
        .arg(cert)
        .output()
        .unwrap()
}

/// `ek cert -t TYPE`: the certificate chains (OpenSSL and tpmkey's own check), and its key
/// is the EK the TPM derives from the type's template.
fn check_ek_certificate(d: &Device, t: &str) {
    let cert = d.p(&format!("ek-{t}.pem"));
    let (_, commands) = d.tpmkey_ok(&["ek", "cert", "-t", t, "-o", &cert]);
    println!("ek cert -t {t}: {commands:?}");
    let out = openssl_verify(&d.ca, Path::new(&cert));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // tpmkey's own chain check with the manufacturer's root and intermediate.
    let root = d.ca.root_cert().to_string_lossy().into_owned();
    let issuer = d.ca.issuer_cert().to_string_lossy().into_owned();
    d.tpmkey_ok(&[
        "ek",
        "cert",
        "-t",
        t,
        "--ca",
        &root,
        "--intermediate",
        &issuer,
    ]);
    let out = d.tpmkey(&["ek", "cert", "-t", t, "--ca", &root]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not chain"), "{}", stderr(&out));
    // The certified key is the EK the TPM derives.
    let public = d.p(&format!("ek-{t}.pub.pem"));
    d.tpmkey_ok(&["ek", "show", "-t", t, "-o", &public]);
    let from_cert = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in", &cert])
        .output()
        .unwrap();
    assert_eq!(from_cert.stdout, std::fs::read(&public).unwrap());
}

/// Someone replaces the certificate at `index` with another valid, CA-signed one (PEM):
/// `ek cert -t TYPE` must refuse it and write nothing.
fn swap_certificate_and_expect_refusal(d: &Device, index: &str, t: &str, other_pem: &str) {
    let der = d.path(&format!("other-{t}.der"));
    let out = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in", other_pem, "-out"])
        .arg(&der)
        .output()
        .unwrap();
    assert!(out.status.success());
    let size = std::fs::metadata(&der).unwrap().len().to_string();
    d.tpm.tpm2_tools_ok(["tpm2_nvundefine", index, "-C", "p"]);
    d.tpm.tpm2_tools_ok([
        "tpm2_nvdefine",
        index,
        "-C",
        "p",
        "-s",
        &size,
        "-a",
        "ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate",
    ]);
    d.tpm.tpm2_tools_ok([
        "tpm2_nvwrite",
        index,
        "-C",
        "p",
        "-i",
        &der.to_string_lossy(),
    ]);
    let swapped = d.p(&format!("swapped-{t}.pem"));
    let out = d.tpmkey(&["ek", "cert", "-t", t, "-o", &swapped]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("EK certificate does not match EK"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&swapped).exists());
}

#[test]
fn ek_certificates_are_read_checked_and_a_swapped_one_is_refused() {
    let d = Device::new();
    for t in ["rsa", "ecc"] {
        check_ek_certificate(&d, t);
    }
    // Someone replaces the RSA EK certificate with the (valid, CA-signed) ECC one.
    swap_certificate_and_expect_refusal(&d, "0x01c00002", "rsa", &d.p("ek-ecc.pem"));

    let out = d.tpmkey(&["ek", "cert", "-t", "p521"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("EK type"), "{}", stderr(&out));
}

#[test]
fn high_range_ek_certificates_match_their_templates_and_enrol_an_ak() {
    let d = Device::new();
    // Before provisioning, only swtpm_setup's P-384 certificate is in the high range.
    let (listed, _) = d.tpmkey_ok(&["ek", "list"]);
    assert!(
        listed.contains("0x01c00012 RSA 2048 (high range): no certificate"),
        "{listed}"
    );
    d.ca.add_high_range_certificates(&d.tpm);
    let (listed, commands) = d.tpmkey_ok(&["ek", "list"]);
    println!("ek list: {commands:?}\n{listed}");
    assert_eq!(
        listed
            .lines()
            .filter(|l| l.ends_with("certifies the EK"))
            .count(),
        5,
        "{listed}"
    );
    for t in ["rsa-high", "p256-high", "p384"] {
        check_ek_certificate(&d, t);
    }

    // Enrolment with the high-range P-256 EK: its policy is PolicyOR(PolicySecret, PolicyC).
    let (out, _) = d.tpmkey_ok(&["ak", "create", "-o", &d.p("ak.tpm")]);
    let name = out.trim().strip_prefix("name: ").unwrap().to_string();
    d.verifier_ok(&[
        "makecred",
        "--ek",
        &d.p("ek-p256-high.pem"),
        "--ak-name",
        &name,
        "--secret",
        "0badc0de",
        "-o",
        &d.p("cred.bin"),
    ]);
    let activate = |ek: &str| {
        d.tpmkey(&[
            "ak",
            "activate",
            "--ek",
            ek,
            &d.p("ak.tpm"),
            &d.p("cred.bin"),
        ])
    };
    let out = activate("p256-high");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0badc0de");
    // The same credential is bound to that EK: the low-range P-256 EK cannot open it.
    let out = activate("ecc");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ActivateCredential"),
        "{}",
        stderr(&out)
    );
    // The P-384 EK: MakeCredential and its SHA-384 policy session are not supported, and
    // both sides say so.
    d.verifier_refuses(
        &[
            "makecred",
            "--ek",
            &d.p("ek-p384.pem"),
            "--ak-name",
            &name,
            "--secret",
            "0badc0de",
            "-o",
            &d.p("cred384.bin"),
        ],
        "only P-256",
    );
    let out = activate("p384");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("SHA-384 session"), "{}", stderr(&out));

    // A swapped high-range certificate is refused like a low-range one.
    swap_certificate_and_expect_refusal(&d, "0x01c00016", "p384", &d.p("ek-p256-high.pem"));
}

#[test]
fn certify_and_quote_verify_offline_and_bad_evidence_is_named() {
    let d = Device::new();
    let (out, commands) = d.ak_create("ak.tpm", &[]);
    println!("ak create: {commands:?}");
    let name = out.trim().strip_prefix("name: ").unwrap().to_string();
    assert_eq!(name.len(), 68, "{out}");

    // The verifier wraps a secret for this AK and the EK of the certificate, TPM-free.
    d.tpmkey_ok(&["ek", "cert", "-t", "rsa", "-o", &d.p("ek.pem")]);
    d.verifier_ok(&[
        "makecred",
        "--ek",
        &d.p("ek.pem"),
        "--ak-name",
        &name,
        "--secret",
        "00112233445566778899aabbccddeeff",
        "-o",
        &d.p("cred.bin"),
    ]);
    assert_eq!(
        std::fs::read(d.path("cred.bin")).unwrap()[..4],
        [0xba, 0xdc, 0xc0, 0xde]
    );
    // The device answers with the secret: the AK lives in the TPM of that EK.
    let (secret, commands) = d.tpmkey_ok(&["ak", "activate", &d.p("ak.tpm"), &d.p("cred.bin")]);
    println!("ak activate: {commands:?}");
    assert_eq!(secret.trim(), "00112233445566778899aabbccddeeff");
    // Another AK of the same TPM cannot open it: the TPM's integrity check fails.
    d.tpmkey_ok(&["ak", "create", "-o", &d.p("other.tpm")]);
    let out = d.tpmkey(&["ak", "activate", &d.p("other.tpm"), &d.p("cred.bin")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ActivateCredential"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).to_lowercase().contains("integrity"),
        "{}",
        stderr(&out)
    );
    // A credential file that is not one.
    let out = d.tpmkey(&["ak", "activate", &d.p("ak.tpm"), &d.p("ak.pem")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("credential file"), "{}", stderr(&out));
    d.verifier_refuses(
        &[
            "makecred",
            "--ek",
            &d.p("ek.pem"),
            "--ak-name",
            "000b00",
            "--secret",
            "00",
            "-o",
            &d.p("c2.bin"),
        ],
        "not a SHA-256 Name",
    );

    // Certify a key made by keygen.
    d.tpmkey_ok(&["keygen", "-t", "p256", "-o", &d.p("app.key")]);
    let nonce = "0123456789abcdef0123456789abcdef";
    let (_, commands) = d.tpmkey_ok(&[
        "attest",
        &d.p("app.key"),
        "--ak",
        &d.p("ak.tpm"),
        "--nonce",
        nonce,
        "-o",
        &d.p("bundle.pem"),
    ]);
    println!("attest: {commands:?}");
    let report = d.verifier_ok(&[
        "verify",
        "certify",
        &d.p("bundle.pem"),
        "--ak-pub",
        &d.p("ak.pem"),
        "--nonce",
        nonce,
    ]);
    println!("{report}");
    for fact in [
        "fixedTPM=1",
        "fixedParent=1",
        "sensitiveDataOrigin=1 (generated in the TPM)",
        "userWithAuth=1",
        "authPolicy: none",
        "certify bundle verified",
    ] {
        assert!(report.contains(fact), "{fact}: {report}");
    }
    let bundle_args = |file: &str, nonce: &str| -> Vec<String> {
        [
            "verify",
            "certify",
            &d.p(file),
            "--ak-pub",
            &d.p("ak.pem"),
            "--nonce",
            nonce,
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let refuse = |args: Vec<String>, why: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        d.verifier_refuses(&args, why);
    };
    // A replayed bundle (another nonce), an expected policy the key does not have.
    refuse(bundle_args("bundle.pem", "00"), "nonce mismatch");
    let mut with_policy = bundle_args("bundle.pem", nonce);
    with_policy.extend(["--expect-policy".into(), "11".repeat(32)]);
    refuse(with_policy, "authPolicy mismatch");

    // One flipped byte in each part of the bundle, each with its own message.
    let good = CertifyBundle::decode(&std::fs::read(d.path("bundle.pem")).unwrap()).unwrap();
    let flip = |field: &str, why: &str| {
        let mut b = good.clone();
        let part = match field {
            "certInfo" => &mut b.cert_info,
            "pubArea" => &mut b.public,
            _ => &mut b.signature,
        };
        let at = part.len() - 3;
        part[at] ^= 0x01;
        let file = format!("bad-{field}.pem");
        std::fs::write(d.path(&file), b.to_pem()).unwrap();
        refuse(bundle_args(&file, nonce), why);
    };
    flip("certInfo", "AK signature over certInfo does not verify");
    flip("pubArea", "name mismatch");
    flip("signature", "AK signature over certInfo does not verify");
    // Truncated, and not a bundle at all.
    let pem = std::fs::read(d.path("bundle.pem")).unwrap();
    std::fs::write(d.path("short.bin"), &good.to_bytes()[..40]).unwrap();
    refuse(bundle_args("short.bin", nonce), "truncated");
    std::fs::write(d.path("half.pem"), &pem[..pem.len() / 2]).unwrap();
    refuse(bundle_args("half.pem", nonce), "PEM");
    // Another AK's public key.
    d.ak_create("ak2.tpm", &[]);
    let out = d.verifier(&[
        "verify",
        "certify",
        &d.p("bundle.pem"),
        "--ak-pub",
        &d.p("ak2.pem"),
        "--nonce",
        nonce,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));

    // Quote with a fresh nonce, verified with the expected PCR 16.
    let quote_args = |nonce: &str, out: &str| -> Vec<String> {
        [
            "quote",
            "--ak",
            &d.p("ak.tpm"),
            "--pcr",
            "sha256:0,7,16",
            "--nonce",
            nonce,
            "-o",
            &d.p(out),
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let args = quote_args("aa01", "q1.pem");
    let (_, commands) = d.tpmkey_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    println!("quote: {commands:?}");
    assert_eq!(
        commands,
        ["CreatePrimary", "Quote", "FlushContext", "PCR_Read"],
        "a quote costs the AK's derivation, the quote and one PCR read"
    );
    let q1 = QuoteFile::decode(&std::fs::read(d.path("q1.pem")).unwrap()).unwrap();
    let pcr16 = tpmkey::hex::hex(&q1.pcrs.iter().find(|v| v.pcr == 16).unwrap().value);
    let expect16 = format!("sha256:16={pcr16}");
    let verify_quote = |file: &str, nonce: &str| -> Vec<String> {
        [
            "verify",
            "quote",
            &d.p(file),
            "--ak-pub",
            &d.p("ak.pem"),
            "--nonce",
            nonce,
            "--pcr",
            "sha256:0,7,16",
            "--expect",
            &expect16,
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let args = verify_quote("q1.pem", "aa01");
    let report = d.verifier_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(report.contains(&format!("sha256:16 = {pcr16}")), "{report}");
    assert!(report.contains("quote verified"), "{report}");
    // Replayed: the verifier's next nonce is not in the old quote.
    refuse(verify_quote("q1.pem", "aa02"), "nonce mismatch");
    // PCR 16 extended: a fresh quote verifies as a quote and names PCR 16.
    d.tpm
        .tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={}", "cd".repeat(32))]);
    let args = quote_args("aa03", "q2.pem");
    d.tpmkey_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    refuse(verify_quote("q2.pem", "aa03"), "PCR sha256:16 differs");
    // A quote of other PCRs than asked for.
    let args = quote_args("aa04", "q3.pem");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args[4] = "sha256:0,7";
    d.tpmkey_ok(&args);
    refuse(verify_quote("q3.pem", "aa04"), "quote for other PCRs");
    // Truncated quote files.
    let q = std::fs::read(d.path("q1.pem")).unwrap();
    let body = QuoteFile::decode(&q).unwrap().to_bytes();
    for n in [0, 5, body.len() / 2, body.len() - 1] {
        std::fs::write(d.path("qt.bin"), &body[..n]).unwrap();
        let out = d.verifier(
            &verify_quote("qt.bin", "aa01")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        assert_eq!(out.status.code(), Some(1), "{n}");
        assert!(stderr(&out).contains("quote file"), "{n}: {}", stderr(&out));
    }

    // Bad device-side input: nonce not hex, a PCR selection that is not one, no AK file.
    let (ak, app) = (d.p("ak.tpm"), d.p("app.key"));
    for (ak, pcr, nonce, why) in [
        (&ak, "sha256:0", "xyz", "not hex"),
        (&ak, "sha256:x", "00", "PCR selection"),
        (&app, "sha256:0", "00", "app.key"),
    ] {
        let out = d.tpmkey(&["quote", "--ak", ak, "--pcr", pcr, "--nonce", nonce]);
        assert_eq!(out.status.code(), Some(1), "{why}");
        assert!(stderr(&out).contains(why), "{why}: {}", stderr(&out));
    }
}

#[test]
fn certify_creation_proves_the_creation_data_and_a_swapped_file_is_named() {
    let d = Device::new();
    d.ak_create("ak.tpm", &[]);
    for k in ["a", "b"] {
        d.tpmkey_ok(&[
            "keygen",
            "-o",
            &d.p(&format!("{k}.key")),
            "--creation-data",
            &d.p(&format!("{k}.creation")),
        ]);
    }
    // `tpmkey attest a.key` with nonce c1 into `out`, with `creation` as its creation file.
    let attest = |creation: Option<&str>, out: &str| {
        let (key, ak, out) = (d.p("a.key"), d.p("ak.tpm"), d.p(out));
        let creation = creation.map(|c| d.p(c));
        let mut args = vec!["attest", &key, "--ak", &ak, "--nonce", "c1", "-o", &out];
        if let Some(c) = &creation {
            args.extend(["--creation", c]);
        }
        d.tpmkey(&args)
    };
    d.tap.take_codes();
    let out = attest(Some("a.creation"), "a.bundle");
    assert!(out.status.success(), "{}", stderr(&out));
    let commands: Vec<_> = d
        .tap
        .take_codes()
        .into_iter()
        .filter_map(command_name)
        .collect();
    println!("attest --creation: {commands:?}");
    assert!(commands.contains(&"CertifyCreation"), "{commands:?}");
    let verify = |bundle: &str| d.verify_evidence("certify", bundle, "c1");
    let out = verify("a.bundle");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}{}", stderr(&out));
    println!("{report}");
    let bundle = CertifyBundle::decode(&std::fs::read(d.path("a.bundle")).unwrap()).unwrap();
    let attestation = tpmkey::attest::Attestation::parse(&bundle.cert_info).unwrap();
    assert_eq!(attestation.kind(), tpmkey::attest::AttestType::Creation);
    // The key's parent is the storage primary: its Name is in the creation data.
    assert!(report.contains("creation: parent 000b"), "{report}");
    assert!(report.contains("creation: PCRs no PCRs"), "{report}");
    assert!(report.contains("creation: locality 0x01"), "{report}");
    assert!(report.contains("sensitiveDataOrigin=1"), "{report}");

    // The device refuses to certify a.key with b's creation file: the TPM's ticket check.
    let out = attest(Some("b.creation"), "swapped.bundle");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the creation data is not this key's"),
        "{}",
        stderr(&out)
    );
    assert!(!d.path("swapped.bundle").exists());
    // Both keys have the same creation data (parent, no PCRs, locality): only the ticket,
    // bound to the key's Name, differs.
    let record = |k: &str| {
        tpmkey::attest::creation::CreationRecord::decode(
            &std::fs::read(d.path(&format!("{k}.creation"))).unwrap(),
        )
        .unwrap()
    };
    let (a, b) = (record("a"), record("b"));
    assert_eq!(a.creation_data, b.creation_data);
    assert_ne!(a.ticket, b.ticket);
    // The verifier refuses a bundle whose creation data was altered after signing (here
    // the PCR digest: TPML_PCR_SELECTION count, then TPM2B pcrDigest).
    let mut swapped = bundle.clone();
    let mut altered = a.creation_data.clone();
    altered[6] ^= 1;
    swapped.creation_data = Some(altered);
    std::fs::write(d.path("swapped.bundle"), swapped.to_pem()).unwrap();
    let out = verify("swapped.bundle");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("creation data mismatch"),
        "{}",
        stderr(&out)
    );
    // A plain certification of the same key is still TPM2_Certify.
    assert!(attest(None, "plain.bundle").status.success());
    assert!(verify("plain.bundle").status.success());
    // A key bound to PCR 16: its creation data records PCR 16's digest at creation (the
    // fresh swtpm's zeros), so CertifyCreation also proves the state it was made in.
    d.tpmkey_ok(&[
        "keygen",
        "--pcr",
        "sha256:16",
        "-o",
        &d.p("c.key"),
        "--creation-data",
        &d.p("c.creation"),
    ]);
    let (key, ak, creation) = (d.p("c.key"), d.p("ak.tpm"), d.p("c.creation"));
    d.tpmkey_ok(&[
        "attest",
        &key,
        "--ak",
        &ak,
        "--nonce",
        "c1",
        "--creation",
        &creation,
        "-o",
        &d.p("c.bundle"),
    ]);
    let out = verify("c.bundle");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}{}", stderr(&out));
    let zeros_digest = "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925";
    assert!(
        report.contains(&format!("creation: PCRs sha256:16 digest {zeros_digest}")),
        "{report}"
    );
    // A key file given as the creation file is named.
    let out = attest(Some("a.key"), "bad.bundle");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("a.key:"), "{}", stderr(&out));
}

#[test]
fn a_persistent_ak_quotes_in_two_commands() {
    let d = Device::new();
    let (_, commands) = d.ak_create("ak.tpm", &["--persist", "0x81000aa0"]);
    println!("ak create --persist: {commands:?}");
    assert!(
        commands.contains(&"EvictControl".to_string()),
        "{commands:?}"
    );
    let quote = |ak: &str, nonce: &str, out: &str| {
        d.tpmkey_ok(&[
            "quote",
            "--ak",
            &d.p(ak),
            "--pcr",
            "sha256:0,7,16",
            "--nonce",
            nonce,
            "-o",
            &d.p(out),
        ])
        .1
    };
    // From process start: the AK is where it is, so only the quote and the values it covers.
    for (nonce, out) in [("a1", "q1.pem"), ("a2", "q2.pem")] {
        assert_eq!(quote("ak.tpm", nonce, out), ["Quote", "PCR_Read"]);
        let verified = d.verify_evidence("quote", out, nonce);
        assert!(verified.status.success(), "{}", stderr(&verified));
    }
    // Certification with the persistent AK saves the AK's CreatePrimary and FlushContext.
    d.tpmkey_ok(&["keygen", "-o", &d.p("k.key")]);
    let (_, commands) = d.tpmkey_ok(&[
        "attest",
        &d.p("k.key"),
        "--ak",
        &d.p("ak.tpm"),
        "--nonce",
        "b1",
        "-o",
        &d.p("k.bundle"),
    ]);
    println!("attest with a persistent AK: {commands:?}");
    assert_eq!(
        commands.iter().filter(|c| *c == "CreatePrimary").count(),
        1,
        "only the storage primary: {commands:?}"
    );
    let verified = d.verify_evidence("certify", "k.bundle", "b1");
    assert!(verified.status.success(), "{}", stderr(&verified));
    // Another AK now at that handle: the old file's quote is refused before it is written.
    d.tpmkey_ok(&["ak", "evict", &d.p("ak.tpm")]);
    d.ak_create("ak2.tpm", &["--persist", "0x81000aa0"]);
    let out = d.tpmkey(&[
        "quote",
        "--ak",
        &d.p("ak.tpm"),
        "--pcr",
        "sha256:16",
        "--nonce",
        "a3",
        "-o",
        &d.p("q3.pem"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not this AK"), "{}", stderr(&out));
    assert!(!d.path("q3.pem").exists());
    d.tpmkey_ok(&["ak", "evict", &d.p("ak2.tpm")]);
    let out = d.tpmkey(&["ak", "evict", &d.p("ak2.tpm")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// An AK certificate as an attestation CA issues it (here the EK CA's issuer, with OpenSSL):
/// empty subject, not a CA, extended key usage `eku`.
fn issue_ak_certificate(d: &Device, ak_pem: &str, eku: &str, out: &str) {
    let ext = d.path(&format!("{out}.cnf"));
    std::fs::write(
        &ext,
        format!("basicConstraints=CA:FALSE\nextendedKeyUsage={eku}\n"),
    )
    .unwrap();
    tpmkey_testenv::run(
        Command::new("openssl")
            .args([
                "x509",
                "-new",
                "-subj",
                "/",
                "-days",
                "1",
                "-force_pubkey",
                ak_pem,
            ])
            .arg("-CA")
            .arg(d.ca.issuer_cert())
            .arg("-CAkey")
            .arg(d.ca.issuer_key())
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(d.path(out)),
    );
}

#[test]
fn acme_attestation_object_passes_the_step_ca_checks() {
    use tpmkey::attest::acme::{self, AttestationObject, Challenge};

    let d = Device::new();
    d.ak_create("ak.tpm", &[]);
    // The attestation CA issues the AK certificate only after the enrolment round trip.
    let (name, _) = d.tpmkey_ok(&["ak", "public", &d.p("ak.tpm"), "-o", &d.p("ak.pem")]);
    let name = name.trim().strip_prefix("name: ").unwrap().to_string();
    d.tpmkey_ok(&["ek", "cert", "-t", "ecc", "-o", &d.p("ek.pem")]);
    let challenge_secret = "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5";
    d.verifier_ok(&[
        "makecred",
        "--ek",
        &d.p("ek.pem"),
        "--ak-name",
        &name,
        "--secret",
        challenge_secret,
        "-o",
        &d.p("cred.bin"),
    ]);
    let (answer, _) = d.tpmkey_ok(&[
        "ak",
        "activate",
        "--ek",
        "ecc",
        &d.p("ak.tpm"),
        &d.p("cred.bin"),
    ]);
    assert_eq!(answer.trim(), challenge_secret);
    issue_ak_certificate(&d, &d.p("ak.pem"), "2.23.133.8.3", "ak-cert.pem");
    let out = openssl_verify(&d.ca, &d.path("ak-cert.pem"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    d.tpmkey_ok(&["keygen", "-t", "p256", "-o", &d.p("tls.key")]);

    let key_authorization = "token-123.thumbprint-abc";
    let acme_args = |chain: &str| {
        [
            "acme-attest",
            &d.p("tls.key"),
            "--ak",
            &d.p("ak.tpm"),
            "--ak-chain",
            &d.p(chain),
            "--key-authorization",
            key_authorization,
        ]
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
    };
    let args = acme_args("ak-cert.pem");
    let (att_obj, commands) = d.tpmkey_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    println!("acme-attest: {commands:?}");
    let att_obj = att_obj.trim();

    // An independent CBOR decoder sees the draft's structure.
    let obj = AttestationObject::from_base64url(att_obj).unwrap();
    std::fs::write(d.path("attobj.cbor"), obj.to_cbor()).unwrap();
    assert_eq!(
        tpmkey_testenv::cbor2::attestation_object_summary(&d.path("attobj.cbor")),
        "tpm 2.0 -7 1 bytes bytes bytes"
    );

    // The order's CSR, made by OpenSSL with the tpmkey provider from the same key file.
    let modules = d.path("modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::os::unix::fs::symlink(common::provider_library(), modules.join("tpmkey.so")).unwrap();
    let openssl = |args: &[&str]| {
        tpmkey_testenv::run(
            Command::new("openssl")
                .args(args)
                .env("OPENSSL_MODULES", &modules)
                .env("TPMKEY_TCTI", d.tap.tcti())
                .env("TPMKEY_CONF", "/dev/null")
                .env("TPMKEY_STATE", d.path("state")),
        )
    };
    d.tap.take_codes();
    openssl(&[
        "req",
        "-new",
        "-provider",
        "tpmkey",
        "-provider",
        "default",
        "-key",
        &d.p("tls.key"),
        "-subj",
        "/CN=router-17.example",
        "-out",
        &d.p("tls.csr"),
    ]);
    let signed: Vec<_> = d
        .tap
        .take_codes()
        .into_iter()
        .filter_map(command_name)
        .collect();
    assert!(
        signed.contains(&"Sign"),
        "the TPM signed the CSR: {signed:?}"
    );
    openssl(&["req", "-verify", "-noout", "-in", &d.p("tls.csr")]);
    let csr_key = openssl(&["req", "-noout", "-pubkey", "-in", &d.p("tls.csr")]).stdout;
    // step-ca's checks: statement, AK certificate, signature, extraData, and the attested
    // pubArea's key == the CSR's key.
    let tls_key = tpmkey::attest::AkPublic::parse(&csr_key).unwrap().key;
    let challenge = Challenge {
        key_authorization,
        csr_key: Some(&tls_key),
        permanent_identifier: None,
    };
    let report = acme::verify(&obj, &challenge);
    report.findings.check().unwrap();
    // Another challenge's key authorization, another key: refused, each named.
    let other = Challenge {
        key_authorization: "token-999.thumbprint-abc",
        ..challenge
    };
    let e = acme::verify(&obj, &other).findings.check().unwrap_err();
    assert!(e.to_string().contains("nonce mismatch"), "{e}");
    let ak_key = tpmkey::attest::AkPublic::parse(&std::fs::read(d.path("ak.pem")).unwrap())
        .unwrap()
        .key;
    let wrong_key = Challenge {
        csr_key: Some(&ak_key),
        ..challenge
    };
    let e = acme::verify(&obj, &wrong_key).findings.check().unwrap_err();
    assert!(e.to_string().contains("attested key mismatch"), "{e}");

    // An AK certificate with the EK usage instead of the AK usage.
    issue_ak_certificate(&d, &d.p("ak.pem"), "2.23.133.8.1", "ek-usage.pem");
    let args = acme_args("ek-usage.pem");
    let (wrong_eku, _) = d.tpmkey_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let obj = AttestationObject::from_base64url(wrong_eku.trim()).unwrap();
    let e = acme::verify(&obj, &challenge).findings.check().unwrap_err();
    assert!(e.to_string().contains("tcg-kp-AIKCertificate"), "{e}");

    // A chain for another AK is refused on the device.
    d.ak_create("ak2.tpm", &[]);
    issue_ak_certificate(&d, &d.p("ak2.pem"), "2.23.133.8.3", "ak2-cert.pem");
    let args = acme_args("ak2-cert.pem");
    let out = d.tpmkey(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not this AK's"), "{}", stderr(&out));
    let args = acme_args("tls.key");
    let out = d.tpmkey(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        stderr(&out).contains("no PEM certificate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_pcr_bound_key_is_certified_while_the_pcr_differs_and_an_imported_key_says_so() {
    use tpmkey::key_policy::PolicyRequest;
    use tpmkey::policy::PcrSelection;
    use tpmkey::{KeySpec, SignScheme, TpmKey};

    let d = Device::new();
    d.ak_create("ak.tpm", &[]);
    // "Boot": PCR 16 measured once, then a TLS key bound to its value (made by the core,
    // as the provider's keygen makes it).
    d.tpm
        .tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={}", "01".repeat(32))]);
    tpmkey::connection::configure(&[("tcti", &d.tap.tcti())]).unwrap();
    let selection = PcrSelection::parse("sha256:16").unwrap();
    let request = PolicyRequest {
        pcrs: Some(selection.clone()),
        ..PolicyRequest::default()
    };
    let key = TpmKey::generate_with_policy(
        KeySpec::EcP256,
        None,
        None,
        None,
        request.statements().unwrap(),
    )
    .unwrap();
    let values = tpmkey::keys::read_pcrs(&selection).unwrap();
    tpmkey::connection::shutdown();
    std::fs::write(d.path("tls.key"), key.key_file().unwrap().to_pem()).unwrap();
    std::fs::write(
        d.path("approved.pcrs"),
        tpmkey::key_policy::format_pcr_values(&selection, &values),
    )
    .unwrap();

    let verify = |bundle: &str, nonce: &str| {
        d.verifier_ok(&[
            "verify",
            "certify",
            &d.p(bundle),
            "--ak-pub",
            &d.p("ak.pem"),
            "--nonce",
            nonce,
            "--expect-pcr-policy",
            &d.p("approved.pcrs"),
        ])
    };
    let attest = |nonce: &str, out: &str| {
        d.tpmkey_ok(&[
            "attest",
            &d.p("tls.key"),
            "--ak",
            &d.p("ak.tpm"),
            "--nonce",
            nonce,
            "-o",
            &d.p(out),
        ])
    };
    attest("b1", "b1.pem");
    let report = verify("b1.pem", "b1");
    println!("{report}");
    for fact in [
        "fixedTPM=1",
        "sensitiveDataOrigin=1 (generated in the TPM)",
        "userWithAuth=0",
        &format!("PolicyPCR sha256:16={}", tpmkey::hex::hex(&values[0])),
        "certify bundle verified",
    ] {
        assert!(report.contains(fact), "{fact}: {report}");
    }

    // The platform changes: the key no longer signs, but its binding is still proved.
    d.tpm
        .tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={}", "02".repeat(32))]);
    tpmkey::connection::configure(&[("tcti", &d.tap.tcti())]).unwrap();
    let e = key
        .sign(SignScheme::Ecdsa(tpmkey::hash::Hash::Sha256), &[3u8; 32])
        .unwrap_err();
    tpmkey::connection::shutdown();
    assert!(e.is_policy_failure(), "{e}");
    attest("b2", "b2.pem");
    let report = verify("b2.pem", "b2");
    assert!(report.contains("userWithAuth=0"), "{report}");
    // Another approved state: the verifier names the policy mismatch.
    std::fs::write(
        d.path("other.pcrs"),
        format!("sha256:16={}\n", "77".repeat(32)),
    )
    .unwrap();
    d.verifier_refuses(
        &[
            "verify",
            "certify",
            &d.p("b2.pem"),
            "--ak-pub",
            &d.p("ak.pem"),
            "--nonce",
            "b2",
            "--expect-pcr-policy",
            &d.p("other.pcrs"),
        ],
        "authPolicy mismatch",
    );

    // A key imported from software (tpm2_import under tpmkey's storage key, the same
    // template, written as a TSS2 key file by tpm2_encodeobject) is reported as imported.
    // Without a resource manager, each tool's leftovers are flushed before the next.
    let tools = |args: &[&str]| {
        d.tpm.tpm2_tools_ok(args);
        d.tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    };
    StoragePrimary::SRK.create(&d.tpm, Path::new(&d.p("srk.ctx")));
    d.tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    tpmkey_testenv::run(Command::new("openssl").args([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &d.p("soft.pem"),
    ]));
    tools(&[
        "tpm2_import",
        "-C",
        &d.p("srk.ctx"),
        "-G",
        "ecc",
        "-i",
        &d.p("soft.pem"),
        "-u",
        &d.p("soft.pub"),
        "-r",
        &d.p("soft.priv"),
    ]);
    tools(&[
        "tpm2_encodeobject",
        "-C",
        &d.p("srk.ctx"),
        "-u",
        &d.p("soft.pub"),
        "-r",
        &d.p("soft.priv"),
        "-o",
        &d.p("imported.key"),
    ]);
    d.tpmkey_ok(&[
        "attest",
        &d.p("imported.key"),
        "--ak",
        &d.p("ak.tpm"),
        "--nonce",
        "c1",
        "-o",
        &d.p("imported.pem"),
    ]);
    let report = d.verifier_ok(&[
        "verify",
        "certify",
        &d.p("imported.pem"),
        "--ak-pub",
        &d.p("ak.pem"),
        "--nonce",
        "c1",
    ]);
    assert!(
        report.contains("sensitiveDataOrigin=0 (imported)"),
        "{report}"
    );
}

#[test]
fn a_certified_storage_key_pinned_by_name_refuses_any_other() {
    let d = Device::new();
    d.ak_create("ak.tpm", &[]);
    let (_, commands) = d.tpmkey_ok(&[
        "srk-certify",
        "--ak",
        &d.p("ak.tpm"),
        "--nonce",
        "5eed",
        "-o",
        &d.p("srk.pem"),
    ]);
    println!("srk-certify: {commands:?}");
    let report = d.verifier_ok(&[
        "verify",
        "certify",
        &d.p("srk.pem"),
        "--ak-pub",
        &d.p("ak.pem"),
        "--nonce",
        "5eed",
    ]);
    assert!(report.contains("restricted=1 decrypt=1"), "{report}");
    let name = report
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .unwrap()
        .to_string();

    // The operator pins the certified Name: tpmkey salts with that key and no other.
    std::fs::write(
        d.path("tpmkey.conf"),
        format!("storage-key-name = {name}\n"),
    )
    .unwrap();
    let conf = d.p("tpmkey.conf");
    d.tpmkey_ok(&["--config", &conf, "keygen", "-o", &d.p("k1.key")]);
    // The TPM is cleared (a new owner seed, so another storage key): refused.
    d.tpm.tpm2_tools_ok(["tpm2_clear", "-c", "p"]);
    let out = d.tpmkey(&["--config", &conf, "keygen", "-o", &d.p("k2.key")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not match the pinned storage-key-name"),
        "{}",
        stderr(&out)
    );
    assert!(!d.path("k2.key").exists());
}
