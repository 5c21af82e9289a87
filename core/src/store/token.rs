//! One token: a directory holding its description (`token`), the token secret sealed under
//! each PIN (`so-pin.tss`, `user-pin.tss`), a write lock (`lock`), a change counter
//! (`generation`) and `objects/`: per object `<uid>.obj` (the record, written last: its
//! rename commits the object) with `<uid>.key` (TSS2 PRIVATE KEY) or `<uid>.sealed`.
//! Companion files without their record are leftovers of a killed writer, removed under the
//! lock. Readers take no lock: every file appears by rename, complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::files::{self, WriteLock, TEMP_PREFIX};
use super::objects::Objects;
use super::pin::{pin_auth, Role, TokenSecret, SECRET_LEN};
use super::record::Record;
use crate::error::{Error, Result};
use crate::keyfile::KeyFile;
use crate::sealed::SealedData;
use crate::tpm_identity::TpmIdentity;

const INFO_FILE: &str = "token";
const LOCK_FILE: &str = "lock";
const GENERATION_FILE: &str = "generation";
const OBJECTS_DIR: &str = "objects";
const RECORD_EXT: &str = ".obj";
const KEY_EXT: &str = ".key";
const SEALED_EXT: &str = ".sealed";
/// PKCS#11 token labels are 32 bytes.
pub const MAX_LABEL_LEN: usize = 32;

/// What `token` says: label, serial number (also the directory name), PIN salt, and the
/// vendor and model of the TPM the token was made on (its keys work on no other), so that
/// C_GetTokenInfo needs no TPM command for them. Tokens made before have no TPM lines.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Description {
    label: String,
    serial: String,
    salt: Vec<u8>,
    tpm: Option<(String, String)>,
}

impl Description {
    fn encode(&self) -> String {
        let mut text = format!(
            "label={}\nserial={}\nsalt={}\n",
            self.label,
            self.serial,
            crate::connection::hex(&self.salt)
        );
        if let Some((vendor, model)) = &self.tpm {
            text.push_str(&format!("tpm-vendor={vendor}\ntpm-model={model}\n"));
        }
        text
    }

    fn decode(path: &Path, text: &str) -> Result<Description> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|l| l.strip_prefix('=')))
                .map(str::to_string)
                .ok_or_else(|| files::corrupt(path, format!("no \"{key}=\" line")))
        };
        let salt = get("salt")?;
        let salt = (0..salt.len())
            .step_by(2)
            .map(|i| {
                salt.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| files::corrupt(path, "salt is not hex"))?;
        Ok(Description {
            label: get("label")?,
            serial: get("serial")?,
            salt,
            tpm: get("tpm-vendor").ok().zip(get("tpm-model").ok()),
        })
    }
}

/// Checks a label for the token file (one line, at most 32 bytes); trailing blanks go.
pub fn clean_label(label: &str) -> Result<String> {
    let label = label.trim_end_matches([' ', '\0']);
    if label.len() > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(Error::BadInput(format!(
            "token label {label:?}: at most {MAX_LABEL_LEN} bytes without control characters"
        )));
    }
    Ok(label.to_string())
}

/// Records read so far, valid while the token's generation is unchanged.
#[derive(Debug, Default)]
struct Cache {
    generation: Option<u64>,
    /// The generation file's identity when last read: a `stat` tells whether it changed.
    stamp: Option<FileStamp>,
    records: HashMap<String, (u64, Arc<Record>)>,
    /// `records` sorted and indexed, rebuilt only when they change.
    snapshot: Arc<Objects>,
}

/// Every write of the generation file is a rename of a new file: inode and times change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    len: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            ino: m.ino(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            len: m.len(),
        })
    }
}

#[derive(Debug)]
pub struct Token {
    dir: PathBuf,
    description: Description,
    cache: Cache,
    leftovers_checked: bool,
}

