//! What crossed the TPM bus during a batch, read from the wire tap: command codes and how
//! each command was authorised (password in clear, HMAC session, parameter encryption).

use std::collections::BTreeMap;

use tpmkey_testenv::wire_tap::command_code;

const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_RS_PW: u32 = 0x4000_0009;

/// Name and number of handles of the commands the rows send.
fn command_info(code: u32) -> (&'static str, usize) {
    match code {
        0x131 => ("CreatePrimary", 1),
        0x121 => ("EvictControl", 2),
        0x153 => ("Create", 1),
        0x154 => ("ECDH_ZGen", 1),
        0x157 => ("Load", 1),
        0x159 => ("RSA_Decrypt", 1),
        0x15D => ("Sign", 1),
        0x15E => ("Unseal", 1),
        0x161 => ("ContextLoad", 0),
        0x162 => ("ContextSave", 1),
        0x165 => ("FlushContext", 0),
        0x173 => ("ReadPublic", 1),
        0x176 => ("StartAuthSession", 2),
        0x17A => ("GetCapability", 0),
        0x17B => ("GetRandom", 0),
        0x17D => ("Hash", 0),
        0x178 => ("ECC_Parameters", 0),
        0x18A => ("TestParms", 0),
        0x186 => ("HashSequenceStart", 0),
        0x15C => ("SequenceUpdate", 1),
        0x13E => ("SequenceComplete", 1),
        0x16B => ("PolicyPassword", 1),
        0x16F => ("PolicyPCR", 1),
        0x17F => ("PolicyGetDigest", 1),
        0x16E => ("PolicyAuthValue", 1),
        0x150 => ("ObjectChangeAuth", 2),
        0x144 => ("Startup", 0),
        _ => ("", 0),
    }
}

/// "Sign[hmac+dec]", "Load[pw]", "FlushContext".
pub fn describe(command: &[u8]) -> String {
    if command.len() < 10 {
        return "short".into();
    }
    let code = command_code(command);
    let (name, handles) = command_info(code);
    let name = if name.is_empty() {
        format!("0x{code:03x}")
    } else {
        name.to_string()
    };
    let tag = u16::from_be_bytes([command[0], command[1]]);
    if tag != TPM_ST_SESSIONS {
        return name;
    }
    match first_session(command, handles) {
        Some(kind) => format!("{name}[{kind}]"),
        None => name,
    }
}

/// The kind of the first session in a command's authorisation area.
fn first_session(command: &[u8], handles: usize) -> Option<String> {
    let at = 10 + 4 * handles + 4; // header, handles, authorizationSize
    let u32_at = |i: usize| Some(u32::from_be_bytes(command.get(i..i + 4)?.try_into().ok()?));
    let u16_at = |i: usize| Some(u16::from_be_bytes(command.get(i..i + 2)?.try_into().ok()?));
    let handle = u32_at(at)?;
    let nonce_len = usize::from(u16_at(at + 4)?);
    let attrs = *command.get(at + 6 + nonce_len)?;
    let mut kind = match handle >> 24 {
        _ if handle == TPM_RS_PW => "pw".to_string(),
        0x02 => "hmac".to_string(),
        0x03 => "policy".to_string(),
        _ => format!("0x{handle:08x}"),
    };
    if attrs & 0x20 != 0 {
        kind.push_str("+dec");
    }
    if attrs & 0x40 != 0 {
        kind.push_str("+enc");
    }
    Some(kind)
}

/// Commands of a batch: how many of each kind.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    pub total: u64,
    pub kinds: BTreeMap<String, u64>,
    /// Error responses by response code (object or session memory full, ...).
    pub errors: BTreeMap<u32, u64>,
}

impl Traffic {
    pub fn from_log(log: &[(Vec<u8>, Vec<u8>)]) -> Traffic {
        let mut t = Traffic::default();
        for (command, response) in log {
            t.total += 1;
            *t.kinds.entry(describe(command)).or_default() += 1;
            if let Some(rc) = response.get(6..10) {
                let rc = u32::from_be_bytes([rc[0], rc[1], rc[2], rc[3]]);
                if rc != 0 {
                    *t.errors.entry(rc).or_default() += 1;
                }
            }
        }
        t
    }

    /// "Sign[hmac+dec]" or "2 ContextLoad, Sign[hmac+dec], ..." per operation, most
    /// frequent first; fractions when a command does not occur once per operation.
    pub fn per_op(&self, ops: u64) -> String {
        if ops == 0 || self.total == 0 {
            return "none".into();
        }
        let mut kinds: Vec<(&String, &u64)> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        kinds
            .into_iter()
            .map(|(name, n)| {
                let per = *n as f64 / ops as f64;
                if per < 0.1 {
                    format!("{name} x{n} in {ops} ops")
                } else if (per - 1.0).abs() < 0.005 {
                    name.clone()
                } else if (per - per.round()).abs() < 0.005 {
                    format!("{} {name}", per.round())
                } else {
                    format!("{per:.2} {name}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
            + &self.error_summary()
    }

    /// " (TPM errors: 0x902 x12)" or nothing.
    fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self
            .errors
            .iter()
            .map(|(rc, n)| format!("0x{rc:03x} x{n}"))
            .collect();
        format!(" (TPM error responses: {})", list.join(", "))
    }
}
