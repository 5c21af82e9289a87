//! latchset pkcs11-provider (the OpenSSL 3 way to reach PKCS#11 tokens, built by the harness
//! from the shared source snapshot) with this module as its `pkcs11-module-path`: public
//! key export, ECDSA, RSA PKCS#1 v1.5 and PSS signatures, RSA-OAEP decryption, ECDH, and
//! `openssl s_server` serving TLS with a `pkcs11:` key. Every result is checked by openssl
//! with its default provider only, against the token keys' CKA_PUBLIC_KEY_INFO.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use tpmkey_testenv::pkcs11_env::*;

/// openssl with pkcs11-provider (and the default provider) loaded from `cnf`.
fn p11_openssl(env: &TestEnv, cnf: &Path, args: &[&str]) -> Output {
    let mut cmd = command(env, "openssl");
    cmd.env("OPENSSL_CONF", cnf).args(args);
    tpmkey_testenv::run(&mut cmd)
}

/// openssl with its default provider only: the software check.
fn plain(args: &[&str]) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.env_remove("OPENSSL_CONF").args(args);
    tpmkey_testenv::run(&mut cmd)
}

fn write_cnf(dir: &Path, pin_file: &Path) -> PathBuf {
    let cnf = dir.join("openssl.cnf");
    std::fs::write(
        &cnf,
        format!(
            "openssl_conf = openssl_init\n\
             [openssl_init]\nproviders = provider_sect\n\
             [provider_sect]\ndefault = default_sect\npkcs11 = pkcs11_sect\n\
             [default_sect]\nactivate = 1\n\
             [pkcs11_sect]\nmodule = {}\npkcs11-module-path = {}\n\
             pkcs11-module-token-pin = file:{}\nactivate = 1\n",
            tpmkey_testenv::pkcs11_provider().display(),
            module_path().display(),
            pin_file.display()
        ),
    )
    .unwrap();
    cnf
}

