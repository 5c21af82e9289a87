//! tpmkey's own TPM command layer: one function per TPM command, each marshalling its
//! parameters and parsing its response, over one `execute` that adds the authorisation
//! area (salted session, password, or none) and checks the response.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::attest::creation::CreationRecord;
use crate::attest::signature::TpmSignature;
use crate::error::{Error, Result};
use crate::policy_session::PolicyState;
use crate::response_code::{TPM_RC_RETRY, TPM_RC_TESTING, TPM_RC_YIELDED};
use crate::session::{
    self, SaltKey, SaltedSession, ATTR_CONTINUE_SESSION, ATTR_DECRYPT, ATTR_ENCRYPT,
};
use crate::session_crypto::{SessionCrypto, CRYPTO};
use crate::tcti::Tcti;
use crate::wire::*;

/// The name of a permanent or persistent-by-handle entity: its handle.
pub fn handle_name(handle: u32) -> [u8; 4] {
    handle.to_be_bytes()
}

/// What one command needs: handles with their Names, the authValue of the first handle
/// (`None` when no handle needs authorisation), and which parameters are secret.
#[derive(Debug)]
#[must_use]
pub struct Command<'a> {
    pub code: CommandCode,
    pub handles: &'a [u32],
    pub names: &'a [&'a [u8]],
    pub auth: Option<&'a [u8]>,
    /// Zeroized on drop: parameters carry sensitive areas, new authValues and plaintext.
    pub params: Zeroizing<Vec<u8>>,
    /// The first command parameter is a secret TPM2B: encrypt it (session "decrypt").
    pub secret_in: bool,
    /// The first response parameter is a secret TPM2B: have it encrypted (session "encrypt").
    pub secret_out: bool,
    pub response_handles: usize,
    /// Authorise with a password even when sessions are on: only CreatePrimary of the
    /// storage key, which must exist before a session can be salted with it, and Quote by
    /// an AK, whose authValue is empty and whose output is signed.
    pub before_session: bool,
}

impl<'a> Command<'a> {
    /// `code` with `params` and nothing else: no handles, no authorisation, no secret
    /// parameter, no handle in the response. The methods below add what a command has.
    pub fn new(code: CommandCode, params: Zeroizing<Vec<u8>>) -> Command<'a> {
        Command {
            code,
            handles: &[],
            names: &[],
            auth: None,
            params,
            secret_in: false,
            secret_out: false,
            response_handles: 0,
            before_session: false,
        }
    }

    pub fn handles(self, handles: &'a [u32]) -> Self {
        Command { handles, ..self }
    }

    /// The Names of the handles that enter the session's cpHash.
    pub fn names(self, names: &'a [&'a [u8]]) -> Self {
        Command { names, ..self }
    }

    /// The authValue of the first handle.
    pub fn auth(self, auth: &'a [u8]) -> Self {
        Command {
            auth: Some(auth),
            ..self
        }
    }

    pub fn secret_in(self) -> Self {
        Command {
            secret_in: true,
            ..self
        }
    }

    pub fn secret_out(self) -> Self {
        Command {
            secret_out: true,
            ..self
        }
    }

    pub fn response_handles(self, response_handles: usize) -> Self {
        Command {
            response_handles,
            ..self
        }
    }

    pub fn before_session(self) -> Self {
        Command {
            before_session: true,
            ..self
        }
    }
}

/// How a command on a key is authorised.
#[derive(Clone, Copy, Debug)]
pub enum KeyAuth<'a> {
    /// The key's authValue, through the salted HMAC session (or as a password when
    /// sessions are off).
    Value(&'a [u8]),
    /// The policy session, whose policy the caller has just satisfied; the authValue
    /// enters its HMAC only if the policy ran PolicyAuthValue.
    Policy(&'a [u8]),
}

impl<'a> From<&'a [u8]> for KeyAuth<'a> {
    fn from(auth: &'a [u8]) -> KeyAuth<'a> {
        KeyAuth::Value(auth)
    }
}

/// Which of our sessions authorises a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Hmac,
    Policy,
}

/// The password authorisation of a command's other authorised handle, before or after the
/// handle `Command::auth` authorises.
#[derive(Clone, Copy, Debug)]
enum OtherAuth<'a> {
    None,
    Before(&'a [u8]),
    After(&'a [u8]),
    /// An unkeyed policy session (see [`Tpm::start_unkeyed_policy_session`]), the
    /// command's only authorisation.
    UnkeyedPolicy(u32),
}

/// The parts of a command on one authorised key (Sign, RSA_Decrypt, ECDH_ZGen, Unseal;
/// Import, on its parent).
struct KeyCommand<'a> {
    code: CommandCode,
    key: u32,
    name: &'a [u8],
    auth: KeyAuth<'a>,
    params: Zeroizing<Vec<u8>>,
    secret_in: bool,
    secret_out: bool,
}

#[derive(Debug)]
pub struct Response {
    pub handles: Vec<u32>,
    pub params: Zeroizing<Vec<u8>>,
}

/// The byte pipe plus the one session tpmkey keeps on it.
#[derive(Debug)]
pub struct Tpm {
    tcti: Tcti,
    pub session: Option<SaltedSession>,
    /// `session`'s saved context while it is out of the TPM; loaded when a command needs it.
    pub session_context: Option<Vec<u8>>,
    /// Whether the HMAC and the policy session authorised a command in this operation.
    pub sessions_used: (bool, bool),
    /// The policy session for keys with a policy, kept like `session`, and what it knows.
    pub policy: PolicyState,
    /// `session = on`: every command with an authorisation or a secret goes through `session`.
    pub use_session: bool,
    /// Commands sent on this connection, for tests and the benchmark.
    pub commands_sent: u64,
    /// The last command failed its session HMAC although no password entered it: not a
    /// wrong password but our session or a handle out of step with the TPM.
    pub out_of_step: bool,
}

const RETRY_LIMIT: u32 = 50;

impl Tpm {
    pub fn new(tcti: Tcti, use_session: bool) -> Tpm {
        Tpm {
            tcti,
            session: None,
            session_context: None,
            sessions_used: (false, false),
            policy: PolicyState::default(),
            use_session,
            commands_sent: 0,
            out_of_step: false,
        }
    }

    pub fn tcti(&self) -> &Tcti {
        &self.tcti
    }

    pub fn into_tcti(self) -> Tcti {
        self.tcti
    }

    /// True when this command would run in the salted session (which must then exist).
    pub fn wants_session(&self, cmd: &Command<'_>) -> bool {
        self.use_session
            && !cmd.before_session
            && (cmd.auth.is_some() || cmd.secret_in || cmd.secret_out)
    }

    pub fn execute(&mut self, cmd: &Command<'_>) -> Result<Response> {
        self.execute_in(cmd, Slot::Hmac)
    }

    fn execute_in(&mut self, cmd: &Command<'_>, slot: Slot) -> Result<Response> {
        self.execute_with(cmd, slot, OtherAuth::None)
    }

