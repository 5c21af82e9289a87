//! Sealed files bound to the platform state, on a real swtpm: PCR 16 (current or predicted
//! values), a policy signer whose signed states are added to the file later, GRUB's form,
//! and openssl_tpm2_engine's PCR-sealed file. A refused state exits 4 with nothing on
//! stdout, names the PCR and costs no dictionary-attack count.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod sealing;

use std::path::Path;
use std::process::Command;

use common::{stderr, tpmkey_with, Env};
use sealing::{engine_tpm, extend_pcr16, hex, lockout_counter, s};
use tpmkey::hash::Hash;
use tpmkey::policy::{
    policy_digest, signed_message, signed_policy_entry, PcrSelection, PolicyPcr, SignerKey,
    Statement,
};
use tpmkey::KeyFile;
use tpmkey_testenv::TpmEndpoint;

/// PCR 16 after one extend of EXTEND from its reset value (zeros).
fn pcr16_after_extend() -> Vec<u8> {
    let mut data = vec![0u8; 32];
    data.extend((0..32).map(|i| u8::from(i == 31)));
    Hash::Sha256.digest(&[&data])
}

/// Asserts a refused unseal: exit 4, nothing on stdout, the PCR named, no DA count.
fn assert_refused(env: &Env, args: &[&str], names: &str) {
    let before = lockout_counter(&env.swtpm);
    let r = env.tpmkey(args);
    assert_eq!(r.status.code(), Some(4), "{}", stderr(&r));
    assert!(r.stdout.is_empty(), "nothing on stdout");
    assert!(stderr(&r).contains(names), "{}", stderr(&r));
    assert_eq!(lockout_counter(&env.swtpm), before, "DA counter unchanged");
}

#[test]
fn sealed_to_pcr16_fails_after_extend_and_works_after_reboot() {
    let mut env = Env::start();
    let pw = env.path("pw");
    std::fs::write(&pw, "pcr-and-password").unwrap();
    let pw_arg = format!("file:{}", pw.display());
    let cases: [(usize, bool); 3] = [(32, false), (4096, false), (100, true)];
    let mut files = Vec::new();
    for (len, with_pw) in cases {
        let secret: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
        let input = env.path(&format!("in{len}"));
        let out = env.path(&format!("pcr{len}.tpm"));
        std::fs::write(&input, &secret).unwrap();
        let mut args = vec!["seal", "--pcr", "sha256:16", "-i", s(&input), "-o", s(&out)];
        if with_pw {
            args.extend(["--password", &pw_arg]);
        }
        env.tpmkey_ok(&args);
        let file = KeyFile::from_pem(&std::fs::read(&out).unwrap()).unwrap();
        assert!(file.policy.is_some(), "policy [1] written");
        let mut unseal = vec!["unseal".to_string(), s(&out).to_string()];
        if with_pw {
            unseal.extend(["--password".into(), pw_arg.clone()]);
        }
        assert!(env.tpmkey_ok(&unseal) == secret, "{len} bytes");
        files.push((unseal, secret));
    }

    extend_pcr16(&env.swtpm);
    for (unseal, _) in &files {
        let args: Vec<&str> = unseal.iter().map(String::as_str).collect();
        assert_refused(&env, &args, "PCR sha256:16");
    }

    env.swtpm.reboot();
    for (unseal, secret) in &files {
        assert!(env.tpmkey_ok(unseal) == *secret, "after the reboot");
    }
}

#[test]
fn sealed_to_predicted_values_works_once_the_platform_gets_there() {
    let env = Env::start();
    let values = env.path("pcrs");
    std::fs::write(
        &values,
        format!("sha256:16={}\n", hex(&pcr16_after_extend())),
    )
    .unwrap();
    let (input, out) = (env.path("in"), env.path("next.tpm"));
    std::fs::write(&input, b"config for the next release").unwrap();
    env.tpmkey_ok([
        "seal",
        "--pcr-values",
        s(&values),
        "-i",
        s(&input),
        "-o",
        s(&out),
    ]);
    assert_refused(&env, &["unseal", s(&out)], "PCR sha256:16");
    extend_pcr16(&env.swtpm);
    assert_eq!(
        env.tpmkey_ok(["unseal", s(&out)]),
        b"config for the next release"
    );
}

