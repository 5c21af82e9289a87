//! `tpmkey inspect` on a real swtpm: a generated key's attributes and a successful load; a
//! key from another TPM refused with the reason in words; a TPM that is not there (file
//! part still printed, exit 5); policy statements and signed policies decoded, an unknown
//! statement named.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{stderr, tpmkey_with, Env};
use tpmkey::hash::Hash;
use tpmkey::keyfile::TpmPolicy;
use tpmkey::policy::{
    signed_policy_entry, PcrSelection, PolicyPcr, SignerKey, Statement, TpmSignature,
};
use tpmkey::KeyFile;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn inspect_shows_a_generated_key_that_loads() {
    let env = Env::start();
    let key = env.path("k.key");
    env.tpmkey_ok(["keygen", "-t", "p256", "-o", key.to_str().unwrap()]);

    let text = String::from_utf8(env.tpmkey_ok(["inspect", key.to_str().unwrap()])).unwrap();
    for want in [
        "loadable (2.23.133.10.1.3)",
        "ECC P-256",
        "0x40000001",
        "emptyAuth:      TRUE",
        "fixedTPM fixedParent sensitiveDataOrigin userWithAuth noDA sign decrypt",
        "generated in the TPM",
        "authPolicy:     none",
        "loads:          yes",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    let rsa = env.path("r.key");
    env.tpmkey_ok(["keygen", "-t", "rsa2048", "-o", rsa.to_str().unwrap()]);
    let json =
        String::from_utf8(env.tpmkey_ok(["inspect", "--json", rsa.to_str().unwrap()])).unwrap();
    for want in [
        "\"type\": \"loadable\"",
        "\"algorithm\": \"rsa\"",
        "\"bits\": 2048",
        "\"curve\": null",
        "\"empty_auth\": true",
        "\"sensitive_data_origin\": true",
        "\"restricted\": false",
        "\"imported\": false",
        "\"parent\": \"0x40000001\"",
        "\"loads\": true",
    ] {
        assert!(json.contains(want), "missing {want:?} in\n{json}");
    }
}

#[test]
fn inspect_says_why_a_key_does_not_load() {
    let env = Env::start();
    let key = env.path("k.key");
    env.tpmkey_ok(["keygen", "-o", key.to_str().unwrap()]);

    // Another TPM: its storage key differs, so the blob's integrity check fails.
    let other = Env::start();
    let r = other.tpmkey(["inspect", key.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stdout(&r).contains("ECC P-256"), "{}", stdout(&r));
    assert!(
        stdout(&r).contains("no: the TPM rejects the private part")
            && stdout(&r).contains("another TPM"),
        "{}",
        stdout(&r)
    );

    // No TPM at all: the file's part is printed, exit 5.
    let r = tpmkey_with(
        "swtpm:host=127.0.0.1,port=1",
        env.dir.path(),
        ["inspect", "--json", key.to_str().unwrap()],
    );
    assert_eq!(r.status.code(), Some(5), "{}", stderr(&r));
    let json = stdout(&r);
    assert!(json.contains("\"algorithm\": \"ecc\""), "{json}");
    assert!(json.contains("\"tpm_unreachable\": true"), "{json}");
    assert!(json.contains("the TPM cannot be reached"), "{json}");

    // --no-load contacts no TPM.
    let r = tpmkey_with(
        "swtpm:host=127.0.0.1,port=1",
        env.dir.path(),
        ["inspect", "--no-load", key.to_str().unwrap()],
    );
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(stdout(&r).contains("not tried"), "{}", stdout(&r));

    // Not a key file.
    std::fs::write(env.path("junk"), "hello").unwrap();
    let r = env.tpmkey(["inspect", env.path("junk").to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("TSS2"), "{}", stderr(&r));
}

#[test]
fn inspect_decodes_policies_and_signed_policies() {
    let env = Env::start();
    let key = env.path("k.key");
    env.tpmkey_ok(["keygen", "-o", key.to_str().unwrap()]);
    let mut file = KeyFile::from_pem(&std::fs::read(&key).unwrap()).unwrap();
    let selection = PcrSelection::new(Hash::Sha256, &[7, 16]).unwrap();
    let pcr = PolicyPcr::from_values(selection, &[vec![0u8; 32], vec![1u8; 32]]).unwrap();
    let mut policy =
        Statement::encode_all(&[Statement::Pcr(pcr.clone()), Statement::AuthValue]).unwrap();
    policy.push(TpmPolicy {
        command_code: 0x160, // PolicySigned: tpmkey does not run it
        command_policy: vec![0; 4],
    });
    file.policy = Some(policy);
    // A signer: any P-256 public key (inspect decodes, it does not verify).
    let signer_pub = tpmkey::public_key::KeyPublic::parse(&file.public).unwrap();
    let signer = SignerKey::new(signer_pub.key).unwrap();
    let entry = signed_policy_entry(
        Some("kernel-6.1"),
        &[Statement::Pcr(pcr)],
        &signer,
        &[],
        TpmSignature::Ecdsa {
            hash: Hash::Sha256,
            r: vec![1; 32],
            s: vec![2; 32],
        },
    )
    .unwrap();
    file.add_signed_policy(entry).unwrap();
    let pkey = env.path("policy.key");
    std::fs::write(&pkey, file.to_pem()).unwrap();

    let text = String::from_utf8(env.tpmkey_ok(["inspect", pkey.to_str().unwrap()])).unwrap();
    for want in [
        "policy:         3 statement(s)",
        "1. PolicyPCR sha256:7,16 digest ",
        "2. PolicyAuthValue",
        "3. cannot be decoded:",
        "PolicySigned",
        "signed policies:1 entry",
        "\"kernel-6.1\" signed by 000b",
        "    PolicyPCR sha256:7,16",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let json =
        String::from_utf8(env.tpmkey_ok(["inspect", "--json", pkey.to_str().unwrap()])).unwrap();
    for want in [
        "\"command\": \"PolicyPCR\"",
        "\"command_code\": 383",
        "\"command\": \"PolicySigned\"",
        "\"name\": \"kernel-6.1\"",
    ] {
        assert!(json.contains(want), "missing {want:?} in\n{json}");
    }
}
