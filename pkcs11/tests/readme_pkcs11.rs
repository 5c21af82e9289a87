//! The README's pkcs11-tool instructions, run as written (the module path for `...`): a
//! token, its PINs, a key made with `--id`, and a signature selected by `--id` that
//! verifies with that key, with a second key on the token. Selected by `--label` instead,
//! both labels sign with the same key: why the README uses `--id`.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use tpmkey_testenv::readme::{readme, shell_commands};

const INSTALLED: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpmkey_pkcs11.so";

/// A README pkcs11-tool command with the built module, run in `dir`.
fn run_tool(env: &TestEnv, dir: &Path, command: &str) -> Output {
    let words: Vec<String> = command
        .split_whitespace()
        .map(|w| match w {
            "..." | INSTALLED => module_path().to_string_lossy().into_owned(),
            w => w.to_string(),
        })
        .collect();
    assert_eq!(words[0], "pkcs11-tool", "{command}");
    let mut cmd = Command::new("pkcs11-tool");
    cmd.args(&words[1..]).current_dir(dir).envs(env.vars());
    cmd.output().unwrap()
}

fn ok(env: &TestEnv, dir: &Path, command: &str) -> Output {
    let out = run_tool(env, dir, command);
    assert!(out.status.success(), "{command}:\n{}", text(&out));
    out
}

/// Whether `sig` (DER, from `--signature-format openssl`) verifies over `data` with the
/// public key of CKA_ID `id`, in software.
fn verifies(env: &TestEnv, dir: &Path, id: &str, data: &str, sig: &str) -> bool {
    let der = dir.join(format!("pub-{id}.der"));
    ok(
        env,
        dir,
        &format!(
            "pkcs11-tool --module ... --read-object --type pubkey --id {id} --output-file {}",
            der.display()
        ),
    );
    // openssl wants a DER ECDSA-Sig-Value: the signatures are made with
    // --signature-format openssl.
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-keyform", "DER", "-verify"])
        .arg(&der)
        .arg("-signature")
        .arg(dir.join(sig))
        .arg(dir.join(data))
        .output()
        .unwrap();
    text(&out).contains("Verified OK")
}

#[test]
fn readme_pkcs11_tool_commands_work_as_written() {
    let env = TestEnv::new("per-operation");
    let dir = TempDir::new("readme");
    let commands: Vec<String> = shell_commands(&readme())
        .into_iter()
        .filter(|c| c.starts_with("pkcs11-tool --module") && !c.contains("p11-kit-proxy"))
        .collect();
    let sign = commands
        .iter()
        .find(|c| c.contains("--sign"))
        .unwrap_or_else(|| panic!("no --sign example in {commands:?}"))
        .clone();
    assert!(sign.contains("--id 01"), "{sign}");
    std::fs::write(dir.0.join("data"), b"signed as the README says").unwrap();

    for command in &commands {
        if command == &sign {
            // Another key pair first: pkcs11-tool's fallback would take it.
            ok(
                &env,
                &dir.0,
                "pkcs11-tool --module ... --login --pin 5678 --keypairgen --key-type \
                 EC:prime256v1 --label other --id 02",
            );
        }
        let command = if command == &sign {
            format!("{command} --signature-format openssl")
        } else {
            command.clone()
        };
        ok(&env, &dir.0, &command);
    }
    assert!(verifies(&env, &dir.0, "01", "data", "data.sig"));

    // Selected by --label instead, OpenSC 0.23 signs with the token's first private key
    // whatever the label: `--label ssh` and `--label other` sign with the same key.
    let key_of = |label: &str| {
        let sig = format!("{label}.sig");
        let by_label = sign
            .replace("--id 01", &format!("--label {label}"))
            .replace("data.sig", &sig);
        ok(
            &env,
            &dir.0,
            &format!("{by_label} --signature-format openssl"),
        );
        ["01", "02"]
            .into_iter()
            .find(|id| verifies(&env, &dir.0, id, "data", &sig))
            .unwrap()
    };
    assert_eq!(key_of("ssh"), key_of("other"));
}