    /// [`Tpm::execute_in`] for a command with a second authorised handle, whose
    /// authorisation `other` is a password.
    fn execute_with(
        &mut self,
        cmd: &Command<'_>,
        slot: Slot,
        other: OtherAuth<'_>,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            match self.execute_once(cmd, slot, other) {
                Err(Error::Tpm { rc, .. })
                    if matches!(rc.base(), TPM_RC_RETRY | TPM_RC_YIELDED | TPM_RC_TESTING)
                        && attempt < RETRY_LIMIT =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(2 * u64::from(attempt)));
                }
                other => return other,
            }
        }
    }

    /// Runs a command that creates a handle (object or session) and parses its response;
    /// a response that does not parse is not used, and the handle it named is flushed so
    /// that the TPM does not keep an object or session nobody knows of.
    fn execute_new_handle<T>(
        &mut self,
        cmd: &Command<'_>,
        parse: impl FnOnce(&Response) -> Result<T>,
    ) -> Result<T> {
        let rsp = self.execute(cmd)?;
        parse(&rsp).inspect_err(|_| self.flush_all(&rsp.handles))
    }

    fn flush_all(&mut self, handles: &[u32]) {
        for h in handles {
            let _ = self.flush_context(*h);
        }
    }

    fn session_in(&mut self, slot: Slot) -> Option<&mut SaltedSession> {
        match slot {
            Slot::Hmac => self.session.as_mut(),
            Slot::Policy => self.policy.session.as_mut().map(|p| &mut p.session),
        }
    }

    /// Loads the saved HMAC session. A full TPM keeps it saved for a retry; any other failure
    /// gives it up (flushed, in case the TPM still holds it).
    fn load_session(&mut self) -> Result<()> {
        let Some(context) = self.session_context.take() else {
            return Ok(());
        };
        if let Err(e) = self.context_load(&context) {
            if e.response_code().is_some_and(|rc| rc.is_tpm_full()) {
                self.session_context = Some(context);
            } else {
                self.discard_session(Slot::Hmac);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Gives up a session the TPM may still hold, flushing it rather than leak a slot.
    fn discard_session(&mut self, slot: Slot) {
        let handle = match slot {
            Slot::Hmac => self.session.take().map(|s| s.handle),
            Slot::Policy => self.policy.session.take().map(|p| p.session.handle),
        };
        if let Some(h) = handle {
            let _ = self.flush_context(h);
        }
    }

    fn execute_once(
        &mut self,
        cmd: &Command<'_>,
        slot: Slot,
        other: OtherAuth<'_>,
    ) -> Result<Response> {
        let with_session = slot == Slot::Policy || self.wants_session(cmd);
        // A policy session's HMAC includes the authValue only after PolicyAuthValue.
        let hmac_auth = match slot {
            Slot::Policy if !self.policy.auth_value_needed() => &[][..],
            _ => cmd.auth.unwrap_or(&[]),
        };
        let mut params = cmd.params.clone();
        let mut auth_area = Zeroizing::new(Vec::new());
        let mut session_attrs = 0u8;
        let mut ends_session = false;
        let mut nonce_caller = [0u8; 32];
        if with_session {
            match slot {
                Slot::Hmac => {
                    self.load_session()?;
                    self.sessions_used.0 = true;
                }
                Slot::Policy => self.sessions_used.1 = true,
            }
            let last_use = slot == Slot::Policy && std::mem::take(&mut self.policy.end_after_next);
            ends_session = last_use;
            let s = self
                .session_in(slot)
                .ok_or_else(|| Error::Integrity("no session established".into()))?;
            session_attrs = if last_use { 0 } else { ATTR_CONTINUE_SESSION }
                | if cmd.secret_in { ATTR_DECRYPT } else { 0 }
                | if cmd.secret_out { ATTR_ENCRYPT } else { 0 };
            let (area, nonce) = s.authorize(
                cmd.code as u32,
                cmd.names,
                &mut params,
                hmac_auth,
                session_attrs,
            )?;
            auth_area = Zeroizing::new(area);
            nonce_caller = nonce;
        } else if let Some(auth) = cmd.auth {
            auth_area = password_auth(auth);
        }
        auth_area = match other {
            OtherAuth::None => auth_area,
            OtherAuth::Before(a) => Zeroizing::new([&password_auth(a)[..], &auth_area].concat()),
            OtherAuth::After(a) => Zeroizing::new([&auth_area[..], &password_auth(a)].concat()),
            OtherAuth::UnkeyedPolicy(h) => {
                Zeroizing::new([&auth_area[..], &unkeyed_auth(h)].concat())
            }
        };
        let tag = if auth_area.is_empty() {
            TPM_ST_NO_SESSIONS
        } else {
            TPM_ST_SESSIONS
        };
        let mut w = Writer::new();
        w.u16(tag).u32(0).u32(cmd.code as u32);
        for h in cmd.handles {
            w.u32(*h);
        }
        if tag == TPM_ST_SESSIONS {
            w.u32(auth_area.len() as u32).bytes(&auth_area);
        }
        w.bytes(&params);
        let mut bytes = w.into_secret();
        let len = (bytes.len() as u32).to_be_bytes();
        bytes[2..6].copy_from_slice(&len);

        self.commands_sent += 1;
        let raw = Zeroizing::new(self.tcti.execute(&bytes)?);
        let mut r = Reader::new(&raw);
        let rtag = r.u16()?;
        let size = r.u32()?;
        let rc = r.u32()?;
        if size as usize != raw.len() {
            return Err(Error::Integrity(format!(
                "response size field {size} but {} bytes received",
                raw.len()
            )));
        }
        if rc != 0 {
            let e = Error::tpm(cmd.code.name(), rc);
            if with_session && e.is_bad_auth() && self.check_refusing_session(cmd, slot) {
                return Err(e);
            }
            if with_session && e.is_bad_auth() {
                // Our session key may not be the TPM's: StartAuthSession's response has no
                // HMAC, so a nonceTPM altered on the bus shows only here. Kept, the session
                // would fail every command; the next operation starts a new one.
                self.discard_session(slot);
                self.out_of_step = hmac_auth.is_empty() && matches!(other, OtherAuth::None);
            }
            return Err(e);
        }
        let mut handles = Vec::with_capacity(cmd.response_handles);
        for _ in 0..cmd.response_handles {
            handles.push(r.u32()?);
        }
        let params = if rtag == TPM_ST_SESSIONS {
            r.u32().and_then(|n| r.take(n as usize).map(<[u8]>::to_vec))
        } else {
            Ok(r.rest().to_vec())
        };
        let mut out = match params {
            Ok(p) => Zeroizing::new(p),
            Err(e) => {
                self.flush_all(&handles);
                return Err(e);
            }
        };
        if with_session {
            if rtag != TPM_ST_SESSIONS {
                self.discard_session(slot);
                self.flush_all(&handles);
                return Err(Error::Integrity(
                    "response lacks the session's authorisation".into(),
                ));
            }
            if let OtherAuth::Before(_) = other {
                // The password entry's response: empty nonce, attributes, empty HMAC.
                r.tpm2b()?;
                r.u8()?;
                r.tpm2b()?;
            }
            let hmac_auth = Zeroizing::new(hmac_auth.to_vec());
            let verified = match self.session_in(slot) {
                Some(s) => s.verify_response(
                    cmd.code as u32,
                    &mut out,
                    &mut r,
                    &hmac_auth,
                    &nonce_caller,
                    session_attrs,
                ),
                None => Err(Error::Integrity("no session established".into())),
            };
            let verified = verified.and_then(|()| {
                if let OtherAuth::After(_) | OtherAuth::UnkeyedPolicy(_) = other {
                    r.tpm2b()?;
                    r.u8()?;
                    r.tpm2b()?;
                }
                r.end()
            });
            if let Err(e) = verified {
                // The TPM has moved to a nonce we could not check: this session is spent,
                // and an object the unverified response names is not used. A session the
                // command ended is already gone from the TPM: nothing to flush.
                if ends_session {
                    self.policy.session = None;
                } else {
                    self.discard_session(slot);
                }
                self.flush_all(&handles);
                return Err(e);
            }
            if ends_session {
                // Without continueSession the TPM ended the session with this command.
                self.policy.session = None;
            }
        }
        Ok(Response {
            handles,
            params: out,
        })
    }

    /// After a PolicySecret with an authValue refused in an HMAC session that no response
    /// has verified yet, checks the session with a GetRandom in it: in step, the authValue
    /// was wrong (the session is kept); out of step, the session goes and the caller's
    /// operation starts over (`out_of_step`). A PIN index counts every refusal, but a
    /// session whose key an altered StartAuthSession response spoiled is no wrong PIN (the
    /// right PIN then resets the count). True when it checked; false for other refusals.
    fn check_refusing_session(&mut self, cmd: &Command<'_>, slot: Slot) -> bool {
        let ambiguous = cmd.code == CommandCode::PolicySecret
            && slot == Slot::Hmac
            && cmd.auth.is_some_and(|a| !a.is_empty())
            && self.session.as_ref().is_some_and(|s| !s.is_verified());
        if !ambiguous {
            return false;
        }
        // Only the session failing its own check means out of step; any other failure
        // leaves the refusal as it is (a retry would cost the PIN index another try).
        match self.get_random(1) {
            Err(e) if e.is_bad_auth() || matches!(e, Error::Integrity(_)) => {
                self.discard_session(Slot::Hmac);
                self.out_of_step = true;
            }
            _ => {}
        }
        true
    }

    // ---- sessions and contexts -------------------------------------------------------

    /// TPM2_StartAuthSession: an HMAC session salted with the loaded storage key, unbound,
    /// AES-128-CFB for parameter encryption, SHA-256.
    pub fn start_salted_session(
        &mut self,
        salt_handle: u32,
        salt_key: &SaltKey,
    ) -> Result<SaltedSession> {
        self.start_session(salt_handle, salt_key, TPM_SE_HMAC)
    }

    /// TPM2_StartAuthSession of a policy session, salted and encrypting like the HMAC
    /// session, so that one session both satisfies a key's policy and protects its
    /// parameters.
    pub fn start_policy_session(
        &mut self,
        salt_handle: u32,
        salt_key: &SaltKey,
    ) -> Result<SaltedSession> {
        self.start_session(salt_handle, salt_key, TPM_SE_POLICY)
    }

    fn start_session(
        &mut self,
        salt_handle: u32,
        salt_key: &SaltKey,
        session_type: u8,
    ) -> Result<SaltedSession> {
        let (params, pending) = session::start_params(salt_key, session_type)?;
        let handles = [salt_handle, TPM_RH_NULL];
        let cmd = Command::new(CommandCode::StartAuthSession, Zeroizing::new(params))
            .handles(&handles)
            .response_handles(1);
        self.execute_new_handle(&cmd, |rsp| {
            let nonce_tpm = tpm2b_contents(&rsp.params)?;
            let handle = *rsp
                .handles
                .first()
                .ok_or_else(|| Error::Integrity("no session handle".into()))?;
            Ok(SaltedSession::established(pending, handle, nonce_tpm))
        })
    }

    fn no_auth(
        &mut self,
        code: CommandCode,
        handles: &[u32],
        params: Vec<u8>,
        response_handles: usize,
    ) -> Result<Response> {
        self.execute(
            &Command::new(code, Zeroizing::new(params))
                .handles(handles)
                .response_handles(response_handles),
        )
    }

    /// TPM2_ContextSave: the marshalled TPMS_CONTEXT.
    pub fn context_save(&mut self, handle: u32) -> Result<Vec<u8>> {
        let rsp = self.no_auth(CommandCode::ContextSave, &[handle], Vec::new(), 0)?;
        Ok(rsp.params.to_vec())
    }

    pub fn context_load(&mut self, context: &[u8]) -> Result<u32> {
        let rsp = self.no_auth(CommandCode::ContextLoad, &[], context.to_vec(), 1)?;
        rsp.handles
            .first()
            .copied()
            .ok_or_else(|| Error::Integrity("no handle in ContextLoad".into()))
    }

    pub fn flush_context(&mut self, handle: u32) -> Result<()> {
        let mut w = Writer::new();
        w.u32(handle);
        self.no_auth(CommandCode::FlushContext, &[], w.into_vec(), 0)
            .map(|_| ())
    }

    /// TPM2_ReadPublic: (TPM2B_PUBLIC with its size prefix, Name).
    pub fn read_public(&mut self, handle: u32) -> Result<(Vec<u8>, Vec<u8>)> {
        let rsp = self.no_auth(CommandCode::ReadPublic, &[handle], Vec::new(), 0)?;
        let mut r = Reader::new(&rsp.params);
        let public = r.tpm2b_raw()?.to_vec();
        let name = r.tpm2b()?.to_vec();
        r.tpm2b()?; // qualifiedName
        r.end()?;
        Ok((public, name))
    }

    /// TPM properties (TPM_CAP_TPM_PROPERTIES) from `first`, at most `count`: (property,
    /// value).
    pub fn tpm_properties(&mut self, first: u32, count: u32) -> Result<Vec<(u32, u32)>> {
        let (_more, data) = self.get_capability(TPM_CAP_TPM_PROPERTIES, first, count)?;
        let mut r = Reader::new(&data);
        let n = r.u32()?;
        (0..n).map(|_| Ok((r.u32()?, r.u32()?))).collect()
    }

    /// TPM2_GetCapability: (moreData, the TPMS_CAPABILITY_DATA bytes after the capability).
    pub fn get_capability(
        &mut self,
        capability: u32,
        property: u32,
        count: u32,
    ) -> Result<(bool, Vec<u8>)> {
        let mut w = Writer::new();
        w.u32(capability).u32(property).u32(count);
        let rsp = self.no_auth(CommandCode::GetCapability, &[], w.into_vec(), 0)?;
        let mut r = Reader::new(&rsp.params);
        let more = r.u8()? != 0;
        let _cap = r.u32()?;
        Ok((more, r.rest().to_vec()))
    }

    // ---- objects ---------------------------------------------------------------------

    /// TPM2_CreatePrimary: (handle, TPM2B_PUBLIC with size prefix, Name).
    pub fn create_primary(
        &mut self,
        hierarchy: u32,
        hierarchy_auth: &[u8],
        template: &[u8],
    ) -> Result<(u32, Vec<u8>, Vec<u8>)> {
        let mut w = Writer::new();
        w.u16(4).tpm2b(&[]).tpm2b(&[]); // inSensitive: empty userAuth and data
        w.tpm2b(template).tpm2b(&[]).u32(0);
        let (handles, name) = ([hierarchy], handle_name(hierarchy));
        let names: [&[u8]; 1] = [&name];
        let cmd = Command::new(CommandCode::CreatePrimary, w.into_secret())
            .handles(&handles)
            .names(&names)
            .auth(hierarchy_auth)
            .before_session()
            .response_handles(1);
        self.execute_new_handle(&cmd, |rsp| {
            let mut r = Reader::new(&rsp.params);
            let public = r.tpm2b_raw()?.to_vec();
            r.tpm2b()?; // creationData
            r.tpm2b()?; // creationHash
            r.u16()?; // creationTicket tag
            r.u32()?; // hierarchy
            r.tpm2b()?; // digest
            let name = r.tpm2b()?.to_vec();
            r.end()?;
            let handle = rsp
                .handles
                .first()
                .copied()
                .ok_or_else(|| Error::Integrity("no handle".into()))?;
            Ok((handle, public, name))
        })
    }

    /// TPM2_Create: (TPM2B_PRIVATE, TPM2B_PUBLIC), both with their size prefix.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        parent: u32,
        parent_name: &[u8],
        parent_auth: &[u8],
        user_auth: &[u8],
        data: &[u8],
        template: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let (private, public, _) = self.create_keeping_creation(
            parent,
            parent_name,
            parent_auth,
            user_auth,
            data,
            template,
            None,
        )?;
        Ok((private, public))
    }

    /// TPM2_Load: (handle, Name).
    pub fn load(
        &mut self,
        parent: u32,
        parent_name: &[u8],
        parent_auth: &[u8],
        private: &[u8],
        public: &[u8],
    ) -> Result<(u32, Vec<u8>)> {
        self.load_with(&[parent_name], parent, parent_auth, false, private, public)
    }

    /// TPM2_Load under a parent whose authValue is empty, before any session exists: the
    /// empty password is all that crosses the bus (the private blob is wrapped by the parent).
    pub fn load_before_session(
        &mut self,
        parent: u32,
        private: &[u8],
        public: &[u8],
    ) -> Result<(u32, Vec<u8>)> {
        self.load_with(&[], parent, &[], true, private, public)
    }

    fn load_with(
        &mut self,
        names: &[&[u8]],
        parent: u32,
        parent_auth: &[u8],
        before_session: bool,
        private: &[u8],
        public: &[u8],
    ) -> Result<(u32, Vec<u8>)> {
        let mut w = Writer::new();
        w.bytes(private).bytes(public);
        let handles = [parent];
        let cmd = Command {
            before_session,
            ..Command::new(CommandCode::Load, w.into_secret())
                .handles(&handles)
                .names(names)
                .auth(parent_auth)
                .response_handles(1)
        };
        self.execute_new_handle(&cmd, |rsp| {
            let name = tpm2b_contents(&rsp.params)?.to_vec();
            let handle = rsp
                .handles
                .first()
                .copied()
                .ok_or_else(|| Error::Integrity("no handle".into()))?;
            Ok((handle, name))
        })
    }

    /// TPM2_EvictControl under the owner hierarchy: persist `object` at `persistent`, or,
    /// when `object` is itself persistent, evict it.
    pub fn evict_control(
        &mut self,
        owner_auth: &[u8],
        object: u32,
        object_name: &[u8],
        persistent: u32,
    ) -> Result<()> {
        let mut w = Writer::new();
        w.u32(persistent);
        let owner = handle_name(TPM_RH_OWNER);
        self.execute(
            &Command::new(CommandCode::EvictControl, w.into_secret())
                .handles(&[TPM_RH_OWNER, object])
                .names(&[&owner, object_name])
                .auth(owner_auth),
        )
        .map(|_| ())
    }

    /// TPM2_ObjectChangeAuth: the object's new TPM2B_PRIVATE.
    pub fn object_change_auth(
        &mut self,
        object: u32,
        object_name: &[u8],
        auth: &[u8],
        parent: u32,
        parent_name: &[u8],
        new_auth: &[u8],
    ) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.tpm2b(new_auth);
        let rsp = self.execute(
            &Command::new(CommandCode::ChangeAuth, w.into_secret())
                .handles(&[object, parent])
                .names(&[object_name, parent_name])
                .auth(auth)
                .secret_in(),
        )?;
        let mut r = Reader::new(&rsp.params);
        let raw = r.tpm2b_raw()?.to_vec();
        r.end()?;
        Ok(raw)
    }

    // ---- policy sessions -------------------------------------------------------------

    /// A TPM2_Policy* command sent with a statement's own parameters (PolicyPCR,
    /// PolicyAuthValue, PolicyLocality, PolicyCounterTimer, PolicyOR, PolicyCommandCode):
    /// the policy session is a handle, nothing is authorised.
    pub fn policy_statement(
        &mut self,
        session: u32,
        code: CommandCode,
        params: &[u8],
    ) -> Result<()> {
        self.no_auth(code, &[session], params.to_vec(), 0)
            .map(|_| ())
    }

    /// TPM2_PolicyRestart: the session's digest back to zero.
    pub fn policy_restart(&mut self, session: u32) -> Result<()> {
        self.no_auth(CommandCode::PolicyRestart, &[session], Vec::new(), 0)
            .map(|_| ())
    }

    /// TPM2_PolicyGetDigest: the session's digest so far.
    pub fn policy_get_digest(&mut self, session: u32) -> Result<Vec<u8>> {
        let rsp = self.no_auth(CommandCode::PolicyGetDigest, &[session], Vec::new(), 0)?;
        Ok(tpm2b_contents(&rsp.params)?.to_vec())
    }

    /// TPM2_PolicySecret: proof, through our HMAC session, of knowing the authValue of
    /// `auth_handle`, recorded in the policy session. No expiration, no cpHash.
    pub fn policy_secret(
        &mut self,
        auth_handle: u32,
        auth_name: &[u8],
        auth: &[u8],
        session: u32,
        policy_ref: &[u8],
    ) -> Result<()> {
        let mut w = Writer::new();
        w.tpm2b(&[]).tpm2b(&[]).tpm2b(policy_ref).u32(0);
        let session_name = handle_name(session);
        self.execute(
            &Command::new(CommandCode::PolicySecret, w.into_secret())
                .handles(&[auth_handle, session])
                .names(&[auth_name, &session_name])
                .auth(auth),
        )
        .map(|_| ())
    }

    /// TPM2_PolicyAuthorize: the digest so far is replaced by the signer's policy, given
    /// the VerifySignature `ticket` (TPMT_TK_VERIFIED as returned) over
    /// H(approvedPolicy ‖ policyRef).
    pub fn policy_authorize(
        &mut self,
        session: u32,
        approved_policy: &[u8],
        policy_ref: &[u8],
        key_sign_name: &[u8],
        ticket: &[u8],
    ) -> Result<()> {
        let mut w = Writer::new();
        w.tpm2b(approved_policy)
            .tpm2b(policy_ref)
            .tpm2b(key_sign_name)
            .bytes(ticket);
        self.no_auth(CommandCode::PolicyAuthorize, &[session], w.into_vec(), 0)
            .map(|_| ())
    }

    /// TPM2_LoadExternal of a public key (TPM2B_PUBLIC with its size) in `hierarchy`:
    /// (handle, Name).
    pub fn load_external(&mut self, public: &[u8], hierarchy: u32) -> Result<(u32, Vec<u8>)> {
        let mut w = Writer::new();
        w.u16(0).bytes(public).u32(hierarchy);
        let rsp = self.no_auth(CommandCode::LoadExternal, &[], w.into_vec(), 1)?;
        let handle = rsp
            .handles
            .first()
            .copied()
            .ok_or_else(|| Error::Integrity("no handle".into()))?;
        Ok((handle, tpm2b_contents(&rsp.params)?.to_vec()))
    }

    /// TPM2_VerifySignature of `digest` with a loaded public key: the TPMT_TK_VERIFIED.
    pub fn verify_signature(
        &mut self,
        key: u32,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.tpm2b(digest).bytes(signature);
        let rsp = self.no_auth(CommandCode::VerifySignature, &[key], w.into_vec(), 0)?;
        let mut r = Reader::new(&rsp.params);
        let start = r.take(6)?;
        let digest = r.tpm2b_raw()?;
        r.end()?;
        Ok([start, digest].concat())
    }

    /// TPM2_PCR_Read of a marshalled TPML_PCR_SELECTION: the selection the TPM answered
    /// for (it returns at most 8 values per call) and the values, in selection order.
    pub fn pcr_read(&mut self, selection: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
        let rsp = self.no_auth(CommandCode::PcrRead, &[], selection.to_vec(), 0)?;
        // pcrUpdateCounter, then the selection answered for, then the values.
        let body = rsp
            .params
            .get(4..)
            .ok_or_else(|| Error::Integrity("PCR_Read response too short".into()))?;
        let mut r = Reader::new(body);
        let count = r.u32()?;
        let mut sel_len = 4usize;
        for _ in 0..count {
            r.u16()?;
            let n = r.u8()?;
            r.take(usize::from(n))?;
            sel_len += 3 + usize::from(n);
        }
        let selection_out = body[..sel_len].to_vec();
        let n = r.u32()?;
        let mut values = Vec::new();
        for _ in 0..n {
            values.push(r.tpm2b()?.to_vec());
        }
        Ok((selection_out, values))
    }

    /// TPM2_ReadClock: the clock and the boot counter.
    pub fn read_clock(&mut self) -> Result<crate::key_policy::TpmClock> {
        let rsp = self.no_auth(CommandCode::ReadClock, &[], Vec::new(), 0)?;
        let mut r = Reader::new(&rsp.params);
        let _time = r.u64()?;
        let clock_ms = r.u64()?;
        let reset_count = r.u32()?;
        r.u32()?; // restartCount
        r.u8()?; // safe
        r.end()?;
        Ok(crate::key_policy::TpmClock {
            clock_ms,
            reset_count,
        })
    }

    // ---- key operations --------------------------------------------------------------

    /// A command on one key, authorised with the key's authValue or its policy session.
    fn on_key(&mut self, k: KeyCommand<'_>) -> Result<Response> {
        let (auth, slot) = match k.auth {
            KeyAuth::Value(a) => (a, Slot::Hmac),
            KeyAuth::Policy(a) => (a, Slot::Policy),
        };
        let (handles, names) = ([k.key], [k.name]);
        let cmd = Command {
            secret_in: k.secret_in,
            secret_out: k.secret_out,
            ..Command::new(k.code, k.params)
                .handles(&handles)
                .names(&names)
                .auth(auth)
        };
        let result = self.execute_in(&cmd, slot);
        if slot == Slot::Policy {
            // Success resets the session's policy digest in the TPM; failure leaves it.
            self.policy.used(result.is_ok());
        }
        result
    }

    /// TPM2_Sign of a digest: the signature, in the scheme and with the hash asked for.
    pub fn sign<'k>(
        &mut self,
        key: u32,
        key_name: &[u8],
        auth: impl Into<KeyAuth<'k>>,
        digest: &[u8],
        scheme: u16,
        hash: u16,
    ) -> Result<TpmSignature> {
        let null = HashCheckTicket::null();
        self.sign_with_ticket(key, key_name, auth, digest, scheme, hash, &null)
    }

    /// TPM2_Sign of a digest with the ticket of the TPM's own hashing of it, which a
    /// restricted signing key needs (any other key takes the null ticket).
    #[allow(clippy::too_many_arguments)]
    pub fn sign_with_ticket<'k>(
        &mut self,
        key: u32,
        key_name: &[u8],
        auth: impl Into<KeyAuth<'k>>,
        digest: &[u8],
        scheme: u16,
        hash: u16,
        ticket: &HashCheckTicket,
    ) -> Result<TpmSignature> {
        let mut w = Writer::new();
        w.tpm2b(digest).u16(scheme);
        if scheme != TPM_ALG_NULL {
            w.u16(hash);
        }
        w.bytes(&ticket.0);
        let rsp = self.on_key(KeyCommand {
            code: CommandCode::Sign,
            key,
            name: key_name,
            auth: auth.into(),
            params: w.into_secret(),
            secret_in: true,
            secret_out: false,
        })?;
        parse_signature(&rsp.params, scheme, hash)
    }

    /// TPM2_RSA_Decrypt; scheme TPM_ALG_NULL is the raw private-key operation.
    #[allow(clippy::too_many_arguments)]
    pub fn rsa_decrypt<'k>(
        &mut self,
        key: u32,
        key_name: &[u8],
        auth: impl Into<KeyAuth<'k>>,
        ciphertext: &[u8],
        scheme: u16,
        hash: u16,
        label: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut w = Writer::new();
        w.tpm2b(ciphertext).u16(scheme);
        if scheme == TPM_ALG_OAEP {
            w.u16(hash);
        }
        w.tpm2b(label);
        let rsp = self.on_key(KeyCommand {
            code: CommandCode::RsaDecrypt,
            key,
            name: key_name,
            auth: auth.into(),
            params: w.into_secret(),
            secret_in: true,
            secret_out: true,
        })?;
        Ok(Zeroizing::new(tpm2b_contents(&rsp.params)?.to_vec()))
    }

    /// TPM2_ECDH_ZGen: the x coordinate of d * (x, y).
    pub fn ecdh_zgen<'k>(
        &mut self,
        key: u32,
        key_name: &[u8],
        auth: impl Into<KeyAuth<'k>>,
        x: &[u8],
        y: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut point = Writer::new();
        point.tpm2b(x).tpm2b(y);
        let mut w = Writer::new();
        w.tpm2b(&point.into_vec());
        let rsp = self.on_key(KeyCommand {
            code: CommandCode::EcdhZGen,
            key,
            name: key_name,
            auth: auth.into(),
            params: w.into_secret(),
            secret_in: true,
            secret_out: true,
        })?;
        let mut r = Reader::new(&rsp.params);
        let point = r.tpm2b()?;
        r.end()?;
        let mut p = Reader::new(point);
        let x = Zeroizing::new(p.tpm2b()?.to_vec());
        p.tpm2b()?; // y
        p.end()?;
        Ok(x)
    }

    /// TPM2_Unseal: the sealed data.
    pub fn unseal<'k>(
        &mut self,
        item: u32,
        item_name: &[u8],
        auth: impl Into<KeyAuth<'k>>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let rsp = self.on_key(KeyCommand {
            code: CommandCode::Unseal,
            key: item,
            name: item_name,
            auth: auth.into(),
            params: Zeroizing::new(Vec::new()),
            secret_in: false,
            secret_out: true,
        })?;
        Ok(Zeroizing::new(tpm2b_contents(&rsp.params)?.to_vec()))
    }

    /// TPM2_GetRandom: at most `n` bytes (the TPM may return fewer).
    pub fn get_random(&mut self, n: u16) -> Result<Zeroizing<Vec<u8>>> {
        let mut w = Writer::new();
        w.u16(n);
        let rsp =
            self.execute(&Command::new(CommandCode::GetRandom, w.into_secret()).secret_out())?;
        Ok(Zeroizing::new(tpm2b_contents(&rsp.params)?.to_vec()))
    }

    /// TPM2_StirRandom: mixes caller entropy into the TPM's RNG.
    pub fn stir_random(&mut self, data: &[u8]) -> Result<()> {
        let mut w = Writer::new();
        w.tpm2b(data);
        self.execute(&Command::new(CommandCode::StirRandom, w.into_secret()).secret_in())
            .map(|_| ())
    }

    /// TPM2_NV_ReadPublic: (TPMS_NV_PUBLIC without its size prefix, Name).
    pub fn nv_read_public(&mut self, nv_index: u32) -> Result<(Vec<u8>, Vec<u8>)> {
        let rsp = self.no_auth(CommandCode::NvReadPublic, &[nv_index], Vec::new(), 0)?;
        let mut r = Reader::new(&rsp.params);
        let public = r.tpm2b()?.to_vec();
        let name = r.tpm2b()?.to_vec();
        r.end()?;
        Ok((public, name))
    }

    /// TPM2_Import of a duplicate under `parent`: the new TPM2B_PRIVATE (with its size
    /// prefix). `encryption_key` (the inner wrapper's AES-128-CFB key; empty: no inner
    /// wrapper) is the first parameter, so the session encrypts it. `public` and
    /// `duplicate` are TPM2B with their size prefix, `in_sym_seed` the TPM2B's contents.
    #[allow(clippy::too_many_arguments)]
    pub fn import(
        &mut self,
        parent: u32,
        parent_name: &[u8],
        parent_auth: &[u8],
        encryption_key: &[u8],
        public: &[u8],
        duplicate: &[u8],
        in_sym_seed: &[u8],
    ) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.tpm2b(encryption_key).bytes(public).bytes(duplicate);
        w.tpm2b(in_sym_seed);
        if encryption_key.is_empty() {
            w.u16(TPM_ALG_NULL);
        } else {
            w.u16(TPM_ALG_AES).u16(128).u16(TPM_ALG_CFB);
        }
        let rsp = self.on_key(KeyCommand {
            code: CommandCode::Import,
            key: parent,
            name: parent_name,
            auth: KeyAuth::Value(parent_auth),
            params: w.into_secret(),
            secret_in: true,
            secret_out: false,
        })?;
        let mut r = Reader::new(&rsp.params);
        let raw = r.tpm2b_raw()?.to_vec();
        r.end()?;
        Ok(raw)
    }

    // ---- attestation -----------------------------------------------------------------

    /// TPM2_NV_Read of `size` bytes at `offset`, authorised by the index's own authValue
    /// (`auth`; empty for the EK certificate indices).
    pub fn nv_read(
        &mut self,
        index: u32,
        index_name: &[u8],
        auth: &[u8],
        offset: u16,
        size: u16,
    ) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.u16(size).u16(offset);
        let rsp = self.execute(
            &Command::new(CommandCode::NvRead, w.into_secret())
                .handles(&[index, index])
                .names(&[index_name, index_name])
                .auth(auth),
        )?;
        Ok(tpm2b_contents(&rsp.params)?.to_vec())
    }

    /// TPM2_Certify of `object` (ADMIN role: its authValue, through the session) by the
    /// attestation key `signer` (its authValue as a password: `signer_auth` must be
    /// empty or non-secret), with the signer's default scheme: (TPMS_ATTEST,
    /// TPMT_SIGNATURE).
    #[allow(clippy::too_many_arguments)]
    pub fn certify(
        &mut self,
        object: u32,
        object_name: &[u8],
        object_auth: &[u8],
        signer: u32,
        signer_name: &[u8],
        signer_auth: &[u8],
        qualifying_data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut w = Writer::new();
        w.tpm2b(qualifying_data).u16(TPM_ALG_NULL);
        let rsp = self.execute_with(
            &Command::new(CommandCode::Certify, w.into_secret())
                .handles(&[object, signer])
                .names(&[object_name, signer_name])
                .auth(object_auth),
            Slot::Hmac,
            OtherAuth::After(signer_auth),
        )?;
        let mut r = Reader::new(&rsp.params);
        let attest = r.tpm2b()?.to_vec();
        Ok((attest, r.rest().to_vec()))
    }

    /// TPM2_Quote of the PCRs in `selection` (a marshalled TPML_PCR_SELECTION) by
    /// `signer` with its default scheme. The signer's authValue goes as a password: an
    /// attestation key's is empty, and the quote is signed, so a session would protect
    /// nothing. (TPMS_ATTEST, TPMT_SIGNATURE).
    pub fn quote(
        &mut self,
        signer: u32,
        signer_auth: &[u8],
        qualifying_data: &[u8],
        selection: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut w = Writer::new();
        w.tpm2b(qualifying_data).u16(TPM_ALG_NULL).bytes(selection);
        let rsp = self.execute(
            &Command::new(CommandCode::Quote, w.into_secret())
                .handles(&[signer])
                .auth(signer_auth)
                .before_session(),
        )?;
        let mut r = Reader::new(&rsp.params);
        let attest = r.tpm2b()?.to_vec();
        Ok((attest, r.rest().to_vec()))
    }

    /// TPM2_ActivateCredential: the secret MakeCredential wrapped for `object` (the AK:
    /// ADMIN role, its authValue as a password, so empty or not secret) in the TPM of `key`
    /// (the EK, whose policy the caller has just satisfied in the policy session), which
    /// also encrypts the secret on its way back.
    #[allow(clippy::too_many_arguments)]
    pub fn activate_credential(
        &mut self,
        object: u32,
        object_name: &[u8],
        object_auth: &[u8],
        key: u32,
        key_name: &[u8],
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut w = Writer::new();
        w.tpm2b(credential_blob).tpm2b(secret);
        let result = self.execute_with(
            &Command::new(CommandCode::ActivateCredential, w.into_secret())
                .handles(&[object, key])
                .names(&[object_name, key_name])
                .auth(&[])
                .secret_out(),
            Slot::Policy,
            OtherAuth::Before(object_auth),
        );
        self.policy.used(result.is_ok());
        let rsp = result?;
        Ok(Zeroizing::new(tpm2b_contents(&rsp.params)?.to_vec()))
    }

    /// TPM2_Create that also keeps what TPM2_CertifyCreation needs later: (TPM2B_PRIVATE,
    /// TPM2B_PUBLIC, both with their size prefix, and the creation data, hash and ticket).
    /// `creation_pcrs` (a marshalled TPML_PCR_SELECTION) are the PCRs whose digest the
    /// creation data records; None records none.
    #[allow(clippy::too_many_arguments)]
    pub fn create_keeping_creation(
        &mut self,
        parent: u32,
        parent_name: &[u8],
        parent_auth: &[u8],
        user_auth: &[u8],
        data: &[u8],
        template: &[u8],
        creation_pcrs: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Vec<u8>, CreationRecord)> {
        let mut sensitive = Writer::new();
        sensitive.tpm2b(user_auth).tpm2b(data);
        let sensitive = sensitive.into_secret();
        let mut w = Writer::new();
        w.tpm2b(&sensitive).tpm2b(template).tpm2b(&[]);
        match creation_pcrs {
            Some(selection) => w.bytes(selection),
            None => w.u32(0),
        };
        let rsp = self.execute(
            &Command::new(CommandCode::Create, w.into_secret())
                .handles(&[parent])
                .names(&[parent_name])
                .auth(parent_auth)
                .secret_in(),
        )?;
        let mut r = Reader::new(&rsp.params);
        let private = r.tpm2b_raw()?.to_vec();
        let public = r.tpm2b_raw()?.to_vec();
        let creation = CreationRecord::read(&mut r)?;
        r.end()?;
        Ok((private, public, creation))
    }

    /// TPM2_CertifyCreation of the loaded `object` (no authorisation: the creation ticket
    /// is the TPM's own proof) by the attestation key `signer` (its authValue as a
    /// password, so empty or not secret), with the signer's default scheme: (TPMS_ATTEST,
    /// TPMT_SIGNATURE). A ticket that is not the object's fails with TPM_RC_TICKET.
    pub fn certify_creation(
        &mut self,
        signer: u32,
        signer_auth: &[u8],
        object: u32,
        qualifying_data: &[u8],
        creation: &CreationRecord,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut w = Writer::new();
        w.tpm2b(qualifying_data)
            .tpm2b(&creation.creation_hash)
            .u16(TPM_ALG_NULL)
            .bytes(&creation.ticket);
        let rsp = self.execute(
            &Command::new(CommandCode::CertifyCreation, w.into_secret())
                .handles(&[signer, object])
                .auth(signer_auth)
                .before_session(),
        )?;
        let mut r = Reader::new(&rsp.params);
        let attest = r.tpm2b()?.to_vec();
        Ok((attest, r.rest().to_vec()))
    }
}

