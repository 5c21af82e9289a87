//! Policy statements as TSS2 key files carry them: a command code and its `commandPolicy`
//! body, decoded into what the statement means and encoded back.
//!
//! Bodies are the command's marshalled parameters (draft-bottomley-tpm-keys), except where
//! openssl_tpm2_engine writes the policy-hash order instead: PolicyPCR (engine:
//! `TPML_PCR_SELECTION ‖ digest`; GRUB and pcr-oracle: `TPM2B_DIGEST ‖ TPML_PCR_SELECTION`)
//! and PolicyCounterTimer (engine: raw `operandB ‖ offset ‖ operation`; command order:
//! `TPM2B_OPERAND ‖ offset ‖ operation`). Both are read, told apart by exact-length parsing
//! (for PolicyCounterTimer the command form wins when its size prefix fits, see
//! `decode_counter_timer`); the form read is kept so a statement encodes back to the same
//! bytes. PolicyAuthorize (`TPM2B_PUBLIC ‖ policyRef ‖ TPMT_SIGNATURE`) and PolicySecret
//! (`handleHint ‖ TPM2B_NAME ‖ policyRef`) have the draft's own layouts. PolicyOR and
//! PolicyCommandCode are not in the draft: their bodies are the command parameters
//! (`TPML_DIGEST`, `TPM_CC`).

use std::fmt;

use super::pcr::PcrSelection;
use super::signer::{SignerKey, TpmSignature};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::TpmPolicy;
use crate::wire::{Reader, Writer};

/// Command codes of the policy commands (TPM 2.0 Part 2, TPM_CC).
pub mod cc {
    pub const POLICY_SECRET: u32 = 0x151;
    pub const POLICY_SIGNED: u32 = 0x160;
    pub const POLICY_AUTHORIZE: u32 = 0x16A;
    pub const POLICY_AUTH_VALUE: u32 = 0x16B;
    pub const POLICY_COMMAND_CODE: u32 = 0x16C;
    pub const POLICY_COUNTER_TIMER: u32 = 0x16D;
    pub const POLICY_LOCALITY: u32 = 0x16F;
    pub const POLICY_OR: u32 = 0x171;
    pub const POLICY_PCR: u32 = 0x17F;
    pub const POLICY_PASSWORD: u32 = 0x18C;
    pub const POLICY_NV_WRITTEN: u32 = 0x18F;
}

/// The name of a policy command code, for messages (also of those tpmkey cannot run).
pub fn command_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0x149 => "PolicyNV",
        cc::POLICY_SECRET => "PolicySecret",
        cc::POLICY_SIGNED => "PolicySigned",
        cc::POLICY_AUTHORIZE => "PolicyAuthorize",
        cc::POLICY_AUTH_VALUE => "PolicyAuthValue",
        cc::POLICY_COMMAND_CODE => "PolicyCommandCode",
        cc::POLICY_COUNTER_TIMER => "PolicyCounterTimer",
        0x16E => "PolicyCpHash",
        cc::POLICY_LOCALITY => "PolicyLocality",
        0x170 => "PolicyNameHash",
        cc::POLICY_OR => "PolicyOR",
        0x172 => "PolicyTicket",
        cc::POLICY_PCR => "PolicyPCR",
        0x180 => "PolicyRestart",
        0x187 => "PolicyPhysicalPresence",
        0x188 => "PolicyDuplicationSelect",
        0x189 => "PolicyGetDigest",
        cc::POLICY_PASSWORD => "PolicyPassword",
        0x18F => "PolicyNvWritten",
        0x190 => "PolicyTemplate",
        0x192 => "PolicyAuthorizeNV",
        _ => return None,
    })
}

/// Which byte order a PolicyPCR or PolicyCounterTimer body uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BodyForm {
    /// openssl_tpm2_engine: the policy-hash order, no size prefix on the digest/operand.
    #[default]
    Engine,
    /// The command's parameters in order (the draft's text; GRUB, pcr-oracle).
    Command,
}

/// TPM2_PolicyPCR: the session's PCRs must hash to `pcr_digest` (empty: whatever they
/// are now, which only a later PolicyAuthorize or the authPolicy can judge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyPcr {
    pub selection: PcrSelection,
    pub pcr_digest: Vec<u8>,
    pub form: BodyForm,
}

impl PolicyPcr {
    /// PolicyPCR binding `selection` to `values` (one per PCR, selection order) for a
    /// SHA-256 policy session, in the engine form.
    pub fn from_values(selection: PcrSelection, values: &[Vec<u8>]) -> Result<PolicyPcr> {
        let pcr_digest = selection.pcr_digest(values, Hash::Sha256)?;
        Ok(PolicyPcr {
            selection,
            pcr_digest,
            form: BodyForm::Engine,
        })
    }
}

