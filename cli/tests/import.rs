//! `tpmkey import` on a real swtpm: software keys (P-256, P-384, RSA 2048, RSA 3072) taken
//! in by TPM2_Import sign so that the software public key verifies, the private scalar or
//! prime never crosses the wire, and inspect shows them as imported; an offline wrap for a
//! parent public key (no TPM) is imported once at first use and then loaded from the cache.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{stderr, tpmkey_with, Env};
use tpmkey::hash::Hash;
use tpmkey::{KeyFile, SignScheme, Signature, TpmKey};
use tpmkey_testenv::wire_tap::{contains, WireTap};
use tpmkey_testenv::TpmEndpoint;

/// The core's connection in this process is one for all threads: the tests that use it
/// (with their own swtpm each) take turns.
static CORE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
const RSA2048: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
const RSA3072: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"];

/// `openssl genpkey ALGORITHM EXTRA -out OUT`: a software key.
fn genpkey(out: &str, algorithm: &[&str], extra: &[&str]) {
    let mut args = vec!["genpkey"];
    args.extend(algorithm);
    args.extend(extra);
    args.extend(["-out", out]);
    openssl(&args);
}

/// The secret `openssl pkey -text` prints under `field` ("priv", "prime1"), leading
/// zeros dropped.
fn secret_bytes(pem: &Path, field: &str) -> Vec<u8> {
    let text = String::from_utf8(openssl(&[
        "pkey",
        "-in",
        pem.to_str().unwrap(),
        "-text",
        "-noout",
    ]))
    .unwrap();
    let hex: String = text
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{field}:")))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .flat_map(|l| l.trim().split(':'))
        .collect();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let first = bytes.iter().position(|b| *b != 0).unwrap();
    assert!(bytes.len() - first >= 32, "{field} from {text}");
    bytes[first..].to_vec()
}

fn der_integer(v: &[u8]) -> Vec<u8> {
    let v = &v[v.iter().take_while(|b| **b == 0).count()..];
    let mut body = Vec::new();
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(v);
    let mut out = vec![0x02, body.len() as u8];
    out.extend(body);
    out
}

