//! `tpmkey list` on a real swtpm: persistent storage key, EK, AK and application key told
//! apart from their public areas; NV indices with `--nv`; an empty TPM says so.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::Env;
use tpmkey_testenv::TpmEndpoint;

#[test]
fn list_tells_persistent_objects_apart() {
    let env = Env::start();
    let p = |n: &str| env.path(n).to_str().unwrap().to_string();
    let text = String::from_utf8(env.tpmkey_ok(["list"])).unwrap();
    assert!(text.contains("(no persistent objects)"), "{text}");

    // No resource manager: transient objects stay until flushed.
    let t = |args: &[&str]| {
        env.swtpm.tpm2_tools_ok(args);
        env.swtpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
    };
    t(&[
        "tpm2_createek",
        "-G",
        "rsa",
        "-c",
        "0x81010001",
        "-u",
        &p("ek.pub"),
    ]);
    t(&[
        "tpm2_createak",
        "-C",
        "0x81010001",
        "-c",
        &p("ak.ctx"),
        "-G",
        "ecc",
        "-g",
        "sha256",
        "-s",
        "ecdsa",
    ]);
    t(&["tpm2_evictcontrol", "-c", &p("ak.ctx"), "0x81010002"]);
    env.create_storage_primary(&env.path("srk.ctx"));
    t(&["tpm2_evictcontrol", "-c", &p("srk.ctx"), "0x81000001"]);
    t(&[
        "tpm2_create",
        "-C",
        "0x81000001",
        "-G",
        "rsa3072",
        "-u",
        &p("app.pub"),
        "-r",
        &p("app.priv"),
        "-a",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
    ]);
    t(&[
        "tpm2_load",
        "-C",
        "0x81000001",
        "-u",
        &p("app.pub"),
        "-r",
        &p("app.priv"),
        "-c",
        &p("app.ctx"),
    ]);
    t(&["tpm2_evictcontrol", "-c", &p("app.ctx"), "0x81000002"]);
    t(&["tpm2_nvdefine", "0x01500001", "-s", "32"]);

    let text = String::from_utf8(env.tpmkey_ok(["list", "--nv"])).unwrap();
    let line = |h: &str| {
        text.lines()
            .find(|l| l.starts_with(h))
            .unwrap_or_else(|| panic!("no {h} in\n{text}"))
            .to_string()
    };
    assert!(line("0x81000001").contains("ECC P-256"));
    assert!(line("0x81000001").contains("storage key"));
    assert!(line("0x81000002").contains("RSA 3072"));
    assert!(line("0x81000002").contains("application key (sign)"));
    assert!(line("0x81010001").contains("EK-like"));
    assert!(line("0x81010002").contains("AK-like"));
    assert!(line("0x01500001").contains("ordinary"));
    assert!(line("0x01500001").contains("32"));

    let json = String::from_utf8(env.tpmkey_ok(["list", "--json"])).unwrap();
    assert!(json.contains("\"handle\": \"0x81010002\""), "{json}");
    assert!(json.contains("\"bits\": 3072"), "{json}");
    assert!(!json.contains("\"nv\""), "NV only with --nv: {json}");
}
