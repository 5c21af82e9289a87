//! A token with a platform policy on a real swtpm: `tpmkey token init --pcr sha256:16`, then
//! pkcs11-tool as any application uses it. Keys generated in the token sign (verified by
//! openssl) in the approved state; after `tpm2_pcrextend 16` C_Sign answers
//! CKR_FUNCTION_REJECTED with a log line naming the policy and the PCR, and a private data
//! object's CKA_VALUE CKR_ATTRIBUTE_SENSITIVE while the object is still listed; login and
//! token info keep working; no dictionary-attack count is spent; after an orderly reboot
//! into the state both work again. The store never holds the data object's plaintext.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{openssl, stderr, verify_sha256, TokenEnv};
use tpmkey_testenv::TpmEndpoint;

const SO_PIN: &str = "12345678";
const USER_PIN: &str = "4321";
const LABEL: &str = "bound";
const SECRET: &[u8] = b"vpn psk: only in the approved platform state\n";

struct Token(TokenEnv);

impl std::ops::Deref for Token {
    type Target = TokenEnv;
    fn deref(&self) -> &TokenEnv {
        &self.0
    }
}

impl Token {
    fn p(&self, name: &str) -> String {
        self.env.path(name).to_str().unwrap().to_string()
    }

    /// pkcs11-tool logged in to the token as the user.
    fn user(&self, args: &[&str]) -> Output {
        self.pkcs11_tool()
            .args(["--token-label", LABEL, "--login", "--pin", USER_PIN])
            .args(args)
            .output()
            .unwrap()
    }

