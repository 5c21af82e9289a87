//! The one TPM connection of this process: opened lazily, re-opened after fork (pid check),
//! flushed at exit, serialised for threads, and each operation retried while the TPM is
//! full or once after our state in it was lost. It owns the salted session, the storage
//! keys (`storage_key`) and the objects it has in the TPM (`loaded_objects`).

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use zeroize::Zeroizing;

use crate::commands::Tpm;
use crate::config::{behind_resource_manager, Config, ObjectPolicy};
use crate::error::{Error, Result};
use crate::keep_lease::KeepLease;
use crate::policy_session::PolicySession;
use crate::public_key::{Curve, KeyPublic, PublicKey};
use crate::session::SaltKey;
use crate::tcti::Tcti;
use crate::wire::TPM_RH_OWNER;

pub use super::loaded_objects::{Target, MAX_TRANSIENT};

use super::exit_hook;
use super::loaded_objects::{LoadedObjects, STORAGE_KEY_ID};
use super::retry::{backoff, classify, Failure, BUSY_DEADLINE};
use super::storage_key::StorageKeys;

/// A key the connection can load: identity, parent and blob, or a persistent handle.
#[derive(Debug)]
pub enum Loadable<'a> {
    Blob {
        id: u64,
        parent: u32,
        private: &'a [u8],
        public: &'a [u8],
        name: &'a [u8],
    },
    Persistent {
        handle: u32,
        name: &'a [u8],
    },
}

/// What an operation needs loaded before it runs.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    Nothing,
    /// A key, with its authValue.
    Key(&'a Loadable<'a>, &'a [u8]),
    /// A key with a policy, with its authValue: the policy session is started too.
    PolicyKey(&'a Loadable<'a>, &'a [u8]),
    /// A parent (0x40000001 for the storage primary, or a persistent handle), for Create.
    Parent(u32),
    /// A parent with the authorization given here instead of the configured `parent-auth`:
    /// a persistent parent's authValue, or for 0x40000001 the owner hierarchy's (used if
    /// the storage primary has to be created).
    ParentWithAuth(u32, &'a [u8]),
}

pub struct Link {
    pid: u32,
    pub tpm: Tpm,
    config: Config,
    policy: ObjectPolicy,
    /// Under `keep` the storage primary stays loaded until an operation does not need it
    /// (`storage.used`), then goes: behind a resource manager every loaded context costs
    /// commands on every command.
    storage: StorageKeys,
    /// Whether the current operation used a key: only then does an unneeded storage key go
    /// (a GetCapability or GetRandom between login and the first signature must not cost a
    /// save and a reload of it).
    key_used: bool,
    objects: LoadedObjects,
    /// Held while this process keeps objects loaded on a TPM without a resource manager,
    /// where every process shares the TPM's few slots.
    keep_lease: Option<KeepLease>,
    /// `keep` was configured on a TPM without a resource manager: without the lease, this
    /// process takes it when it next uses a key and the lease is free.
    wants_lease: bool,
    /// A key is being opened (loaded to check it, not used).
    opening: bool,
    /// An operation used a key (opening one does not count).
    used_keys: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("tcti", &self.config.tcti)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Values handed in by the front end; `parent-auth` is a secret, so values are zeroized.
static EXPLICIT: Mutex<Vec<(String, Zeroizing<String>)>> = Mutex::new(Vec::new());
static LINK: Mutex<Option<Link>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic caught at the FFI edge must not brick the process: take the state as it is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the values a front end hands in (openssl.cnf section, module config); they win
/// over environment and file. An open connection is closed so the next use sees them.
pub fn configure(explicit: &[(&str, &str)]) -> Result<Config> {
    let pairs: Vec<(&str, &str)> = explicit.to_vec();
    let config = Config::load(&pairs)?;
    *lock(&EXPLICIT) = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Zeroizing::new(v.to_string())))
        .collect();
    shutdown();
    Ok(config)
}

/// The configuration this process uses.
pub fn current_config() -> Result<Config> {
    let explicit = lock(&EXPLICIT).clone();
    let pairs: Vec<(&str, &str)> = explicit
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Config::load(&pairs)
}

/// Runs `f` with this process's connection, opening it (again after a fork) if needed.
pub fn with_link<R>(f: impl FnOnce(&mut Link) -> Result<R>) -> Result<R> {
    let mut guard = lock(&LINK);
    let pid = std::process::id();
    if guard.as_ref().is_some_and(|l| l.pid != pid) {
        // Inherited from the parent: its handles, nonces and socket are not ours.
        if let Some(old) = guard.take() {
            old.abandon();
        }
    }
    if guard.is_none() {
        *guard = Some(Link::open(current_config()?)?);
        register_exit_flush();
    }
    match guard.as_mut() {
        Some(link) => f(link),
        None => Err(Error::Integrity("connection vanished".into())),
    }
}

/// Flushes what this process holds in the TPM and closes the connection.
pub fn shutdown() {
    release(lock(&LINK));
}

fn release(mut guard: MutexGuard<'_, Option<Link>>) {
    if let Some(mut link) = guard.take() {
        if link.pid == std::process::id() {
            link.release_all();
        } else {
            link.abandon();
        }
    }
}

/// The connection flushes what it holds at process exit (see `exit_hook`).
fn register_exit_flush() {
    exit_hook::register(flush_at_exit, yield_after_fork);
}

extern "C" fn flush_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        // Another thread may be inside an operation while the process exits: never wait.
        if let Ok(guard) = LINK.try_lock() {
            release(guard);
        }
    });
}

