//! Policy digests computed on the host equal what a real TPM computes: each statement is run
//! in a trial session on swtpm with tpm2-tools and the session's digest compared with
//! `tpmkey::policy`'s. The signer Name tpm2_loadexternal reports is compared too.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use tpmkey::hash::Hash;
use tpmkey::policy::{
    policy_digest, BodyForm, PcrSelection, PolicyCounterTimer, PolicyDigest, PolicyPcr,
    PolicySecret, SignerKey, Statement,
};
use tpmkey_testenv::{Swtpm, TpmEndpoint};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("tpmkey-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `steps` (tool name and arguments, without -S/-L) in one trial session and returns
/// the digest the TPM wrote after the last one.
fn trial(tpm: &Swtpm, dir: &Dir, steps: &[&[&str]]) -> Vec<u8> {
    let session = dir.file("trial.ctx");
    let out = dir.file("trial.policy");
    tpm.tpm2_tools_ok(["tpm2_startauthsession", "-S", &session]);
    for step in steps {
        let (tool, args) = step.split_first().unwrap();
        let mut all: Vec<&str> = vec![tool, "-S", &session, "-L", &out];
        all.extend_from_slice(args);
        tpm.tpm2_tools_ok(all);
    }
    tpm.tpm2_tools_ok(["tpm2_flushcontext", &session]);
    std::fs::read(&out).unwrap()
}

fn write(path: &str, data: &[u8]) -> String {
    std::fs::write(Path::new(path), data).unwrap();
    path.to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn host_digests_equal_swtpm_trial_digests() {
    let tpm = Swtpm::start();
    let dir = Dir::new("policy-trial");

    // PolicyPCR over PCR 16 after one extend, from the TPM's current value and from values
    // supplied in a file (as for predicted states).
    let event = Hash::Sha256.digest(&[b"config-v1"]);
    tpm.tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={}", hex(&event))]);
    let pcr16 = Hash::Sha256.digest(&[&[0u8; 32], &event]);
    let selection = PcrSelection::parse("sha256:16").unwrap();
    let pcr = Statement::Pcr(PolicyPcr {
        pcr_digest: selection
            .pcr_digest(std::slice::from_ref(&pcr16), Hash::Sha256)
            .unwrap(),
        selection,
        form: BodyForm::Engine,
    });
    let host = policy_digest(std::slice::from_ref(&pcr)).unwrap();
    assert_eq!(
        trial(&tpm, &dir, &[&["tpm2_policypcr", "-l", "sha256:16"]]),
        host
    );

    // Two banks and several PCRs, values supplied (selection order: sha256 then sha1).
    let sel = PcrSelection::parse("sha256:0,7+sha1:16").unwrap();
    let values = vec![vec![0x11; 32], vec![0x22; 32], vec![0x33; 20]];
    let file = write(&dir.file("pcrs.bin"), &values.concat());
    assert_eq!(sel.split_values(&values.concat()).unwrap(), values);
    let mut d = PolicyDigest::default();
    d.policy_pcr_values(&sel, &values).unwrap();
    assert_eq!(
        trial(
            &tpm,
            &dir,
            &[&["tpm2_policypcr", "-l", "sha256:0,7+sha1:16", "-f", &file]]
        ),
        d.value()
    );

    // PolicyPCR AND PolicyAuthValue; PolicyPassword gives the same digest.
    let host = policy_digest(&[pcr.clone(), Statement::AuthValue]).unwrap();
    let steps: &[&[&str]] = &[
        &["tpm2_policypcr", "-l", "sha256:16"],
        &["tpm2_policyauthvalue"],
    ];
    assert_eq!(trial(&tpm, &dir, steps), host);
    assert_eq!(
        trial(&tpm, &dir, &[&["tpm2_policypassword"]]),
        policy_digest(&[Statement::Password]).unwrap()
    );

    // PolicyLocality 0 (bitmap 0x01).
    assert_eq!(
        trial(&tpm, &dir, &[&["tpm2_policylocality", "zero"]]),
        policy_digest(&[Statement::Locality(1)]).unwrap()
    );

    // PolicyCounterTimer: clock < 0x100000 and resetCount <= 5.
    let clock = Statement::CounterTimer(PolicyCounterTimer::clock_before(0x10_0000));
    assert_eq!(
        trial(
            &tpm,
            &dir,
            &[&["tpm2_policycountertimer", "--ult", "clock=1048576"]]
        ),
        policy_digest(&[clock]).unwrap()
    );
    let resets = Statement::CounterTimer(PolicyCounterTimer::reset_count_at_most(5));
    assert_eq!(
        trial(
            &tpm,
            &dir,
            &[&["tpm2_policycountertimer", "--ule", "resets=5"]]
        ),
        policy_digest(&[resets]).unwrap()
    );

    // PolicyCommandCode(TPM2_CC_Sign).
    assert_eq!(
        trial(&tpm, &dir, &[&["tpm2_policycommandcode", "0x15d"]]),
        policy_digest(&[Statement::CommandCode(0x15D)]).unwrap()
    );

    // PolicySecret with the owner hierarchy (a permanent handle's Name is the handle).
    let secret = Statement::Secret(PolicySecret {
        handle_hint: 0x4000_0001,
        object_name: 0x4000_0001u32.to_be_bytes().to_vec(),
        policy_ref: Vec::new(),
    });
    assert_eq!(
        trial(&tpm, &dir, &[&["tpm2_policysecret", "-c", "o"]]),
        policy_digest(&[secret]).unwrap()
    );

    // PolicyOR of two branches.
    let a = write(&dir.file("a.policy"), &[0xAA; 32]);
    let b = write(&dir.file("b.policy"), &[0xBB; 32]);
    assert_eq!(
        trial(
            &tpm,
            &dir,
            &[&["tpm2_policyor", "-l", &format!("sha256:{a},{b}")]]
        ),
        policy_digest(&[Statement::Or(vec![vec![0xAA; 32], vec![0xBB; 32]])]).unwrap()
    );

    // PolicyAuthorize with the engine golden signer: tpm2_loadexternal loads it with the
    // same public area as tpmkey (the TPM reports the same Name), and the digest matches.
    let pem = format!(
        "{}/tests/data/engine-golden/signer.pub",
        env!("CARGO_MANIFEST_DIR")
    );
    let signer = SignerKey::from_pem(&std::fs::read(&pem).unwrap()).unwrap();
    let ctx = dir.file("signer.ctx");
    let name_file = dir.file("signer.name");
    tpm.tpm2_tools_ok([
        "tpm2_loadexternal",
        "-G",
        "ecc",
        "-C",
        "o",
        "-u",
        &pem,
        "-c",
        &ctx,
        "-n",
        &name_file,
    ]);
    tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    let tpm_name = std::fs::read(&name_file).unwrap();
    let mut d = PolicyDigest::default();
    d.policy_authorize(&tpm_name, &[]);
    assert_eq!(
        trial(&tpm, &dir, &[&["tpm2_policyauthorize", "-n", &name_file]]),
        d.value()
    );
    assert_eq!(hex(&tpm_name), hex(&signer.name()));
}

/// RSA-2048 (as systemd uses) and ECC P-384 signers loaded by tpm2_loadexternal have the
/// Names tpmkey computes. (tpm2-tools 5.4 on swtpm 0.7.1 refuses to load a 3072-bit RSA key:
/// "RSA key-size 3072 is not supported".)
#[test]
fn signer_names_equal_the_tpms() {
    let tpm = Swtpm::start();
    let dir = Dir::new("policy-signer-names");
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let p384 = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP384R1).unwrap(),
    )
    .unwrap();
    for (alg, pem) in [
        ("rsa", rsa.public_key_to_pem().unwrap()),
        ("ecc", p384.public_key_to_pem().unwrap()),
    ] {
        let pem = write(&dir.file("signer.pub"), &pem);
        let signer = SignerKey::from_pem(&std::fs::read(&pem).unwrap()).unwrap();
        let name_file = dir.file("signer.name");
        tpm.tpm2_tools_ok([
            "tpm2_loadexternal",
            "-G",
            alg,
            "-C",
            "o",
            "-u",
            &pem,
            "-c",
            &dir.file("signer.ctx"),
            "-n",
            &name_file,
        ]);
        tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
        assert_eq!(
            hex(&std::fs::read(&name_file).unwrap()),
            hex(&signer.name()),
            "{alg}"
        );
    }
}

