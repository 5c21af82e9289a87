//! `tpmkey seal` / `tpmkey unseal` on a real swtpm: round trips from 1 byte to 1 MiB, the
//! empty secret refused, a wrong password (exit 3, one dictionary-attack count), neither
//! secret nor password on the TPM bus, the kernel profile field by field, and sealed files
//! written by openssl_tpm2_engine and built with `openssl asn1parse -genconf`.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod sealing;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{stderr, tpmkey_with, Env};
use sealing::{engine_file, engine_tpm, lockout_counter, persistent_parent, s};
use tpmkey_testenv::run;
use tpmkey_testenv::wire_tap::{contains, WireTap};
use tpmkey_testenv::TpmEndpoint;

/// Binary data of `len` bytes, every byte value present.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 131 + (i >> 8) * 7) as u8).wrapping_add(seed))
        .collect()
}

#[test]
fn round_trips_from_one_byte_to_a_mebibyte() {
    let env = Env::start();
    let pw = env.path("pw");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let pw_arg = format!("file:{}", pw.display());
    for (i, len) in [1usize, 128, 129, 4096, 1 << 20].into_iter().enumerate() {
        let secret = data(len, i as u8);
        let input = env.path(&format!("secret{len}"));
        let sealed = env.path(&format!("secret{len}.tpm"));
        std::fs::write(&input, &secret).unwrap();
        // Every other size with a password.
        let with_pw = i % 2 == 0;
        let mut args = vec!["seal", "-i", s(&input), "-o", s(&sealed)];
        if with_pw {
            args.extend(["--password", &pw_arg]);
        }
        env.tpmkey_ok(&args);
        let mode = std::fs::metadata(&sealed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "sealed file mode");
        let pem = std::fs::read(&sealed).unwrap();
        assert!(pem.starts_with(b"-----BEGIN TSS2 PRIVATE KEY-----"));
        let file = tpmkey::KeyFile::from_pem(&pem).unwrap();
        assert_eq!(file.key_type, tpmkey::keyfile::KeyFileType::Sealed);
        assert_eq!(file.envelope.is_some(), len > 128, "{len} bytes");
        assert_eq!(file.empty_auth, !with_pw);
        assert!(
            !contains(&pem, &secret[..secret.len().min(16)]),
            "plaintext in the file"
        );

        let mut args = vec!["unseal", s(&sealed)];
        if with_pw {
            args.extend(["--password", &pw_arg]);
        }
        let out = env.tpmkey_ok(&args);
        assert!(out == secret, "{len} bytes to stdout");
        let back = env.path(&format!("back{len}"));
        args.extend(["-o", s(&back)]);
        assert!(env.tpmkey_ok(&args).is_empty(), "nothing on stdout with -o");
        assert!(std::fs::read(&back).unwrap() == secret, "{len} bytes to -o");
        let mode = std::fs::metadata(&back).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "unsealed file mode");
    }

    // The empty secret: refused by name, nothing written.
    let empty = env.path("empty");
    std::fs::write(&empty, b"").unwrap();
    let out_file = env.path("empty.tpm");
    let r = env.tpmkey(["seal", "-i", s(&empty), "-o", s(&out_file)]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).contains("nothing to seal"), "{}", stderr(&r));
    assert!(!out_file.exists());

    // A password-sealed file without --password: told, not tried.
    let r = env.tpmkey(["unseal", s(&env.path("secret1.tpm"))]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).contains("--password"), "{}", stderr(&r));
}

#[test]
fn wrong_password_exits_3_and_counts_once() {
    let env = Env::start();
    let (pw, bad) = (env.path("pw"), env.path("bad"));
    std::fs::write(&pw, "right").unwrap();
    std::fs::write(&bad, "wrong").unwrap();
    for len in [32usize, 300] {
        let input = env.path("in");
        std::fs::write(&input, data(len, 9)).unwrap();
        let sealed = env.path("in.tpm");
        env.tpmkey_ok([
            "seal",
            "--password",
            &format!("file:{}", pw.display()),
            "-i",
            s(&input),
            "-o",
            s(&sealed),
        ]);
        let before = lockout_counter(&env.swtpm);
        let r = env.tpmkey([
            "unseal",
            s(&sealed),
            "--password",
            &format!("file:{}", bad.display()),
        ]);
        assert_eq!(r.status.code(), Some(3), "{len}: {}", stderr(&r));
        assert!(r.stdout.is_empty(), "nothing on stdout");
        assert_eq!(
            lockout_counter(&env.swtpm),
            before + 1,
            "DA +1 ({len} bytes)"
        );
    }
}

