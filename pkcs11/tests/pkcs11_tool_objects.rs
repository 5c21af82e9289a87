//! pkcs11-tool's object commands against the built module and a real swtpm: a certificate
//! made by openssl for a token key's public key and data objects (public and private)
//! written, read back byte for byte, deleted; RSA decryption (PKCS#1 v1.5 and OAEP) of data
//! openssl encrypted with the token key's exported public key.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn tool(env: &TestEnv, keys: &TokenKeys, args: &[&str]) -> Output {
    let mut cmd = command(env, "pkcs11-tool");
    cmd.arg("--module")
        .arg(module_path())
        .args(["--token-label", &keys.label, "--login", "--pin", USER_PIN])
        .args(args);
    tpmkey_testenv::run(&mut cmd)
}

fn openssl(args: &[&str]) -> Output {
    tpmkey_testenv::run(std::process::Command::new("openssl").args(args))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A certificate (DER) for `public_pem`, issued by a throw-away software CA.
fn certificate_for(dir: &Path, public_pem: &Path) -> Vec<u8> {
    let (ca_key, ca, csr, cert) = (
        dir.join("ca.key"),
        dir.join("ca.pem"),
        dir.join("ca.csr"),
        dir.join("cert.der"),
    );
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        path(&ca_key),
        "-out",
        path(&ca),
        "-subj",
        "/CN=test ca",
        "-days",
        "1",
    ]);
    // The CA's own request carries the subject; -force_pubkey puts the token key in.
    openssl(&[
        "req",
        "-new",
        "-key",
        path(&ca_key),
        "-subj",
        "/CN=token key",
        "-out",
        path(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        path(&csr),
        "-CA",
        path(&ca),
        "-CAkey",
        path(&ca_key),
        "-force_pubkey",
        path(public_pem),
        "-days",
        "1",
        "-outform",
        "DER",
        "-out",
        path(&cert),
    ]);
    std::fs::read(cert).unwrap()
}

#[test]
fn certificate_and_data_objects_written_read_deleted() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("objects");
    let dir = TempDir::new("objects");
    let ec_pem = public_key_files(&dir.0, "ec", &keys.ec_spki);
    let cert = certificate_for(&dir.0, &ec_pem);
    let cert_file = dir.0.join("cert.der");

    tool(
        &env,
        &keys,
        &[
            "--write-object",
            path(&cert_file),
            "--type",
            "cert",
            "--id",
            "01",
            "--label",
            "ec-cert",
        ],
    );
    let public_data = dir.0.join("public.bin");
    std::fs::write(&public_data, b"public data object\x00\x01\xff").unwrap();
    tool(
        &env,
        &keys,
        &[
            "--write-object",
            path(&public_data),
            "--type",
            "data",
            "--label",
            "pub-blob",
            "--application-label",
            "tpmkey-test",
        ],
    );
    // Private data objects are sealed by the TPM (any size: private_values.rs).
    let private_data = dir.0.join("private.bin");
    std::fs::write(&private_data, [0x5au8; 100]).unwrap();
    tool(
        &env,
        &keys,
        &[
            "--write-object",
            path(&private_data),
            "--type",
            "data",
            "--label",
            "secret-blob",
            "--private",
        ],
    );

    let listing = text(&tool(&env, &keys, &["--list-objects"]));
    for want in [
        "ec-cert",
        "pub-blob",
        "secret-blob",
        "tpmkey-test",
        "CN=token key",
    ] {
        assert!(listing.contains(want), "{want} missing:\n{listing}");
    }

    let out = dir.0.join("out");
    for (args, expected) in [
        (&["--type", "cert", "--id", "01"][..], cert.clone()),
        (
            &["--type", "data", "--label", "pub-blob"][..],
            std::fs::read(&public_data).unwrap(),
        ),
        (
            &["--type", "data", "--label", "secret-blob"][..],
            vec![0x5a; 100],
        ),
    ] {
        let _ = std::fs::remove_file(&out);
        tool(
            &env,
            &keys,
            &[&["--read-object"][..], args, &["-o", path(&out)][..]].concat(),
        );
        assert_eq!(std::fs::read(&out).unwrap(), expected, "{args:?}");
    }
    // The certificate read back is the one openssl made, for the token key.
    let cert_pub = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        path(&cert_file),
        "-noout",
        "-pubkey",
    ]);
    assert_eq!(cert_pub.stdout, std::fs::read(&ec_pem).unwrap());

    tool(
        &env,
        &keys,
        &["--delete-object", "--type", "data", "--label", "pub-blob"],
    );
    tool(
        &env,
        &keys,
        &[
            "--delete-object",
            "--type",
            "data",
            "--label",
            "secret-blob",
        ],
    );
    tool(
        &env,
        &keys,
        &["--delete-object", "--type", "cert", "--id", "01"],
    );
    let listing = text(&tool(&env, &keys, &["--list-objects"]));
    for gone in ["ec-cert", "pub-blob", "secret-blob"] {
        assert!(!listing.contains(gone), "{gone} still listed:\n{listing}");
    }
    // The key pairs stay.
    assert!(listing.contains("label:      ec"), "{listing}");
    assert!(listing.contains("label:      rsa"), "{listing}");
    // Nothing is left of the deleted objects in the store but the two key pairs.
    let files: Vec<String> = std::fs::read_dir(&env.store.0)
        .unwrap()
        .flat_map(|t| std::fs::read_dir(t.unwrap().path().join("objects")).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        files.len(),
        4,
        "two key pairs, a record and a key file each: {files:?}"
    );
}

#[test]
fn decrypts_what_openssl_encrypted_with_the_exported_key() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("decrypt");
    let dir = TempDir::new("decrypt");
    let rsa_pem = public_key_files(&dir.0, "rsa", &keys.rsa_spki);
    let plain = dir.0.join("plain");
    let secret = b"a session key, 32 bytes long....";
    std::fs::write(&plain, secret).unwrap();

    let cases: [(&[&str], &[&str]); 3] = [
        (&[], &["-m", "RSA-PKCS"]),
        (
            &["-pkeyopt", "rsa_padding_mode:oaep"],
            &[
                "-m",
                "RSA-PKCS-OAEP",
                "--hash-algorithm",
                "SHA-1",
                "--mgf",
                "MGF1-SHA1",
            ],
        ),
        (
            &[
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ],
            &[
                "-m",
                "RSA-PKCS-OAEP",
                "--hash-algorithm",
                "SHA256",
                "--mgf",
                "MGF1-SHA256",
            ],
        ),
    ];
    for (encrypt_opts, mechanism) in cases {
        let (ct, out) = (dir.0.join("ct"), dir.0.join("out"));
        let _ = std::fs::remove_file(&out);
        openssl(
            &[
                &[
                    "pkeyutl",
                    "-encrypt",
                    "-pubin",
                    "-inkey",
                    path(&rsa_pem),
                    "-in",
                    path(&plain),
                    "-out",
                    path(&ct),
                ][..],
                encrypt_opts,
            ]
            .concat(),
        );
        tool(
            &env,
            &keys,
            &[
                &["--decrypt", "--id", "02", "-i", path(&ct), "-o", path(&out)][..],
                mechanism,
            ]
            .concat(),
        );
        assert_eq!(std::fs::read(&out).unwrap(), secret, "{mechanism:?}");
    }
}
