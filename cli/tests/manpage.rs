//! tpmkey(1) as `make install` generates it: renders without a warning, and names every
//! subcommand `tpmkey --help` lists and every long option of each subcommand's `--help`.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

fn tpmkey(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tpmkey"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands in a `--help` text's "Commands:" list (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues on a line indented further than the names.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn manpage_renders_and_covers_every_subcommand_and_option() {
    let page = tpmkey(&["manpage"]);
    let path = std::env::temp_dir().join(format!("tpmkey-{}.1", std::process::id()));
    std::fs::write(&path, &page).unwrap();
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&path)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let rendered = String::from_utf8_lossy(&out.stdout);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.is_empty(), "man warnings: {warnings}");
    for section in [
        "SYNOPSIS",
        "COMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "SEE ALSO",
    ] {
        assert!(rendered.contains(section), "no {section}");
    }

    let mut todo: Vec<Vec<String>> = subcommands(&tpmkey(&["--help"]))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    assert!(todo.len() >= 3, "{todo:?}");
    while let Some(path) = todo.pop() {
        let title = format!("tpmkey {}", path.join(" "));
        assert!(rendered.contains(&title), "no section for {title}");
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = tpmkey(&args);
        for word in help.split(|c: char| c.is_whitespace() || c == ',') {
            if word.starts_with("--") && word.len() > 2 && word != "--help" {
                assert!(
                    rendered.contains(word),
                    "{title}: {word} not in the man page"
                );
            }
        }
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
    }
}