// ---- hashing in the TPM ---------------------------------------------------------------

/// TPMT_TK_HASHCHECK's tag.
const TPM_ST_HASHCHECK: u16 = 0x8024;

/// The most TPM2_Hash and SequenceUpdate take at once (MAX_DIGEST_BUFFER; 1024 on every
/// TPM tpmkey knows, the smallest the PC Client profile allows).
pub const MAX_HASH_BUFFER: usize = 1024;

/// A TPMT_TK_HASHCHECK, marshalled as the TPM gave it: its proof that it hashed a message
/// itself, which TPM2_Sign with a restricted key requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashCheckTicket(Vec<u8>);

impl HashCheckTicket {
    /// The null ticket (TPM_RH_NULL, empty digest): what an unrestricted key signs with.
    pub fn null() -> HashCheckTicket {
        let mut w = Writer::new();
        w.u16(TPM_ST_HASHCHECK).u32(TPM_RH_NULL).tpm2b(&[]);
        HashCheckTicket(w.into_vec())
    }
}

impl Tpm {
    /// TPM2_Hash of a message of at most [`MAX_HASH_BUFFER`] bytes, the ticket issued in
    /// `hierarchy`: (digest, ticket). The message is not secret and the command has no
    /// authorisation, so no session; the caller compares the digest with its own.
    pub fn hash(
        &mut self,
        message: &[u8],
        hash: u16,
        hierarchy: u32,
    ) -> Result<(Vec<u8>, HashCheckTicket)> {
        check_hash_buffer(message)?;
        let mut w = Writer::new();
        w.tpm2b(message).u16(hash).u32(hierarchy);
        let rsp = self.no_auth(CommandCode::Hash, &[], w.into_vec(), 0)?;
        parse_hash_result(&rsp.params, CommandCode::Hash)
    }

