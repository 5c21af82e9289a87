//! Key files tpmkey did not write: a PCR-bound key made by tpm2-tools (policy digest from a
//! trial session, `tpm2_create -L`, userWithAuth clear), wrapped with `openssl asn1parse
//! -genconf` in both PolicyPCR encodings found in the wild: the engine's
//! (TPML_PCR_SELECTION ‖ digest) and the command body GRUB and pcr-oracle write
//! (TPM2B_DIGEST, empty here, ‖ TPML_PCR_SELECTION). Each signs in the state and fails,
//! naming the PCR and costing no dictionary-attack count, after an extend.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod sealing;

use std::process::Command;

use common::Env;
use sealing::{extend_pcr16, hex, lockout_counter, persistent_parent, s};
use tpmkey::hash::Hash;
use tpmkey::{Error, KeyFile, SignScheme, TpmKey};
use tpmkey_testenv::TpmEndpoint;

/// TPML_PCR_SELECTION of sha256:16.
const SELECTION_PCR16: &str = "00000001000b03000001";

fn genconf(public: &[u8], private: &[u8], body: &str) -> String {
    format!(
        "asn1=SEQUENCE:key\n[key]\ntype=OID:2.23.133.10.1.3\nemptyAuth=EXPLICIT:0,BOOLEAN:TRUE\n\
         policy=EXPLICIT:1,SEQUENCE:policies\nparent=INTEGER:0x81000001\n\
         pubkey=FORMAT:HEX,OCTETSTRING:{}\nprivkey=FORMAT:HEX,OCTETSTRING:{}\n\
         [policies]\npcr=SEQUENCE:pcr\n[pcr]\ncc=EXPLICIT:0,INTEGER:0x17F\n\
         body=EXPLICIT:1,FORMAT:HEX,OCTETSTRING:{body}\n",
        hex(public),
        hex(private)
    )
}

fn sign(key: &TpmKey) -> Result<(), Error> {
    key.sign(SignScheme::Ecdsa(Hash::Sha256), &[0x42; 32])
        .map(|_| ())
}

#[test]
fn tpm2_tools_keys_in_both_policy_pcr_encodings() {
    let env = Env::start();
    persistent_parent(&env.swtpm, env.dir.path());
    let (session, digest) = (env.path("trial.ctx"), env.path("policy.digest"));
    env.swtpm
        .tpm2_tools_ok(["tpm2_startauthsession", "-S", s(&session)]);
    env.swtpm.tpm2_tools_ok([
        "tpm2_policypcr",
        "-S",
        s(&session),
        "-l",
        "sha256:16",
        "-L",
        s(&digest),
    ]);
    env.swtpm.tpm2_tools_ok(["tpm2_flushcontext", s(&session)]);
    let (public, private) = (env.path("k.pub"), env.path("k.priv"));
    env.swtpm.tpm2_tools_ok([
        "tpm2_create",
        "-C",
        "0x81000001",
        "-G",
        "ecc256:ecdsa-sha256",
        "-a",
        "fixedtpm|fixedparent|sensitivedataorigin|sign",
        "-L",
        s(&digest),
        "-u",
        s(&public),
        "-r",
        s(&private),
    ]);
    env.swtpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    let (public, private) = (
        std::fs::read(&public).unwrap(),
        std::fs::read(&private).unwrap(),
    );

    let pcr16 = String::from_utf8(env.tpmkey_ok(["pcr", "read", "sha256:16"])).unwrap();
    let value = tpmkey::hex::unhex(pcr16.trim().split('=').nth(1).unwrap()).unwrap();
    let pcr_digest = hex(&openssl::sha::sha256(&value));
    let forms = [
        ("engine", format!("{SELECTION_PCR16}{pcr_digest}")),
        ("command body", format!("0000{SELECTION_PCR16}")),
    ];
    tpmkey::connection::configure(&[("tcti", &env.swtpm.tcti())]).unwrap();
    let mut keys = Vec::new();
    for (form, body) in &forms {
        let conf = env.path("gen.conf");
        std::fs::write(&conf, genconf(&public, &private, body)).unwrap();
        let der = env.path(&format!("{}.der", form.replace(' ', "-")));
        tpmkey_testenv::run(Command::new("openssl").args([
            "asn1parse",
            "-genconf",
            s(&conf),
            "-noout",
            "-out",
            s(&der),
        ]));
        let file = KeyFile::from_pem_or_der(&std::fs::read(&der).unwrap()).unwrap();
        let key = TpmKey::from_key_file(&file, None).unwrap();
        assert!(!key.public().user_with_auth, "{form}");
        sign(&key).unwrap_or_else(|e| panic!("{form}: {e}"));
        keys.push((form, key));
    }

    extend_pcr16(&env.swtpm);
    let before = lockout_counter(&env.swtpm);
    for (form, key) in &keys {
        match sign(key) {
            Err(e @ Error::PolicyNotSatisfied(_)) => {
                assert!(e.to_string().contains("sha256:16"), "{form}: {e}")
            }
            other => panic!("{form}: expected a policy error, got {other:?}"),
        }
    }
    assert_eq!(
        lockout_counter(&env.swtpm),
        before,
        "no dictionary-attack count"
    );
    tpmkey::connection::shutdown();
}
