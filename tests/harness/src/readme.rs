//! The repository's README, for tests that run its instructions as written.

use std::path::PathBuf;

/// The README.md of the repository.
pub fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("tpmkey-testenv: {}: {e}", path.display()))
}

/// The lines of the `sh` blocks of `text`, continuation lines joined, comments dropped.
pub fn shell_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let line = line.split(" #").next().unwrap_or_default().trim_end();
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}