/// A process that forks while it keeps objects on a TPM without a resource manager and has
/// only opened keys, never used them (an nginx or Apache master, which opens keys for the
/// workers it forks), gives up the keep lease and what it holds, so that the worker that
/// uses the keys keeps them. It takes the lease back if it uses a key later and the lease
/// is free. Runs in the parent.
extern "C" fn yield_after_fork() {
    let _ = std::panic::catch_unwind(|| {
        // Another thread may be inside an operation: never wait.
        if let Ok(mut guard) = LINK.try_lock() {
            if let Some(link) = guard.as_mut() {
                link.yield_lease();
            }
        }
    });
}

impl Link {
    fn open(config: Config) -> Result<Link> {
        let tcti = Tcti::open(&config.tcti, config.timeout)?;
        let mut policy = config.object_policy();
        let wants_lease = policy == ObjectPolicy::Keep && !behind_resource_manager(&config.tcti);
        let mut keep_lease = None;
        if wants_lease {
            keep_lease = KeepLease::try_acquire(&config);
            if keep_lease.is_none() {
                policy = ObjectPolicy::PerOperation;
            }
        }
        Ok(Link {
            pid: std::process::id(),
            tpm: Tpm::new(tcti, config.session),
            policy,
            keep_lease,
            wants_lease,
            opening: false,
            used_keys: false,
            config,
            storage: StorageKeys::default(),
            key_used: false,
            objects: LoadedObjects::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn policy(&self) -> ObjectPolicy {
        self.policy
    }

    fn abandon(self) {
        let Link { tpm, .. } = self;
        tpm.into_tcti().abandon();
    }

    /// Runs `f`, retrying while the TPM is full and starting over once when our state in
    /// the TPM was lost (TPM restarted, TCTI broke). Wrong passwords are never retried.
    pub fn retrying<R>(&mut self, mut f: impl FnMut(&mut Link) -> Result<R>) -> Result<R> {
        let start = Instant::now();
        let mut reset_done = false;
        let mut attempt: u32 = 0;
        loop {
            self.storage.used = false;
            self.key_used = false;
            self.tpm.sessions_used = (false, false);
            self.tpm.out_of_step = false;
            let result = f(self);
            self.after_operation();
            let Err(e) = result else { return result };
            match classify(&e) {
                // A resource manager gives each connection slots of its own, so "full" there
                // means its state for this connection is broken (tpm2-abrmd after its TPM
                // restarted): a new connection starts clean.
                Failure::Busy if !reset_done && behind_resource_manager(&self.config.tcti) => {
                    reset_done = true;
                    self.reset()?;
                }
                Failure::Busy if start.elapsed() <= BUSY_DEADLINE => {
                    self.release_all_loaded();
                    attempt = attempt.saturating_add(1);
                    std::thread::sleep(backoff(attempt));
                }
                Failure::Lost if !reset_done => {
                    reset_done = true;
                    self.reset()?;
                }
                // No password was involved, so the TPM's "bad auth" means our state is out
                // of step with it (a session salted to, or a context saved from, an object
                // that another process had at our handle after a TPM restart): start over.
                Failure::Fatal if self.tpm.out_of_step && !reset_done => {
                    reset_done = true;
                    self.reset()?;
                }
                _ => return Err(e),
            }
        }
    }

    /// Runs one TPM operation with the session ready and `need` loaded.
    pub fn run<R>(
        &mut self,
        need: Need<'_>,
        mut op: impl FnMut(&mut Tpm, Option<&Target>) -> Result<R>,
    ) -> Result<R> {
        self.retrying(|link| {
            let target = link.prepare(need)?;
            op(&mut link.tpm, target.as_ref())
        })
    }

    fn prepare(&mut self, need: Need<'_>) -> Result<Option<Target>> {
        let uses_key = matches!(need, Need::Key(..) | Need::PolicyKey(..));
        self.used_keys |= uses_key && !self.opening;
        if uses_key && self.wants_lease && self.keep_lease.is_none() {
            self.keep_lease = KeepLease::try_acquire(&self.config);
            if self.keep_lease.is_some() {
                self.policy = ObjectPolicy::Keep;
            }
        }
        let target = self.prepare_target(need)?;
        if let (Need::PolicyKey(key, _), Some(t)) = (need, &target) {
            self.ensure_policy_session(key, t.handle)?;
        }
        Ok(target)
    }

    fn prepare_target(&mut self, need: Need<'_>) -> Result<Option<Target>> {
        if self.tpm.session.is_none() {
            // A key with a policy is used through the policy session alone: no HMAC session
            // is started for it (one session slot, not two, on TPMs that have three).
            let first_use = match need {
                Need::Key(key, auth) if self.tpm.use_session => Some((key, auth, true)),
                Need::PolicyKey(key, auth) => Some((key, auth, false)),
                _ => None,
            };
            if let Some((key, auth, hmac_session)) = first_use {
                self.key_used = true;
                if let Some((handle, name)) = self.load_and_salt(key, hmac_session)? {
                    let auth = Zeroizing::new(auth.to_vec());
                    return Ok(Some(Target { handle, name, auth }));
                }
            }
        }
        if let Need::ParentWithAuth(TPM_RH_OWNER, owner_auth) = need {
            // Before the session, which the primary may salt.
            self.primary(Some(owner_auth))?;
        }
        let needs_hmac_session = match need {
            Need::PolicyKey(Loadable::Blob { id, .. }, _) => !self.holds(*id),
            _ => true,
        };
        if self.tpm.use_session && needs_hmac_session {
            self.ensure_session()?;
        }
        match need {
            Need::Nothing => Ok(None),
            Need::Key(k, auth) | Need::PolicyKey(k, auth) => {
                self.key_used = true;
                let (handle, name) = self.ensure_loaded(k)?;
                Ok(Some(Target {
                    handle,
                    name,
                    auth: Zeroizing::new(auth.to_vec()),
                }))
            }
            Need::Parent(p) => self.parent(p, None).map(Some),
            Need::ParentWithAuth(p, auth) => self.parent(p, Some(auth)).map(Some),
        }
    }

    /// Forgets all state and reconnects (the TPM restarted, or the TCTI broke). What this
    /// process holds is flushed first: if the TPM is still there, a session left behind
    /// would count against its few session slots until the TPM is reset.
    fn reset(&mut self) -> Result<()> {
        self.release_all();
        let config = self.config.clone();
        let fresh = Link::open(config)?;
        let old = std::mem::replace(self, fresh);
        drop(old);
        Ok(())
    }

    /// Starts the HMAC session if there is none. A saved one is loaded by the command layer
    /// when a command needs it, not before: an operation on a policy key never does.
    fn ensure_session(&mut self) -> Result<()> {
        if self.tpm.session.is_some() {
            return Ok(());
        }
        self.tpm.session_context = None;
        let (handle, salt) = self.salt_key()?;
        let session = self.tpm.start_salted_session(handle, &salt)?;
        self.tpm.session = Some(session);
        Ok(())
    }

    /// Starts the policy session if there is none: salted with the key itself when it can
    /// salt (its public area from the key file), else with the storage key.
    fn ensure_policy_session(&mut self, key: &Loadable<'_>, key_handle: u32) -> Result<()> {
        if self.tpm.policy.session.is_some() {
            return Ok(());
        }
        let own = match key {
            Loadable::Blob { public, .. } => KeyPublic::parse(public)
                .ok()
                .filter(salts_sessions)
                .and_then(|p| match p.key {
                    PublicKey::Ec { x, y, .. } => Some(SaltKey { x, y }),
                    _ => None,
                }),
            Loadable::Persistent { .. } => None,
        };
        let (handle, salt) = match own {
            Some(salt) => (key_handle, salt),
            None => self.salt_key()?,
        };
        let session = self.tpm.start_policy_session(handle, &salt)?;
        self.tpm.policy.session = Some(PolicySession::new(session));
        Ok(())
    }

    /// Starts the session salted with the key about to be used, when that key can salt
    /// (an ECC P-256 decryption key) and loads without a secret (empty parent authValue).
    /// Only a key file's key qualifies: its public area comes from the file, so no
    /// unauthenticated TPM answer is trusted. A persistent key's public area comes from
    /// ReadPublic, which a bus attacker can answer; such keys use the pinned storage key.
    /// Process start to first signature with a key file: Load, StartAuthSession, Sign. For
    /// a key with a policy (`hmac_session` false) only the key is loaded here: the policy
    /// session, salted with the key, comes next.
    fn load_and_salt(
        &mut self,
        key: &Loadable<'_>,
        hmac_session: bool,
    ) -> Result<Option<(u32, Vec<u8>)>> {
        let (handle, name, public) = match key {
            Loadable::Persistent { .. } => return Ok(None),
            Loadable::Blob {
                id,
                parent,
                private,
                public,
                name,
            } => {
                // Not a key (a sealed data object): it cannot salt, the storage key will.
                let parsed = KeyPublic::parse(public).ok();
                let parent_auth_empty = *parent == TPM_RH_OWNER
                    || self.config.parent != Some(*parent)
                    || self.config.parent_auth.is_empty();
                let salts = parsed.as_ref().is_some_and(salts_sessions);
                if (hmac_session && !salts) || !parent_auth_empty {
                    return Ok(None);
                }
                let handle = match self.objects.find(*id) {
                    Some(h) => h,
                    // A saved context comes back with one ContextLoad, the usual way.
                    None if self.objects.has_context(*id) => return Ok(None),
                    None => {
                        let parent_handle = match *parent {
                            TPM_RH_OWNER => self.primary(None)?,
                            p @ 0x8100_0000..=0x81FF_FFFF => p,
                            _ => return Ok(None),
                        };
                        let save_context = self.policy == ObjectPolicy::PerOperation;
                        self.objects
                            .load(&mut self.tpm, *id, name, save_context, |tpm| {
                                tpm.load_before_session(parent_handle, private, public)
                            })?
                    }
                };
                (handle, name.to_vec(), parsed)
            }
        };
        if !hmac_session {
            return Ok(Some((handle, name)));
        }
        let Some(PublicKey::Ec { x, y, .. }) = public.map(|p| p.key) else {
            return Ok(None);
        };
        self.tpm.session_context = None;
        self.tpm.session = Some(self.tpm.start_salted_session(handle, &SaltKey { x, y })?);
        Ok(Some((handle, name)))
    }

    /// The storage key that salts the session: the configured persistent parent, or the
    /// transient primary.
    fn salt_key(&mut self) -> Result<(u32, SaltKey)> {
        self.storage
            .salt_key(&mut self.tpm, &mut self.objects, &self.config)
    }

    /// Loads the transient storage primary, creating it (if needed) with `owner_auth`
    /// instead of the configured owner authorization.
    fn primary(&mut self, owner_auth: Option<&[u8]>) -> Result<u32> {
        self.storage
            .primary(&mut self.tpm, &mut self.objects, &self.config, owner_auth)
    }

    /// A key's parent, loaded, with `auth` instead of the configured `parent-auth`.
    fn parent(&mut self, parent: u32, auth: Option<&[u8]>) -> Result<Target> {
        self.storage
            .parent(&mut self.tpm, &mut self.objects, &self.config, parent, auth)
    }

    /// A key of a key file, loaded (from its saved context, else its blob under its parent),
    /// or a persistent key.
    fn ensure_loaded(&mut self, key: &Loadable<'_>) -> Result<(u32, Vec<u8>)> {
        let (id, parent, private, public, name) = match key {
            Loadable::Persistent { handle, name } => return Ok((*handle, name.to_vec())),
            Loadable::Blob {
                id,
                parent,
                private,
                public,
                name,
            } => (*id, *parent, *private, *public, *name),
        };
        let rm = behind_resource_manager(&self.config.tcti);
        if let Some(handle) = self.objects.reload(&mut self.tpm, id, rm)? {
            return Ok((handle, name.to_vec()));
        }
        let parent = self.parent(parent, None)?;
        let save_context = self.policy == ObjectPolicy::PerOperation;
        let handle = self
            .objects
            .load(&mut self.tpm, id, name, save_context, |tpm| {
                tpm.load(parent.handle, &parent.name, &parent.auth, private, public)
            })?;
        Ok((handle, name.to_vec()))
    }

    /// Per-operation: nothing of ours stays loaded. Keep: the storage key goes after the
    /// first operation that did not need it.
    fn after_operation(&mut self) {
        if self.policy == ObjectPolicy::PerOperation {
            self.release_all_loaded();
            return;
        }
        if self.key_used && !self.storage.used {
            if let Some(handle) = self.objects.take(STORAGE_KEY_ID) {
                let _ = self.objects.unload(&mut self.tpm, STORAGE_KEY_ID, handle);
            }
        }
        // An operation on a policy key did without the HMAC session: it leaves the TPM's
        // few session slots (one ContextSave, once) until a command needs it again.
        if self.tpm.sessions_used == (false, true) {
            self.park_session();
        }
    }

    /// Flushes our loaded objects and saves the session, so other processes get the slots.
    fn release_all_loaded(&mut self) {
        for (id, handle) in self.objects.take_all() {
            let _ = self.objects.unload(&mut self.tpm, id, handle);
        }
        // A policy session holds nothing worth a ContextSave: start a new one next time.
        if let Some(p) = self.tpm.policy.session.take() {
            let _ = self.tpm.flush_context(p.session.handle);
        }
        self.park_session();
    }

    /// Saves the HMAC session out of the TPM's few session slots (the command layer loads
    /// it again when a command needs it).
    fn park_session(&mut self) {
        if self.tpm.session_context.is_none() {
            if let Some(handle) = self.tpm.session.as_ref().map(|s| s.handle) {
                match self.tpm.context_save(handle) {
                    Ok(ctx) => self.tpm.session_context = Some(ctx),
                    Err(_) => self.tpm.session = None,
                }
            }
        }
    }

    /// Process exit: flush everything we hold, the session included.
    fn release_all(&mut self) {
        for (_, handle) in self.objects.take_all() {
            let _ = self.tpm.flush_context(handle);
        }
        if let Some(s) = self.tpm.session.take() {
            let _ = self.tpm.flush_context(s.handle);
        }
        if let Some(p) = self.tpm.policy.session.take() {
            let _ = self.tpm.flush_context(p.session.handle);
        }
        self.tpm.session_context = None;
    }

    fn yield_lease(&mut self) {
        if self.keep_lease.is_none() || self.used_keys || self.pid != std::process::id() {
            return;
        }
        self.release_all();
        self.keep_lease = None;
        self.policy = ObjectPolicy::PerOperation;
    }

    /// After a key was opened (loaded, not used): a process that keeps on a TPM without a
    /// resource manager lets the storage key go at once, without saving it, and the policy
    /// session it checked a key's policy in. Such a process may never use the key itself
    /// (nginx's master opens keys for its workers), and held idle they would leave the
    /// other processes one slot where a first use needs two.
    /// Marks the operations up to [`Link::after_opening`] as opening a key, not using it.
    pub fn before_opening(&mut self) {
        self.opening = true;
    }

    pub fn after_opening(&mut self) {
        self.opening = false;
        if self.keep_lease.is_none() {
            return;
        }
        if let Some(handle) = self.objects.take(STORAGE_KEY_ID) {
            let _ = self.tpm.flush_context(handle);
        }
        if let Some(p) = self.tpm.policy.session.take() {
            let _ = self.tpm.flush_context(p.session.handle);
        }
    }

    /// Whether the key `id` is loaded or has a saved context on this connection (so the
    /// TPM has accepted its blob).
    pub fn holds(&self, id: u64) -> bool {
        self.objects.holds(id)
    }

    /// The public area of a persistent object (read once, then cached).
    pub fn read_persistent(&mut self, handle: u32) -> Result<KeyPublic> {
        self.retrying(|link| link.storage.persistent_public(&mut link.tpm, handle))
    }

    pub fn forget_persistent(&mut self, handle: u32) {
        self.storage.forget_persistent(handle);
    }

    /// Flushes our object `id` if it is loaded, without saving its context, and forgets
    /// any saved one: an object used once (a PIN object at login) keeps no slot.
    pub fn discard_loaded(&mut self, id: u64) {
        if let Some(handle) = self.objects.take(id) {
            let _ = self.tpm.flush_context(handle);
        }
        self.objects.forget_context(id);
    }

    /// Flushes the policy session: after a one-time use (a PIN object at login) it would hold
    /// one of the TPM's three session slots for the life of the process, and a forked child
    /// that logs in needs two.
    pub fn discard_policy_session(&mut self) {
        if let Some(p) = self.tpm.policy.session.take() {
            let _ = self.tpm.flush_context(p.session.handle);
        }
    }

    /// Runs `op` with the HMAC session, a policy session with a clean digest (its handle is
    /// `op`'s second argument) and none of our objects loaded: for objects whose policy the
    /// caller runs itself, such as the EK's PolicySecret(TPM_RH_ENDORSEMENT), and which it
    /// loads itself (two primaries need every slot a small TPM has).
    pub fn run_in_policy_session<R>(
        &mut self,
        mut op: impl FnMut(&mut Tpm, u32) -> Result<R>,
    ) -> Result<R> {
        self.retrying(|link| {
            link.prepare(Need::Nothing)?;
            let session = match link.tpm.policy.session.as_ref().map(|p| p.session.handle) {
                Some(h) => {
                    link.tpm.policy_restart(h)?;
                    h
                }
                None => link.start_salted_policy_session()?,
            };
            for (id, handle) in link.objects.take_all() {
                link.objects.unload(&mut link.tpm, id, handle)?;
            }
            op(&mut link.tpm, session)
        })
    }

    /// Runs `op` with the HMAC session and a policy session (started, salted with the
    /// storage key, if there is none), keeping what is loaded: for an NV index whose policy
    /// `op` satisfies with `policy_session::satisfy` (which restarts a used session), such
    /// as a token's secret index at login, before the first key is loaded under the same
    /// storage key.
    pub fn run_with_policy_session<R>(
        &mut self,
        mut op: impl FnMut(&mut Tpm) -> Result<R>,
    ) -> Result<R> {
        self.retrying(|link| {
            link.prepare(Need::Nothing)?;
            if link.tpm.policy.session.is_none() {
                link.start_salted_policy_session()?;
            }
            op(&mut link.tpm)
        })
    }

    /// Starts the policy session, salted with the storage key: its handle.
    fn start_salted_policy_session(&mut self) -> Result<u32> {
        let (handle, salt) = self.salt_key()?;
        let s = self.tpm.start_policy_session(handle, &salt)?;
        let h = s.handle;
        self.tpm.policy.session = Some(PolicySession::new(s));
        Ok(h)
    }
}

/// Keys that can salt a session: ECC P-256 with the decrypt attribute.
fn salts_sessions(public: &KeyPublic) -> bool {
    public.can_decrypt
        && matches!(
            public.key,
            PublicKey::Ec {
                curve: Curve::P256,
                ..
            }
        )
}

/// TPM commands this process has sent on its current connection (for tests and benchmarks).
pub fn commands_sent() -> u64 {
    lock(&LINK).as_ref().map_or(0, |l| l.tpm.commands_sent)
}
