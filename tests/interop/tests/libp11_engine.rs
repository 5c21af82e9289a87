//! OpenSSL through the libp11 engine (Debian libengine-pkcs11-openssl): `openssl req`
//! signs a CSR with a token key named by a `pkcs11:` URI; openssl verifies it and the CSR
//! carries the token key's public key. The engine finds the module once through
//! PKCS11_MODULE_PATH, once through an openssl config naming MODULE_PATH.

#![allow(clippy::unwrap_used, clippy::panic)]

use tpmkey_testenv::pkcs11_env::*;

#[test]
fn openssl_req_signs_a_csr_with_token_keys_through_the_engine() {
    let env = TestEnv::new("per-operation");
    let keys = token_with_keys("engine");
    let dir = TempDir::new("engine");
    let engine_conf = dir.0.join("openssl.cnf");
    std::fs::write(
        &engine_conf,
        format!(
            "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n\
             [pkcs11]\nengine_id = pkcs11\nMODULE_PATH = {}\ninit = 0\n\
             [req]\ndistinguished_name = dn\n[dn]\n",
            module_path().display()
        ),
    )
    .unwrap();

    for (object, spki, by_config) in [("ec", &keys.ec_spki, false), ("rsa", &keys.rsa_spki, true)] {
        let csr = dir.0.join(format!("{object}.csr"));
        let uri = format!(
            "pkcs11:token={};object={object};type=private;pin-value={USER_PIN}",
            keys.label
        );
        let mut req = command(&env, "openssl");
        req.args([
            "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", &uri,
        ])
        .args(["-subj", &format!("/CN={object} token key"), "-out"])
        .arg(&csr);
        if by_config {
            req.env("OPENSSL_CONF", &engine_conf);
        } else {
            req.env("PKCS11_MODULE_PATH", module_path());
        }
        tpmkey_testenv::run(&mut req);

        let verified = tpmkey_testenv::run(
            std::process::Command::new("openssl")
                .args(["req", "-verify", "-noout", "-pubkey", "-in"])
                .arg(&csr),
        );
        let out = text(&verified);
        assert!(out.contains("verify OK"), "{object}: {out}");
        let expected = std::fs::read_to_string(public_key_files(&dir.0, object, spki)).unwrap();
        assert!(
            out.contains(&expected),
            "{object}: CSR key differs:\n{out}\n{expected}"
        );
    }
}
