//! The Debian package end to end: `make deb`, lintian, then in a fresh Debian 12 root
//! (debian-root.sh, in-root.sh) `dpkg -i`, HTTPS through nginx from a TPM key of a real
//! swtpm with only the packaged files, the PKCS#11 module through p11-kit, `dpkg -r` and
//! `dpkg -P` leaving the file list as it was.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tpmkey_testenv::{run, Swtpm};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `make deb` once per test binary; returns the package and what build-deb.sh printed.
fn package() -> &'static (PathBuf, String) {
    static BUILT: OnceLock<(PathBuf, String)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let ws = workspace();
        let out = run(Command::new("make")
            .arg("-C")
            .arg(&ws)
            .arg("--no-print-directory")
            .arg("deb"));
        let arch = text(&run(Command::new("dpkg").arg("--print-architecture")).stdout);
        let deb = ws.join(format!(
            "target/package/tpmkey_{}_{}.deb",
            env!("CARGO_PKG_VERSION"),
            arch.trim()
        ));
        assert!(deb.is_file(), "make deb made no {}", deb.display());
        (deb, text(&out.stdout))
    })
}

/// Appends to the summary `make test` prints at its end.
fn summary(line: &str) {
    use std::io::Write;
    let path = workspace().join("target/package-test/summary.txt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

#[test]
fn package_is_lintian_clean_and_its_libraries_are_stripped() {
    let (deb, listing) = package();
    let out = run(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--display-info"])
        .arg(deb));
    let tags = text(&out.stdout);
    assert!(
        !tags
            .lines()
            .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "lintian: {tags}"
    );
    // Stripped: no DWARF left in the packaged libraries; the -dbgsym package holds it.
    let dir = workspace().join("target/package/work/tpmkey");
    for lib in [
        "usr/lib/x86_64-linux-gnu/ossl-modules/tpmkey.so",
        "usr/lib/x86_64-linux-gnu/pkcs11/libtpmkey_pkcs11.so",
    ] {
        let sections = text(
            &run(Command::new("readelf")
                .arg("-S")
                .arg("-W")
                .arg(dir.join(lib)))
            .stdout,
        );
        assert!(
            !sections.contains(".debug_"),
            "{lib} is not stripped:\n{sections}"
        );
    }
    let dbgsym = text(
        &run(Command::new("dpkg-deb").arg("-c").arg(
            deb.with_file_name(
                deb.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .replace("tpmkey_", "tpmkey-dbgsym_"),
            ),
        ))
        .stdout,
    );
    assert_eq!(
        dbgsym
            .lines()
            .filter(|l| l.contains("/usr/lib/debug/.build-id/") && l.ends_with(".debug"))
            .count(),
        2,
        "tpmkey-dbgsym: {dbgsym}"
    );
    summary(&format!(
        "make deb:\n{listing}lintian: no errors or warnings ({} info tags)",
        tags.lines().filter(|l| l.starts_with("I:")).count()
    ));
}

#[test]
fn package_installs_serves_https_and_purges_clean_in_a_fresh_debian_12() {
    let (deb, _) = package();
    let tpm = Swtpm::start();
    let script = workspace().join("tests/package/debian-root.sh");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let out = Command::new(&script)
        .arg(deb)
        .arg(tpm.tcti())
        .arg(port.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("in-root.sh: PASSED"),
        "package test in a fresh Debian 12 root failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- swtpm ---\n{}",
        out.status,
        tpm.log()
    );
    summary(&format!(
        "package test: fresh Debian 12 root: dpkg -i, HTTPS through nginx as www-data from a TPM key, \
         p11-kit and pkcs11-tool through p11-kit-proxy, dpkg -r, dpkg -P: PASSED\n{}",
        stdout
            .lines()
            .filter(|l| l.starts_with("installed:") || l.contains("files installed") || l.starts_with("file list after"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
}