/// `openssl s_server` killed by its pid when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pkcs11_provider_uses_token_keys() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("p11prov");
    let dir = TempDir::new("p11prov");
    let d = |name: &str| dir.0.join(name).to_string_lossy().into_owned();
    let pin = dir.0.join("pin");
    std::fs::write(&pin, USER_PIN).unwrap();
    let cnf = write_cnf(&dir.0, &pin);
    let uri = |object: &str, kind: &str| {
        format!("pkcs11:token={};object={object};type={kind}", keys.label)
    };
    let ec_pem = public_key_files(&dir.0, "ec-token", &keys.ec_spki);
    let rsa_pem = public_key_files(&dir.0, "rsa-token", &keys.rsa_spki);
    let msg = d("msg");
    std::fs::write(&msg, b"signed through pkcs11-provider").unwrap();

    // Public keys exported by URI are the token's. pkcs11-provider hands EC keys to
    // OpenSSL's encoder with the curve's explicit parameters; software names the curve
    // again before the comparison.
    for (object, spki) in [("ec", &keys.ec_spki), ("rsa", &keys.rsa_spki)] {
        let out = d(&format!("{object}.der"));
        let public = uri(object, "public");
        p11_openssl(
            &env,
            &cnf,
            &[
                "pkey", "-pubin", "-in", &public, "-pubout", "-outform", "DER", "-out", &out,
            ],
        );
        if object == "ec" {
            plain(&[
                "ec",
                "-pubin",
                "-inform",
                "DER",
                "-in",
                &out,
                "-param_enc",
                "named_curve",
                "-pubout",
                "-outform",
                "DER",
                "-out",
                &out,
            ]);
        }
        assert_eq!(&std::fs::read(&out).unwrap(), spki, "{object} public key");
    }

    // Signatures, verified in software.
    let cases: [(&str, &Path, &[&str]); 3] = [
        ("ec", &ec_pem, &[]),
        ("rsa", &rsa_pem, &[]),
        (
            "rsa",
            &rsa_pem,
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ],
        ),
    ];
    for (object, public, opts) in cases {
        let sig = d("sig");
        let mut args = vec!["dgst", "-sha256"];
        args.extend_from_slice(opts);
        let key = uri(object, "private");
        args.extend_from_slice(&["-sign", &key, "-out", &sig, &msg]);
        p11_openssl(&env, &cnf, &args);
        let public = public.to_string_lossy();
        let mut args = vec!["dgst", "-sha256"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["-verify", &public, "-signature", &sig, &msg]);
        let verified = text(&plain(&args));
        assert!(
            verified.contains("Verified OK"),
            "{object} {opts:?}: {verified}"
        );
    }

    // RSA-OAEP, encrypted in software, decrypted by the token key: with SHA-256 (OpenSSL
    // sets no MGF1 hash, pkcs11-provider passes mgf 0) and with OpenSSL's default, SHA-1
    // (hashAlg 0 too).
    let secret = d("secret");
    std::fs::write(&secret, b"an OAEP-wrapped session key").unwrap();
    let rsa_pem_s = rsa_pem.to_string_lossy().into_owned();
    let sha256: &[&str] = &["-pkeyopt", "rsa_oaep_md:sha256"];
    for md in [sha256, &[]] {
        let mut oaep = vec!["-pkeyopt", "rsa_padding_mode:oaep"];
        oaep.extend_from_slice(md);
        let (ct, pt) = (d("ct"), d("pt"));
        let mut args = vec!["pkeyutl", "-encrypt", "-pubin", "-inkey", &rsa_pem_s];
        args.extend_from_slice(&oaep);
        args.extend_from_slice(&["-in", &secret, "-out", &ct]);
        plain(&args);
        let key = uri("rsa", "private");
        let mut args = vec!["pkeyutl", "-decrypt", "-inkey", &key];
        args.extend_from_slice(&oaep);
        args.extend_from_slice(&["-in", &ct, "-out", &pt]);
        p11_openssl(&env, &cnf, &args);
        assert_eq!(
            std::fs::read(&pt).unwrap(),
            b"an OAEP-wrapped session key".to_vec(),
            "{md:?}"
        );
    }

    // ECDH: the token's shared secret equals the peer's, computed in software.
    let peer = d("peer.pem");
    let peer_pub = d("peer.pub");
    plain(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &peer,
    ]);
    plain(&["pkey", "-in", &peer, "-pubout", "-out", &peer_pub]);
    let (z_token, z_peer) = (d("z-token"), d("z-peer"));
    let key = uri("ec", "private");
    p11_openssl(
        &env,
        &cnf,
        &[
            "pkeyutl", "-derive", "-inkey", &key, "-peerkey", &peer_pub, "-out", &z_token,
        ],
    );
    let ec_pem_s = ec_pem.to_string_lossy().into_owned();
    plain(&[
        "pkeyutl", "-derive", "-inkey", &peer, "-peerkey", &ec_pem_s, "-out", &z_peer,
    ]);
    let z = std::fs::read(&z_token).unwrap();
    assert_eq!(z.len(), 32);
    assert_eq!(z, std::fs::read(&z_peer).unwrap());

    // TLS: a self-signed certificate made with the token key, s_server serving with the
    // key by URI, s_client (software) verifying the chain and the handshake signature.
    let cert = d("cert.pem");
    p11_openssl(
        &env,
        &cnf,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            &key,
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
            "-sha256",
            "-out",
            &cert,
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = command(&env, "openssl");
    server
        .env("OPENSSL_CONF", &cnf)
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-naccept",
            "1",
        ])
        .args(["-key", &key, "-cert", &cert, "-www"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut server = Server(server.spawn().unwrap());
    // s_server prints ACCEPT once it listens (a probing connection would use up its one
    // accept).
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(server.0.stdout.take().unwrap()));
    let ready = lines.any(|l| l.is_ok_and(|l| l.starts_with("ACCEPT")));
    assert!(ready, "s_server did not start");
    let mut client = Command::new("openssl");
    client
        .env_remove("OPENSSL_CONF")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-CAfile",
            &cert,
            "-verify_return_error",
            "-ign_eof",
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = client.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert!(
        said.contains("Verify return code: 0 (ok)") && said.contains("HTTP/1.0 200 ok"),
        "{said}"
    );
}