/// TPM_EO: how PolicyCounterTimer compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Operation {
    Eq = 0,
    Neq = 1,
    SignedGt = 2,
    UnsignedGt = 3,
    SignedLt = 4,
    UnsignedLt = 5,
    SignedGe = 6,
    UnsignedGe = 7,
    SignedLe = 8,
    UnsignedLe = 9,
    BitSet = 10,
    BitClear = 11,
}

impl Operation {
    pub fn from_u16(v: u16) -> Option<Operation> {
        use Operation::*;
        [
            Eq, Neq, SignedGt, UnsignedGt, SignedLt, UnsignedLt, SignedGe, UnsignedGe, SignedLe,
            UnsignedLe, BitSet, BitClear,
        ]
        .into_iter()
        .find(|o| *o as u16 == v)
    }
}

/// TPMS_TIME_INFO field offsets PolicyCounterTimer compares against, and its size.
pub mod time_info {
    pub const TIME: u16 = 0;
    pub const CLOCK: u16 = 8;
    pub const RESET_COUNT: u16 = 16;
    pub const RESTART_COUNT: u16 = 20;
    pub const SAFE: u16 = 24;
    pub const SIZE: usize = 25;
}

/// TPM2_PolicyCounterTimer: `TPMS_TIME_INFO[offset..offset+len(operand_b)] op operand_b`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyCounterTimer {
    pub operand_b: Vec<u8>,
    pub offset: u16,
    pub operation: Operation,
    pub form: BodyForm,
}

impl PolicyCounterTimer {
    /// Usable while the TPM's clock (milliseconds powered on; it never goes back, and
    /// TPM2_ClockSet only moves it forward) is below `clock_ms`: an expiry date.
    pub fn clock_before(clock_ms: u64) -> PolicyCounterTimer {
        PolicyCounterTimer {
            operand_b: clock_ms.to_be_bytes().to_vec(),
            offset: time_info::CLOCK,
            operation: Operation::UnsignedLt,
            form: BodyForm::Engine,
        }
    }

    /// Usable while the TPM's resetCount (incremented by every TPM reset, i.e. boot) is at
    /// most `reset_count`: the current count plus N allows N more boots.
    pub fn reset_count_at_most(reset_count: u32) -> PolicyCounterTimer {
        PolicyCounterTimer {
            operand_b: reset_count.to_be_bytes().to_vec(),
            offset: time_info::RESET_COUNT,
            operation: Operation::UnsignedLe,
            form: BodyForm::Engine,
        }
    }
}

/// TPM2_PolicySecret: proof of knowing another object's authorisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySecret {
    /// The object's handle if it is fixed (a hierarchy, an NV index, a persistent key), 0 if
    /// the executor has to find it by Name.
    pub handle_hint: u32,
    pub object_name: Vec<u8>,
    pub policy_ref: Vec<u8>,
}

/// TPM2_PolicyAuthorize: the digest so far must be approved by `signer`'s signature over
/// `H(approvedPolicy ‖ policy_ref)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyAuthorize {
    /// TPM2B_PUBLIC of the signer, as stored (its Name is computed from these bytes).
    pub key_sign: Vec<u8>,
    pub policy_ref: Vec<u8>,
    /// `Null` in the `policy [1]` statement (the signature lives in each authPolicy entry).
    pub signature: TpmSignature,
}

impl PolicyAuthorize {
    /// The signer's Name: nameAlg ‖ H_nameAlg(TPMT_PUBLIC) over the stored bytes.
    pub fn signer_name(&self) -> Result<Vec<u8>> {
        public_name(&self.key_sign)
    }

    pub fn signer(&self) -> Result<SignerKey> {
        SignerKey::from_tpm2b_public(&self.key_sign)
    }
}

/// The Name of an object from its TPM2B_PUBLIC bytes (any name algorithm tpmkey knows).
pub fn public_name(tpm2b_public: &[u8]) -> Result<Vec<u8>> {
    let tpmt = crate::wire::tpm2b_contents(tpm2b_public)
        .map_err(|_| Error::BadInput("public area: bad TPM2B size".into()))?;
    let alg = tpmt
        .get(2..4)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| Error::BadInput("public area: too short for a nameAlg".into()))?;
    let hash = Hash::from_tpm_alg(alg)
        .ok_or_else(|| Error::Unsupported(format!("public area name algorithm 0x{alg:04x}")))?;
    let mut name = alg.to_be_bytes().to_vec();
    name.extend(hash.digest(&[tpmt]));
    Ok(name)
}