    /// TPM2_HashSequenceStart with an empty authValue: the sequence object's handle.
    pub fn hash_sequence_start(&mut self, hash: u16) -> Result<u32> {
        let mut w = Writer::new();
        w.tpm2b(&[]).u16(hash);
        let cmd = Command::new(CommandCode::HashSequenceStart, Zeroizing::new(w.into_vec()))
            .response_handles(1);
        self.execute_new_handle(&cmd, |rsp| {
            if !rsp.params.is_empty() {
                return Err(Error::Integrity(
                    "TPM2_HashSequenceStart response: trailing bytes".into(),
                ));
            }
            rsp.handles.first().copied().ok_or_else(|| {
                Error::Integrity("TPM2_HashSequenceStart response: no handle".into())
            })
        })
    }

    /// TPM2_SequenceUpdate: at most [`MAX_HASH_BUFFER`] more bytes into `sequence`.
    pub fn sequence_update(&mut self, sequence: u32, chunk: &[u8]) -> Result<()> {
        check_hash_buffer(chunk)?;
        let mut w = Writer::new();
        w.tpm2b(chunk);
        let rsp = self.on_sequence(CommandCode::SequenceUpdate, sequence, w.into_vec())?;
        if !rsp.params.is_empty() {
            return Err(Error::Integrity(
                "TPM2_SequenceUpdate response: trailing bytes".into(),
            ));
        }
        Ok(())
    }

