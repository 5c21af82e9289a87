//! Files and secrets on the command line's side: outputs written whole or not at all
//! (a temporary file renamed into place), private outputs mode 0600, passwords read from a
//! file, the environment or the terminal, never from argv where `ps` would show them.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use tpmkey::{Error, Result};

/// Where a password comes from: `file:PATH`, `env:VAR`, `fd:N` or `-` (standard input),
/// as openssl's `-passin` takes them (`pass:` is refused: argv is public).
pub fn read_password(source: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut text = Zeroizing::new(Vec::new());
    if let Some(path) = source.strip_prefix("file:") {
        let data = Zeroizing::new(fs::read(path).map_err(|e| Error::io(path, e))?);
        text.extend_from_slice(&data);
    } else if let Some(var) = source.strip_prefix("env:") {
        let v = std::env::var(var)
            .map_err(|_| Error::BadInput(format!("password source env:{var}: variable not set")))?;
        text.extend_from_slice(Zeroizing::new(v).as_bytes());
    } else if source == "-" || source == "stdin" {
        std::io::stdin()
            .read_to_end(&mut text)
            .map_err(|e| Error::io("standard input", e))?;
    } else if source.starts_with("pass:") {
        return Err(Error::BadInput(
            "password source pass:… is refused: the command line is visible to every user (use file:, env: or -)".into(),
        ));
    } else {
        return Err(Error::BadInput(format!(
            "password source \"{source}\": use file:PATH, env:VAR or - (standard input)"
        )));
    }
    // One trailing newline is the file's line end, not part of the password.
    if text.last() == Some(&b'\n') {
        text.pop();
        if text.last() == Some(&b'\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Writes `data` to `path` whole or not at all: a temporary file beside it, synced, then
/// renamed. `private` outputs are created 0600.
pub fn write_atomically(path: &Path, data: &[u8], private: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::BadInput(format!("{}: not a file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if private { 0o600 } else { 0o644 })
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = fs::remove_file(&tmp);
        Error::io(path.display(), e)
    })
}

/// Writes a public output to `path` (whole or not at all), or to standard output.
pub fn write_output(path: Option<&Path>, data: &[u8]) -> Result<()> {
    match path {
        Some(p) => write_atomically(p, data, false),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("standard output", e))
        }
    }
}

/// Reads an input file, naming it when it cannot.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path.display(), e))
}

/// The certificates of a PEM file (one or more "CERTIFICATE" blocks), as DER.
pub fn read_certificates(path: &Path) -> Result<Vec<Vec<u8>>> {
    let pem = read_file(path)?;
    let end = b"-----END CERTIFICATE-----";
    let mut certificates = Vec::new();
    let mut rest = pem.as_slice();
    while let Some(at) = rest.windows(end.len()).position(|w| w == end) {
        let block = &rest[..at + end.len()];
        certificates.push(
            tpmkey::keyfile::pem_decode(block, "CERTIFICATE")
                .map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))?,
        );
        rest = &rest[at + end.len()..];
    }
    if certificates.is_empty() {
        return Err(Error::BadInput(format!(
            "{}: no PEM certificate",
            path.display()
        )));
    }
    Ok(certificates)
}
