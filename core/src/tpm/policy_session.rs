//! Satisfying a key's policy in a policy session on the TPM: the statements of `policy [1]`,
//! the signed policies of `authPolicy [3]` tried in order, and the reason in words when the
//! platform state does not satisfy them.
//!
//! The session is started once, salted and encrypting like the HMAC session, and kept:
//! after the key's command succeeds the TPM resets the session's digest, so a PCR-bound
//! key costs PolicyPCR + its command, and a signed-policy key PolicyPCR + PolicyAuthorize +
//! its command once the VerifySignature ticket is cached. Policy failures never reach the
//! authorisation check, so a platform in the wrong state never spends a dictionary-attack
//! count.

use std::collections::HashMap;

use crate::commands::Tpm;
use crate::error::{Error, Result};
use crate::policy::{KeyPolicy, PcrSelection, SignedPolicy, Statement};
use crate::session::SaltedSession;
use crate::wire::{CommandCode, TPM_RH_OWNER};

/// TPM_RC_VALUE (PolicyPCR with a digest the PCRs no longer give, PolicyOR without the
/// current digest, PolicyAuthorize of another digest), TPM_RC_POLICY (PolicyCounterTimer
/// false), TPM_RC_SIGNATURE, TPM_RC_TICKET, TPM_RC_POLICY_FAIL, TPM_RC_LOCALITY,
/// TPM_RC_PCR_CHANGED: the platform state, not the caller, is at fault.
const STATE_CODES: [u32; 7] = [0x084, 0x126, 0x09B, 0x0A0, 0x09D, 0x107, 0x128];

fn is_state_failure(e: &Error) -> bool {
    e.response_code()
        .is_some_and(|rc| STATE_CODES.contains(&rc.base()))
}

/// The policy session and what it holds now.
#[derive(Debug)]
pub struct PolicySession {
    pub session: SaltedSession,
    /// PolicyAuthValue ran since the last use: the key's authValue enters the HMAC.
    auth_value: bool,
    /// The digest may hold statements from an attempt that did not end in a use.
    dirty: bool,
}

impl PolicySession {
    pub fn new(session: SaltedSession) -> PolicySession {
        PolicySession {
            session,
            auth_value: false,
            dirty: false,
        }
    }
}

/// Per connection: the kept policy session and what was learnt running policies.
#[derive(Debug, Default)]
pub struct PolicyState {
    pub session: Option<PolicySession>,
    /// The next command the policy session authorises is its last: sent without
    /// continueSession, so the TPM ends the session when the command succeeds (a one-time
    /// use, such as a PIN object at login, frees its slot without a FlushContext).
    pub end_after_next: bool,
    /// VerifySignature tickets by signer Name ‖ aHash. Signers are loaded in the owner
    /// hierarchy, whose tickets stay valid until TPM2_Clear changes the owner proof.
    tickets: HashMap<Vec<u8>, Vec<u8>>,
    /// The approved policy of signed entries the host cannot digest (a PolicyPCR of current
    /// values, as systemd signs them), learnt once from PolicyGetDigest; by signature.
    approved: HashMap<Vec<u8>, Vec<u8>>,
    /// The signed policy that worked last, by key policy (its authPolicy digest).
    last_good: HashMap<Vec<u8>, usize>,
}

impl PolicyState {
    pub fn auth_value_needed(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.auth_value)
    }

    /// After the key's command: success has reset the digest in the TPM.
    pub fn used(&mut self, ok: bool) {
        if let Some(s) = self.session.as_mut() {
            s.dirty = !ok;
            s.auth_value = s.auth_value && !ok;
        }
    }

    fn handle(&self) -> Result<u32> {
        self.session
            .as_ref()
            .map(|s| s.session.handle)
            .ok_or_else(|| Error::Integrity("no policy session".into()))
    }

    fn mark(&mut self, auth_value: bool) {
        if let Some(s) = self.session.as_mut() {
            s.dirty = true;
            s.auth_value |= auth_value;
        }
    }
}

