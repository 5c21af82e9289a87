//! The Debian package end to end: `make deb`, lintian, then in a fresh Debian 12 root
//! (debian-root.sh, in-root.sh) `dpkg -i`, HTTPS through nginx from a TPM key of a real
//! swtpm with only the packaged files, the PKCS#11 module through p11-kit, `dpkg -r` and
//! `dpkg -P` leaving the file list as it was.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use tpmkey_package_test::{text, workspace};
use tpmkey_testenv::{run, Swtpm};

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
    // Stripped: no DWARF left in the packaged libraries; tpmkey-dbgsym holds it under
    // their build ids.
    let dir = std::env::temp_dir().join(format!("tpmkey-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dir));
    let dbgsym_deb = deb.with_file_name(
        deb.file_name()
            .unwrap()
            .to_string_lossy()
            .replace("tpmkey_", "tpmkey-dbgsym_"),
    );
    let dbgsym = text(&run(Command::new("dpkg-deb").arg("-c").arg(dbgsym_deb)).stdout);
    let libs = text(&run(Command::new("find").arg(&dir).args(["-name", "*.so"])).stdout);
    assert_eq!(libs.lines().count(), 2, "libraries in the package: {libs}");
    for lib in libs.lines() {
        let sections = text(&run(Command::new("readelf").args(["-S", "-W", lib])).stdout);
        assert!(!sections.contains(".debug_"), "{lib} is not stripped");
        let notes = text(&run(Command::new("readelf").args(["-n", lib])).stdout);
        let id = notes
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: "))
            .unwrap_or_else(|| panic!("{lib} has no build id"));
        let debug_file = format!("./usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
        assert!(
            dbgsym.lines().any(|l| l.ends_with(&debug_file)),
            "tpmkey-dbgsym has no {debug_file} for {lib}:\n{dbgsym}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
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
        .arg("package")
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
            .filter(|l| l.starts_with("installed:") || l.starts_with("make install put") || l.contains("files installed") || l.starts_with("file list after"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
}