    /// TPM2_SequenceComplete: the last bytes, then (digest, ticket issued in
    /// `hierarchy`). The TPM flushes the sequence object.
    pub fn sequence_complete(
        &mut self,
        sequence: u32,
        last: &[u8],
        hierarchy: u32,
    ) -> Result<(Vec<u8>, HashCheckTicket)> {
        check_hash_buffer(last)?;
        let mut w = Writer::new();
        w.tpm2b(last).u32(hierarchy);
        let rsp = self.on_sequence(CommandCode::SequenceComplete, sequence, w.into_vec())?;
        parse_hash_result(&rsp.params, CommandCode::SequenceComplete)
    }

    /// A command on a hash sequence object, authorised with its empty authValue. A
    /// sequence object has no public area; its Name is empty.
    fn on_sequence(
        &mut self,
        code: CommandCode,
        sequence: u32,
        params: Vec<u8>,
    ) -> Result<Response> {
        let handles = [sequence];
        let names: [&[u8]; 1] = [&[]];
        self.execute(
            &Command::new(code, Zeroizing::new(params))
                .handles(&handles)
                .names(&names)
                .auth(&[]),
        )
    }
}

fn check_hash_buffer(data: &[u8]) -> Result<()> {
    if data.len() > MAX_HASH_BUFFER {
        return Err(Error::BadInput(format!(
            "{} bytes for the TPM to hash at once; it takes at most {MAX_HASH_BUFFER}",
            data.len()
        )));
    }
    Ok(())
}