/// What a publisher does offline with openssl: sign the policy of `statements`.
fn signed_state(
    dir: &Path,
    file: &KeyFile,
    signer: &SignerKey,
    statements: &[Statement],
    name: &str,
) -> tpmkey::keyfile::TpmAuthPolicy {
    let policy = Statement::decode_all(file.policy.as_deref().unwrap(), "policy").unwrap();
    let Some(Statement::Authorize(authorize)) = policy.first() else {
        panic!("policy [1] opens with PolicyAuthorize: {policy:?}");
    };
    let message = dir.join("message");
    std::fs::write(
        &message,
        signed_message(&policy_digest(statements).unwrap(), &authorize.policy_ref),
    )
    .unwrap();
    let sig = dir.join("sig");
    tpmkey_testenv::run(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", s(&dir.join("signer.key"))])
            .args(["-out", s(&sig), s(&message)]),
    );
    let sig = signer
        .signature(&std::fs::read(&sig).unwrap(), Hash::Sha256)
        .unwrap();
    signed_policy_entry(Some(name), statements, signer, &authorize.policy_ref, sig).unwrap()
}

fn pcr16(value: Vec<u8>) -> Statement {
    let sel = PcrSelection::parse("sha256:16").unwrap();
    Statement::Pcr(PolicyPcr::from_values(sel, &[value]).unwrap())
}

#[test]
fn sealed_to_a_signer_follows_signed_states() {
    let env = Env::start();
    let dir = env.dir.path();
    for args in [
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ][..],
        &["pkey", "-pubout", "-in"][..],
    ] {
        let mut cmd = Command::new("openssl");
        cmd.args(args);
        if args[0] == "genpkey" {
            cmd.arg(dir.join("signer.key"));
        } else {
            cmd.arg(dir.join("signer.key"))
                .arg("-out")
                .arg(dir.join("signer.pub"));
        }
        assert!(cmd.status().unwrap().success());
    }
    let signer = SignerKey::from_pem(&std::fs::read(dir.join("signer.pub")).unwrap()).unwrap();
    let (input, out) = (env.path("in"), env.path("signed.tpm"));
    let secret = vec![0x42u8; 1000];
    std::fs::write(&input, &secret).unwrap();
    env.tpmkey_ok([
        "seal",
        "--signer",
        s(&dir.join("signer.pub")),
        "-i",
        s(&input),
        "-o",
        s(&out),
    ]);
    assert_refused(&env, &["unseal", s(&out)], "no signed policy");

    let mut file = KeyFile::from_pem(&std::fs::read(&out).unwrap()).unwrap();
    let blobs = (
        file.public.clone(),
        file.private.clone(),
        file.envelope.clone(),
    );
    let add = |file: &mut KeyFile, value: Vec<u8>, name: &str| {
        let entry = signed_state(dir, file, &signer, &[pcr16(value)], name);
        file.add_signed_policy(entry).unwrap();
        std::fs::write(&out, file.to_pem()).unwrap();
    };
    add(&mut file, vec![0u8; 32], "state-a");
    assert_eq!(env.tpmkey_ok(["unseal", s(&out)]), secret, "signed state A");

    extend_pcr16(&env.swtpm);
    assert_refused(&env, &["unseal", s(&out)], "state-a");
    add(&mut file, pcr16_after_extend(), "state-b");
    assert_eq!(env.tpmkey_ok(["unseal", s(&out)]), secret, "signed state B");
    let now = KeyFile::from_pem(&std::fs::read(&out).unwrap()).unwrap();
    assert!(
        (now.public, now.private, now.envelope) == blobs,
        "the sealed blob is unchanged by new signed states"
    );

    extend_pcr16(&env.swtpm);
    assert_refused(&env, &["unseal", s(&out)], "state-b");
}

