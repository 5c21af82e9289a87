//! The short fuzz run of `make test`: every cargo-fuzz target of core/fuzz, pkcs11/fuzz and
//! provider/fuzz, built on the stable toolchain (libFuzzer without coverage
//! instrumentation), runs once over each of its committed seeds (CRATE/fuzz/seeds/TARGET).
//! A crash found by `make fuzz` is added to the seeds, so it stays a regression test here.
//! The PKCS#11 and provider targets start their own swtpm (through the harness).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fuzz crates, by the directory of the crate they fuzz.
const FUZZ_CRATES: [&str; 3] = ["core", "pkcs11", "provider"];

/// The targets: the `[[bin]]` names of `fuzz_dir`/Cargo.toml.
fn targets(fuzz_dir: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).unwrap();
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if let Some(name) = line.strip_prefix("name = ").filter(|_| in_bin) {
            names.push(name.trim_matches('"').to_owned());
        }
    }
    names
}

#[test]
fn every_fuzz_target_runs_over_its_seeds() {
    // Its own directory: the fuzz crates resolve their dependencies apart from the
    // workspace, and their copies of the libraries must not replace the workspace's in
    // target/release.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target_dir = root.join("target/fuzz-smoke");
    let mut count = 0;
    for krate in FUZZ_CRATES {
        let fuzz_dir = root.join(krate).join("fuzz");
        tpmkey_testenv::run(
            Command::new(env!("CARGO"))
                .args(["build", "--release", "--bins", "--locked"])
                .current_dir(&fuzz_dir)
                .env("CARGO_TARGET_DIR", &target_dir),
        );
        for target in targets(&fuzz_dir) {
            run_over_seeds(&fuzz_dir, &target_dir, &target);
            count += 1;
        }
    }
    assert!(count >= 8, "{count} fuzz targets");
}

fn run_over_seeds(fuzz_dir: &Path, target_dir: &Path, target: &str) {
    let seeds = fuzz_dir.join("seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&seeds)
        .unwrap_or_else(|e| panic!("{}: {e} (every target has seeds)", seeds.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{target}: no seeds in {}",
        seeds.display()
    );
    let out =
        tpmkey_testenv::run(Command::new(target_dir.join("release").join(target)).args(&files));
    let log = String::from_utf8_lossy(&out.stderr);
    let ran = log.matches("Executed ").count();
    assert_eq!(
        ran,
        files.len(),
        "{target}: ran {ran} of {} seeds:\n{log}",
        files.len()
    );
}
