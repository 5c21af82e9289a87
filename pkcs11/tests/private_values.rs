//! Private data objects and private certificates of any practical size through
//! pkcs11-tool, against the built module and a real swtpm: values round-trip byte for byte
//! (pkcs11-tool 0.23 --write-object reads at most 5,000 bytes of its input and does not set
//! CKA_PRIVATE on certificates, so larger values and the private certificate are written
//! through C_CreateObject and read back with pkcs11-tool),
//! never appear in the store, a value moved to another object is refused, and a value
//! sealed in the form written before envelopes (the data in the sealed object itself) still
//! reads.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use tpmkey::sealed::SealedData;
use tpmkey::store::{Role, Store};

fn tool_output(env: &TestEnv, keys: &TokenKeys, args: &[&str]) -> Output {
    command(env, "pkcs11-tool")
        .arg("--module")
        .arg(module_path())
        .args(["--token-label", &keys.label, "--login", "--pin", USER_PIN])
        .args(args)
        .output()
        .unwrap()
}

fn tool(env: &TestEnv, keys: &TokenKeys, args: &[&str]) -> Output {
    let out = tool_output(env, keys, args);
    assert!(out.status.success(), "pkcs11-tool {args:?}: {}", text(&out));
    out
}

/// pkcs11-tool --write-object of `file` as a private data object labelled `label`.
fn write_private(env: &TestEnv, keys: &TokenKeys, file: &Path, label: &str) {
    tool(
        env,
        keys,
        &[
            "--write-object",
            path(file),
            "--type",
            "data",
            "--label",
            label,
            "--private",
        ],
    );
}

