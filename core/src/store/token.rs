//! One token: a directory holding its description (`token`), what guards the token secret
//! under each PIN (`so-pin.tss`, `user-pin.tss`, see [`super::pin_guard`]), a write lock
//! (`lock`), a change counter (`generation`), the wrong-PIN counts (`pin-state`, see
//! [`super::pin_state`]) and `objects/`: per object `<uid>.obj` (the record, written last:
//! its rename commits the object) with `<uid>.key` (TSS2 PRIVATE KEY) or `<uid>.sealed`.
//!
//! A token made with a platform policy (`tpmkey token init --pcr`) records it in its
//! description as the DER `SEQUENCE OF TPMPolicy` of a key file's `policy [1]`: the module
//! binds every key it generates and every private value it seals in the token to it.
//! Companion files without their record are leftovers of a killed writer, removed under the
//! lock. Readers take no lock: every file appears by rename, complete.
//!
//! Re-initialisation builds the new token whole in a temporary directory beside it and
//! exchanges the two directories in one rename (RENAME_EXCHANGE): a crash at any moment
//! leaves the old token or the new one, both complete; the old one, then under the
//! temporary name, is removed afterwards (or by the next re-initialisation). A process
//! that had the token open notices the exchange (the directory is another inode) and
//! refuses writes made with what it knew of the old token.
//!
//! Damage is reported, never hidden: an unreadable description or PIN file is an error
//! naming the file (`Error::is_damaged_store`); damaged records are listed by
//! [`Token::damaged_records`]; a damaged `generation` file is rewritten.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::files::{self, WriteLock, TEMP_PREFIX};
use super::objects::Objects;
use super::pin::{
    decode_pin_file, encode_pin_file, pin_auth, Role, TokenSecret, SALT_LEN, SECRET_LEN,
};
use super::pin_guard::{Handles, PinGuard};
use super::pin_index;
use super::pin_state::{limit_for_this_tpm, PinState, PIN_TRIES};
use super::record::Record;
use crate::envelope::SealedSecret;
use crate::error::{Error, Result};
use crate::keyfile::{read_policies, write_policies, KeyFile};
use crate::policy::Statement;
use crate::session_crypto::{SessionCrypto, CRYPTO};
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

/// What `token` says: label, serial number (also the directory name), PIN salt, the
/// vendor and model of the TPM the token was made on (its keys work on no other), so that
/// C_GetTokenInfo needs no TPM command for them, and the Name of the storage key its
/// objects are under (another TPM, or this one after a clear, has another). Tokens made
/// before have no TPM or storage-key lines. `platform_policy`: the DER statements new keys
/// and private values are bound to, for a token made with one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Description {
    label: String,
    serial: String,
    salt: Vec<u8>,
    tpm: Option<(String, String)>,
    storage_key: Option<Vec<u8>>,
    platform_policy: Option<Vec<u8>>,
}