#[test]
fn grub_form_and_kernel_refusal() {
    let env = Env::start();
    let (input, out) = (env.path("in"), env.path("grub.tpm"));
    std::fs::write(&input, b"disk unlock key for grub").unwrap();
    env.tpmkey_ok([
        "seal",
        "--for",
        "grub",
        "--pcr",
        "sha256:16",
        "-i",
        s(&input),
        "-o",
        s(&out),
    ]);
    let file = KeyFile::from_pem(&std::fs::read(&out).unwrap()).unwrap();
    assert!(file.empty_auth);
    let policy = file.policy.as_ref().unwrap();
    assert_eq!(policy.len(), 1);
    assert_eq!(policy[0].command_code, 0x17F, "PolicyPCR");
    // Command body: TPM2B_DIGEST pcrDigest first (size 32), then the selection.
    assert_eq!(&policy[0].command_policy[..2], &[0x00, 0x20]);
    assert_eq!(
        env.tpmkey_ok(["unseal", s(&out)]),
        b"disk unlock key for grub"
    );

    let r = env.tpmkey([
        "seal",
        "--for",
        "kernel",
        "--parent",
        "0x81000001",
        "--pcr",
        "sha256:16",
        "-i",
        s(&input),
        "-o",
        s(&env.path("k")),
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("no policy fields"), "{}", stderr(&r));
}

#[test]
fn engine_pcr_sealed_file_unseals_in_the_approved_state() {
    let swtpm = engine_tpm();
    let dir = tpmkey_testenv::TempDir::new("engine-pcr");
    let file = sealing::engine_file("sealed-pcr16.tpm");
    let run = || tpmkey_with(&swtpm.tcti(), dir.path(), ["unseal", s(&file)]);
    let r = run();
    assert_eq!(
        r.status.code(),
        Some(4),
        "before the approved state: {}",
        stderr(&r)
    );
    let approved = Hash::Sha256.digest(&[b"config-v1"]);
    swtpm.tpm2_tools_ok(["tpm2_pcrextend", &format!("16:sha256={}", hex(&approved))]);
    let r = run();
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(r.stdout, b"router-config-secret");
}

/// TPM commands of one `tpmkey unseal` of a 32-byte PCR-bound secret, process start to
/// exit, under the storage primary (re-created: transient) and under a persistent key.
#[test]
fn tpm_commands_per_pcr_bound_unseal() {
    let env = Env::start();
    sealing::persistent_parent(&env.swtpm, env.dir.path());
    let tap = tpmkey_testenv::WireTap::start(env.swtpm.port());
    let input = env.path("in");
    std::fs::write(&input, [0x33u8; 32]).unwrap();
    let mut report = Vec::new();
    for parent in [None, Some("0x81000001")] {
        let out = env.path("pcr.tpm");
        let mut args = vec!["seal", "--pcr", "sha256:16", "-i", s(&input), "-o", s(&out)];
        if let Some(p) = parent {
            args.extend(["--parent", p]);
        }
        env.tpmkey_ok(&args);
        tap.take_log();
        let r = tpmkey_with(&tap.tcti(), env.dir.path(), ["unseal", s(&out)]);
        assert!(r.status.success(), "{}", stderr(&r));
        assert_eq!(r.stdout, [0x33u8; 32]);
        let names: Vec<&str> = tap
            .take_codes()
            .into_iter()
            .map(|c| tpmkey_testenv::tpm_command::command_name(c).unwrap_or("?"))
            .collect();
        let work = names
            .iter()
            .take_while(|n| **n != "FlushContext" && **n != "ContextSave")
            .count();
        assert!(
            names.contains(&"PolicyPCR") && names.contains(&"Unseal"),
            "{names:?}"
        );
        report.push(format!(
            "parent {}: {work} commands up to the Unseal, {} with the exit's flushes: {names:?}",
            parent.unwrap_or("storage primary"),
            names.len()
        ));
    }
    eprintln!("{report:#?}");
}