/// `tpmkey ARGS` through a wire tap in front of `env`'s swtpm.
fn through_tap(env: &Env, tap: &WireTap, args: &[&str]) -> Vec<u8> {
    let out = tpmkey_with(&tap.tcti(), env.dir.path(), args);
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

#[test]
fn neither_secret_nor_password_nor_envelope_key_on_the_bus() {
    let env = Env::start();
    let tap = WireTap::start(env.swtpm.port());
    let password = b"bus-watchers-never-see-this";
    let pw = env.path("pw");
    std::fs::write(&pw, password).unwrap();
    let pw_arg = format!("file:{}", pw.display());
    let small = b"a 32-byte secret for the kernel!".to_vec();
    let large = data(4096, 77);
    let mut report = Vec::new();
    for (name, secret) in [("small", &small), ("large", &large)] {
        let input = env.path(name);
        let sealed = env.path(&format!("{name}.tpm"));
        std::fs::write(&input, secret).unwrap();
        tap.take_log();
        through_tap(
            &env,
            &tap,
            &[
                "seal",
                "--password",
                &pw_arg,
                "-i",
                s(&input),
                "-o",
                s(&sealed),
            ],
        );
        let seal_log = tap.take_log();
        let out = through_tap(&env, &tap, &["unseal", "--password", &pw_arg, s(&sealed)]);
        assert!(out == *secret);
        let unseal_log = tap.take_log();
        let names: Vec<String> = unseal_log
            .iter()
            .map(|(c, _)| {
                tpmkey_testenv::tpm_command::command_name(tpmkey_testenv::wire_tap::command_code(c))
                    .unwrap_or("?")
            })
            .zip(
                unseal_log
                    .iter()
                    .map(|(_, r)| u32::from_be_bytes([r[6], r[7], r[8], r[9]])),
            )
            .map(|(n, rc)| {
                if rc == 0 {
                    n.to_string()
                } else {
                    format!("{n}=0x{rc:x}")
                }
            })
            .collect();
        report.push(format!("{name}: {} commands {names:?}", names.len()));

        // What could leak: the secret, the password, and for an envelope its AES key (read
        // here straight from swtpm, not through the tap).
        let mut needles: Vec<Vec<u8>> = vec![password.to_vec(), secret[..32].to_vec()];
        let file = tpmkey::KeyFile::from_pem(&std::fs::read(&sealed).unwrap()).unwrap();
        if file.envelope.is_some() {
            tpmkey::connection::configure(&[("tcti", &env.swtpm.tcti())]).unwrap();
            let key = tpmkey::envelope::SealedSecret::from_key_file(&file)
                .unwrap()
                .sealed_object()
                .unseal(password)
                .unwrap();
            tpmkey::connection::shutdown();
            assert_eq!(key.len(), 32);
            needles.push(key.to_vec());
        }
        for (c, r) in seal_log.iter().chain(unseal_log.iter()) {
            for n in &needles {
                assert!(!contains(c, n), "{name}: in a command in clear");
                assert!(!contains(r, n), "{name}: in a response in clear");
            }
        }
    }
    eprintln!("TPM commands per unseal (process start to exit): {report:?}");
}

fn asn1parse(file: &Path, inform: &str) -> String {
    let out = run(Command::new("openssl").args(["asn1parse", "-inform", inform, "-in", s(file)]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kernel_profile_field_by_field() {
    let env = Env::start();
    persistent_parent(&env.swtpm, env.dir.path());
    let input = env.path("kmk");
    let sealed = env.path("kmk.blob");
    let o = s(&sealed);

    for (len, parent, why) in [
        (31usize, Some("0x81000001"), "32 to 128 bytes"),
        (129, Some("0x81000001"), "32 to 128 bytes"),
        (32, None, "persistent parent"),
    ] {
        std::fs::write(&input, data(len, 1)).unwrap();
        let mut args = vec!["seal", "--for", "kernel", "-i", s(&input), "-o", o];
        if let Some(p) = parent {
            args.extend(["--parent", p]);
        }
        let r = env.tpmkey(&args);
        assert_eq!(r.status.code(), Some(1), "{len}: {}", stderr(&r));
        assert!(stderr(&r).contains(why), "{}", stderr(&r));
        assert!(!sealed.exists());
    }

    let secret = data(64, 5);
    std::fs::write(&input, &secret).unwrap();
    env.tpmkey_ok([
        "seal",
        "--for",
        "kernel",
        "--parent",
        "0x81000001",
        "-i",
        s(&input),
        "-o",
        o,
    ]);
    let parsed = asn1parse(&sealed, "DER");
    let fields: Vec<String> = parsed
        .lines()
        .filter(|l| l.contains("d=1") || l.contains("d=2"))
        .map(|l| {
            let (_, what) = l.split_once("prim:").or(l.split_once("cons:")).unwrap();
            let what = what.split_whitespace().collect::<Vec<_>>().join(" ");
            what.split("[HEX DUMP]").next().unwrap().trim().to_string()
        })
        .collect();
    assert_eq!(
        fields,
        [
            "OBJECT :2.23.133.10.1.5",
            "cont [ 0 ]",
            "BOOLEAN :255",
            "INTEGER :81000001",
            "OCTET STRING",
            "OCTET STRING",
        ],
        "{parsed}"
    );
    assert!(parsed.lines().count() == 7, "nothing else:\n{parsed}");
    assert_eq!(env.tpmkey_ok(["unseal", o]), secret);
}

#[test]
fn engine_sealed_files_unseal() {
    let swtpm = engine_tpm();
    let dir = tpmkey_testenv::TempDir::new("engine-seal");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "pw-seal").unwrap();
    let run = |args: &[&str]| tpmkey_with(&swtpm.tcti(), dir.path(), args);
    // seal_tpm2_data -a -k pw-seal: no emptyAuth field, a password.
    let r = run(&[
        "unseal",
        s(&engine_file("sealed-auth.tpm")),
        "--password",
        &format!("file:{}", pw.display()),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(r.stdout, b"psk-for-vpn-0123456789");
    std::fs::write(&pw, "not-pw-seal").unwrap();
    let r = run(&[
        "unseal",
        s(&engine_file("sealed-auth.tpm")),
        "--password",
        &format!("file:{}", pw.display()),
    ]);
    assert_eq!(r.status.code(), Some(3), "{}", stderr(&r));
    assert!(r.stdout.is_empty());
}

/// `openssl asn1parse -genconf` input for a sealed-data file in the engine's layout.
fn genconf(empty_auth: bool, parent: u32, public: &[u8], private: &[u8]) -> String {
    let mut c = String::from("asn1=SEQUENCE:key\n[key]\ntype=OID:2.23.133.10.1.5\n");
    if empty_auth {
        c.push_str("emptyAuth=EXPLICIT:0,BOOLEAN:TRUE\n");
    }
    c.push_str(&format!(
        "parent=INTEGER:0x{parent:08X}\npubkey=FORMAT:HEX,OCTETSTRING:{}\nprivkey=FORMAT:HEX,OCTETSTRING:{}\n",
        sealing::hex(public),
        sealing::hex(private)
    ));
    c
}

#[test]
fn golden_vectors_built_with_genconf_unseal() {
    // Sealed objects made by tpm2-tools (data in the clear: test material) under a
    // persistent parent, in the engine's attributes (userWithAuth, noDA, migratable) and
    // layout: without a password emptyAuth TRUE, with one no emptyAuth field.
    let env = Env::start();
    persistent_parent(&env.swtpm, env.dir.path());
    for (auth, secret) in [
        (None, &b"engine-style, no -k"[..]),
        (Some("k-pass"), b"with -k"),
    ] {
        let (input, public, private) = (env.path("d"), env.path("d.pub"), env.path("d.priv"));
        std::fs::write(&input, secret).unwrap();
        let mut args = vec![
            "tpm2_create",
            "-C",
            "0x81000001",
            "-i",
            s(&input),
            "-a",
            "userwithauth|noda",
            "-u",
            s(&public),
            "-r",
            s(&private),
        ];
        if let Some(a) = auth {
            args.extend(["-p", a]);
        }
        env.swtpm.tpm2_tools_ok(&args);
        env.swtpm.tpm2_tools_ok(["tpm2_flushcontext", "-t"]);
        let conf = env.path("gen.conf");
        std::fs::write(
            &conf,
            genconf(
                auth.is_none(),
                0x8100_0001,
                &std::fs::read(&public).unwrap(),
                &std::fs::read(&private).unwrap(),
            ),
        )
        .unwrap();
        let der = env.path("golden.der");
        run(Command::new("openssl").args([
            "asn1parse",
            "-genconf",
            s(&conf),
            "-noout",
            "-out",
            s(&der),
        ]));
        let mut args = vec!["unseal".to_string(), s(&der).to_string()];
        if let Some(a) = auth {
            let pw = env.path("pw");
            std::fs::write(&pw, a).unwrap();
            args.extend(["--password".into(), format!("file:{}", pw.display())]);
        }
        assert_eq!(env.tpmkey_ok(&args), secret);
    }
}