/// The response of TPM2_Hash or TPM2_SequenceComplete: TPM2B_DIGEST, then the
/// TPMT_TK_HASHCHECK, filling the parameters exactly.
fn parse_hash_result(params: &[u8], code: CommandCode) -> Result<(Vec<u8>, HashCheckTicket)> {
    let named = |e: Error| match e {
        Error::Integrity(cause) => {
            Error::Integrity(format!("TPM2_{} response: {cause}", code.name()))
        }
        e => e,
    };
    let mut r = Reader::new(params);
    let digest = r.tpm2b().map_err(named)?.to_vec();
    let ticket = r.rest();
    let mut t = Reader::new(ticket);
    let tag = t.u16().map_err(named)?;
    t.u32().map_err(named)?;
    t.tpm2b().map_err(named)?;
    if tag != TPM_ST_HASHCHECK {
        return Err(named(Error::Integrity(format!(
            "ticket tag 0x{tag:04x} is not TPM_ST_HASHCHECK"
        ))));
    }
    if !t.is_empty() {
        return Err(named(Error::Integrity("trailing bytes".into())));
    }
    Ok((digest, HashCheckTicket(ticket.to_vec())))
}

/// A TPM2_Sign response: one TPMT_SIGNATURE, in the scheme and with the hash the command
/// asked for, filling the parameters exactly.
fn parse_signature(params: &[u8], scheme: u16, hash: u16) -> Result<TpmSignature> {
    let sig = TpmSignature::parse(params).map_err(|e| match e {
        Error::Evidence(cause) => Error::Integrity(format!("TPM2_Sign response: {cause}")),
        e => e,
    })?;
    let answered = match &sig {
        TpmSignature::Ecdsa { .. } => TPM_ALG_ECDSA,
        TpmSignature::Rsassa { .. } => TPM_ALG_RSASSA,
        TpmSignature::Rsapss { .. } => TPM_ALG_RSAPSS,
    };
    if answered != scheme || sig.hash().tpm_alg() != hash {
        return Err(Error::Integrity(format!(
            "TPM2_Sign response: a {} signature with {}, not the scheme 0x{scheme:04x} and hash 0x{hash:04x} asked for",
            sig.scheme_name(),
            sig.hash().name()
        )));
    }
    Ok(sig)
}