/// pkcs11-tool --read-object of the data object `label` into `out`.
fn read_data(env: &TestEnv, keys: &TokenKeys, label: &str, out: &Path) -> Output {
    let _ = std::fs::remove_file(out);
    tool_output(
        env,
        keys,
        &[
            "--read-object",
            "--type",
            "data",
            "--label",
            label,
            "-o",
            path(out),
        ],
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Bytes that look like nothing else in the store: a counter mixed through a multiplier.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

fn store_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// No file of the store contains 24 consecutive bytes of `secret` (raw, or as the base64
/// of a PEM body would carry them at any of the three alignments).
fn assert_not_in_store(store: &Path, secret: &[u8], what: &str) {
    use base64ct::{Base64, Encoding};
    let mut needles: Vec<Vec<u8>> = Vec::new();
    let mid = secret.len() / 2;
    needles.push(secret[mid..mid + 24].to_vec());
    for shift in 0..3 {
        let b64 = Base64::encode_string(&secret[mid + shift..mid + shift + 48]);
        needles.push(b64.as_bytes()[4..36].to_vec());
    }
    for f in store_files(store) {
        let data = std::fs::read(&f).unwrap();
        for n in &needles {
            assert!(
                !data.windows(n.len()).any(|w| w == n.as_slice()),
                "{} contains the plaintext of {what}",
                f.display()
            );
        }
    }
}

/// Writes a private token object (data, or with `id` a certificate) through C_CreateObject
/// in this process.
fn create_private_object(label: &str, id: Option<&[u8]>, value: &[u8]) {
    use cryptoki::object::{Attribute, CertificateType, ObjectClass};
    let p = load();
    let slot = token_slots(&p)[0];
    let s = user_session(&p, slot);
    let mut template = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(value.to_vec()),
    ];
    match id {
        None => template.push(Attribute::Class(ObjectClass::DATA)),
        Some(id) => template.extend([
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Id(id.to_vec()),
        ]),
    }
    s.create_object(&template).unwrap();
    drop(s);
    p.finalize().unwrap();
}

fn certificate(dir: &Path) -> Vec<u8> {
    let (key, cert) = (dir.join("c.key"), dir.join("c.der"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-new", "-newkey", "rsa:3072", "-nodes", "-keyout",
        ])
        .arg(&key)
        .args(["-subj", "/CN=private certificate", "-days", "1"])
        .args(["-outform", "DER", "-out"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::read(cert).unwrap()
}

#[test]
fn private_values_of_any_size_round_trip_and_never_reach_the_store() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("values");
    let dir = TempDir::new("values");
    let out = dir.0.join("out");
    let sizes = [1usize, 128, 129, 200, 4096, 5000, 65536, 200_000];
    for (i, &len) in sizes.iter().enumerate() {
        let value = pattern(len, i as u32);
        let file = dir.0.join(format!("v{len}"));
        std::fs::write(&file, &value).unwrap();
        let label = format!("value-{len}");
        if len <= 5000 {
            write_private(&env, &keys, &file, &label);
        } else {
            create_private_object(&label, None, &value);
        }
        let o = read_data(&env, &keys, &label, &out);
        assert!(o.status.success(), "{}", text(&o));
        let back = std::fs::read(&out).unwrap();
        assert!(
            back == value,
            "{len} bytes written, {} read back, differing",
            back.len()
        );
        if len >= 200 {
            assert_not_in_store(&env.store.0, &value, &label);
        }
    }

    let cert = certificate(&dir.0);
    assert!(cert.len() > 700, "an RSA-3072 certificate: {}", cert.len());
    create_private_object("private-cert", Some(&[0x33]), &cert);
    let _ = std::fs::remove_file(&out);
    tool(
        &env,
        &keys,
        &[
            "--read-object",
            "--type",
            "cert",
            "--id",
            "33",
            "-o",
            path(&out),
        ],
    );
    assert!(
        std::fs::read(&out).unwrap() == cert,
        "private certificate read back"
    );
    assert_not_in_store(&env.store.0, &cert, "the certificate");

    // Without a login the private objects are not listed.
    let listing = command(&env, "pkcs11-tool")
        .arg("--module")
        .arg(module_path())
        .args(["--token-label", "values", "--list-objects"])
        .output()
        .unwrap();
    let listing = text(&listing);
    assert!(!listing.contains("value-200"), "{listing}");
    assert!(!listing.contains("private-cert"), "{listing}");

    tool(
        &env,
        &keys,
        &[
            "--delete-object",
            "--type",
            "data",
            "--label",
            "value-65536",
        ],
    );
    tool(
        &env,
        &keys,
        &["--delete-object", "--type", "cert", "--id", "33"],
    );
    let listing = text(&tool(&env, &keys, &["--list-objects"]));
    assert!(!listing.contains("value-65536"), "{listing}");
    assert!(!listing.contains("private-cert"), "{listing}");
    assert!(listing.contains("value-4096"), "{listing}");
}

/// The uid of the one object whose record's sealed file holds `label`'s value: the
/// `.sealed` files that appeared since `before`.
fn new_sealed_file(objects: &Path, before: &[PathBuf]) -> PathBuf {
    let now: Vec<PathBuf> = store_files(objects)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sealed") && !before.contains(p))
        .collect();
    assert_eq!(now.len(), 1, "{now:?}");
    now.into_iter().next().unwrap()
}

#[test]
fn values_sealed_before_envelopes_read_and_moved_values_are_refused() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("legacy");
    let dir = TempDir::new("legacy");
    let objects = std::fs::read_dir(&env.store.0)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("objects");
    let mut sealed_files = Vec::new();
    for (label, value) in [("first", vec![0x11u8; 300]), ("second", vec![0x22u8; 40])] {
        let file = dir.0.join(label);
        std::fs::write(&file, &value).unwrap();
        write_private(&env, &keys, &file, label);
        sealed_files.push(new_sealed_file(&objects, &sealed_files));
    }
    let read = |label: &str| {
        let out = dir.0.join("out");
        let o = read_data(&env, &keys, label, &out);
        (o, std::fs::read(&out).ok())
    };

    // "second" rewritten as the code before envelopes wrote it: the 128-byte-at-most value
    // sealed directly under the object's authValue, as a plain sealed-data file.
    let uid = sealed_files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    tpmkey::connection::configure(&[("tcti", &env.swtpm.tcti())]).unwrap();
    let store = Store::new(&env.store.0);
    let token = store.open(&store.serials().unwrap()[0]).unwrap();
    let secret = token.login(Role::User, USER_PIN.as_bytes()).unwrap();
    let old = SealedData::seal(
        b"written-by-the-old-code",
        &secret.object_auth(&uid),
        false,
        None,
    )
    .unwrap();
    tpmkey::connection::shutdown();
    let pem = old.key_file().to_pem();
    assert!(!pem.is_empty());
    std::fs::write(&sealed_files[1], pem).unwrap();
    let (o, value) = read("second");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(value.unwrap(), b"written-by-the-old-code");

    // The first object's sealed value copied over the second's: refused, nothing written.
    std::fs::copy(&sealed_files[0], &sealed_files[1]).unwrap();
    let (o, value) = read("second");
    assert!(
        !o.status.success(),
        "a moved value must not read: {}",
        text(&o)
    );
    assert!(
        value.is_none_or(|v| v.is_empty()),
        "nothing of it is output"
    );
    let (o, value) = read("first");
    assert!(o.status.success(), "{}", text(&o));
    assert!(value.unwrap() == vec![0x11u8; 300], "first read back");
}

/// Values are unsealed only when CKA_VALUE itself is read: finding the objects and reading
/// their other attributes after C_Login (itself one TPM2_NV_Read, of the token secret from
/// its secret index, and no TPM2_Unseal) send no TPM2_Unseal; each C_GetAttributeValue(CKA_VALUE) call is one TPM2_Load and one
/// TPM2_Unseal, also the length query (answered from the value, so that a value that cannot
/// be unsealed fails there: pkcs11-tool ignores a failure of its second call).
#[test]
fn values_are_unsealed_only_when_read() {
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    const UNSEAL: u32 = 0x15E;
    const NV_READ: u32 = 0x14E;
    let env = TestEnv::new("per-operation");
    let p = load();
    let slot = init_token(&p, "lazy");
    p.finalize().unwrap();
    let value = pattern(3000, 5);
    create_private_object("lazy-value", None, &value);

    let tap = tpmkey_testenv::WireTap::start(env.swtpm.port());
    std::env::set_var("TPMKEY_TCTI", tap.tcti());
    let p = load();
    let s = p.open_ro_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let login = tap.take_codes();
    assert!(!login.contains(&UNSEAL), "{login:x?}");
    assert_eq!(
        login.iter().filter(|c| **c == NV_READ).count(),
        1,
        "{login:x?}"
    );
    let found = s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    assert_eq!(found.len(), 1);
    let label = s.get_attributes(found[0], &[AttributeType::Label]).unwrap();
    assert_eq!(label, vec![Attribute::Label(b"lazy-value".to_vec())]);
    let before = tap.take_codes();
    assert!(!before.contains(&UNSEAL), "{before:x?}");
    let read = s.get_attributes(found[0], &[AttributeType::Value]).unwrap();
    assert!(read == vec![Attribute::Value(value)], "value read back");
    let codes = tap.take_codes();
    eprintln!("reading CKA_VALUE of a 3,000-byte private data object: {codes:x?}");
    // The cryptoki crate asks for the length, then the value.
    assert_eq!(
        codes.iter().filter(|c| **c == UNSEAL).count(),
        2,
        "{codes:x?}"
    );
    drop(s);
    p.finalize().unwrap();
}
