//! A TPM latency model: service times per command (and key type) read from a profile file,
//! which the [`crate::WireTap`] applies to every command it forwards, one command at a time.
//!
//! Profile format (one entry a line, `#` starts a comment, blank lines ignored):
//!
//! ```text
//! default 1.0            # milliseconds for a command the profile does not list
//! Sign/ecc 68.9          # Sign with an ECC scheme
//! Sign 68.9              # Sign whose key type does not show (NULL scheme)
//! StartAuthSession/unsalted 2.0
//! ```
//!
//! A command is named as in TPM 2.0 Part 3 without `TPM2_`; the optional `/rsa`, `/ecc` or
//! `/unsalted` picks the key type the tap reads from the command's parameters
//! ([`crate::tpm_command::key_kind`]). Lookup: command and key type, then the command
//! alone, then `default`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::tpm_command::{command_by_name, command_code, key_kind, KeyKind};

/// Service times of one modelled TPM.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    default: Duration,
    times: HashMap<(u32, Option<KeyKind>), Duration>,
}

/// A line's service time: a finite, non-negative number of milliseconds below an hour.
fn milliseconds(text: &str) -> Option<Duration> {
    let ms: f64 = text.parse().ok()?;
    (ms.is_finite() && (0.0..3_600_000.0).contains(&ms))
        .then(|| Duration::from_secs_f64(ms / 1000.0))
}

impl Profile {
    /// Parses a profile's text; errors name the line and what is wrong with it.
    pub fn parse(name: &str, text: &str) -> Result<Profile, String> {
        let mut profile = Profile {
            name: name.to_string(),
            default: Duration::ZERO,
            times: HashMap::new(),
        };
        let mut default_seen = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let at = || format!("profile {name}, line {}", i + 1);
            let mut words = line.split_whitespace();
            let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!(
                    "{}: expected \"<Command>[/rsa|/ecc|/unsalted] <milliseconds>\", got \"{line}\"",
                    at()
                ));
            };
            let time = milliseconds(value).ok_or_else(|| {
                format!(
                    "{}: \"{value}\" is not a number of milliseconds (0 to 3600000)",
                    at()
                )
            })?;
            if key == "default" {
                if default_seen {
                    return Err(format!("{}: a second default", at()));
                }
                default_seen = true;
                profile.default = time;
                continue;
            }
            let (command, kind) = match key.split_once('/') {
                None => (key, None),
                Some((c, k)) => (
                    c,
                    Some(KeyKind::parse(k).ok_or_else(|| {
                        format!("{}: key type \"{k}\" is not rsa, ecc or unsalted", at())
                    })?),
                ),
            };
            let code = command_by_name(command)
                .ok_or_else(|| format!("{}: unknown TPM command \"{command}\"", at()))?;
            if profile.times.insert((code, kind), time).is_some() {
                return Err(format!("{}: \"{key}\" is listed twice", at()));
            }
        }
        if !default_seen {
            return Err(format!(
                "profile {name}: no \"default <milliseconds>\" line (the time of unlisted commands)"
            ));
        }
        Ok(profile)
    }

    /// Reads `<dir>/<name>.profile`; an unknown name fails with the names there are.
    pub fn load(dir: &Path, name: &str) -> Result<Profile, String> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let path = dir.join(format!("{name}.profile"));
        if !valid || !path.is_file() {
            return Err(format!(
                "unknown TPM profile \"{name}\": the profiles in {} are {}",
                dir.display(),
                Profile::names(dir).join(", ")
            ));
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Profile::parse(name, &text)
    }

    /// The profile names in `dir` (files `<name>.profile`), sorted.
    pub fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".profile")
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// True if every command takes no modelled time (the `none` profile).
    pub fn is_zero(&self) -> bool {
        self.default.is_zero() && self.times.values().all(Duration::is_zero)
    }

    /// The service time of `command` on the modelled TPM.
    pub fn service_time(&self, command: &[u8]) -> Duration {
        self.time_of(command_code(command), key_kind(command))
    }

    /// The service time of the command `code` with key type `kind`.
    pub fn time_of(&self, code: u32, kind: Option<KeyKind>) -> Duration {
        kind.and_then(|k| self.times.get(&(code, Some(k))))
            .or_else(|| self.times.get(&(code, None)))
            .copied()
            .unwrap_or(self.default)
    }

    /// The service time of a command given by name (for floors: "Sign", Some(Ecc)).
    pub fn time_of_named(&self, name: &str, kind: Option<KeyKind>) -> Option<Duration> {
        command_by_name(name).map(|code| self.time_of(code, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# a test profile\n\
                        default 1.5\n\
                        Sign/ecc 70   # measured\n\
                        Sign 100\n\
                        StartAuthSession/unsalted 2\n";

    #[test]
    fn lookup_prefers_the_key_type_then_the_command_then_the_default() {
        let p = Profile::parse("t", TEXT).unwrap();
        let sign = command_by_name("Sign").unwrap();
        assert_eq!(
            p.time_of(sign, Some(KeyKind::Ecc)),
            Duration::from_millis(70)
        );
        assert_eq!(
            p.time_of(sign, Some(KeyKind::Rsa)),
            Duration::from_millis(100)
        );
        assert_eq!(p.time_of(sign, None), Duration::from_millis(100));
        let load = command_by_name("Load").unwrap();
        assert_eq!(
            p.time_of(load, Some(KeyKind::Rsa)),
            Duration::from_micros(1500)
        );
        assert_eq!(
            p.time_of_named("StartAuthSession", Some(KeyKind::Unsalted)),
            Some(Duration::from_millis(2))
        );
        assert!(!p.is_zero());
        assert!(Profile::parse("none", "default 0\n").unwrap().is_zero());
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, expected) in [
            ("Sign 1\n", "no \"default"),
            (
                "default 1\nSing 2\n",
                "line 2: unknown TPM command \"Sing\"",
            ),
            ("default 1\nSign/dsa 2\n", "key type \"dsa\""),
            ("default 1\nSign fast\n", "\"fast\" is not a number"),
            ("default 1\nSign -1\n", "\"-1\" is not a number"),
            ("default 1\nSign 1 2\n", "expected"),
            (
                "default 1\nSign 1\nSign 2\n",
                "line 3: \"Sign\" is listed twice",
            ),
            ("default 1\ndefault 2\n", "a second default"),
        ] {
            let e = Profile::parse("t", text).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn unknown_names_list_the_profiles() {
        let dir = std::env::temp_dir().join(format!("tpm-model-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("slow.profile"), "default 5\n").unwrap();
        std::fs::write(dir.join("fast.profile"), "default 0.1\n").unwrap();
        assert_eq!(
            Profile::load(&dir, "slow").unwrap().time_of(0x15D, None),
            Duration::from_millis(5)
        );
        let e = Profile::load(&dir, "medium").unwrap_err();
        assert!(
            e.contains("unknown TPM profile \"medium\"") && e.contains("fast, slow"),
            "{e}"
        );
        assert!(Profile::load(&dir, "../slow").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
