//! The one log of both front ends: `TPMKEY_LOG` (or the `log` configuration key, in
//! tpmkey.conf, an openssl.cnf section or handed in by a front end) is
//! `LEVEL[,file=PATH]`. Levels: `off`; `error` (the default: what an administrator must see,
//! such as a damaged store, a TPM lockout, a token made on another TPM); `debug` (also every
//! failed call with its cause, TPM response codes in words). Lines go to standard error, or
//! appended to PATH (made 0600). `TPMKEY_DEBUG` (any value) is an alias for `debug` when
//! nothing else sets the level. Callers never pass secrets: causes name files, commands and
//! response codes, never PINs, passwords or key material.

use std::io::Write;
use std::path::PathBuf;

/// How much is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Off,
    Error,
    Debug,
}

/// A parsed `log` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSpec {
    pub level: Level,
    /// None: standard error.
    pub file: Option<PathBuf>,
}

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec {
            level: Level::Error,
            file: None,
        }
    }
}

impl LogSpec {
    /// `LEVEL[,file=PATH]`; the error says what is wrong.
    pub fn parse(text: &str) -> std::result::Result<LogSpec, String> {
        let mut parts = text.split(',').map(str::trim);
        let level = match parts.next().unwrap_or_default() {
            "off" | "none" => Level::Off,
            "error" | "" => Level::Error,
            "debug" => Level::Debug,
            other => {
                return Err(format!(
                    "log level \"{other}\": expected off, error or debug"
                ))
            }
        };
        let mut file = None;
        for part in parts {
            match part.strip_prefix("file=") {
                Some(path) if !path.is_empty() => file = Some(PathBuf::from(path)),
                _ => return Err(format!("\"{part}\": expected file=PATH")),
            }
        }
        Ok(LogSpec { level, file })
    }

    /// The setting in force: configuration (front end > `TPMKEY_LOG` > tpmkey.conf), else
    /// `TPMKEY_DEBUG`, else errors on standard error. Read at every line: lines are rare
    /// (failures), and a front end may configure at any time.
    pub fn current() -> LogSpec {
        let configured = match crate::connection::current_config() {
            Ok(config) => config.log,
            // A broken configuration still leaves the environment's word.
            Err(_) => std::env::var("TPMKEY_LOG")
                .ok()
                .and_then(|v| LogSpec::parse(&v).ok()),
        };
        configured.unwrap_or_else(|| LogSpec {
            level: if std::env::var_os("TPMKEY_DEBUG").is_some() {
                Level::Debug
            } else {
                Level::Error
            },
            file: None,
        })
    }
}

/// Writes `message` as a line from `source` (the front end's name) when `level` is logged.
/// A destination that cannot be written is ignored: logging never fails an operation (and
/// `eprintln!` would panic at the FFI edge).
pub fn write(level: Level, source: &str, message: &str) {
    let spec = LogSpec::current();
    if level == Level::Off || level > spec.level {
        return;
    }
    let line = format!("{source}[{}]: {message}\n", std::process::id());
    match &spec.file {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(path);
            if let Ok(mut f) = file {
                let _ = f.write_all(line.as_bytes());
            }
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_level_and_file() {
        assert_eq!(LogSpec::parse("debug").unwrap().level, Level::Debug);
        let spec = LogSpec::parse("error, file=/tmp/x.log").unwrap();
        assert_eq!(
            spec,
            LogSpec {
                level: Level::Error,
                file: Some(PathBuf::from("/tmp/x.log"))
            }
        );
        assert!(LogSpec::parse("loud").unwrap_err().contains("expected off"));
        assert!(LogSpec::parse("debug,to=x").is_err());
    }
}
