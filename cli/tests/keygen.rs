//! `tpmkey keygen` on a real swtpm: the key file it writes holds a TPM key that signs, and
//! bad input leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{stderr, tpmkey_with, Env};
use tpmkey::hash::Hash;
use tpmkey::{KeyFile, SignScheme, TpmKey};

#[test]
fn keygen_writes_a_tpm_key_that_signs() {
    let env = Env::start();
    let pw = env.path("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    for (t, scheme) in [
        ("p256", SignScheme::Ecdsa(Hash::Sha256)),
        ("rsa2048", SignScheme::RsaPkcs1(Hash::Sha256)),
    ] {
        let out = env.path(&format!("{t}.key"));
        env.tpmkey_ok([
            "keygen",
            "-t",
            t,
            "--password",
            &format!("file:{}", pw.display()),
            "-o",
            out.to_str().unwrap(),
        ]);
        let meta = std::fs::metadata(&out).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "key file mode");
        let pem = std::fs::read(&out).unwrap();
        assert!(pem.starts_with(b"-----BEGIN TSS2 PRIVATE KEY-----"));
        let file = KeyFile::from_pem(&pem).unwrap();
        assert!(!file.empty_auth, "a key with a password says so");

        tpmkey::connection::configure(&[("tcti", &env.swtpm.tcti())]).unwrap();
        let key = TpmKey::from_key_file(&file, Some(b"s3cret")).unwrap();
        let digest = [7u8; 32];
        key.sign(scheme, &digest).expect("the generated key signs");
        tpmkey::connection::shutdown();
    }
}

#[test]
fn keygen_refuses_bad_input_and_writes_nothing() {
    let env = Env::start();
    let out = env.path("k.key");
    let o = out.to_str().unwrap();

    let r = env.tpmkey(["keygen", "-t", "p521", "-o", o]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("p521"), "{}", stderr(&r));

    let r = env.tpmkey(["keygen", "--password", "pass:x", "-o", o]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr(&r).contains("command line is visible"),
        "{}",
        stderr(&r)
    );

    // A TPM that is not there: exit 5, no file, no software key made instead.
    let r = tpmkey_with(
        "swtpm:host=127.0.0.1,port=1",
        env.dir.path(),
        ["keygen", "-o", o],
    );
    assert_eq!(r.status.code(), Some(5), "{}", stderr(&r));
    assert!(stderr(&r).contains("TPM not reachable"), "{}", stderr(&r));

    assert!(!out.exists(), "nothing written on failure");
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left");
}
