//! `tpmkey token link` on a real swtpm with the built PKCS#11 module: a password-protected
//! key file and a persistent key go into a token set up by pkcs11-tool, and pkcs11-tool
//! signs with them (signatures verified by openssl with the public key the token gives);
//! the key file keeps its password; a wrong key password or PIN links nothing.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{openssl, stderr, verify_sha256, TokenEnv};
use tpmkey::{KeyFile, TpmKey};

const SO_PIN: &str = "12345678";
const USER_PIN: &str = "4321";

#[test]
fn token_link_puts_key_files_and_handles_into_a_token() {
    let t = TokenEnv::start();
    let p = |n: &str| t.env.path(n).to_str().unwrap().to_string();
    std::fs::write(t.env.path("pw"), "key password\n").unwrap();
    std::fs::write(t.env.path("pin"), USER_PIN).unwrap();
    std::fs::write(t.env.path("bad"), "wrong\n").unwrap();

    t.tool(&[
        "--slot",
        "1",
        "--init-token",
        "--label",
        "linked",
        "--so-pin",
        SO_PIN,
    ]);
    t.tool(&[
        "--token-label",
        "linked",
        "--login",
        "--login-type",
        "so",
        "--so-pin",
        SO_PIN,
        "--init-pin",
        "--pin",
        USER_PIN,
    ]);

    let r = t.tpmkey(&[
        "keygen",
        "-t",
        "p256",
        "--password",
        &format!("file:{}", p("pw")),
        "-o",
        &p("web.key"),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = t.tpmkey(&["keygen", "-t", "rsa2048", "-o", &p("rsa.key")]);
    assert!(r.status.success(), "{}", stderr(&r));
    tpmkey::connection::configure(&[("tcti", &t.env.swtpm.tcti())]).unwrap();
    let rsa = KeyFile::from_pem(&std::fs::read(p("rsa.key")).unwrap()).unwrap();
    TpmKey::from_key_file(&rsa, None)
        .unwrap()
        .persist(0x8100_0010)
        .unwrap();
    tpmkey::connection::shutdown();

    // `tpmkey token link --token TOKEN --pin file:PIN [--password file:PW] EXTRA...`
    let link = |token: &str, pin: &str, password: Option<&str>, extra: &[&str]| {
        let (pin, pw) = (
            format!("file:{}", p(pin)),
            password.map(|f| format!("file:{}", p(f))),
        );
        let mut args = vec!["token", "link", "--token", token, "--pin", &pin];
        if let Some(pw) = &pw {
            args.extend(["--password", pw]);
        }
        args.extend(extra);
        t.tpmkey(&args)
    };
    let (web, rsa_key) = (p("web.key"), p("rsa.key"));

    // A wrong key password or PIN, or no such token, links nothing.
    let r = link("linked", "pin", Some("bad"), &[&web]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("AttributeValueInvalid"),
        "{}",
        stderr(&r)
    );
    let r = link("linked", "bad", Some("pw"), &[&web]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).contains("PinIncorrect"), "{}", stderr(&r));
    let r = link("nope", "pin", None, &[&rsa_key]);
    assert!(stderr(&r).contains("no token labelled"), "{}", stderr(&r));

    let r = link("linked", "pin", Some("pw"), &["--label", "web", &web]);
    assert!(r.status.success(), "{}", stderr(&r));
    let said = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(said.contains("as \"web\""), "{said}");
    // The default CKA_ID (SHA-1 of the public key), as the command reports it.
    let web_id = said
        .split("(CKA_ID ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .to_string();
    assert_eq!(web_id.len(), 40, "{said}");
    let r = link(
        "linked",
        "pin",
        None,
        &["--id", "0102", "handle:0x81000010"],
    );
    assert!(r.status.success(), "{}", stderr(&r));

    std::fs::write(t.env.path("data"), b"signed through the token").unwrap();
    let data = p("data");
    let login = ["--token-label", "linked", "--login", "--pin", USER_PIN];
    for (select, mechanism, format) in [
        // pkcs11-tool --sign selects the key by --id (a --label alone takes the first key).
        (
            ["--id", web_id.as_str()],
            "ECDSA-SHA256",
            &["--signature-format", "openssl"][..],
        ),
        (["--id", "0102"], "SHA256-RSA-PKCS", &[][..]),
    ] {
        let mut sign = login.to_vec();
        sign.extend(select);
        sign.extend(["--sign", "--mechanism", mechanism, "-i", &data]);
        let sig = p(&format!("{mechanism}.sig"));
        sign.extend(["-o", &sig]);
        sign.extend(format);
        t.tool(&sign);
        let der = p(&format!("{mechanism}.pub.der"));
        let mut read = login.to_vec();
        read.extend(select);
        read.extend(["--read-object", "--type", "pubkey", "-o", &der]);
        t.tool(&read);
        let pem = p(&format!("{mechanism}.pub.pem"));
        openssl(&[
            "pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", &pem,
        ]);
        verify_sha256(&pem, &sig, &data);
    }

    // The key file handed in keeps its own password.
    tpmkey::connection::configure(&[("tcti", &t.env.swtpm.tcti())]).unwrap();
    let web = KeyFile::from_pem(&std::fs::read(p("web.key")).unwrap()).unwrap();
    TpmKey::from_key_file(&web, Some(b"key password"))
        .unwrap()
        .sign(
            tpmkey::SignScheme::Ecdsa(tpmkey::hash::Hash::Sha256),
            &[1; 32],
        )
        .unwrap();
    tpmkey::connection::shutdown();
}

/// NV indices of the owner range the TPM holds (tpm2_getcap handles-nv-index).
fn owner_nv_indices(t: &TokenEnv) -> Vec<u32> {
    tpmkey_testenv::owner_nv_indices(&t.env.swtpm)
}

#[test]
fn token_rm_deletes_the_token_and_its_pin_indices() {
    let t = TokenEnv::start();
    std::fs::write(t.env.path("so"), SO_PIN).unwrap();
    std::fs::write(t.env.path("pin"), USER_PIN).unwrap();
    let so = format!("file:{}", t.env.path("so").display());
    let pin = format!("file:{}", t.env.path("pin").display());
    let r = t.tpmkey(&[
        "token", "init", "--label", "gone", "--so-pin", &so, "--pin", &pin,
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let text = String::from_utf8_lossy(&r.stdout).to_string();
    let serial = text
        .split("serial ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_string();
    assert_eq!(
        owner_nv_indices(&t).len(),
        4,
        "a PIN index and a secret index for the SO and for the user"
    );

    let r = t.tpmkey(&["token", "rm", &serial]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(owner_nv_indices(&t).is_empty());
    assert!(!t.store().join(&serial).exists());
    // A second removal names the missing token.
    let r = t.tpmkey(&["token", "rm", &serial]);
    assert!(!r.status.success());
}