/// systemd-measure's own signed PCR 11 policies (a fake UKI, signed against swtpm): tpmkey
/// reads the JSON, picks the entries by the signer's fingerprint, and each `pol` equals the
/// PolicyPCR digest tpmkey computes from the PCR 11 value `systemd-measure calculate`
/// predicts for the same phase; each `sig` verifies with OpenSSL.
#[test]
fn systemd_measure_signatures_are_read() {
    const MEASURE: &str = "/usr/lib/systemd/systemd-measure";
    let tpm = Swtpm::start();
    let dir = Dir::new("policy-systemd-measure");
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let private = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    let sk = write(
        &dir.file("sk.pem"),
        &private.private_key_to_pem_pkcs8().unwrap(),
    );
    let pk = write(&dir.file("pk.pem"), &private.public_key_to_pem().unwrap());
    let uki: Vec<String> = [
        ("linux", &b"fake kernel v1"[..]),
        ("osrel", b"ID=tpmkey-test\n"),
        ("cmdline", b"quiet"),
    ]
    .iter()
    .map(|(section, content)| format!("--{section}={}", write(&dir.file(section), content)))
    .collect();
    let run_measure = |args: &[&str]| -> Vec<u8> {
        let mut cmd = std::process::Command::new(MEASURE);
        cmd.args(args)
            .args(&uki)
            .args(["--bank=sha256", "--json=short"]);
        tpmkey_testenv::run(&mut cmd).stdout
    };
    let device = format!("--tpm2-device={}", tpm.tcti());
    let signed = run_measure(&[
        "sign",
        &format!("--private-key={sk}"),
        &format!("--public-key={pk}"),
        &device,
    ]);
    let predicted = run_measure(&["calculate"]);

    let signer = SignerKey::from_pem(&std::fs::read(&pk).unwrap()).unwrap();
    let entries = tpmkey::policy::systemd::parse(&signed).unwrap();
    let mine = tpmkey::policy::systemd::for_signer(&entries, &signer);
    assert_eq!(
        mine.len(),
        4,
        "four boot phases: {}",
        String::from_utf8_lossy(&signed)
    );

    // calculate: {"sha256":[{"phase":..,"pcr":11,"hash":"<hex>"}, ...]} in the same order.
    let text = String::from_utf8(predicted).unwrap();
    let hashes: Vec<Vec<u8>> = text
        .split("\"hash\":\"")
        .skip(1)
        .map(|t| {
            let h = &t[..64];
            (0..32)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(hashes.len(), 4, "{text}");
    for (entry, pcr11) in mine.iter().zip(&hashes) {
        assert_eq!(entry.selection.to_string(), "sha256:11");
        let st = Statement::Pcr(
            PolicyPcr::from_values(entry.selection.clone(), std::slice::from_ref(pcr11)).unwrap(),
        );
        assert_eq!(entry.approved_policy, policy_digest(&[st]).unwrap());
        let mut v =
            openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &private).unwrap();
        v.update(&entry.approved_policy).unwrap();
        assert!(v.verify(&entry.signature).unwrap());
        let entry = entry.to_auth_policy(Some("uki"), &signer).unwrap();
        assert_eq!(entry.policy.len(), 2);
    }
}

/// The signed-policy chain on a TPM with tpmkey's pieces: a PolicyPCR digest signed offline
/// (aHash over approvedPolicy ‖ 32-byte nonce), the signature as tpmkey marshals it
/// (TPMT_SIGNATURE) verified by TPM2_VerifySignature against the signer loaded with
/// tpm2_loadexternal, the ticket accepted by PolicyAuthorize in a real policy session whose
/// digest is then the authPolicy tpmkey computes; a changed signature is refused.
#[test]
fn signed_policy_chain_on_swtpm() {
    let tpm = Swtpm::start();
    let dir = Dir::new("policy-signed-chain");
    let golden = |n: &str| {
        format!(
            "{}/tests/data/engine-golden/{n}",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let event = Hash::Sha256.digest(&[b"config-v1"]);
    tpm.tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={}", hex(&event))]);
    let pcr16 = Hash::Sha256.digest(&[&[0u8; 32], &event]);

    let signer = SignerKey::from_pem(&std::fs::read(golden("signer.pub")).unwrap()).unwrap();
    let policy_ref = tpmkey::policy::PolicyRefDialect::EngineNonce.new_policy_ref();
    let selection = PcrSelection::parse("sha256:16").unwrap();
    let approved = policy_digest(&[Statement::Pcr(
        PolicyPcr::from_values(selection, &[pcr16]).unwrap(),
    )])
    .unwrap();
    let private =
        openssl::pkey::PKey::private_key_from_pem(&std::fs::read(golden("signer.key")).unwrap())
            .unwrap();
    let mut sgn =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &private).unwrap();
    sgn.update(&tpmkey::policy::signed_message(&approved, &policy_ref))
        .unwrap();
    let sig = signer
        .signature(&sgn.sign_to_vec().unwrap(), Hash::Sha256)
        .unwrap();
    let ahash = tpmkey::policy::authorization_hash(&approved, &policy_ref);
    assert!(signer.verify_digest(&ahash, &sig).unwrap());

    let ctx = dir.file("signer.ctx");
    let name = dir.file("signer.name");
    tpm.tpm2_tools_ok([
        "tpm2_loadexternal",
        "-G",
        "ecc",
        "-C",
        "o",
        "-u",
        &golden("signer.pub"),
        "-c",
        &ctx,
        "-n",
        &name,
    ]);
    let digest = write(&dir.file("ahash.bin"), &ahash);
    let sig_file = write(&dir.file("sig.tss"), &sig.marshal());
    let ticket = dir.file("verified.tkt");
    tpm.tpm2_tools_ok([
        "tpm2_verifysignature",
        "-c",
        &ctx,
        "-d",
        &digest,
        "-s",
        &sig_file,
        "-t",
        &ticket,
    ]);
    // One bit of the signature changed: TPM2_VerifySignature refuses it.
    let mut bad = sig.marshal();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let bad_file = write(&dir.file("bad.tss"), &bad);
    let out = tpm.tpm2_tools([
        "tpm2_verifysignature",
        "-c",
        &ctx,
        "-d",
        &digest,
        "-s",
        &bad_file,
        "-t",
        &dir.file("bad.tkt"),
    ]);
    assert!(!out.status.success(), "a changed signature was accepted");
    tpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);

    let session = dir.file("policy.ctx");
    let result = dir.file("result.policy");
    let approved_file = write(&dir.file("approved.policy"), &approved);
    let ref_file = write(&dir.file("ref.bin"), &policy_ref);
    tpm.tpm2_tools_ok(["tpm2_startauthsession", "--policy-session", "-S", &session]);
    tpm.tpm2_tools_ok(["tpm2_policypcr", "-S", &session, "-l", "sha256:16"]);
    tpm.tpm2_tools_ok([
        "tpm2_policyauthorize",
        "-S",
        &session,
        "-i",
        &approved_file,
        "-q",
        &ref_file,
        "-n",
        &name,
        "-t",
        &ticket,
        "-L",
        &result,
    ]);
    tpm.tpm2_tools_ok(["tpm2_flushcontext", &session]);
    assert_eq!(
        std::fs::read(&result).unwrap(),
        policy_digest(&[tpmkey::policy::authorize_statement(&signer, &policy_ref)]).unwrap()
    );
}
