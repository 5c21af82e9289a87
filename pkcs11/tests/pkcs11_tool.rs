//! OpenSC's pkcs11-tool against the built module and a real swtpm: token set-up, PINs,
//! key pairs, signatures, and its own broad self test (`--test --login`).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::*;

fn tool(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.arg("--module").arg(module_path()).args(args);
    for (k, v) in env.vars() {
        cmd.env(k, v);
    }
    tpmkey_testenv::run(&mut cmd)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn pkcs11_tool_end_to_end() {
    let env = TestEnv::new("per-operation");
    let info = text(&tool(&env, &["--show-info"]));
    assert!(
        info.contains("Cryptoki version 3.0") && info.contains("tpmkey"),
        "{info}"
    );

    // The uninitialised token is in slot 1 (the first slot of a fresh store).
    tool(
        &env,
        &[
            "--slot",
            "1",
            "--init-token",
            "--label",
            "tool",
            "--so-pin",
            SO_PIN,
        ],
    );
    let t = ["--token-label", "tool"];
    tool(
        &env,
        &[
            &t[..],
            &[
                "--login",
                "--login-type",
                "so",
                "--so-pin",
                SO_PIN,
                "--init-pin",
                "--pin",
                "1111",
            ],
        ]
        .concat(),
    );
    tool(
        &env,
        &[
            &t[..],
            &[
                "--login",
                "--pin",
                "1111",
                "--change-pin",
                "--new-pin",
                USER_PIN,
            ],
        ]
        .concat(),
    );
    let slots = text(&tool(&env, &["-L"]));
    assert!(slots.contains("token label        : tool"), "{slots}");
    assert!(slots.contains("token initialized"), "{slots}");
    let mechs = text(&tool(&env, &[&t[..], &["-M"]].concat()));
    for m in [
        "ECDSA-SHA256",
        "RSA-PKCS-PSS",
        "RSA-PKCS-OAEP",
        "ECDH1-DERIVE",
        "SHA256",
    ] {
        assert!(mechs.contains(m), "{m} missing: {mechs}");
    }

    let login = [&t[..], &["--login", "--pin", USER_PIN]].concat();
    tool(
        &env,
        &[
            &login[..],
            &[
                "--keypairgen",
                "--key-type",
                "EC:prime256v1",
                "--id",
                "01",
                "--label",
                "ec",
            ],
        ]
        .concat(),
    );
    tool(
        &env,
        &[
            &login[..],
            &[
                "--keypairgen",
                "--key-type",
                "rsa:2048",
                "--id",
                "02",
                "--label",
                "rsa",
            ],
        ]
        .concat(),
    );

    let dir = TempDir::new("tool");
    let data = dir.0.join("data");
    let sig = dir.0.join("sig");
    std::fs::write(&data, b"sign me").unwrap();
    for (id, mech) in [("01", "ECDSA-SHA256"), ("02", "SHA256-RSA-PKCS-PSS")] {
        tool(
            &env,
            &[&login[..], &["--sign", "--id", id, "-m", mech, "-i"]]
                .concat()
                .iter()
                .copied()
                .chain([data.to_str().unwrap(), "-o", sig.to_str().unwrap()])
                .collect::<Vec<_>>(),
        );
        let out = tool(
            &env,
            &[&login[..], &["--verify", "--id", id, "-m", mech, "-i"]]
                .concat()
                .iter()
                .copied()
                .chain([
                    data.to_str().unwrap(),
                    "--signature-file",
                    sig.to_str().unwrap(),
                ])
                .collect::<Vec<_>>(),
        );
        assert!(text(&out).contains("Signature is valid"), "{}", text(&out));
    }

    let selftest = text(&tool(&env, &[&login[..], &["--test"]].concat()));
    assert!(selftest.contains("No errors"), "{selftest}");
}
