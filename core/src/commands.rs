//! tpmkey's own TPM command layer: one function per TPM command, each marshalling its
//! parameters and parsing its response, over one `execute` that adds the authorisation
//! area (salted session, password, or none) and checks the response.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::response_code::{TPM_RC_RETRY, TPM_RC_TESTING, TPM_RC_YIELDED};
use crate::session::{
    self, SaltKey, SaltedSession, ATTR_CONTINUE_SESSION, ATTR_DECRYPT, ATTR_ENCRYPT,
};
use crate::tcti::Tcti;
use crate::wire::*;

/// The name of a permanent or persistent-by-handle entity: its handle.
pub fn handle_name(handle: u32) -> [u8; 4] {
    handle.to_be_bytes()
}

/// What one command needs: handles with their Names, the authValue of the first handle
/// (`None` when no handle needs authorisation), and which parameters are secret.
#[derive(Debug)]
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
    /// storage key, which must exist before a session can be salted with it.
    pub before_session: bool,
}

/// The parts of a command on one authorised key (Sign, RSA_Decrypt, ECDH_ZGen, Unseal).
struct KeyCommand<'a> {
    code: CommandCode,
    key: u32,
    name: &'a [u8],
    auth: &'a [u8],
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
    /// `session = on`: every command with an authorisation or a secret goes through `session`.
    pub use_session: bool,
    /// Commands sent on this connection, for tests and the benchmark.
    pub commands_sent: u64,
}

const RETRY_LIMIT: u32 = 50;