/// Signs a digest with the key file and checks the signature with `openssl pkeyutl` and
/// the software key's public half.
fn sign_and_verify(env: &Env, file: &KeyFile, soft: &Path) {
    let digest = [0x5a; 32];
    let key = TpmKey::from_key_file(file, None).unwrap();
    let scheme = if key.public().is_rsa() {
        SignScheme::RsaPkcs1(Hash::Sha256)
    } else {
        SignScheme::Ecdsa(Hash::Sha256)
    };
    let sig = match key.sign(scheme, &digest).unwrap() {
        Signature::Rsa(s) => s,
        Signature::Ecdsa { r, s } => {
            let body = [der_integer(&r), der_integer(&s)].concat();
            [vec![0x30, body.len() as u8], body].concat()
        }
    };
    let (d, s) = (env.path("digest"), env.path("sig"));
    std::fs::write(&d, digest).unwrap();
    std::fs::write(&s, sig).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-inkey"])
        .arg(soft)
        .args(["-in", d.to_str().unwrap(), "-sigfile", s.to_str().unwrap()])
        .args(["-pkeyopt", "digest:sha256"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the software key does not verify the TPM's signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn import_online_keeps_the_key_off_the_wire_and_signs() {
    let _core = CORE.lock().unwrap_or_else(|p| p.into_inner());
    let env = Env::start();
    let tap = WireTap::start(env.swtpm.port());
    for (name, algorithm, field) in [
        ("p256", P256, "priv"),
        ("p384", P384, "priv"),
        ("rsa2048", RSA2048, "prime1"),
        ("rsa3072", RSA3072, "prime1"),
    ] {
        let soft = env.path(&format!("{name}.pem"));
        let out = env.path(&format!("{name}.key"));
        genpkey(soft.to_str().unwrap(), algorithm, &[]);
        let secret = secret_bytes(&soft, field);

        tap.take_log();
        let r = tpmkey_with(
            &tap.tcti(),
            env.dir.path(),
            [
                "import",
                "-o",
                out.to_str().unwrap(),
                soft.to_str().unwrap(),
            ],
        );
        assert!(r.status.success(), "{name}: {}", stderr(&r));
        let log = tap.take_log();
        assert!(
            log.iter()
                .any(|(c, _)| tpmkey_testenv::tpm_command::command_code(c) == 0x156),
            "{name}: no TPM2_Import on the wire"
        );
        for (cmd, rsp) in &log {
            for window in secret.windows(16).step_by(8) {
                assert!(
                    !contains(cmd, window) && !contains(rsp, window),
                    "{name}: private key bytes on the wire"
                );
            }
        }

        let text = String::from_utf8(env.tpmkey_ok(["inspect", out.to_str().unwrap()])).unwrap();
        assert!(
            text.contains("imported (sensitiveDataOrigin clear)"),
            "{text}"
        );
        assert!(text.contains("loads:          yes"), "{text}");
        assert!(!text.contains("fixedTPM"), "{text}");

        let file = KeyFile::from_pem(&std::fs::read(&out).unwrap()).unwrap();
        tpmkey::connection::configure(&[("tcti", &env.swtpm.tcti())]).unwrap();
        sign_and_verify(&env, &file, &soft);
        tpmkey::connection::shutdown();
    }
}

#[test]
fn import_offline_wraps_without_a_tpm_and_imports_once() {
    let _core = CORE.lock().unwrap_or_else(|p| p.into_inner());
    let env = Env::start();
    let p = |n: &str| env.path(n).to_str().unwrap().to_string();
    // The target's storage primary (tpmkey's template), its public as tpm2-tools writes it.
    env.create_storage_primary(&env.path("srk.ctx"));
    env.swtpm
        .tpm2_tools_ok(["tpm2_readpublic", "-c", &p("srk.ctx"), "-o", &p("srk.pub")]);
    env.swtpm.tpm2_tools_ok([
        "tpm2_readpublic",
        "-c",
        &p("srk.ctx"),
        "-f",
        "pem",
        "-o",
        &p("srk.pem"),
    ]);
    env.swtpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    genpkey(&p("soft.pem"), P256, &[]);
    genpkey(&p("soft-rsa.pem"), RSA2048, &[]);

    let nowhere = "swtpm:host=127.0.0.1,port=1";
    for (parent, soft, out) in [
        ("srk.pub", "soft.pem", "wrapped.key"),
        ("srk.pem", "soft-rsa.pem", "wrapped-rsa.key"),
    ] {
        let r = tpmkey_with(
            nowhere,
            env.dir.path(),
            [
                "import",
                "--parent-pub",
                &p(parent),
                "-o",
                &p(out),
                &p(soft),
            ],
        );
        assert!(r.status.success(), "offline wrap: {}", stderr(&r));
        let text = String::from_utf8(env.tpmkey_ok(["inspect", &p(out)])).unwrap();
        assert!(text.contains("importable (2.23.133.10.1.4)"), "{text}");
    }

    let tap = WireTap::start(env.swtpm.port());
    let state = env.path("lib-state");
    let imports = |tap: &WireTap| tap.take_codes().iter().filter(|c| **c == 0x156).count();
    for (out, soft) in [
        ("wrapped.key", "soft.pem"),
        ("wrapped-rsa.key", "soft-rsa.pem"),
    ] {
        let file = KeyFile::from_pem(&std::fs::read(env.path(out)).unwrap()).unwrap();
        for round in 0..2 {
            tpmkey::connection::configure(&[
                ("tcti", &tap.tcti()),
                ("state", state.to_str().unwrap()),
            ])
            .unwrap();
            tap.take_codes();
            sign_and_verify(&env, &file, &env.path(soft));
            assert_eq!(
                imports(&tap),
                if round == 0 { 1 } else { 0 },
                "{out} round {round}: TPM2_Import once, then the cache"
            );
            tpmkey::connection::shutdown();
        }
        tpmkey::connection::configure(&[("tcti", &tap.tcti()), ("state", state.to_str().unwrap())])
            .unwrap();
        let cached = tpmkey::import::cache_path(&file).unwrap();
        tpmkey::connection::shutdown();
        let text = String::from_utf8(env.tpmkey_ok(["inspect", cached.to_str().unwrap()])).unwrap();
        assert!(
            text.contains("loadable") && text.contains("imported"),
            "{text}"
        );
    }
}

#[test]
fn import_refuses_what_it_cannot_take() {
    let env = Env::start();
    let p = |n: &str| env.path(n).to_str().unwrap().to_string();
    genpkey(&p("ed.pem"), &["-algorithm", "ED25519"], &[]);
    let r = env.tpmkey(["import", "-o", &p("x.key"), &p("ed.pem")]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("PKCS#8"), "{}", stderr(&r));

    genpkey(&p("enc.pem"), P256, &["-aes-128-cbc", "-pass", "pass:x"]);
    let r = env.tpmkey(["import", "-o", &p("x.key"), &p("enc.pem")]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("encrypted"), "{}", stderr(&r));

    // A parent public that is not a storage key.
    std::fs::write(env.path("bad.pub"), [0u8, 2, 0, 1]).unwrap();
    genpkey(&p("s.pem"), P256, &[]);
    let r = env.tpmkey([
        "import",
        "--parent-pub",
        &p("bad.pub"),
        "-o",
        &p("x.key"),
        &p("s.pem"),
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("parent public key"), "{}", stderr(&r));
    assert!(!env.path("x.key").exists());

    // Without the session the inner wrapper's key would cross the bus in clear.
    let r = Command::new(env!("CARGO_BIN_EXE_tpmkey"))
        .args(["import", "-o", &p("x.key"), &p("s.pem")])
        .env_clear()
        .env("TPMKEY_TCTI", env.swtpm.tcti())
        .env("TPMKEY_CONF", "/dev/null")
        .env("TPMKEY_STATE", env.path("state"))
        .env("TPMKEY_SESSION", "off")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).contains("session = off"), "{}", stderr(&r));
    assert!(!env.path("x.key").exists());
}

/// `--sign-only` imports without the decrypt attribute: inspect shows sign alone, RSA-PSS
/// comes from the TPM (salt = digest length on swtpm, checked on the host) and verifies
/// with the software key, and decryption is refused.
#[test]
fn import_sign_only_has_no_decrypt_attribute_and_signs_pss_in_the_tpm() {
    let _core = CORE.lock().unwrap_or_else(|p| p.into_inner());
    let env = Env::start();
    let p = |n: &str| env.path(n).to_str().unwrap().to_string();
    genpkey(&p("rsa.pem"), RSA2048, &[]);
    env.tpmkey_ok(["import", "--sign-only", "-o", &p("rsa.key"), &p("rsa.pem")]);
    let text = String::from_utf8(env.tpmkey_ok(["inspect", &p("rsa.key")])).unwrap();
    let attributes = text
        .lines()
        .find(|l| l.starts_with("attributes:"))
        .unwrap_or_else(|| panic!("no attributes line in:\n{text}"));
    assert!(
        attributes.contains(" sign") && !attributes.contains("decrypt"),
        "{attributes}"
    );

    let file = KeyFile::from_pem(&std::fs::read(env.path("rsa.key")).unwrap()).unwrap();
    tpmkey::connection::configure(&[("tcti", &env.swtpm.tcti())]).unwrap();
    let key = TpmKey::from_key_file(&file, None).unwrap();
    let digest = [0x5a; 32];
    let pss = SignScheme::RsaPss {
        hash: Hash::Sha256,
        mgf1: Hash::Sha256,
        salt_len: 32,
    };
    let Signature::Rsa(sig) = key.sign(pss, &digest).unwrap() else {
        panic!("not RSA")
    };
    assert!(key.decrypt(tpmkey::RsaPadding::Pkcs1, &[], &sig).is_err());
    tpmkey::connection::shutdown();
    std::fs::write(env.path("digest"), digest).unwrap();
    std::fs::write(env.path("sig"), sig).unwrap();
    openssl(&[
        "pkeyutl",
        "-verify",
        "-inkey",
        &p("rsa.pem"),
        "-in",
        &p("digest"),
        "-sigfile",
        &p("sig"),
        "-pkeyopt",
        "digest:sha256",
        "-pkeyopt",
        "rsa_padding_mode:pss",
        "-pkeyopt",
        "rsa_pss_saltlen:digest",
    ]);
}
