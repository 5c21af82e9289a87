//! `make install` and `make uninstall` into a staging DESTDIR install and remove exactly
//! the manifest's files; the man pages render without warnings; the example unit verifies.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tpmkey_package_test::{text, workspace};
use tpmkey_testenv::run;

/// Every file under `root`, as absolute paths inside it, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let out = run(Command::new("find")
        .arg(root)
        .args(["-type", "f", "-printf", "/%P\\n"]));
    let mut files: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    files.sort();
    files
}

fn make(target: &str, destdir: &Path) -> String {
    let out = run(Command::new("make")
        .arg("-C")
        .arg(workspace())
        .arg("--no-print-directory")
        .arg(target)
        .arg(format!("DESTDIR={}", destdir.display())));
    text(&out.stdout)
}

#[test]
fn make_install_and_uninstall_handle_exactly_the_manifest() {
    let destdir = std::env::temp_dir().join(format!("tpmkey-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&destdir);
    std::fs::create_dir_all(&destdir).unwrap();

    make("install", &destdir);
    let listed = run(Command::new(workspace().join("packaging/install-files.sh")).arg("list"));
    let mut manifest: Vec<String> = text(&listed.stdout).lines().map(String::from).collect();
    manifest.sort();
    assert_eq!(
        files_under(&destdir),
        manifest,
        "make install installed other files than the manifest lists"
    );
    for lib in manifest.iter().filter(|f| f.ends_with(".so")) {
        let sections = text(
            &run(Command::new("readelf")
                .args(["-S", "-W"])
                .arg(format!("{}{lib}", destdir.display())))
            .stdout,
        );
        assert!(!sections.contains(".debug_"), "{lib} installed unstripped");
    }
    assert!(
        !manifest.iter().any(|f| f.contains("provider_shim")),
        "the provider's C shim is installed"
    );

    // An edited configuration survives make install and make uninstall.
    let conf = destdir.join("etc/tpmkey/tpmkey.conf");
    std::fs::write(&conf, "tcti = device:/dev/tpmrm0\n# edited\n").unwrap();
    let again = make("install", &destdir);
    assert!(again.contains("/etc/tpmkey/tpmkey.conf kept"), "{again}");
    assert!(std::fs::read_to_string(&conf).unwrap().contains("# edited"));
    let removed = make("uninstall", &destdir);
    assert!(
        removed.contains("/etc/tpmkey/tpmkey.conf kept"),
        "{removed}"
    );
    assert_eq!(
        files_under(&destdir),
        vec!["/etc/tpmkey/tpmkey.conf".to_string()]
    );

    // Unedited, it goes with the rest, and so do the directories install made.
    std::fs::remove_file(&conf).unwrap();
    make("install", &destdir);
    make("uninstall", &destdir);
    let left = run(Command::new("find").arg(&destdir).arg("-mindepth").arg("1"));
    assert_eq!(text(&left.stdout), "", "make uninstall left these behind");
    std::fs::remove_dir_all(&destdir).unwrap();
}

#[test]
fn man_pages_render_without_warnings() {
    let dir = workspace().join("man");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert!(
        pages.len() >= 3,
        "man pages in {}: {pages:?}",
        dir.display()
    );
    for page in &pages {
        let out = run(Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8"));
        let warnings = text(&out.stderr);
        assert!(warnings.is_empty(), "{}: {warnings}", page.display());
        assert!(
            text(&out.stdout).contains("SEE ALSO"),
            "{} rendered without SEE ALSO",
            page.display()
        );
    }
}

#[test]
fn example_unit_verifies() {
    let unit = workspace().join("conf/nginx-tpmkey.service");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap_or_else(|e| panic!("cannot run systemd-analyze (scripts/deps.sh test): {e}"));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify {}: {}{}",
        unit.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// tpmkey.conf(5) documents every key and `TPMKEY_*` variable core/src/config.rs reads.
#[test]
fn config_man_page_names_every_key_and_variable() {
    let source = std::fs::read_to_string(workspace().join("core/src/config.rs")).unwrap();
    let page = std::fs::read_to_string(workspace().join("man/tpmkey.conf.5")).unwrap();
    let keys_start = source
        .find("pub const KEYS: &[&str] = &[")
        .expect("config.rs defines KEYS");
    let keys_end = keys_start + source[keys_start..].find("];").unwrap();
    let keys: Vec<&str> = source[keys_start..keys_end]
        .split('"')
        .skip(1)
        .step_by(2)
        .collect();
    assert!(
        keys.contains(&"tcti") && keys.len() >= 7,
        "keys parsed: {keys:?}"
    );
    for key in &keys {
        assert!(
            page.contains(&format!(".BI \"{key} = \""))
                || page.contains(&format!(".BR \"{key} = \"")),
            "tpmkey.conf(5) has no entry for the key {key}"
        );
    }
    let variables: Vec<&str> = source
        .split('"')
        .filter(|s| s.starts_with("TPMKEY_") && s[7..].chars().all(|c| c.is_ascii_uppercase()))
        .collect();
    assert!(
        variables.contains(&"TPMKEY_CONF"),
        "variables parsed: {variables:?}"
    );
    for var in &variables {
        assert!(
            page.contains(&format!(".B {var}\n")),
            "tpmkey.conf(5) has no ENVIRONMENT entry for {var}"
        );
    }
}
