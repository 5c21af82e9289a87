//! File primitives of the token store: atomic replacement (temp file, fsync, rename,
//! directory fsync), atomic exchange of two directories, private permissions (files 0600,
//! directories 0700) and the inter-process write lock (flock on a lock file).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};
use crate::session_crypto::{SessionCrypto, CRYPTO};

/// Prefix of temporary files; a writer killed mid-write leaves one, removed under the lock.
pub const TEMP_PREFIX: &str = ".tmp-";

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    CRYPTO.random(&mut b);
    crate::hex::hex(&b)
}

/// The inode of `path` (a token directory's identity: a re-initialised token is another).
pub fn inode(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| Error::io(path.display(), e))
}

/// Swaps the directories `a` and `b` in one step (renameat2 RENAME_EXCHANGE): a reader or a
/// crash sees one or the other under each name, never a mix or neither.
pub fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::BadInput(format!("{}: NUL in path", p.display())))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: two NUL-terminated paths that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(Error::io(b.display(), std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700.
pub fn create_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir.display(), e))
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir.display(), e))
}

/// Replaces `path` with `data` so that a reader sees the old or the new content, never a
/// mix, and a crash at any moment leaves one of the two.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::BadInput(format!("{}: no directory", path.display())))?;
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", random_hex(8)));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path.display(), e));
    }
    sync_dir(dir)
}

/// Removes `path`; a file already gone is fine.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path.display(), e)),
        _ => Ok(()),
    }
}

/// A file that does not say what it should.
pub fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::io(
        path.display(),
        std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()),
    )
}

/// A lock file (made if missing, 0600, never truncated, closed on exec) for an flock or a
/// POSIX record lock.
pub fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// The exclusive write lock of a token (flock): released when dropped, or when the
/// process dies, so a killed writer never blocks the others.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    pub fn acquire(path: &Path) -> Result<WriteLock> {
        let file = open_lock_file(path).map_err(|e| Error::io(path.display(), e))?;
        loop {
            // SAFETY: flock on a file descriptor we own and keep open for the lock's life.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                // The token directory may have been exchanged (re-initialised) while we
                // waited: the lock that counts is the one `path` names now.
                use std::os::unix::fs::MetadataExt;
                let held = file.metadata().map(|m| m.ino()).ok();
                if held.is_some() && held == fs::metadata(path).map(|m| m.ino()).ok() {
                    return Ok(WriteLock { _file: file });
                }
                drop(file);
                return Self::acquire(path);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(path.display(), e));
            }
        }
    }
}

/// Entries of `dir` as (file name, inode), without a stat per file.
pub fn list(dir: &Path) -> Result<Vec<(String, u64)>> {
    use std::os::unix::fs::DirEntryExt;
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir.display(), e))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.ino()));
        }
    }
    Ok(out)
}

pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path.display(), e))
}