impl Token {
    /// Creates a token in `dir`'s parent, all at once: built in a temporary directory and
    /// renamed into place. The token secret comes from the TPM and is sealed under the SO PIN.
    pub(crate) fn create(dir: &Path, label: &str, so_pin: &[u8]) -> Result<Token> {
        let root = dir
            .parent()
            .ok_or_else(|| Error::BadInput(format!("{}: no parent", dir.display())))?;
        files::create_dir(root)?;
        let serial = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let tmp = root.join(format!("{TEMP_PREFIX}{serial}"));
        files::create_dir(&tmp.join(OBJECTS_DIR))?;
        let description = Description {
            label: clean_label(label)?,
            serial,
            salt: random_bytes(16)?.to_vec(),
            tpm: Some(this_tpm()?),
        };
        let built = Self::write_fresh(&tmp, &description, so_pin)
            .and_then(|()| std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir.display(), e)))
            .and_then(|()| files::sync_dir(root));
        if let Err(e) = built {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Self::open(dir)
    }

    /// Writes a new description and SO PIN object with a new token secret.
    fn write_fresh(dir: &Path, description: &Description, so_pin: &[u8]) -> Result<()> {
        let secret = random_bytes(SECRET_LEN)?;
        let sealed = SealedData::seal(&secret, &pin_auth(&description.salt, so_pin), true, None)?;
        files::write_atomic(
            &dir.join(Role::SecurityOfficer.file()),
            sealed.key_file().to_pem().as_bytes(),
        )?;
        files::write_atomic(&dir.join(INFO_FILE), description.encode().as_bytes())
    }

    /// Opens the token in `dir` (reads its description only).
    pub fn open(dir: &Path) -> Result<Token> {
        let path = dir.join(INFO_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        Ok(Token {
            dir: dir.to_path_buf(),
            description: Description::decode(&path, &text)?,
            cache: Cache::default(),
            leftovers_checked: false,
        })
    }

    pub fn label(&self) -> &str {
        &self.description.label
    }

    pub fn serial(&self) -> &str {
        &self.description.serial
    }

    /// Vendor and model of the TPM the token was made on, when the token records them.
    pub fn tpm_vendor_model(&self) -> Option<(&str, &str)> {
        let (vendor, model) = self.description.tpm.as_ref()?;
        Some((vendor, model))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn user_pin_initialized(&self) -> bool {
        self.dir.join(Role::User.file()).exists()
    }

    fn pin_object(&self, role: Role) -> Result<SealedData> {
        let path = self.dir.join(role.file());
        let data = files::read(&path)?;
        let file = KeyFile::from_pem(&data).map_err(|e| files::corrupt(&path, e))?;
        SealedData::from_key_file(&file).map_err(|e| files::corrupt(&path, e))
    }

    /// Unseals the token secret with `role`'s PIN: the TPM checks the PIN. A wrong PIN is
    /// `Error::is_bad_auth`, a locked-out TPM `Error::is_lockout`.
    pub fn login(&self, role: Role, pin: &[u8]) -> Result<TokenSecret> {
        let object = self.pin_object(role)?;
        let secret = object.unseal(&pin_auth(&self.description.salt, pin))?;
        if secret.len() != SECRET_LEN {
            return Err(files::corrupt(
                &self.dir.join(role.file()),
                "sealed token secret has the wrong length",
            ));
        }
        Ok(TokenSecret::new(secret))
    }

    /// Sets the user PIN (C_InitPIN: the SO is logged in and holds the token secret).
    pub fn init_user_pin(&self, secret: &TokenSecret, pin: &[u8]) -> Result<()> {
        let sealed = SealedData::seal(
            secret.bytes(),
            &pin_auth(&self.description.salt, pin),
            true,
            None,
        )?;
        let _lock = self.lock()?;
        files::write_atomic(
            &self.dir.join(Role::User.file()),
            sealed.key_file().to_pem().as_bytes(),
        )
    }

    /// Changes a PIN: one TPM2_ObjectChangeAuth (the TPM checks the old PIN) and one file.
    pub fn change_pin(&self, role: Role, old: &[u8], new: &[u8]) -> Result<()> {
        let _lock = self.lock()?;
        let salt = &self.description.salt;
        let changed = self
            .pin_object(role)?
            .change_auth(&pin_auth(salt, old), &pin_auth(salt, new))?;
        files::write_atomic(
            &self.dir.join(role.file()),
            changed.key_file().to_pem().as_bytes(),
        )
    }

    /// C_InitToken on an initialised token: the SO PIN must unseal the token secret; then
    /// every object and the user PIN go, and a new token secret is sealed.
    pub fn reinitialize(&mut self, so_pin: &[u8], label: &str) -> Result<()> {
        self.login(Role::SecurityOfficer, so_pin)?;
        let _lock = self.lock()?;
        let objects = self.dir.join(OBJECTS_DIR);
        for (name, _) in files::list(&objects)? {
            files::remove(&objects.join(name))?;
        }
        files::remove(&self.dir.join(Role::User.file()))?;
        let description = Description {
            label: clean_label(label)?,
            serial: self.description.serial.clone(),
            salt: random_bytes(16)?.to_vec(),
            tpm: Some(this_tpm()?),
        };
        Self::write_fresh(&self.dir, &description, so_pin)?;
        self.description = description;
        self.bump_generation()
    }

    fn lock(&self) -> Result<WriteLock> {
        WriteLock::acquire(&self.dir.join(LOCK_FILE))
    }

    fn generation(&self) -> Result<u64> {
        let path = self.dir.join(GENERATION_FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => t
                .trim()
                .parse()
                .map_err(|_| files::corrupt(&path, "not a number")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    /// Called with the lock held, after every change of objects.
    fn bump_generation(&self) -> Result<()> {
        let next = self.generation()?.wrapping_add(1);
        files::write_atomic(
            &self.dir.join(GENERATION_FILE),
            format!("{next}\n").as_bytes(),
        )
    }

    /// A fresh object id (also what the object's authValue derives from).
    pub fn new_uid(&self) -> String {
        files::random_hex(16)
    }

    /// The token's objects, re-reading only what changed since the last call (one `stat`
    /// when nothing did, whatever the number of objects). A damaged record is skipped, never
    /// half-used.
    pub fn objects(&mut self) -> Result<Arc<Objects>> {
        let stamp = FileStamp::of(&self.dir.join(GENERATION_FILE));
        if stamp.is_none() || stamp != self.cache.stamp {
            let generation = self.generation()?;
            if self.cache.generation != Some(generation) {
                self.rescan()?;
                let records = self.cache.records.iter().map(|(uid, (_, r))| (uid, r));
                self.cache.snapshot = Arc::new(Objects::new(records));
                self.cache.generation = Some(generation);
            }
            self.cache.stamp = stamp;
        }
        Ok(self.cache.snapshot.clone())
    }

    fn rescan(&mut self) -> Result<()> {
        let dir = self.dir.join(OBJECTS_DIR);
        let mut seen = HashMap::new();
        for (name, ino) in files::list(&dir)? {
            let Some(uid) = name.strip_suffix(RECORD_EXT) else {
                continue;
            };
            if let Some((cached_ino, record)) = self.cache.records.get(uid) {
                if *cached_ino == ino {
                    seen.insert(uid.to_string(), (ino, record.clone()));
                    continue;
                }
            }
            let data = match std::fs::read(dir.join(&name)) {
                Ok(d) => d,
                // Removed by another process since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(dir.join(&name).display(), e)),
            };
            if let Ok(record) = Record::decode(&data) {
                seen.insert(uid.to_string(), (ino, Arc::new(record)));
            }
        }
        self.cache.records = seen;
        Ok(())
    }

    pub fn object(&mut self, uid: &str) -> Result<Option<Arc<Record>>> {
        self.objects()?;
        Ok(self.cache.records.get(uid).map(|(_, r)| r.clone()))
    }

    fn object_path(&self, uid: &str, ext: &str) -> PathBuf {
        self.dir.join(OBJECTS_DIR).join(format!("{uid}{ext}"))
    }

    /// Stores a new object: companion files first, the record last (its rename commits).
    pub fn add(
        &mut self,
        uid: &str,
        record: &Record,
        key: Option<&KeyFile>,
        sealed: Option<&SealedData>,
    ) -> Result<()> {
        check_uid(uid)?;
        let _lock = self.lock()?;
        self.remove_leftovers()?;
        if let Some(key) = key {
            files::write_atomic(&self.object_path(uid, KEY_EXT), key.to_pem().as_bytes())?;
        }
        if let Some(sealed) = sealed {
            files::write_atomic(
                &self.object_path(uid, SEALED_EXT),
                sealed.key_file().to_pem().as_bytes(),
            )?;
        }
        let record = Record {
            has_key: key.is_some(),
            has_sealed: sealed.is_some(),
            ..record.clone()
        };
        files::write_atomic(&self.object_path(uid, RECORD_EXT), &record.encode())?;
        self.bump_generation()
    }

    /// Replaces the record of an existing object (new attributes, or one half of a key
    /// pair gone). Companion files the new record no longer names are removed after it.
    pub fn update(&mut self, uid: &str, record: &Record) -> Result<()> {
        check_uid(uid)?;
        let _lock = self.lock()?;
        if !self.object_path(uid, RECORD_EXT).exists() {
            return Err(Error::BadInput(format!("object {uid} no longer exists")));
        }
        files::write_atomic(&self.object_path(uid, RECORD_EXT), &record.encode())?;
        if !record.has_key {
            files::remove(&self.object_path(uid, KEY_EXT))?;
        }
        if !record.has_sealed {
            files::remove(&self.object_path(uid, SEALED_EXT))?;
        }
        self.bump_generation()
    }

    /// Removes an object: the record first (the object is gone at once), then the rest.
    pub fn remove(&mut self, uid: &str) -> Result<()> {
        check_uid(uid)?;
        let _lock = self.lock()?;
        files::remove(&self.object_path(uid, RECORD_EXT))?;
        files::sync_dir(&self.dir.join(OBJECTS_DIR))?;
        files::remove(&self.object_path(uid, KEY_EXT))?;
        files::remove(&self.object_path(uid, SEALED_EXT))?;
        self.bump_generation()
    }

    /// The key file of a key pair record.
    pub fn key_file(&self, uid: &str) -> Result<KeyFile> {
        check_uid(uid)?;
        let path = self.object_path(uid, KEY_EXT);
        KeyFile::from_pem(&files::read(&path)?).map_err(|e| files::corrupt(&path, e))
    }

    /// The sealed value of a record that has one.
    pub fn sealed(&self, uid: &str) -> Result<SealedData> {
        check_uid(uid)?;
        let path = self.object_path(uid, SEALED_EXT);
        let file = KeyFile::from_pem(&files::read(&path)?).map_err(|e| files::corrupt(&path, e))?;
        SealedData::from_key_file(&file).map_err(|e| files::corrupt(&path, e))
    }

    /// Under the lock no writer is active: temporary files and companion files without a
    /// record are what killed writers left. Checked once per process and token.
    fn remove_leftovers(&mut self) -> Result<()> {
        if self.leftovers_checked {
            return Ok(());
        }
        let dir = self.dir.join(OBJECTS_DIR);
        let names: Vec<String> = files::list(&dir)?.into_iter().map(|(n, _)| n).collect();
        for name in &names {
            let orphan = [KEY_EXT, SEALED_EXT].iter().any(|ext| {
                name.strip_suffix(ext)
                    .is_some_and(|uid| !names.contains(&format!("{uid}{RECORD_EXT}")))
            });
            if orphan || name.starts_with(TEMP_PREFIX) {
                files::remove(&dir.join(name))?;
            }
        }
        for (name, _) in files::list(&self.dir)? {
            if name.starts_with(TEMP_PREFIX) {
                files::remove(&self.dir.join(name))?;
            }
        }
        self.leftovers_checked = true;
        Ok(())
    }
}

/// Object ids are hex: nothing a caller hands in can name a path outside the token.
/// Vendor and model of the TPM this process talks to, for a token made now.
fn this_tpm() -> Result<(String, String)> {
    let identity = TpmIdentity::read()?;
    Ok((identity.vendor, identity.model))
}

fn check_uid(uid: &str) -> Result<()> {
    if uid.is_empty() || uid.len() > 64 || !uid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadInput(format!("object id {uid:?} is not hex")));
    }
    Ok(())
}

/// Random bytes from the TPM (token secrets and salts).
fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; n]);
    crate::keys::random(&mut out)?;
    Ok(out)
}