    fn user_ok(&self, args: &[&str]) -> String {
        let out = self.user(args);
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sign(&self, id: &str) -> Output {
        let (data, sig) = (self.p("data"), self.p("sig"));
        let _ = std::fs::remove_file(&sig);
        self.user(&[
            "--sign",
            "--id",
            id,
            "--mechanism",
            "ECDSA-SHA256",
            "--signature-format",
            "openssl",
            "-i",
            &data,
            "-o",
            &sig,
        ])
    }

    fn sign_and_verify(&self, id: &str) {
        let out = self.sign(id);
        assert!(out.status.success(), "C_Sign: {}", stderr(&out));
        let (pem, sig, data) = (self.p("pub.pem"), self.p("sig"), self.p("data"));
        verify_sha256(&pem, &sig, &data);
    }

    fn read_value(&self) -> Output {
        let out = self.p("value");
        let _ = std::fs::remove_file(&out);
        self.user(&[
            "--read-object",
            "--type",
            "data",
            "--label",
            "psk",
            "-o",
            &out,
        ])
    }

    /// TPM_PT_LOCKOUT_COUNTER as tpm2_getcap prints it.
    fn lockout_counter(&self) -> u64 {
        let out = self
            .env
            .swtpm
            .tpm2_tools_ok(["tpm2_getcap", "properties-variable"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let value = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("TPM2_PT_LOCKOUT_COUNTER:"))
            .unwrap_or_else(|| panic!("no lockout counter in {text}"))
            .trim();
        match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => value.parse().unwrap(),
        }
    }
}

/// A pkcs11-tool run the module refused with `rv`, its log line naming `names` and the PCR.
fn refused(out: &Output, rv: &str, names: &[&str]) {
    assert!(!out.status.success(), "not refused: {}", stderr(out));
    let err = stderr(out);
    eprintln!("{rv}:\n{err}");
    for name in [rv, "sha256:16 do not have the values"].iter().chain(names) {
        assert!(err.contains(name), "no {name:?} in {err}");
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `grep -r` finds no file in the store that holds `secret` (one line of text).
fn assert_not_in_store(store: &Path, secret: &[u8]) {
    let text = std::str::from_utf8(secret).unwrap().trim_end();
    let grep = |dir: &Path| {
        std::process::Command::new("grep")
            .args(["-r", "-F", "-l", "-e", text])
            .arg(dir)
            .output()
            .unwrap()
    };
    // The search finds the plaintext where it is: the input file beside the store.
    assert!(grep(store.parent().unwrap()).status.success());
    let out = grep(store);
    assert_eq!(
        out.status.code(),
        Some(1),
        "grep found the plaintext in: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

#[test]
fn token_with_a_platform_policy_works_only_in_its_state() {
    let mut t = Token(TokenEnv::start());
    std::fs::write(t.env.path("so"), SO_PIN).unwrap();
    std::fs::write(t.env.path("pin"), USER_PIN).unwrap();
    std::fs::write(t.env.path("data"), b"signed in the approved state").unwrap();
    std::fs::write(t.env.path("psk"), SECRET).unwrap();

    let r = t.tpmkey(&[
        "token",
        "init",
        "--label",
        LABEL,
        "--so-pin",
        &format!("file:{}", t.p("so")),
        "--pin",
        &format!("file:{}", t.p("pin")),
        "--pcr",
        "sha256:16",
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let said = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(said.contains("PolicyPCR sha256:16"), "{said}");

    t.user_ok(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "01",
        "--label",
        "device",
    ]);
    let der = t.p("pub.der");
    t.user_ok(&[
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        "01",
        "-o",
        &der,
    ]);
    openssl(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        &der,
        "-out",
        &t.p("pub.pem"),
    ]);
    t.sign_and_verify("01");

    let psk = t.p("psk");
    t.user_ok(&[
        "--write-object",
        &psk,
        "--type",
        "data",
        "--label",
        "psk",
        "--private",
    ]);
    let out = t.read_value();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(t.p("value")).unwrap(), SECRET);
    assert_not_in_store(&t.store(), SECRET);

    // Another platform state.
    t.env.swtpm.tpm2_tools_ok([
        "tpm2_pcrextend",
        "16:sha256=0000000000000000000000000000000000000000000000000000000000000001",
    ]);
    let da_before = t.lockout_counter();
    refused(
        &t.sign("01"),
        "CKR_FUNCTION_REJECTED",
        &["platform policy: PolicyPCR sha256:16"],
    );
    // The data object is listed, its label readable, its value refused.
    let listed = t.user_ok(&["--list-objects", "--type", "data"]);
    assert!(listed.contains("psk"), "{listed}");
    refused(
        &t.read_value(),
        "CKR_ATTRIBUTE_SENSITIVE",
        &["CKA_VALUE", "PolicyPCR sha256:16"],
    );
    assert!(!Path::new(&t.p("value")).exists() || std::fs::read(t.p("value")).unwrap().is_empty());
    // Token info and login still work.
    let info = t.tool(&["--list-token-slots"]);
    assert!(
        String::from_utf8_lossy(&info.stdout).contains(LABEL),
        "{}",
        stderr(&info)
    );
    assert_eq!(t.lockout_counter(), da_before, "no dictionary-attack count");

    // Back in the approved state.
    t.0.env.swtpm.reboot();
    t.sign_and_verify("01");
    let out = t.read_value();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(t.p("value")).unwrap(), SECRET);

    // Delete works as for any object; the key pair stays.
    t.user_ok(&["--delete-object", "--type", "data", "--label", "psk"]);
    let listed = t.user_ok(&["--list-objects"]);
    assert!(
        !listed.contains("psk") && listed.contains("device"),
        "{listed}"
    );
    assert_not_in_store(&t.store(), SECRET);

    // C_InitToken keeps the platform policy: a key made after re-initialisation is bound too.
    t.tool(&[
        "--token-label",
        LABEL,
        "--init-token",
        "--label",
        LABEL,
        "--so-pin",
        SO_PIN,
    ]);
    let description = std::fs::read_to_string(
        files_under(&t.store())
            .into_iter()
            .find(|f| f.file_name().is_some_and(|n| n == "token"))
            .unwrap(),
    )
    .unwrap();
    assert!(description.contains("platform-policy="), "{description}");
}

#[test]
fn token_init_refuses_bad_policies() {
    let t = Token(TokenEnv::start());
    std::fs::write(t.env.path("so"), SO_PIN).unwrap();
    std::fs::write(t.env.path("values"), "sha256:16=abcd\n").unwrap();
    let so = format!("file:{}", t.p("so"));
    for (args, why) in [
        (vec!["--pcr", "sha256:24"], "24"),
        (vec!["--pcr", "sha999:1"], "sha999"),
        (vec!["--pcr-values", &t.p("values")], "bytes"),
    ] {
        let mut all = vec!["token", "init", "--label", LABEL, "--so-pin", &so];
        all.extend(args);
        let r = t.tpmkey(&all);
        assert!(!r.status.success(), "{all:?}");
        assert!(stderr(&r).contains(why), "{all:?}: {}", stderr(&r));
    }
    assert!(
        !t.store().exists() || files_under(&t.store()).is_empty(),
        "nothing made"
    );
}