/// One policy statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    Pcr(PolicyPcr),
    /// PolicyAuthValue: the object's authValue, proved by HMAC in the session.
    AuthValue,
    /// PolicyPassword: same digest as PolicyAuthValue. tpmkey runs it as PolicyAuthValue
    /// (never sends the password in clear); it is kept apart only to encode back as read.
    Password,
    /// PolicyLocality: a TPMA_LOCALITY bitmap (bit n = locality n; values ≥ 32 extended).
    Locality(u8),
    CounterTimer(PolicyCounterTimer),
    Secret(PolicySecret),
    Authorize(PolicyAuthorize),
    /// PolicyOR: the digest so far must be one of these (2 to 8).
    Or(Vec<Vec<u8>>),
    /// PolicyCommandCode: the authorised command must be this one.
    CommandCode(u32),
}

/// Largest digest a policy carries (SHA-512).
const MAX_DIGEST: usize = 64;

fn digest_len_ok(len: usize) -> bool {
    len == 0 || Hash::from_len(len).is_ok()
}

/// An error about a statement body, naming the statement.
fn body_err(what: &str, m: impl fmt::Display) -> Error {
    Error::KeyFile(format!("{what}: {m}"))
}

impl Statement {
    pub fn command_code(&self) -> u32 {
        match self {
            Statement::Pcr(_) => cc::POLICY_PCR,
            Statement::AuthValue => cc::POLICY_AUTH_VALUE,
            Statement::Password => cc::POLICY_PASSWORD,
            Statement::Locality(_) => cc::POLICY_LOCALITY,
            Statement::CounterTimer(_) => cc::POLICY_COUNTER_TIMER,
            Statement::Secret(_) => cc::POLICY_SECRET,
            Statement::Authorize(_) => cc::POLICY_AUTHORIZE,
            Statement::Or(_) => cc::POLICY_OR,
            Statement::CommandCode(_) => cc::POLICY_COMMAND_CODE,
        }
    }

