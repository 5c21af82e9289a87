//! The README's provider instructions, run as written: every `openssl genpkey` command
//! (and the one in conf/openssl-tpmkey.cnf) makes a TPM key (PEM label `TSS2 PRIVATE KEY`) and fails rather than write a software
//! key when the TPM is unreachable; the merge into Debian's /etc/ssl/openssl.cnf activates
//! the provider; the eviction command removes a persistent key.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{fails, run, Env};
use tpmkey_testenv::readme::{readme, shell_commands};
use tpmkey_testenv::TpmEndpoint;

const TPM_LABEL: &str = "-----BEGIN TSS2 PRIVATE KEY-----";

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

/// The command as the harness runs it: with `-provider`, the modules directory added;
/// without, the README's openssl.cnf snippet as OPENSSL_CONF.
fn genpkey(env: &Env, command: &str, tcti: &str) -> (Command, String) {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[..2], ["openssl", "genpkey"], "{command}");
    let out_at = words
        .iter()
        .position(|w| *w == "-out")
        .unwrap_or_else(|| panic!("no -out in {command}"))
        + 1;
    // An absolute path (the quick start's /etc/tpmkey/...) lands in the test's directory.
    let out = std::path::Path::new(words[out_at])
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut words = words;
    words[out_at] = &out;
    let mut c = env.plain("genpkey");
    c.env("TPMKEY_TCTI", tcti).env("TPMKEY_CONF", "/dev/null");
    if words.contains(&"-provider") {
        c.arg("-provider-path").arg(&env.modules);
    } else {
        c.env("OPENSSL_CONF", repo_file("conf/openssl-tpmkey.cnf"))
            .env("OPENSSL_MODULES", &env.modules);
    }
    c.args(&words[2..]);
    (c, out)
}

#[test]
fn every_readme_genpkey_command_makes_a_tpm_key_or_fails() {
    let env = Env::new();
    let conf = std::fs::read_to_string(repo_file("conf/openssl-tpmkey.cnf")).unwrap();
    let commands: Vec<String> = shell_commands(&readme())
        .into_iter()
        .chain(
            // And the one in the openssl.cnf snippet's comments.
            conf.lines()
                .filter_map(|l| l.strip_prefix('#'))
                .map(|l| l.trim().to_string()),
        )
        .filter(|c| c.starts_with("openssl genpkey"))
        .collect();
    assert!(commands.len() >= 6, "README genpkey commands: {commands:?}");
    for command in &commands {
        // TPM unreachable: an error, never a software key.
        let (mut c, out) = genpkey(&env, command, "swtpm:host=127.0.0.1,port=9");
        fails(&mut c);
        let written = std::fs::read_to_string(env.path(&out)).unwrap_or_default();
        assert!(!written.contains("PRIVATE KEY"), "{command}: {written}");
        let _ = std::fs::remove_file(env.path(&out));
        // The TPM there: a TPM key file.
        let (mut c, out) = genpkey(&env, command, &env.tcti);
        run(&mut c);
        let written = String::from_utf8(env.read(&out)).unwrap();
        assert!(written.starts_with(TPM_LABEL), "{command}: {written}");
    }
    // What the README warns about: without the property query, with the snippet's order,
    // genpkey writes a software key (label PRIVATE KEY).
    let (mut c, out) = genpkey(
        &env,
        "openssl genpkey -algorithm EC -pkeyopt group:P-256 -out soft.pem",
        &env.tcti,
    );
    run(&mut c);
    let written = String::from_utf8(env.read(&out)).unwrap();
    assert!(
        written.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{written}"
    );
    // The README's eviction command removes the persistent key genpkey made.
    let evict = "tpm2_evictcontrol -C o -c 0x81000010";
    assert!(readme().contains(evict));
    run(env.openssl(common::Order::DefaultFirst, "pkey").args([
        "-in",
        "handle:0x81000010",
        "-pubout",
    ]));
    env.tpm
        .tpm2_tools_ok(evict.split_whitespace().collect::<Vec<_>>());
    let err = fails(env.openssl(common::Order::DefaultFirst, "pkey").args([
        "-in",
        "handle:0x81000010",
        "-pubout",
    ]));
    assert!(err.contains("0x81000010"), "{err}");
}

#[test]
fn readme_merge_into_debians_openssl_cnf_activates_the_provider() {
    let env = Env::new();
    let text = readme();
    let start = text
        .find("cp /etc/ssl/openssl.cnf /etc/ssl/openssl.cnf.orig")
        .expect("the merge block");
    let end = start + text[start..].find("\n```").unwrap();
    let cnf = env.file("openssl.cnf");
    std::fs::copy("/etc/ssl/openssl.cnf", &cnf).unwrap();
    let script = text[start..end]
        .replace("/etc/ssl/openssl.cnf", &cnf)
        .replace("device:/dev/tpmrm0", &env.tcti);
    run(Command::new("sh").arg("-ec").arg(&script));
    // The section's tcti wins over the environment's unreachable one.
    let with_cnf = |sub: &str| {
        let mut c = env.plain(sub);
        c.env("OPENSSL_CONF", &cnf)
            .env("OPENSSL_MODULES", &env.modules)
            .env("TPMKEY_CONF", "/dev/null")
            .env("TPMKEY_TCTI", "swtpm:host=127.0.0.1,port=9");
        c
    };
    run(with_cnf("genpkey").args([
        "-propquery",
        "provider=tpmkey",
        "-algorithm",
        "EC",
        "-out",
        "k.pem",
    ]));
    assert!(String::from_utf8(env.read("k.pem"))
        .unwrap()
        .starts_with(TPM_LABEL));
    let msg = env.write("msg", b"merged");
    run(with_cnf("pkey").args(["-in", "k.pem", "-pubout", "-out", "k.pub"]));
    run(with_cnf("dgst").args(["-sha256", "-sign", "k.pem", "-out", "sig", &msg]));
    env.dgst_verify_default(&env.file("k.pub"), &["-sha256"], &env.file("sig"), &msg);
}
