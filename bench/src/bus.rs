//! What crossed the TPM bus during a batch, read from the wire tap: command codes and how
//! each command was authorised (password in clear, HMAC session, parameter encryption).

use std::collections::BTreeMap;

use tpmkey_testenv::tpm_command::{auth_area_offset, command_code, command_name};
use tpmkey_testenv::Profile;

use crate::report::Round;

const TPM_RS_PW: u32 = 0x4000_0009;

/// "Sign[hmac+dec]", "Load[pw]", "FlushContext".
pub fn describe(command: &[u8]) -> String {
    if command.len() < 10 {
        return "short".into();
    }
    let code = command_code(command);
    let name = command_name(code).map_or_else(|| format!("0x{code:03x}"), str::to_string);
    match first_session(command) {
        Some(kind) => format!("{name}[{kind}]"),
        None => name,
    }
}

/// The kind of the first session in a command's authorisation area.
fn first_session(command: &[u8]) -> Option<String> {
    let at = auth_area_offset(command)? + 4; // after authorizationSize
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
    /// The modelled TPM time of these commands (milliseconds), under a latency profile.
    pub model_ms: Option<f64>,
}

impl Traffic {
    pub fn from_log(log: &[(Vec<u8>, Vec<u8>)], profile: Option<&Profile>) -> Traffic {
        let mut t = Traffic {
            model_ms: profile.map(|p| {
                log.iter()
                    .map(|(c, _)| p.service_time(c))
                    .sum::<std::time::Duration>()
                    .as_secs_f64()
                    * 1000.0
            }),
            ..Traffic::default()
        };
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

    /// One sample that took `elapsed` with these commands (a start-up, a login), and the
    /// commands it sent.
    pub fn sample(&self, elapsed: std::time::Duration) -> (Round, String) {
        let round = Round {
            ops: 1,
            seconds: elapsed.as_secs_f64(),
            commands: Some(self.total),
            model_ms: self.model_ms,
            ..Round::default()
        };
        (round, self.per_op(1))
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

    /// Commands per operation in steady state: the kinds sent at least once per ten
    /// operations (not a batch's one-off flush or context save, which `per_op` names).
    pub fn steady_per_op(&self, ops: u64) -> Option<f64> {
        (ops > 0).then(|| {
            let steady: u64 = self.kinds.values().filter(|n| **n * 10 >= ops).sum();
            steady as f64 / ops as f64
        })
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