    pub fn name(&self) -> &'static str {
        command_name(self.command_code()).unwrap_or("policy command")
    }

    /// Decodes one stored statement; `location` says where it is ("policy [1] statement 2").
    /// An unknown or unexecutable command is refused by name.
    pub fn decode(p: &TpmPolicy, location: &str) -> Result<Statement> {
        let body = p.command_policy.as_slice();
        let name = command_name(p.command_code);
        let what = format!("{location} ({})", name.unwrap_or("unknown command"));
        let st = match p.command_code {
            cc::POLICY_PCR => Statement::Pcr(decode_pcr(body, &what)?),
            cc::POLICY_AUTH_VALUE | cc::POLICY_PASSWORD => {
                if !body.is_empty() {
                    return Err(body_err(
                        &what,
                        format!("body must be empty, it has {} bytes", body.len()),
                    ));
                }
                if p.command_code == cc::POLICY_AUTH_VALUE {
                    Statement::AuthValue
                } else {
                    Statement::Password
                }
            }
            cc::POLICY_LOCALITY => match body {
                [0] => return Err(body_err(&what, "locality bitmap 0 allows no locality")),
                [l] => Statement::Locality(*l),
                _ => {
                    return Err(body_err(
                        &what,
                        format!("body must be 1 byte (TPMA_LOCALITY), it has {}", body.len()),
                    ))
                }
            },
            cc::POLICY_COUNTER_TIMER => Statement::CounterTimer(decode_counter_timer(body, &what)?),
            cc::POLICY_SECRET => {
                let mut r = Reader::new(body);
                let trunc = |_| body_err(&what, "truncated body");
                let handle_hint = r.u32().map_err(trunc)?;
                let object_name = r.tpm2b().map_err(trunc)?.to_vec();
                let policy_ref = r.tpm2b().map_err(trunc)?.to_vec();
                if !r.is_empty() {
                    return Err(body_err(&what, "trailing bytes after policyRef"));
                }
                if object_name.is_empty() {
                    return Err(body_err(&what, "empty objectName"));
                }
                if policy_ref.len() > MAX_DIGEST {
                    return Err(body_err(&what, "policyRef longer than 64 bytes"));
                }
                Statement::Secret(PolicySecret {
                    handle_hint,
                    object_name,
                    policy_ref,
                })
            }
            cc::POLICY_AUTHORIZE => {
                let mut r = Reader::new(body);
                let trunc = |_| body_err(&what, "truncated body");
                let key_sign = r.tpm2b_raw().map_err(trunc)?.to_vec();
                let policy_ref = r.tpm2b().map_err(trunc)?.to_vec();
                let signature = TpmSignature::unmarshal(&mut r, &what).map_err(|e| match e {
                    Error::BadInput(m) => Error::KeyFile(m),
                    other => other,
                })?;
                if !r.is_empty() {
                    return Err(body_err(&what, "trailing bytes after the signature"));
                }
                if policy_ref.len() > MAX_DIGEST {
                    return Err(body_err(&what, "policyRef longer than 64 bytes"));
                }
                let a = PolicyAuthorize {
                    key_sign,
                    policy_ref,
                    signature,
                };
                a.signer()
                    .map_err(|e| body_err(&what, format!("signer public key: {e}")))?;
                Statement::Authorize(a)
            }
            cc::POLICY_OR => {
                let mut r = Reader::new(body);
                let trunc = |_| body_err(&what, "truncated body");
                let count = r.u32().map_err(trunc)?;
                if !(2..=8).contains(&count) {
                    return Err(body_err(
                        &what,
                        format!("{count} branches (PolicyOR takes 2 to 8)"),
                    ));
                }
                let mut digests = Vec::new();
                for _ in 0..count {
                    let d = r.tpm2b().map_err(trunc)?;
                    if d.is_empty() || !digest_len_ok(d.len()) {
                        return Err(body_err(
                            &what,
                            format!("a branch digest of {} bytes", d.len()),
                        ));
                    }
                    digests.push(d.to_vec());
                }
                if !r.is_empty() {
                    return Err(body_err(&what, "trailing bytes after the digests"));
                }
                Statement::Or(digests)
            }
            cc::POLICY_COMMAND_CODE => match <[u8; 4]>::try_from(body) {
                Ok(b) => Statement::CommandCode(u32::from_be_bytes(b)),
                Err(_) => {
                    return Err(body_err(
                        &what,
                        format!("body must be 4 bytes (TPM_CC), it has {}", body.len()),
                    ))
                }
            },
            other => {
                return Err(Error::KeyFile(format!(
                    "unsupported policy command {} (0x{other:x}) in {location}",
                    name.unwrap_or("(unknown)"),
                )))
            }
        };
        Ok(st)
    }

    /// Decodes a whole statement list.
    pub fn decode_all(policies: &[TpmPolicy], what: &str) -> Result<Vec<Statement>> {
        policies
            .iter()
            .enumerate()
            .map(|(i, p)| Statement::decode(p, &format!("{what} statement {}", i + 1)))
            .collect()
    }

    /// Encodes the statement for a key file, PolicyPCR and PolicyCounterTimer in the form
    /// they carry. Fails only on values a TPM2B cannot hold.
    pub fn encode(&self) -> Result<TpmPolicy> {
        let mut w = Writer::new();
        let too_long = |what: &str, len: usize| -> Result<()> {
            if len > usize::from(u16::MAX) {
                return Err(Error::BadInput(format!(
                    "{what} of {len} bytes is too long"
                )));
            }
            Ok(())
        };
        match self {
            Statement::Pcr(p) => {
                too_long("PolicyPCR digest", p.pcr_digest.len())?;
                match p.form {
                    BodyForm::Engine => {
                        p.selection.marshal_into(&mut w);
                        w.bytes(&p.pcr_digest);
                    }
                    BodyForm::Command => {
                        w.tpm2b(&p.pcr_digest);
                        p.selection.marshal_into(&mut w);
                    }
                }
            }
            Statement::AuthValue | Statement::Password => {}
            Statement::Locality(l) => {
                w.u8(*l);
            }
            Statement::CounterTimer(c) => {
                too_long("PolicyCounterTimer operandB", c.operand_b.len())?;
                match c.form {
                    BodyForm::Engine => w.bytes(&c.operand_b),
                    BodyForm::Command => w.tpm2b(&c.operand_b),
                };
                w.u16(c.offset).u16(c.operation as u16);
            }
            Statement::Secret(s) => {
                too_long("PolicySecret objectName", s.object_name.len())?;
                too_long("PolicySecret policyRef", s.policy_ref.len())?;
                w.u32(s.handle_hint)
                    .tpm2b(&s.object_name)
                    .tpm2b(&s.policy_ref);
            }
            Statement::Authorize(a) => {
                too_long("PolicyAuthorize policyRef", a.policy_ref.len())?;
                w.bytes(&a.key_sign)
                    .tpm2b(&a.policy_ref)
                    .bytes(&a.signature.marshal());
            }
            Statement::Or(list) => {
                w.u32(list.len() as u32);
                for d in list {
                    too_long("PolicyOR digest", d.len())?;
                    w.tpm2b(d);
                }
            }
            Statement::CommandCode(code) => {
                w.u32(*code);
            }
        }
        Ok(TpmPolicy {
            command_code: self.command_code(),
            command_policy: w.into_vec(),
        })
    }

    /// Encodes a whole statement list.
    pub fn encode_all(statements: &[Statement]) -> Result<Vec<TpmPolicy>> {
        statements.iter().map(Statement::encode).collect()
    }

    /// The statements on one line, as log lines and `tpmkey token init` name a policy.
    pub fn describe_all(statements: &[Statement]) -> String {
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The parameter area of the TPM2_Policy* command that runs this statement (after the
    /// policySession handle), for the statements that need nothing from the TPM at run time;
    /// None for PolicySecret (nonceTPM, the object's authorisation) and PolicyAuthorize (the
    /// approved policy and the VerifySignature ticket). PolicyPassword is run as
    /// PolicyAuthValue. A PolicyPCR with a digest makes the TPM fail the command itself
    /// (TPM_RC_VALUE) when the PCRs differ; an empty one defers the check to the use.
    pub fn command_parameters(&self) -> Result<Option<(u32, Vec<u8>)>> {
        let code = match self {
            Statement::Secret(_) | Statement::Authorize(_) => return Ok(None),
            Statement::Password => cc::POLICY_AUTH_VALUE,
            other => other.command_code(),
        };
        let body = self.in_form(BodyForm::Command).encode()?.command_policy;
        Ok(Some((code, body)))
    }

    /// The same statement with PolicyPCR/PolicyCounterTimer bodies in `form` (e.g.
    /// `BodyForm::Command` for files GRUB reads).
    pub fn in_form(&self, form: BodyForm) -> Statement {
        match self {
            Statement::Pcr(p) => Statement::Pcr(PolicyPcr { form, ..p.clone() }),
            Statement::CounterTimer(c) => {
                Statement::CounterTimer(PolicyCounterTimer { form, ..c.clone() })
            }
            other => other.clone(),
        }
    }
}

/// Engine form: TPML_PCR_SELECTION, then the digest (0 or a hash size) to the end.
fn pcr_engine(body: &[u8], what: &str) -> Result<PolicyPcr> {
    let mut r = Reader::new(body);
    let selection = PcrSelection::unmarshal(&mut r, what)?;
    let pcr_digest = r.rest().to_vec();
    if !digest_len_ok(pcr_digest.len()) {
        return Err(Error::BadInput(format!(
            "{what}: a PCR digest of {} bytes",
            pcr_digest.len()
        )));
    }
    Ok(PolicyPcr {
        selection,
        pcr_digest,
        form: BodyForm::Engine,
    })
}

/// Command form: TPM2B_DIGEST, then TPML_PCR_SELECTION to the end.
fn pcr_command(body: &[u8], what: &str) -> Result<PolicyPcr> {
    let mut r = Reader::new(body);
    let pcr_digest = r
        .tpm2b()
        .map_err(|_| Error::BadInput(format!("{what}: truncated pcrDigest")))?
        .to_vec();
    if !digest_len_ok(pcr_digest.len()) {
        return Err(Error::BadInput(format!(
            "{what}: a PCR digest of {} bytes",
            pcr_digest.len()
        )));
    }
    let selection = PcrSelection::unmarshal(&mut r, what)?;
    if !r.is_empty() {
        return Err(Error::BadInput(format!(
            "{what}: trailing bytes after the PCR selection"
        )));
    }
    Ok(PolicyPcr {
        selection,
        pcr_digest,
        form: BodyForm::Command,
    })
}

/// Tries both forms; exactly one fits any real body (the engine form starts with the UINT32
/// count 00 00 00 0n, the command form with a UINT16 digest size, which would make the
/// count 0x000n_xxxx).
fn decode_pcr(body: &[u8], what: &str) -> Result<PolicyPcr> {
    let engine = pcr_engine(body, what);
    if engine.is_ok() {
        return engine;
    }
    pcr_command(body, what).map_err(|command_err| {
        let engine_err = engine.err().map(|e| e.to_string()).unwrap_or_default();
        Error::KeyFile(format!(
            "{what}: the body ({} bytes) is neither the engine form (TPML_PCR_SELECTION ‖ \
             digest: {}) nor the command form (TPM2B_DIGEST ‖ TPML_PCR_SELECTION: {})",
            body.len(),
            strip_invalid(&engine_err, what),
            strip_invalid(&command_err.to_string(), what)
        ))
    })
}

/// The message of a nested error without its "invalid argument: <what>: " prefix.
fn strip_invalid(m: &str, what: &str) -> String {
    let m = m.strip_prefix("invalid argument: ").unwrap_or(m);
    m.strip_prefix(what)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(m)
        .to_string()
}

fn counter_timer_checked(
    operand_b: &[u8],
    offset: u16,
    operation: u16,
    form: BodyForm,
) -> std::result::Result<PolicyCounterTimer, String> {
    let operation =
        Operation::from_u16(operation).ok_or(format!("operation {operation} is not a TPM_EO"))?;
    if operand_b.is_empty() {
        return Err("empty operandB".into());
    }
    let end = usize::from(offset).saturating_add(operand_b.len());
    if end > time_info::SIZE {
        return Err(format!(
            "offset {offset} + operandB {} bytes runs past TPMS_TIME_INFO (25 bytes)",
            operand_b.len()
        ));
    }
    Ok(PolicyCounterTimer {
        operand_b: operand_b.to_vec(),
        offset,
        operation,
        form,
    })
}

/// Engine form: operandB (raw) ‖ UINT16 offset ‖ UINT16 operation; command form:
/// TPM2B_OPERAND ‖ offset ‖ operation. Every command-form body also parses as an engine
/// body (its size prefix taken as operand bytes), so the command form wins when its size
/// prefix equals the operand length that follows: an engine operand would have to start
/// with its own length minus 2, i.e. a clock or time of 2^49 ms (17,800 years) or more, a
/// resetCount of 2^17 or more.
fn decode_counter_timer(body: &[u8], what: &str) -> Result<PolicyCounterTimer> {
    let Some(split) = body.len().checked_sub(4) else {
        return Err(body_err(
            what,
            format!("body of {} bytes is too short", body.len()),
        ));
    };
    let (operand, tail) = body.split_at(split);
    let offset = u16::from_be_bytes([tail[0], tail[1]]);
    let operation = u16::from_be_bytes([tail[2], tail[3]]);
    let command = match operand.split_first_chunk::<2>() {
        Some((size, rest)) if usize::from(u16::from_be_bytes(*size)) == rest.len() => {
            counter_timer_checked(rest, offset, operation, BodyForm::Command)
        }
        _ => Err("no TPM2B_OPERAND size prefix matching the body".into()),
    };
    if let Ok(c) = command {
        return Ok(c);
    }
    counter_timer_checked(operand, offset, operation, BodyForm::Engine).map_err(|e| {
        body_err(
            what,
            format!(
                "neither the engine form ({e}) nor the command form ({})",
                command.err().unwrap_or_default()
            ),
        )
    })
}

impl fmt::Display for Statement {
    /// One line, as `tpmkey inspect` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        match self {
            Statement::Pcr(p) => {
                write!(f, "PolicyPCR {}", p.selection)?;
                if p.pcr_digest.is_empty() {
                    write!(f, " (current values)")
                } else {
                    write!(f, " digest {}", hex(&p.pcr_digest))
                }
            }
            Statement::AuthValue => write!(f, "PolicyAuthValue (password)"),
            Statement::Password => write!(f, "PolicyPassword (run as PolicyAuthValue)"),
            Statement::Locality(l) => write!(f, "PolicyLocality 0x{l:02x}"),
            Statement::CounterTimer(c) => write!(
                f,
                "PolicyCounterTimer TPMS_TIME_INFO[{}..+{}] {:?} {}",
                c.offset,
                c.operand_b.len(),
                c.operation,
                hex(&c.operand_b)
            ),
            Statement::Secret(s) => write!(
                f,
                "PolicySecret handle 0x{:08x} name {}",
                s.handle_hint,
                hex(&s.object_name)
            ),
            Statement::Authorize(a) => {
                let name = a.signer_name().map(|n| hex(&n)).unwrap_or_default();
                write!(f, "PolicyAuthorize signer {name}")?;
                if !a.policy_ref.is_empty() {
                    write!(f, " policyRef {}", hex(&a.policy_ref))?;
                }
                if !a.signature.is_null() {
                    write!(f, " (signed)")?;
                }
                Ok(())
            }
            Statement::Or(list) => write!(f, "PolicyOR of {} branches", list.len()),
            Statement::CommandCode(c) => write!(f, "PolicyCommandCode 0x{c:x}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::hex;

    fn decode(cc: u32, body: &[u8]) -> Result<Statement> {
        Statement::decode(
            &TpmPolicy {
                command_code: cc,
                command_policy: body.to_vec(),
            },
            "policy [1] statement 1",
        )
    }

    fn round_trip(st: &Statement, body: &[u8]) {
        let enc = st.encode().unwrap();
        assert_eq!(enc.command_policy, body, "{st}");
        assert_eq!(&decode(enc.command_code, body).unwrap(), st);
    }

    /// platform-trust.md §1.3: the engine's tests/policies/policy_pcr.txt line shape.
    const ENGINE_PCR16: &str = "00000001 000b 03 000001 \
        2c28901f2c28901f2c28901f2c28901f2c28901f2c28901f2c28901f2c28901f";

    #[test]
    fn policy_pcr_both_forms_by_exact_length() {
        let engine = hex(ENGINE_PCR16);
        assert_eq!(engine.len(), 42);
        let Statement::Pcr(p) = decode(cc::POLICY_PCR, &engine).unwrap() else {
            panic!()
        };
        assert_eq!(p.form, BodyForm::Engine);
        assert_eq!(p.selection.to_string(), "sha256:16");
        assert_eq!(p.pcr_digest, engine[10..]);
        round_trip(&Statement::Pcr(p.clone()), &engine);

        // GRUB / pcr-oracle: empty TPM2B_DIGEST, then the selection (12 bytes).
        let grub = hex("0000 00000001 000b 03 000001");
        let Statement::Pcr(g) = decode(cc::POLICY_PCR, &grub).unwrap() else {
            panic!()
        };
        assert_eq!(g.form, BodyForm::Command);
        assert!(g.pcr_digest.is_empty());
        assert_eq!(g.selection, p.selection);
        round_trip(&Statement::Pcr(g), &grub);

        // Command form with a digest (44 bytes), and the engine statement re-encoded in it.
        let cmd = Statement::Pcr(p).in_form(BodyForm::Command);
        let body = cmd.encode().unwrap().command_policy;
        assert_eq!(body.len(), 44);
        assert_eq!(body[..2], [0x00, 0x20]);
        round_trip(&cmd, &body);
        // Engine form with an empty digest is the bare selection.
        round_trip(
            &Statement::Pcr(PolicyPcr {
                selection: PcrSelection::parse("sha256:7,16").unwrap(),
                pcr_digest: Vec::new(),
                form: BodyForm::Engine,
            }),
            &hex("00000001 000b 03 800001"),
        );
    }

    #[test]
    fn policy_pcr_bad_bodies_are_named() {
        for (body, want) in [
            ("00000001 0012 03 000001", "PCR bank 0x0012 out of range"),
            ("00000001 000b 04 00000008", "PCR index 27 out of range"),
            ("00000001 000b 03 000001 2c28", "a PCR digest of 2 bytes"),
            ("00000001 000b 03 00", "truncated"),
            ("", "truncated"),
            ("00000011 000b 03 000001", "count 17 out of range"),
        ] {
            let e = decode(cc::POLICY_PCR, &hex(body)).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
            assert!(e.contains("policy [1] statement 1 (PolicyPCR)"), "{e}");
        }
    }

    #[test]
    fn unknown_commands_are_refused_by_name() {
        let e = decode(cc::POLICY_SIGNED, &[]).unwrap_err().to_string();
        assert!(
            e.contains("unsupported policy command PolicySigned (0x160) in policy [1] statement 1"),
            "{e}"
        );
        let e = decode(0x192, &[]).unwrap_err().to_string();
        assert!(
            e.contains("unsupported policy command PolicyAuthorizeNV"),
            "{e}"
        );
        let e = decode(0x1234, &[]).unwrap_err().to_string();
        assert!(
            e.contains("unsupported policy command (unknown) (0x1234)"),
            "{e}"
        );
    }

    #[test]
    fn command_parameters_are_the_command_order() {
        let Statement::Pcr(p) = decode(cc::POLICY_PCR, &hex(ENGINE_PCR16)).unwrap() else {
            panic!()
        };
        let (code, params) = Statement::Pcr(p.clone())
            .command_parameters()
            .unwrap()
            .unwrap();
        assert_eq!(code, cc::POLICY_PCR);
        assert_eq!(
            params,
            [
                &[0, 0x20][..],
                &p.pcr_digest,
                &hex("00000001 000b 03 000001")
            ]
            .concat()
        );
        assert_eq!(
            Statement::Password.command_parameters().unwrap(),
            Some((cc::POLICY_AUTH_VALUE, Vec::new()))
        );
        let ct = Statement::CounterTimer(PolicyCounterTimer::reset_count_at_most(3));
        assert_eq!(
            ct.command_parameters().unwrap().unwrap().1,
            hex("0004 00000003 0010 0009")
        );
        let secret = Statement::Secret(PolicySecret {
            handle_hint: 0x4000_0001,
            object_name: vec![0x40, 0, 0, 1],
            policy_ref: Vec::new(),
        });
        assert_eq!(secret.command_parameters().unwrap(), None);
    }

    #[test]
    fn simple_statements() {
        round_trip(&Statement::AuthValue, &[]);
        round_trip(&Statement::Password, &[]);
        round_trip(&Statement::Locality(0x1f), &[0x1f]);
        round_trip(&Statement::CommandCode(0x15D), &[0, 0, 1, 0x5D]);
        assert!(decode(cc::POLICY_AUTH_VALUE, &[0]).is_err());
        assert!(decode(cc::POLICY_LOCALITY, &[]).is_err());
        assert!(decode(cc::POLICY_LOCALITY, &[0]).is_err());
        assert!(decode(cc::POLICY_COMMAND_CODE, &[0, 0, 1]).is_err());
        let or = Statement::Or(vec![vec![1; 32], vec![2; 32]]);
        let body = or.encode().unwrap().command_policy;
        assert_eq!(body.len(), 4 + 2 * 34);
        round_trip(&or, &body);
        assert!(decode(cc::POLICY_OR, &body[..body.len() - 1]).is_err());
        let one = [&[0, 0, 0, 1, 0, 32][..], &[1; 32]].concat();
        let e = decode(cc::POLICY_OR, &one).unwrap_err().to_string();
        assert!(e.contains("1 branches"), "{e}");
        let secret = Statement::Secret(PolicySecret {
            handle_hint: 0x4000_000B,
            object_name: vec![0x40, 0, 0, 0x0B],
            policy_ref: Vec::new(),
        });
        round_trip(&secret, &hex("4000000b 0004 4000000b 0000"));
        assert!(decode(cc::POLICY_SECRET, &hex("4000000b 0004 4000")).is_err());
        assert!(decode(cc::POLICY_SECRET, &hex("4000000b 0004 4000000b 0000 00")).is_err());
    }

    #[test]
    fn counter_timer_both_forms() {
        // The engine's test: clock (offset 8) <= value, operation UNSIGNED_LE (9).
        let engine = hex("00000000000927c0 0008 0009");
        let Statement::CounterTimer(c) = decode(cc::POLICY_COUNTER_TIMER, &engine).unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.offset, c.operation, c.form, c.operand_b.len()),
            (8, Operation::UnsignedLe, BodyForm::Engine, 8)
        );
        round_trip(&Statement::CounterTimer(c.clone()), &engine);
        let cmd = Statement::CounterTimer(c).in_form(BodyForm::Command);
        let body = cmd.encode().unwrap().command_policy;
        assert_eq!(body, hex("0008 00000000000927c0 0008 0009"));
        round_trip(&cmd, &body);
        assert_eq!(
            Statement::CounterTimer(PolicyCounterTimer::clock_before(0x927c0))
                .encode()
                .unwrap()
                .command_policy,
            hex("00000000000927c0 0008 0005")
        );
        assert_eq!(
            Statement::CounterTimer(PolicyCounterTimer::reset_count_at_most(7))
                .encode()
                .unwrap()
                .command_policy,
            hex("00000007 0010 0009")
        );
        // resetCount (offset 16, 4 bytes) in the command form.
        round_trip(
            &Statement::CounterTimer(PolicyCounterTimer {
                operand_b: vec![0, 0, 0, 5],
                offset: 16,
                operation: Operation::UnsignedLe,
                form: BodyForm::Command,
            }),
            &hex("0004 00000005 0010 0009"),
        );
        for (body, want) in [
            ("0008 0009", "empty operandB"),
            ("00 0008", "too short"),
            ("00000000000927c0 0008 000c", "operation 12 is not a TPM_EO"),
            ("00000000000927c0 0018 0009", "runs past TPMS_TIME_INFO"),
        ] {
            let e = decode(cc::POLICY_COUNTER_TIMER, &hex(body))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn no_panic_on_mutated_bodies() {
        let mut bodies = vec![
            (cc::POLICY_PCR, hex(ENGINE_PCR16)),
            (cc::POLICY_PCR, hex("0000 00000001 000b 03 000001")),
            (
                cc::POLICY_COUNTER_TIMER,
                hex("0008 00000000000927c0 0008 0009"),
            ),
            (cc::POLICY_SECRET, hex("4000000b 0004 4000000b 0000")),
            (
                cc::POLICY_OR,
                Statement::Or(vec![vec![1; 32], vec![2; 32]])
                    .encode()
                    .unwrap()
                    .command_policy,
            ),
        ];
        // The P-256 base point: public areas are checked to hold a point on the curve.
        let signer = crate::policy::signer::SignerKey::new(crate::public_key::PublicKey::Ec {
            curve: crate::public_key::Curve::P256,
            x: hex("6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"),
            y: hex("4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5"),
        })
        .unwrap();
        bodies.push((
            cc::POLICY_AUTHORIZE,
            Statement::Authorize(PolicyAuthorize {
                key_sign: signer.tpm2b_public(),
                policy_ref: vec![9; 32],
                signature: TpmSignature::Ecdsa {
                    hash: Hash::Sha256,
                    r: vec![3; 32],
                    s: vec![4; 32],
                },
            })
            .encode()
            .unwrap()
            .command_policy,
        ));
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (code, body) in &bodies {
            let st = decode(*code, body).unwrap();
            round_trip(&st, body);
            for len in 0..body.len() {
                let _ = decode(*code, &body[..len]);
            }
            for _ in 0..3000 {
                let mut m = body.clone();
                let pos = (next() as usize) % m.len();
                m[pos] = next() as u8;
                if let Ok(st) = decode(*code, &m) {
                    // Whatever decodes encodes back to the same bytes.
                    assert_eq!(st.encode().unwrap().command_policy, m, "{st}");
                }
            }
        }
    }
}