/// A password authorisation entry (TPM_RS_PW) for `auth`.
fn password_auth(auth: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut w = Writer::new();
    w.u32(TPM_RS_PW)
        .tpm2b(&[])
        .u8(ATTR_CONTINUE_SESSION)
        .tpm2b(auth);
    w.into_secret()
}

/// The authorisation entry of an unkeyed policy session: a fresh nonceCaller, no
/// continueSession (the command ends the session), and an empty HMAC (its key is empty).
fn unkeyed_auth(session: u32) -> Zeroizing<Vec<u8>> {
    let mut nonce = [0u8; 16];
    CRYPTO.random(&mut nonce);
    let mut w = Writer::new();
    w.u32(session).tpm2b(&nonce).u8(0).tpm2b(&[]);
    w.into_secret()
}

// ---- NV indices ------------------------------------------------------------------------

impl Tpm {
    /// TPM2_NV_DefineSpace under the owner hierarchy: `public` is the TPMS_NV_PUBLIC
    /// (without its size), `auth` the index's authValue, the first parameter, so the
    /// session encrypts it.
    pub fn nv_define_space(&mut self, owner_auth: &[u8], auth: &[u8], public: &[u8]) -> Result<()> {
        let mut w = Writer::new();
        w.tpm2b(auth).tpm2b(public);
        self.by_owner(
            CommandCode::NvDefineSpace,
            owner_auth,
            None,
            w.into_secret(),
        )
    }

    /// TPM2_NV_UndefineSpace of `index` (Name `index_name`) by the owner hierarchy.
    pub fn nv_undefine_space(
        &mut self,
        owner_auth: &[u8],
        index: u32,
        index_name: &[u8],
    ) -> Result<()> {
        let params = Zeroizing::new(Vec::new());
        self.by_owner(
            CommandCode::NvUndefineSpace,
            owner_auth,
            Some((index, index_name)),
            params,
        )
    }

    /// A command authorised by the owner hierarchy (its authValue through the session),
    /// on `other` too when given; a non-empty first parameter is the secret kind.
    fn by_owner(
        &mut self,
        code: CommandCode,
        owner_auth: &[u8],
        other: Option<(u32, &[u8])>,
        params: Zeroizing<Vec<u8>>,
    ) -> Result<()> {
        let owner = handle_name(TPM_RH_OWNER);
        let (handles, names): (Vec<u32>, Vec<&[u8]>) = match other {
            Some((h, n)) => (vec![TPM_RH_OWNER, h], vec![&owner, n]),
            None => (vec![TPM_RH_OWNER], vec![&owner]),
        };
        let secret_in = !params.is_empty();
        let cmd = Command::new(code, params)
            .handles(&handles)
            .names(&names)
            .auth(owner_auth);
        let cmd = if secret_in { cmd.secret_in() } else { cmd };
        self.execute(&cmd).map(|_| ())
    }

    /// TPM2_NV_Read of `size` bytes at offset 0 of an index read by policy (POLICYREAD),
    /// authorised by the connection's policy session, whose policy the caller has just
    /// satisfied; the data comes back encrypted by that session.
    pub fn nv_read_by_policy(
        &mut self,
        index: u32,
        index_name: &[u8],
        auth: &[u8],
        size: u16,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut w = Writer::new();
        w.u16(size).u16(0);
        let cmd = Command::new(CommandCode::NvRead, w.into_secret()).secret_out();
        let rsp = self.on_index_by_policy(cmd, index, index_name, auth)?;
        Ok(Zeroizing::new(tpm2b_contents(&rsp.params)?.to_vec()))
    }

    /// TPM2_NV_Write of `data` at offset 0 of an index written by policy (POLICYWRITE),
    /// authorised like [`Tpm::nv_read_by_policy`]; the data goes encrypted.
    pub fn nv_write_by_policy(
        &mut self,
        index: u32,
        index_name: &[u8],
        auth: &[u8],
        data: &[u8],
    ) -> Result<()> {
        let mut w = Writer::new();
        w.tpm2b(data).u16(0);
        let cmd = Command::new(CommandCode::NvWrite, w.into_secret()).secret_in();
        self.on_index_by_policy(cmd, index, index_name, auth)
            .map(|_| ())
    }

    /// An NV command whose index is also its authorisation handle, in the policy session.
    fn on_index_by_policy(
        &mut self,
        cmd: Command<'_>,
        index: u32,
        index_name: &[u8],
        auth: &[u8],
    ) -> Result<Response> {
        let handles = [index, index];
        let names = [index_name, index_name];
        let cmd = cmd.handles(&handles).names(&names).auth(auth);
        let result = self.execute_in(&cmd, Slot::Policy);
        // Success resets the session's policy digest in the TPM; failure leaves it.
        self.policy.used(result.is_ok());
        result
    }

    /// TPM2_StartAuthSession of a policy session neither salted nor bound, encrypting
    /// nothing: its HMAC key is empty, so it serves only policies that carry no secret and
    /// never ask for an authValue (PolicyNvWritten before the first write of an index).
    pub fn start_unkeyed_policy_session(&mut self) -> Result<u32> {
        let mut nonce = [0u8; 16];
        CRYPTO.random(&mut nonce);
        let mut w = Writer::new();
        w.tpm2b(&nonce)
            .tpm2b(&[])
            .u8(TPM_SE_POLICY)
            .u16(TPM_ALG_NULL)
            .u16(TPM_ALG_SHA256);
        let cmd = Command::new(CommandCode::StartAuthSession, w.into_secret())
            .handles(&[TPM_RH_NULL, TPM_RH_NULL])
            .response_handles(1);
        self.execute_new_handle(&cmd, |rsp| {
            rsp.handles
                .first()
                .copied()
                .ok_or_else(|| Error::Integrity("no session handle".into()))
        })
    }