impl Description {
    fn encode(&self) -> String {
        let mut text = format!(
            "label={}\nserial={}\nsalt={}\n",
            self.label,
            self.serial,
            crate::hex::hex(&self.salt)
        );
        if let Some((vendor, model)) = &self.tpm {
            text.push_str(&format!("tpm-vendor={vendor}\ntpm-model={model}\n"));
        }
        if let Some(name) = &self.storage_key {
            text.push_str(&format!("storage-key={}\n", crate::hex::hex(name)));
        }
        if let Some(policy) = &self.platform_policy {
            text.push_str(&format!("platform-policy={}\n", crate::hex::hex(policy)));
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
        let salt = crate::hex::unhex(&get("salt")?)
            .ok_or_else(|| files::corrupt(path, "salt is not hex"))?;
        let hex_line = |key: &str| match get(key) {
            Ok(hex) => crate::hex::unhex(&hex)
                .map(Some)
                .ok_or_else(|| files::corrupt(path, format!("{key} is not hex"))),
            Err(_) => Ok(None),
        };
        Ok(Description {
            label: get("label")?,
            serial: get("serial")?,
            salt,
            tpm: get("tpm-vendor").ok().zip(get("tpm-model").ok()),
            storage_key: hex_line("storage-key")?,
            platform_policy: hex_line("platform-policy")?,
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
    /// Record files that do not decode: (file, what is wrong).
    damaged: Vec<(PathBuf, String)>,
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
    /// The token directory's inode when opened or last logged in to: another one means it
    /// was re-initialised since, and what this process knows of it is stale.
    dir_ino: AtomicU64,
    description: Description,
    cache: Cache,
    leftovers_checked: bool,
}

impl Token {
    /// Creates a token in `dir`'s parent, all at once: built in a temporary directory and
    /// renamed into place. The token secret comes from the TPM and is sealed under the SO PIN.
    /// `platform_policy`: the statements its keys and private values will be bound to.
    pub(crate) fn create(
        dir: &Path,
        label: &str,
        so_pin: &[u8],
        platform_policy: Option<&[Statement]>,
    ) -> Result<Token> {
        let platform_policy = platform_policy.map(encode_policy).transpose()?;
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
        let mut description = Description {
            label: clean_label(label)?,
            serial,
            salt: random_bytes(16)?.to_vec(),
            tpm: Some(this_tpm()?),
            storage_key: None,
            platform_policy,
        };
        let built = Self::write_fresh(&tmp, &mut description, so_pin, 0)
            .and_then(|()| std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir.display(), e)))
            .and_then(|()| files::sync_dir(root));
        if let Err(e) = built {
            discard(&tmp);
            return Err(e);
        }
        Self::open(dir)
    }

    /// Writes a new token (description, SO PIN protection of a new token secret, generation)
    /// into the empty directory `dir`, which is not yet the token's; the description gets
    /// the Name of the storage key the token is made under.
    fn write_fresh(
        dir: &Path,
        description: &mut Description,
        so_pin: &[u8],
        generation: u64,
    ) -> Result<()> {
        let secret = TokenSecret::new(random_bytes(SECRET_LEN)?);
        let salt = &description.salt;
        let guard = PinGuard::make(&secret, &pin_auth(salt, so_pin), Handles::default())?;
        let written = storage_key_name(guard.parent()).and_then(|name| {
            description.storage_key = Some(name);
            files::write_atomic(
                &dir.join(Role::SecurityOfficer.file()),
                encode_pin_file(salt, &guard).as_bytes(),
            )
        });
        if let Err(e) = written {
            // The PIN file that would name the indices is not there: delete them now.
            let _ = guard.release();
            return Err(e);
        }
        files::write_atomic(
            &dir.join(GENERATION_FILE),
            format!("{generation}\n").as_bytes(),
        )?;
        files::write_atomic(&dir.join(INFO_FILE), description.encode().as_bytes())
    }

    /// Opens the token in `dir` (reads its description only). A missing or damaged
    /// description is an error naming the file (`Error::is_damaged_store` when damaged).
    pub fn open(dir: &Path) -> Result<Token> {
        let path = dir.join(INFO_FILE);
        let text = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
        let text = String::from_utf8(text).map_err(|_| files::corrupt(&path, "not UTF-8 text"))?;
        Ok(Token {
            dir: dir.to_path_buf(),
            dir_ino: AtomicU64::new(files::inode(dir)?),
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

    /// Why this token cannot be used on the TPM this process talks to, if it cannot: its
    /// objects are under a storage key with another Name (the token was made on another
    /// TPM, or this TPM was cleared since). Tokens that do not record the Name pass.
    pub fn foreign_to_this_tpm(&self) -> Result<Option<String>> {
        let Some(recorded) = &self.description.storage_key else {
            return Ok(None);
        };
        let (_, so) = self.pin_guard(Role::SecurityOfficer)?;
        let parent = so.parent();
        if storage_key_name(parent)? == *recorded {
            return Ok(None);
        }
        let made_on = match &self.description.tpm {
            Some((vendor, model)) => format!(" (made on a {vendor} {model})"),
            None => String::new(),
        };
        Ok(Some(format!(
            "token {}{made_on} cannot be used with this TPM: its PINs and keys are under a \
             storage key (0x{parent:08x}) this TPM does not have; it was made on another TPM, \
             or this TPM was cleared since. Use it on the TPM it was made on; here, make a new \
             token (its keys cannot be moved)",
            self.description.serial
        )))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The platform policy the token binds its new keys and private values to, if it was
    /// made with one. A description whose policy does not decode is damaged store.
    pub fn platform_policy(&self) -> Result<Option<Vec<Statement>>> {
        let Some(der) = &self.description.platform_policy else {
            return Ok(None);
        };
        let path = self.dir.join(INFO_FILE);
        let decoded = read_policies(der, "platform-policy")
            .and_then(|p| Statement::decode_all(&p, "platform-policy"))
            .map_err(|e| files::corrupt(&path, e))?;
        if decoded.is_empty() {
            return Err(files::corrupt(&path, "platform-policy has no statement"));
        }
        Ok(Some(decoded))
    }

    pub fn user_pin_initialized(&self) -> bool {
        self.dir.join(Role::User.file()).exists()
    }

    /// The salt and the protection of `role`'s PIN, read together from its one file.
    fn pin_guard(&self, role: Role) -> Result<(Vec<u8>, PinGuard)> {
        let path = self.dir.join(role.file());
        let (salt, guard) = decode_pin_file(&path, &files::read(&path)?)?;
        let salt = match salt {
            Some(salt) => salt,
            // An older token: its description holds the salt, read afresh.
            None => {
                let info = self.dir.join(INFO_FILE);
                let text =
                    std::fs::read_to_string(&info).map_err(|e| Error::io(info.display(), e))?;
                Description::decode(&info, &text)?.salt
            }
        };
        Ok((salt, guard))
    }

    /// The token's wrong-PIN counts (a token without them has had none).
    pub fn pin_state(&self) -> Result<PinState> {
        PinState::read(&self.dir)
    }

    /// Unseals the token secret with `role`'s PIN: the TPM checks the PIN. A wrong PIN is
    /// `Error::is_bad_auth`, a locked-out TPM `Error::is_lockout`, a PIN at the token's own
    /// limit `Error::is_pin_locked` (no TPM command).
    pub fn login(&self, role: Role, pin: &[u8]) -> Result<TokenSecret> {
        let dir_ino = files::inode(&self.dir)?;
        let (salt, guard) = self.pin_guard(role)?;
        let secret = self.pin_try(role, &guard, None, || guard.unseal(&pin_auth(&salt, pin)))?;
        if secret.len() != SECRET_LEN {
            return Err(files::corrupt(
                &self.dir.join(role.file()),
                "sealed token secret has the wrong length",
            ));
        }
        // The secret is this token's: writes made with it are current again.
        self.dir_ino.store(dir_ino, Ordering::Relaxed);
        Ok(TokenSecret::new(secret))
    }

    /// Runs `check`, a TPM command that checks `role`'s PIN, unless the token's limit is
    /// reached; counts a wrong PIN and clears the count after a right one. The state file
    /// is written only when it changes, under the write lock (`held` when the caller has it).
    ///
    /// For a PIN checked by a PIN index (`guard`), the TPM counts too: the file then only
    /// mirrors it for the PIN flags, and the TPM's refusal at its limit is recorded as the
    /// token's.
    fn pin_try<R>(
        &self,
        role: Role,
        guard: &PinGuard,
        held: Option<&WriteLock>,
        check: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let in_tpm = guard.pin_index().is_some();
        let before = self.pin_state()?;
        if before.is_locked(role) {
            return Err(self.pin_locked(role, &before, in_tpm, false));
        }
        if in_tpm {
            // PolicySecret needs the HMAC session, which a policy object's first use
            // would not start.
            pin_index::prepare_check()?;
        }
        let result = check();
        if matches!(&result, Err(e) if pin_index::is_exhausted(e)) {
            let _lock = match held {
                Some(_) => None,
                None => Some(WriteLock::acquire(&self.dir.join(LOCK_FILE))?),
            };
            let mut state = self.pin_state()?;
            state.limit = PIN_TRIES;
            state.set_failures(role, PIN_TRIES);
            state.write(&self.dir)?;
            return Err(self.pin_locked(role, &state, true, true));
        }
        let wrong = matches!(&result, Err(e) if e.is_bad_auth());
        if wrong || (result.is_ok() && before.failures(role) > 0) {
            let _lock = match held {
                Some(_) => None,
                None => Some(WriteLock::acquire(&self.dir.join(LOCK_FILE))?),
            };
            // Another process may have counted meanwhile.
            let mut state = self.pin_state()?;
            let failures = if wrong {
                state.failures(role).saturating_add(1)
            } else {
                0
            };
            state.set_failures(role, failures);
            if wrong && state.limit == 0 {
                state.limit = if in_tpm {
                    PIN_TRIES
                } else {
                    limit_for_this_tpm()
                };
            }
            state.write(&self.dir)?;
        }
        result
    }

    /// `in_tpm`: the PIN has an index (what unlocks it differs); `by_tpm`: the TPM refused.
    fn pin_locked(&self, role: Role, state: &PinState, in_tpm: bool, by_tpm: bool) -> Error {
        Error::PinLocked {
            serial: self.description.serial.clone(),
            role: role.name(),
            tries: state.failures(role),
            remedy: if in_tpm {
                role.remedy_in_tpm()
            } else {
                role.remedy()
            },
            by_tpm,
        }
    }

    /// Sets the user PIN (C_InitPIN: the SO is logged in and holds the token secret).
    ///
    /// On a token with PIN indices the user's index is replaced at the same handle (a new
    /// authValue and a zero count), so a locked user PIN is unlocked without touching the
    /// TPM's dictionary-attack counter.
    pub fn init_user_pin(&self, secret: &TokenSecret, pin: &[u8]) -> Result<()> {
        let mut salt = vec![0u8; SALT_LEN];
        CRYPTO.random(&mut salt);
        let auth = pin_auth(&salt, pin);
        let _lock = self.lock()?;
        let (_, so) = self.pin_guard(Role::SecurityOfficer)?;
        // The protection replaced; a damaged user PIN file is replaced too (its indices,
        // unknown, stay).
        let old = match self.user_pin_initialized() {
            true => self
                .pin_guard(Role::User)
                .map(|(_, old)| old)
                .inspect_err(|e| {
                    crate::log::write(
                        crate::log::Level::Error,
                        "tpmkey",
                        &format!("C_InitPIN replaces a user PIN file it cannot read: {e}"),
                    )
                })
                .ok(),
            false => None,
        };
        let guard = if so.pin_index().is_some() {
            PinGuard::make(secret, &auth, Handles::default())?
        } else {
            PinGuard::object_only(secret, &auth)?
        };
        self.replace_pin_file(Role::User, &salt, &guard, old.as_ref())?;
        // A new user PIN starts with no wrong tries (after a user lockout, too).
        let mut state = self.pin_state()?;
        if state.user_failures > 0 {
            state.user_failures = 0;
            state.write(&self.dir)?;
        }
        Ok(())
    }

    /// Changes a PIN: one TPM2_ObjectChangeAuth (the TPM checks the old PIN) and one file.
    /// With a PIN index: the old PIN reads the token secret (the index counts a wrong one),
    /// a new protection keeps it under the new PIN (a secret index where the TPM has room),
    /// the PIN file names it, and only then are the old indices deleted: a failure or a
    /// kill in between leaves indices behind, never a role without its secret.
    pub fn change_pin(&self, role: Role, old: &[u8], new: &[u8]) -> Result<()> {
        let lock = self.lock()?;
        let (salt, guard) = self.pin_guard(role)?;
        let changed = match &guard {
            PinGuard::Object(object) if guard.pin_index().is_none() => {
                let changed = self.pin_try(role, &guard, Some(&lock), || {
                    object.change_auth(&pin_auth(&salt, old), &pin_auth(&salt, new))
                })?;
                PinGuard::Object(changed)
            }
            _ => {
                let secret = self.pin_try(role, &guard, Some(&lock), || {
                    guard.unseal(&pin_auth(&salt, old))
                })?;
                PinGuard::make(
                    &TokenSecret::new(secret),
                    &pin_auth(&salt, new),
                    Handles::default(),
                )?
            }
        };
        self.replace_pin_file(role, &salt, &changed, Some(&guard))
    }

    /// Writes `role`'s PIN file for `new`, then deletes the indices of the protection it
    /// replaces (`old`). Unwritten, the file still names `old`, and `new`'s indices go.
    fn replace_pin_file(
        &self,
        role: Role,
        salt: &[u8],
        new: &PinGuard,
        old: Option<&PinGuard>,
    ) -> Result<()> {
        let written = files::write_atomic(
            &self.dir.join(role.file()),
            encode_pin_file(salt, new).as_bytes(),
        );
        if let Err(e) = written {
            if let Some(old) = old {
                let _ = new.release_except(old.handles());
            } else {
                let _ = new.release();
            }
            return Err(e);
        }
        if let Some(old) = old {
            if let Err(e) = old.release_except(new.handles()) {
                crate::log::write(
                    crate::log::Level::Error,
                    "tpmkey",
                    &format!("the old PIN's NV indices were not deleted: {e}"),
                );
            }
        }
        Ok(())
    }

    /// C_InitToken on an initialised token: the SO PIN must unseal the token secret; then
    /// every object and the user PIN go, and a new token secret is sealed.
    pub fn reinitialize(&mut self, so_pin: &[u8], label: &str) -> Result<()> {
        self.login(Role::SecurityOfficer, so_pin)?;
        let _lock = self.lock()?;
        let root = self
            .dir
            .parent()
            .ok_or_else(|| Error::BadInput(format!("{}: no parent", self.dir.display())))?
            .to_path_buf();
        let serial = self.description.serial.clone();
        // Old tokens left by an earlier re-initialisation that was killed before removing them.
        let leftover = format!("{TEMP_PREFIX}reinit-{serial}-");
        for (name, _) in files::list(&root)? {
            if name.starts_with(&leftover) {
                discard(&root.join(name));
            }
        }
        let mut description = Description {
            label: clean_label(label)?,
            serial: serial.clone(),
            salt: random_bytes(SALT_LEN)?.to_vec(),
            tpm: Some(this_tpm()?),
            storage_key: None,
            // The platform policy is the token's, not its objects': it stays.
            platform_policy: self.description.platform_policy.clone(),
        };
        // A generation the caches of other processes do not hold.
        let generation = match self.generation()? {
            Some(g) => g.wrapping_add(1),
            None => random_generation(),
        };
        let tmp = root.join(format!("{leftover}{}", files::random_hex(8)));
        let built = files::create_dir(&tmp.join(OBJECTS_DIR))
            .and_then(|()| Self::write_fresh(&tmp, &mut description, so_pin, generation))
            .and_then(|()| files::exchange(&tmp, &self.dir));
        if let Err(e) = built {
            discard(&tmp);
            return Err(e);
        }
        // The new token is in place; what follows only tidies up (the old token's PIN
        // indices too: an old token left over keeps the PIN files naming them, for the
        // next re-initialisation to delete).
        let _ = files::sync_dir(&root);
        discard(&tmp);
        if let Ok(ino) = files::inode(&self.dir) {
            self.dir_ino.store(ino, Ordering::Relaxed);
        }
        self.description = description;
        self.cache = Cache::default();
        self.leftovers_checked = false;
        Ok(())
    }

    /// Deletes the token: its NV indices in the TPM first (none is left behind; a token
    /// whose indices cannot be deleted stays), then its directory.
    pub fn delete(self) -> Result<()> {
        let _lock = self.lock()?;
        release_pin_indices(&self.dir)?;
        std::fs::remove_dir_all(&self.dir).map_err(|e| Error::io(self.dir.display(), e))
    }

    /// The write lock, for a token that is still the one this process opened.
    fn lock(&self) -> Result<WriteLock> {
        let lock = WriteLock::acquire(&self.dir.join(LOCK_FILE))?;
        if files::inode(&self.dir)? != self.dir_ino.load(Ordering::Relaxed) {
            return Err(Error::StaleToken(self.description.serial.clone()));
        }
        Ok(lock)
    }

    /// The change counter; None when the file is damaged (it is rewritten at the next change).
    fn generation(&self) -> Result<Option<u64>> {
        let path = self.dir.join(GENERATION_FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(0)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(None),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    /// Called with the lock held, after every change of objects. A damaged counter is
    /// replaced by a random one (no other process's cache holds it).
    fn bump_generation(&self) -> Result<()> {
        let next = match self.generation()? {
            Some(g) => g.wrapping_add(1),
            None => random_generation(),
        };
        files::write_atomic(
            &self.dir.join(GENERATION_FILE),
            format!("{next}\n").as_bytes(),
        )
    }

    /// After a change is committed: tells other processes, but never turns the change into
    /// a failure. If the counter cannot be written, this process forgets its cache so it
    /// sees its own change; others see it at the next change that is counted.
    fn announce_change(&mut self) {
        if self.bump_generation().is_err() {
            self.cache = Cache::default();
        }
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
            let generation = match self.generation()? {
                Some(g) => g,
                // Damaged: rewritten under the lock, then read again.
                None => {
                    let _lock = self.lock()?;
                    if self.generation()?.is_none() {
                        self.bump_generation()?;
                    }
                    self.generation()?.unwrap_or_default()
                }
            };
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
        let mut damaged = Vec::new();
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
            match Record::decode(&data) {
                Ok(record) => {
                    seen.insert(uid.to_string(), (ino, Arc::new(record)));
                }
                Err(why) => damaged.push((dir.join(&name), why)),
            }
        }
        self.cache.records = seen;
        self.cache.damaged = damaged;
        Ok(())
    }

    /// Record files of the last [`Token::objects`] that do not decode, with what is wrong:
    /// their objects are left out, and the caller reports them.
    pub fn damaged_records(&self) -> &[(PathBuf, String)] {
        &self.cache.damaged
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
        sealed: Option<&SealedSecret>,
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
        self.announce_change();
        Ok(())
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
        // Committed: leftover companion files are removed by the next writer if this fails.
        if !record.has_key {
            let _ = files::remove(&self.object_path(uid, KEY_EXT));
        }
        if !record.has_sealed {
            let _ = files::remove(&self.object_path(uid, SEALED_EXT));
        }
        self.announce_change();
        Ok(())
    }

    /// Removes an object: the record first (the object is gone at once), then the rest.
    pub fn remove(&mut self, uid: &str) -> Result<()> {
        check_uid(uid)?;
        let _lock = self.lock()?;
        files::remove(&self.object_path(uid, RECORD_EXT))?;
        // Gone: the companion files are leftovers the next writer removes if this fails.
        let _ = files::sync_dir(&self.dir.join(OBJECTS_DIR));
        let _ = files::remove(&self.object_path(uid, KEY_EXT));
        let _ = files::remove(&self.object_path(uid, SEALED_EXT));
        self.announce_change();
        Ok(())
    }

    /// The key file of a key pair record.
    pub fn key_file(&self, uid: &str) -> Result<KeyFile> {
        check_uid(uid)?;
        let path = self.object_path(uid, KEY_EXT);
        KeyFile::from_pem(&files::read(&path)?).map_err(|e| files::corrupt(&path, e))
    }

    /// The sealed value of a record that has one: sealed directly (values written before
    /// envelopes, at most 128 bytes) or in an envelope.
    pub fn sealed(&self, uid: &str) -> Result<SealedSecret> {
        check_uid(uid)?;
        let path = self.object_path(uid, SEALED_EXT);
        let file = KeyFile::from_pem(&files::read(&path)?).map_err(|e| files::corrupt(&path, e))?;
        SealedSecret::from_key_file(&file).map_err(|e| files::corrupt(&path, e))
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

/// A platform policy as the description holds it; refused empty (it would bind nothing).
fn encode_policy(statements: &[Statement]) -> Result<Vec<u8>> {
    if statements.is_empty() {
        return Err(Error::BadInput(
            "a token's platform policy needs at least one statement".into(),
        ));
    }
    Ok(write_policies(&Statement::encode_all(statements)?))
}

/// Vendor and model of the TPM this process talks to, for a token made now.
fn this_tpm() -> Result<(String, String)> {
    let identity = TpmIdentity::read()?;
    Ok((identity.vendor, identity.model))
}

/// The Name of the storage key `parent` (0x40000001: the storage primary) on this TPM;
/// no command when the connection has it loaded already.
fn storage_key_name(parent: u32) -> Result<Vec<u8>> {
    crate::connection::with_link(|link| {
        link.run(crate::connection::Need::Parent(parent), |_, target| {
            target
                .map(|t| t.name.clone())
                .ok_or_else(|| Error::Integrity("parent not loaded".into()))
        })
    })
}

/// Object ids are hex: nothing a caller hands in can name a path outside the token.
fn check_uid(uid: &str) -> Result<()> {
    if uid.is_empty() || uid.len() > 64 || !uid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadInput(format!("object id {uid:?} is not hex")));
    }
    Ok(())
}

/// A change counter no cache holds (a damaged counter's replacement).
fn random_generation() -> u64 {
    let mut b = [0u8; 8];
    CRYPTO.random(&mut b);
    u64::from_le_bytes(b)
}

/// Random bytes from the TPM (token secrets and salts).
fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; n]);
    crate::keys::random(&mut out)?;
    Ok(out)
}

/// Deletes the NV indices the PIN files in `dir` name.
fn release_pin_indices(dir: &Path) -> Result<()> {
    for role in [Role::SecurityOfficer, Role::User] {
        release_indices_of(dir, role)?;
    }
    Ok(())
}

/// Deletes the NV indices `role`'s PIN file in `dir` names, if any.
fn release_indices_of(dir: &Path, role: Role) -> Result<()> {
    let path = dir.join(role.file());
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    match decode_pin_file(&path, &data) {
        Ok((_, guard)) => guard.release(),
        Err(e) => {
            crate::log::write(
                crate::log::Level::Error,
                "tpmkey",
                &format!("the NV indices a damaged PIN file names stay in the TPM: {e}"),
            );
            Ok(())
        }
    }
}

/// Removes a token directory that is no token's (a half-built one, an old one after
/// re-initialisation) with its NV indices; kept if they cannot be deleted now.
fn discard(dir: &Path) {
    if release_pin_indices(dir).is_ok() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