/// Runs `policy` in the connection's policy session, which must exist. `auth` is the key's
/// password, for PolicySecret (whose object's authValue it is) and PolicyAuthValue.
pub fn satisfy(tpm: &mut Tpm, policy: &KeyPolicy, auth: &[u8]) -> Result<()> {
    let session = tpm.policy.handle()?;
    if tpm.policy.session.as_ref().is_some_and(|s| s.dirty) {
        tpm.policy_restart(session)?;
        if let Some(s) = tpm.policy.session.as_mut() {
            s.dirty = false;
            s.auth_value = false;
        }
    }
    if policy.authorize.is_some() || !policy.signed.is_empty() {
        run_signed(tpm, session, policy, auth)?;
    }
    run_statements(tpm, session, &policy.statements, auth)
}

fn run_statements(
    tpm: &mut Tpm,
    session: u32,
    statements: &[Statement],
    auth: &[u8],
) -> Result<()> {
    for statement in statements {
        tpm.policy.mark(false);
        run_statement(tpm, session, statement, auth).map_err(|e| {
            if is_state_failure(&e) {
                Error::PolicyNotSatisfied(state_failure(statement))
            } else {
                e
            }
        })?;
    }
    Ok(())
}

fn run_statement(tpm: &mut Tpm, session: u32, statement: &Statement, auth: &[u8]) -> Result<()> {
    match statement {
        Statement::Secret(s) => {
            if s.handle_hint == 0 {
                return Err(Error::Unsupported(
                    "PolicySecret naming its object by Name only (no handle)".into(),
                ));
            }
            tpm.policy_secret(s.handle_hint, &s.object_name, auth, session, &s.policy_ref)
        }
        Statement::Authorize(_) => Err(Error::KeyFile(
            "PolicyAuthorize is only valid as the first statement of policy [1]".into(),
        )),
        other => {
            let (code, params) = other.command_parameters()?.ok_or_else(|| {
                Error::Unsupported(format!("running {} in a policy session", other.name()))
            })?;
            let code = CommandCode::policy_statement(code).ok_or_else(|| {
                Error::Unsupported(format!("running {} in a policy session", other.name()))
            })?;
            if code == CommandCode::PolicyAuthValue {
                tpm.policy.mark(true);
            }
            tpm.policy_statement(session, code, &params)
        }
    }
}

/// Why a statement failed, in words an administrator can act on.
fn state_failure(statement: &Statement) -> String {
    match statement {
        Statement::Pcr(p) => pcr_failure(&p.selection),
        Statement::CounterTimer(_) => {
            "the key's time or boot limit has passed (PolicyCounterTimer)".into()
        }
        Statement::Locality(l) => format!("the key needs locality 0x{l:02x} (PolicyLocality)"),
        Statement::Or(_) => "none of the PolicyOR branches matches the platform state".into(),
        other => format!("{} refused by the TPM", other.name()),
    }
}

fn pcr_failure(selection: &PcrSelection) -> String {
    format!("PCR {selection} do not have the values the key is bound to (PolicyPCR)")
}