impl Tpm {
    pub fn new(tcti: Tcti, use_session: bool) -> Tpm {
        Tpm {
            tcti,
            session: None,
            use_session,
            commands_sent: 0,
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
        let mut attempt = 0;
        loop {
            match self.execute_once(cmd) {
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

    fn execute_once(&mut self, cmd: &Command<'_>) -> Result<Response> {
        let with_session = self.wants_session(cmd);
        let mut params = cmd.params.clone();
        let mut auth_area = Zeroizing::new(Vec::new());
        let mut session_attrs = 0u8;
        let mut nonce_caller = [0u8; 32];
        if with_session {
            let s = self
                .session
                .as_ref()
                .ok_or_else(|| Error::Integrity("no session established".into()))?;
            session_attrs = ATTR_CONTINUE_SESSION
                | if cmd.secret_in { ATTR_DECRYPT } else { 0 }
                | if cmd.secret_out { ATTR_ENCRYPT } else { 0 };
            let (area, nonce) = s.authorize(
                cmd.code as u32,
                cmd.names,
                &mut params,
                cmd.auth.unwrap_or(&[]),
                session_attrs,
            )?;
            auth_area = Zeroizing::new(area);
            nonce_caller = nonce;
        } else if let Some(auth) = cmd.auth {
            let mut w = Writer::new();
            w.u32(TPM_RS_PW)
                .tpm2b(&[])
                .u8(ATTR_CONTINUE_SESSION)
                .tpm2b(auth);
            auth_area = w.into_secret();
        }
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
            if with_session && e.is_bad_auth() {
                // Our session key may not be the TPM's: StartAuthSession's response has no
                // HMAC, so a nonceTPM altered on the bus shows only here. Kept, the session
                // would fail every command; the next operation starts a new one.
                if let Some(s) = self.session.take() {
                    let _ = self.flush_context(s.handle);
                }
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
                // The TPM may still hold the session: flush it rather than leak a slot.
                if let Some(s) = self.session.take() {
                    let _ = self.flush_context(s.handle);
                }
                self.flush_all(&handles);
                return Err(Error::Integrity(
                    "response lacks the session's authorisation".into(),
                ));
            }
            let verified = match self.session.as_mut() {
                Some(s) => s.verify_response(
                    cmd.code as u32,
                    &mut out,
                    &mut r,
                    cmd.auth.unwrap_or(&[]),
                    &nonce_caller,
                    session_attrs,
                ),
                None => Err(Error::Integrity("no session established".into())),
            };
            if let Err(e) = verified {
                // The TPM has moved to a nonce we could not check: this session is spent,
                // and an object the unverified response names is not used.
                if let Some(s) = self.session.take() {
                    let _ = self.flush_context(s.handle);
                }
                self.flush_all(&handles);
                return Err(e);
            }
        }
        Ok(Response {
            handles,
            params: out,
        })
    }

    // ---- sessions and contexts -------------------------------------------------------

    /// TPM2_StartAuthSession: an HMAC session salted with the loaded storage key, unbound,
    /// AES-128-CFB for parameter encryption, SHA-256.
    pub fn start_salted_session(
        &mut self,
        salt_handle: u32,
        salt_key: &SaltKey,
    ) -> Result<SaltedSession> {
        let (params, pending) = session::start_params(salt_key)?;
        let cmd = Command {
            code: CommandCode::StartAuthSession,
            handles: &[salt_handle, TPM_RH_NULL],
            names: &[],
            auth: None,
            params: Zeroizing::new(params),
            secret_in: false,
            secret_out: false,
            response_handles: 1,
            before_session: false,
        };
        self.execute_new_handle(&cmd, |rsp| {
            let nonce_tpm = Reader::new(&rsp.params).tpm2b()?;
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
        self.execute(&Command {
            code,
            handles,
            names: &[],
            auth: None,
            params: Zeroizing::new(params),
            secret_in: false,
            secret_out: false,
            response_handles,
            before_session: false,
        })
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
        Ok((public, name))
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
        let name = handle_name(hierarchy);
        let cmd = Command {
            code: CommandCode::CreatePrimary,
            handles: &[hierarchy],
            names: &[&name],
            auth: Some(hierarchy_auth),
            params: w.into_secret(),
            secret_in: false,
            secret_out: false,
            response_handles: 1,
            before_session: true,
        };
        self.execute_new_handle(&cmd, |rsp| {
            let mut r = Reader::new(&rsp.params);
            let public = r.tpm2b_raw()?.to_vec();
            r.tpm2b()?; // creationData
            r.tpm2b()?; // creationHash
            r.u16()?; // creationTicket tag
            r.u32()?; // hierarchy
            r.tpm2b()?; // digest
            let name = r.tpm2b()?.to_vec();
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
        let mut sensitive = Writer::new();
        sensitive.tpm2b(user_auth).tpm2b(data);
        let sensitive = sensitive.into_secret();
        let mut w = Writer::new();
        w.tpm2b(&sensitive).tpm2b(template).tpm2b(&[]).u32(0);
        let rsp = self.execute(&Command {
            code: CommandCode::Create,
            handles: &[parent],
            names: &[parent_name],
            auth: Some(parent_auth),
            params: w.into_secret(),
            secret_in: true,
            secret_out: false,
            response_handles: 0,
            before_session: false,
        })?;
        let mut r = Reader::new(&rsp.params);
        let private = r.tpm2b_raw()?.to_vec();
        let public = r.tpm2b_raw()?.to_vec();
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
        let cmd = Command {
            code: CommandCode::Load,
            handles: &[parent],
            names,
            auth: Some(parent_auth),
            params: w.into_secret(),
            secret_in: false,
            secret_out: false,
            response_handles: 1,
            before_session,
        };
        self.execute_new_handle(&cmd, |rsp| {
            let name = Reader::new(&rsp.params).tpm2b()?.to_vec();
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
        self.execute(&Command {
            code: CommandCode::EvictControl,
            handles: &[TPM_RH_OWNER, object],
            names: &[&owner, object_name],
            auth: Some(owner_auth),
            params: w.into_secret(),
            secret_in: false,
            secret_out: false,
            response_handles: 0,
            before_session: false,
        })
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
        let rsp = self.execute(&Command {
            code: CommandCode::ChangeAuth,
            handles: &[object, parent],
            names: &[object_name, parent_name],
            auth: Some(auth),
            params: w.into_secret(),
            secret_in: true,
            secret_out: false,
            response_handles: 0,
            before_session: false,
        })?;
        let mut r = Reader::new(&rsp.params);
        Ok(r.tpm2b_raw()?.to_vec())
    }

    // ---- key operations --------------------------------------------------------------

    /// A command on one key, authorised with the key's authValue.
    fn on_key(&mut self, k: KeyCommand<'_>) -> Result<Response> {
        self.execute(&Command {
            code: k.code,
            handles: &[k.key],
            names: &[k.name],
            auth: Some(k.auth),
            params: k.params,
            secret_in: k.secret_in,
            secret_out: k.secret_out,
            response_handles: 0,
            before_session: false,
        })
    }

    /// TPM2_Sign of a digest: the TPMT_SIGNATURE as returned.
    pub fn sign(
        &mut self,
        key: u32,
        key_name: &[u8],
        auth: &[u8],
        digest: &[u8],
        scheme: u16,
        hash: u16,
    ) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.tpm2b(digest).u16(scheme);
        if scheme != TPM_ALG_NULL {
            w.u16(hash);
        }
        w.u16(0x8024).u32(TPM_RH_NULL).tpm2b(&[]); // TPMT_TK_HASHCHECK: null ticket
        let rsp = self.on_key(KeyCommand {
            code: CommandCode::Sign,
            key,
            name: key_name,
            auth,
            params: w.into_secret(),
            secret_in: true,
            secret_out: false,
        })?;
        Ok(rsp.params.to_vec())
    }

    /// TPM2_RSA_Decrypt; scheme TPM_ALG_NULL is the raw private-key operation.
    #[allow(clippy::too_many_arguments)]
    pub fn rsa_decrypt(
        &mut self,
        key: u32,
        key_name: &[u8],
        auth: &[u8],
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
            auth,
            params: w.into_secret(),
            secret_in: true,
            secret_out: true,
        })?;
        let mut r = Reader::new(&rsp.params);
        Ok(Zeroizing::new(r.tpm2b()?.to_vec()))
    }

    /// TPM2_ECDH_ZGen: the x coordinate of d * (x, y).
    pub fn ecdh_zgen(
        &mut self,
        key: u32,
        key_name: &[u8],
        auth: &[u8],
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
            auth,
            params: w.into_secret(),
            secret_in: true,
            secret_out: true,
        })?;
        let mut r = Reader::new(&rsp.params);
        let point = r.tpm2b()?;
        let mut p = Reader::new(point);
        Ok(Zeroizing::new(p.tpm2b()?.to_vec()))
    }

    /// TPM2_Unseal: the sealed data.
    pub fn unseal(
        &mut self,
        item: u32,
        item_name: &[u8],
        auth: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let rsp = self.on_key(KeyCommand {
            code: CommandCode::Unseal,
            key: item,
            name: item_name,
            auth,
            params: Zeroizing::new(Vec::new()),
            secret_in: false,
            secret_out: true,
        })?;
        let mut r = Reader::new(&rsp.params);
        Ok(Zeroizing::new(r.tpm2b()?.to_vec()))
    }

    /// TPM2_GetRandom: at most `n` bytes (the TPM may return fewer).
    pub fn get_random(&mut self, n: u16) -> Result<Zeroizing<Vec<u8>>> {
        let mut w = Writer::new();
        w.u16(n);
        let rsp = self.execute(&Command {
            code: CommandCode::GetRandom,
            handles: &[],
            names: &[],
            auth: None,
            params: w.into_secret(),
            secret_in: false,
            secret_out: true,
            response_handles: 0,
            before_session: false,
        })?;
        let mut r = Reader::new(&rsp.params);
        Ok(Zeroizing::new(r.tpm2b()?.to_vec()))
    }

    /// TPM2_StirRandom: mixes caller entropy into the TPM's RNG.
    pub fn stir_random(&mut self, data: &[u8]) -> Result<()> {
        let mut w = Writer::new();
        w.tpm2b(data);
        self.execute(&Command {
            code: CommandCode::StirRandom,
            handles: &[],
            names: &[],
            auth: None,
            params: w.into_secret(),
            secret_in: true,
            secret_out: false,
            response_handles: 0,
            before_session: false,
        })
        .map(|_| ())
    }
}