    /// TPM2_NV_Write of `data` at offset 0, authorised by the unkeyed policy session
    /// `session`, which the command ends when it succeeds.
    pub fn nv_write_with_policy(
        &mut self,
        index: u32,
        index_name: &[u8],
        session: u32,
        data: &[u8],
    ) -> Result<()> {
        let mut w = Writer::new();
        w.tpm2b(data).u16(0);
        let names = [index_name, index_name];
        self.execute_with(
            &Command::new(CommandCode::NvWrite, w.into_secret())
                .handles(&[index, index])
                .names(&names),
            Slot::Hmac,
            OtherAuth::UnkeyedPolicy(session),
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_command_has_nothing_but_its_code_and_parameters() {
        let cmd = Command::new(CommandCode::GetRandom, Zeroizing::new(vec![0, 32]));
        assert_eq!(cmd.code as u32, CommandCode::GetRandom as u32);
        assert_eq!(&cmd.params[..], &[0, 32]);
        assert!(cmd.handles.is_empty() && cmd.names.is_empty() && cmd.auth.is_none());
        assert!(!cmd.secret_in && !cmd.secret_out && !cmd.before_session);
        assert_eq!(cmd.response_handles, 0);
    }

    #[test]
    fn the_builder_sets_each_part_and_leaves_the_others() {
        let handles = [0x8000_0001, 0x4000_0001];
        let name = handle_name(0x4000_0001);
        let names: [&[u8]; 2] = [b"key", &name];
        let cmd = Command::new(CommandCode::Create, Zeroizing::new(Vec::new()))
            .handles(&handles)
            .names(&names)
            .auth(b"pw")
            .secret_in()
            .response_handles(1);
        assert_eq!(cmd.handles, &handles);
        assert_eq!(cmd.names, &names);
        assert_eq!(cmd.auth, Some(&b"pw"[..]));
        assert!(cmd.secret_in && !cmd.secret_out && !cmd.before_session);
        assert_eq!(cmd.response_handles, 1);
        let cmd = Command::new(CommandCode::Quote, Zeroizing::new(Vec::new()))
            .secret_out()
            .before_session();
        assert!(!cmd.secret_in && cmd.secret_out && cmd.before_session);
        assert!(cmd.auth.is_none());
    }

    #[test]
    fn a_session_is_wanted_only_for_authorised_or_secret_commands_when_sessions_are_on() {
        let tpm = Tpm::new(Tcti::scripted(|_| Vec::new()), true);
        let plain = Command::new(CommandCode::ReadPublic, Zeroizing::new(Vec::new()));
        assert!(!tpm.wants_session(&plain));
        let secret = Command::new(CommandCode::GetRandom, Zeroizing::new(Vec::new())).secret_out();
        assert!(tpm.wants_session(&secret));
        let authorised = Command::new(CommandCode::Sign, Zeroizing::new(Vec::new())).auth(b"");
        assert!(tpm.wants_session(&authorised));
        assert!(!tpm.wants_session(&authorised.before_session()));
        let off = Tpm::new(Tcti::scripted(|_| Vec::new()), false);
        assert!(!off.wants_session(&secret));
    }

    fn ecdsa_sha256(r: &[u8], s: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(TPM_ALG_ECDSA).u16(TPM_ALG_SHA256).tpm2b(r).tpm2b(s);
        w.into_vec()
    }

    #[test]
    fn a_sign_response_parses_into_the_signature() {
        let sig = parse_signature(
            &ecdsa_sha256(&[1; 32], &[2; 31]),
            TPM_ALG_ECDSA,
            TPM_ALG_SHA256,
        );
        let Ok(TpmSignature::Ecdsa { r, s, .. }) = sig else {
            panic!("not parsed: {sig:?}");
        };
        assert_eq!((r, s), (vec![1; 32], vec![2; 31]));
        let mut w = Writer::new();
        w.u16(TPM_ALG_RSAPSS).u16(TPM_ALG_SHA384).tpm2b(&[9; 256]);
        let sig = parse_signature(&w.into_vec(), TPM_ALG_RSAPSS, TPM_ALG_SHA384);
        assert!(matches!(sig, Ok(TpmSignature::Rsapss { ref sig, .. }) if sig == &[9; 256]));
    }

    #[test]
    fn a_short_or_empty_sign_response_is_an_error_naming_it_never_an_empty_signature() {
        let full = ecdsa_sha256(&[1; 32], &[2; 32]);
        for len in 0..full.len() {
            match parse_signature(&full[..len], TPM_ALG_ECDSA, TPM_ALG_SHA256) {
                Err(Error::Integrity(m)) => {
                    assert!(
                        m.contains("TPM2_Sign response") && m.contains("truncated"),
                        "{m}"
                    )
                }
                other => panic!("{len} bytes: {other:?}"),
            }
        }
        let mut long = full.clone();
        long.push(0);
        let e = parse_signature(&long, TPM_ALG_ECDSA, TPM_ALG_SHA256);
        assert!(matches!(e, Err(Error::Integrity(m)) if m.contains("trailing")));
    }

    #[test]
    fn a_hash_response_parses_whole_and_refuses_truncated_or_trailing_bytes() {
        let mut w = Writer::new();
        w.tpm2b(&[7; 32])
            .u16(TPM_ST_HASHCHECK)
            .u32(TPM_RH_OWNER)
            .tpm2b(&[9; 32]);
        let full = w.into_vec();
        let (digest, ticket) = parse_hash_result(&full, CommandCode::Hash).unwrap();
        assert_eq!(digest, [7; 32]);
        assert_eq!(ticket.0, &full[34..]);
        for len in 0..full.len() {
            let e = parse_hash_result(&full[..len], CommandCode::SequenceComplete);
            assert!(
                matches!(e, Err(Error::Integrity(ref m)) if m.contains("TPM2_SequenceComplete response")),
                "{len} bytes: {e:?}"
            );
        }
        let mut long = full.clone();
        long.push(0);
        let e = parse_hash_result(&long, CommandCode::Hash);
        assert!(
            matches!(e, Err(Error::Integrity(ref m)) if m.contains("trailing")),
            "{e:?}"
        );
        let mut wrong_tag = full.clone();
        wrong_tag[34] = 0x80;
        wrong_tag[35] = 0x21;
        let e = parse_hash_result(&wrong_tag, CommandCode::Hash);
        assert!(
            matches!(e, Err(Error::Integrity(ref m)) if m.contains("TPM_ST_HASHCHECK")),
            "{e:?}"
        );
    }

    #[test]
    fn more_than_a_buffer_is_refused_before_the_tpm_sees_it() {
        let mut tpm = Tpm::new(Tcti::scripted(|_| panic!("sent to the TPM")), false);
        let e = tpm.hash(&[0; MAX_HASH_BUFFER + 1], TPM_ALG_SHA256, TPM_RH_OWNER);
        assert!(
            matches!(e, Err(Error::BadInput(ref m)) if m.contains("at most 1024")),
            "{e:?}"
        );
    }

    #[test]
    fn a_sign_response_in_another_scheme_or_hash_is_refused() {
        let sig = ecdsa_sha256(&[1; 32], &[2; 32]);
        for (scheme, hash) in [
            (TPM_ALG_RSASSA, TPM_ALG_SHA256),
            (TPM_ALG_ECDSA, TPM_ALG_SHA384),
        ] {
            let e = parse_signature(&sig, scheme, hash);
            assert!(
                matches!(e, Err(Error::Integrity(ref m)) if m.contains("ECDSA signature with SHA256")),
                "{e:?}"
            );
        }
        let mut unknown = Writer::new();
        unknown.u16(TPM_ALG_NULL).u16(TPM_ALG_SHA256);
        let e = parse_signature(&unknown.into_vec(), TPM_ALG_ECDSA, TPM_ALG_SHA256);
        assert!(
            matches!(e, Err(Error::Integrity(ref m)) if m.contains("scheme 0x0010")),
            "{e:?}"
        );
    }
}