/// Tries the signed policies, the one that worked last first, PolicyRestart between
/// attempts; the first that the platform state satisfies ends in PolicyAuthorize.
fn run_signed(tpm: &mut Tpm, session: u32, policy: &KeyPolicy, auth: &[u8]) -> Result<()> {
    if policy.signed.is_empty() {
        return Err(Error::PolicyNotSatisfied(
            "no signed policy: the key needs a policy signed by its signer (tpmkey policy add)"
                .into(),
        ));
    }
    let key_id = policy.auth_policy_digest().unwrap_or_default();
    let first = tpm.policy.last_good.get(&key_id).copied().unwrap_or(0);
    let order = std::iter::once(first).chain((0..policy.signed.len()).filter(|i| *i != first));
    let mut tried = Vec::new();
    for (attempt, i) in order.enumerate() {
        let Some(entry) = policy.signed.get(i) else {
            continue;
        };
        if attempt > 0 {
            tpm.policy_restart(session)?;
        }
        match run_signed_entry(tpm, session, entry, auth) {
            Ok(()) => {
                tpm.policy.last_good.insert(key_id, i);
                return Ok(());
            }
            Err(e) if is_state_failure(&e) || matches!(e, Error::PolicyNotSatisfied(_)) => {
                let why = match &e {
                    Error::PolicyNotSatisfied(m) => m.clone(),
                    other => other.to_string(),
                };
                tried.push(format!("{} ({why})", entry.label(i)));
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::PolicyNotSatisfied(format!(
        "no signed policy matches the platform state; tried: {}",
        tried.join("; ")
    )))
}

fn run_signed_entry(tpm: &mut Tpm, session: u32, entry: &SignedPolicy, auth: &[u8]) -> Result<()> {
    run_statements(tpm, session, &entry.statements, auth)?;
    let signature = entry.authorize.signature.marshal();
    let approved = match (&entry.approved_policy, tpm.policy.approved.get(&signature)) {
        (Some(a), _) => a.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => {
            let a = tpm.policy_get_digest(session)?;
            tpm.policy.approved.insert(signature.clone(), a.clone());
            a
        }
    };
    let signer_name = entry.authorize.signer_name()?;
    let a_hash = entry.authorization_hash(&approved);
    let ticket_id = [signer_name.as_slice(), &a_hash].concat();
    let ticket = match tpm.policy.tickets.get(&ticket_id) {
        Some(t) => t.clone(),
        None => {
            let t =
                verify(tpm, &entry.authorize.key_sign, &a_hash, &signature).map_err(|e| match e
                    .response_code()
                {
                    Some(rc) if rc.base() == 0x09B || rc.base() == 0x084 => {
                        Error::PolicyNotSatisfied(
                            "its signature does not verify with the signer key".into(),
                        )
                    }
                    _ => e,
                })?;
            tpm.policy.tickets.insert(ticket_id.clone(), t.clone());
            t
        }
    };
    let authorized = tpm.policy_authorize(
        session,
        &approved,
        &entry.authorize.policy_ref,
        &signer_name,
        &ticket,
    );
    if let Err(e) = &authorized {
        // A stale ticket (owner hierarchy cleared) must not stick.
        tpm.policy.tickets.remove(&ticket_id);
        if is_state_failure(e) {
            return Err(Error::PolicyNotSatisfied(
                "the platform state is not the one it approves".into(),
            ));
        }
    }
    authorized
}

/// LoadExternal of the signer in the owner hierarchy, VerifySignature, FlushContext.
fn verify(tpm: &mut Tpm, key_sign: &[u8], a_hash: &[u8], signature: &[u8]) -> Result<Vec<u8>> {
    let (handle, _) = tpm.load_external(key_sign, TPM_RH_OWNER)?;
    let ticket = tpm.verify_signature(handle, a_hash, signature);
    let flushed = tpm.flush_context(handle);
    let ticket = ticket?;
    flushed?;
    Ok(ticket)
}

/// The reason a key's command failed on policy grounds after its statements ran (a
/// PolicyPCR of current values, a locality): the statements named.
pub fn use_failure(policy: &KeyPolicy) -> String {
    let pcrs: Vec<String> = policy
        .statements
        .iter()
        .chain(policy.signed.iter().flat_map(|s| s.statements.iter()))
        .filter_map(|s| match s {
            Statement::Pcr(p) => Some(p.selection.to_string()),
            _ => None,
        })
        .collect();
    if pcrs.is_empty() {
        "the TPM refused the key's policy (policy check failed)".into()
    } else {
        format!(
            "PCR {} do not have the values the key is bound to (PolicyPCR)",
            pcrs.join(", ")
        )
    }
}

/// The current values of the PCRs in `selection`, in selection order: one TPM2_PCR_Read
/// per bank and eight PCRs (a TPML_DIGEST holds at most eight).
pub fn read_pcrs(tpm: &mut Tpm, selection: &PcrSelection) -> Result<Vec<Vec<u8>>> {
    let mut values = Vec::new();
    for bank in selection.banks() {
        let indices: Vec<u8> = (0..32u8).filter(|i| bank.pcrs & (1 << i) != 0).collect();
        for chunk in indices.chunks(8) {
            let asked = PcrSelection::new(bank.hash, chunk)?;
            let (answered, mut got) = tpm.pcr_read(&asked.marshal())?;
            if answered != asked.marshal() || got.len() != chunk.len() {
                return Err(Error::BadInput(format!(
                    "PCR {asked}: this TPM has no such PCR bank or index"
                )));
            }
            values.append(&mut got);
        }
    }
    Ok(values)
}
