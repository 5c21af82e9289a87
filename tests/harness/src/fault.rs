//! The fault injector the wire tap consults for every command: a TPM or bus that drops the
//! connection, stalls, corrupts a response, answers a warning or an error instead of the
//! TPM, or restarts in the middle of a command sequence.
//!
//! A [`FaultPlan`] fires either on chosen command codes (the n-th time each is seen) or at
//! random with a seed (reproducible), and records every fault it injected, so that a test
//! can account each failure to one.
//!
//! Hardware behaviour swtpm lacks is emulated here too: [`max_salt_pss`] makes the TPM's
//! RSA-PSS signatures carry the maximum salt, as many hardware TPMs do.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::tpm_command::{command_code, command_name};

pub const TPM_RC_RETRY: u32 = 0x922;
pub const TPM_RC_YIELDED: u32 = 0x908;
pub const TPM_RC_TESTING: u32 = 0x90A;
pub const TPM_RC_LOCKOUT: u32 = 0x921;
pub const TPM_RC_OBJECT_MEMORY: u32 = 0x902;
pub const TPM_RC_SESSION_MEMORY: u32 = 0x903;
pub const TPM_RC_NV_RATE: u32 = 0x920;
pub const TPM_RC_CANCELED: u32 = 0x909;
pub const TPM_RC_FAILURE: u32 = 0x101;

/// The response codes [`Fault::Answer`] is meant for, with their names.
pub const ANSWERS: &[(u32, &str)] = &[
    (TPM_RC_RETRY, "RETRY"),
    (TPM_RC_YIELDED, "YIELDED"),
    (TPM_RC_TESTING, "TESTING"),
    (TPM_RC_LOCKOUT, "LOCKOUT"),
    (TPM_RC_OBJECT_MEMORY, "OBJECT_MEMORY"),
    (TPM_RC_SESSION_MEMORY, "SESSION_MEMORY"),
    (TPM_RC_NV_RATE, "NV_RATE"),
    (TPM_RC_CANCELED, "CANCELED"),
    (TPM_RC_FAILURE, "FAILURE"),
];

/// A part of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// tag, responseSize, responseCode.
    Header,
    /// The response handle area (only commands that return a handle have one).
    Handles,
    /// The parameter area (after parameterSize when the response carries sessions).
    Parameters,
    /// The authorisation area of a response with sessions.
    Sessions,
}

/// One fault, injected into one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close the client's connection without sending the command on.
    DropBeforeForward,
    /// Send the command to the TPM (it executes), then close without an answer.
    DropAfterForward,
    /// Hold the response this long before passing it on.
    Delay(Duration),
    /// XOR `0x01` into the byte at `offset` of `area` (wrapping around the area).
    Flip(Area, usize),
    /// Cut the response off in the middle of `area` (the size field follows, except in a
    /// cut header, which leaves the client waiting for the rest).
    Truncate(Area),
    /// Insert this many bytes at the end of `area` (the size field follows).
    Extend(Area, usize),
    /// Answer this response code instead of the TPM (the command is not forwarded).
    Answer(u32),
    /// Restart the TPM before forwarding the command; orderly means TPM2_Shutdown first.
    Restart { orderly: bool },
}

impl Fault {
    /// Whether a TPM that behaves so would still have executed the command.
    pub fn command_reached_tpm(&self) -> bool {
        !matches!(self, Fault::DropBeforeForward | Fault::Answer(_))
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Answer(rc) => match ANSWERS.iter().find(|(c, _)| c == rc) {
                Some((_, name)) => write!(f, "answer TPM_RC_{name}"),
                None => write!(f, "answer 0x{rc:03x}"),
            },
            Fault::Restart { orderly: true } => write!(f, "orderly restart"),
            Fault::Restart { orderly: false } => write!(f, "disorderly restart"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// One injected fault, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// Index of the command in the tap's stream (0 for the first command it saw).
    pub index: u64,
    pub code: u32,
    pub fault: Fault,
    /// False when the response had no such area to alter (it went through unchanged).
    pub applied: bool,
}

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} ({})",
            self.index,
            command_name(self.code).unwrap_or("?"),
            self.fault
        )
    }
}

#[derive(Debug)]
enum Trigger {
    /// (command codes, how many more of them pass before the fault, fault); each fires once.
    OnCode(Vec<(Vec<u32>, u32, Fault)>),
    /// Each command gets a fault with probability per_million / 1e6, drawn from `faults`.
    Random {
        rng: SplitMix64,
        per_million: u32,
        faults: Vec<Fault>,
    },
}

/// When and which faults the tap injects.
#[derive(Debug)]
pub struct FaultPlan {
    trigger: Trigger,
    seen: u64,
    injected: Vec<Injected>,
}

impl FaultPlan {
    /// Injects `fault` into the command `code` after `skip` earlier ones of that code passed.
    pub fn on(code: u32, skip: u32, fault: Fault) -> FaultPlan {
        FaultPlan::on_any(&[code], skip, fault)
    }

    /// Injects `fault` into the first command whose code is one of `codes`, after `skip`
    /// earlier ones passed.
    pub fn on_any(codes: &[u32], skip: u32, fault: Fault) -> FaultPlan {
        FaultPlan {
            trigger: Trigger::OnCode(vec![(codes.to_vec(), skip, fault)]),
            seen: 0,
            injected: Vec::new(),
        }
    }

    /// Adds one more (code, skip, fault) to a per-code plan.
    pub fn and(mut self, code: u32, skip: u32, fault: Fault) -> FaultPlan {
        if let Trigger::OnCode(list) = &mut self.trigger {
            list.push((vec![code], skip, fault));
        }
        self
    }

    /// A fault from `faults` in `per_million` of all commands, chosen by a PRNG seeded
    /// with `seed`: the same seed and command stream give the same faults.
    pub fn random(seed: u64, per_million: u32, faults: Vec<Fault>) -> FaultPlan {
        FaultPlan {
            trigger: Trigger::Random {
                rng: SplitMix64(seed),
                per_million,
                faults,
            },
            seen: 0,
            injected: Vec::new(),
        }
    }

    /// Whether a per-code plan has faults left to inject (a random plan always has).
    pub fn pending(&self) -> bool {
        match &self.trigger {
            Trigger::OnCode(list) => !list.is_empty(),
            Trigger::Random { .. } => true,
        }
    }

    pub fn injected(&self) -> &[Injected] {
        &self.injected
    }

    /// Records that the last fault found nothing to alter.
    pub fn not_applied(&mut self) {
        if let Some(last) = self.injected.last_mut() {
            last.applied = false;
        }
    }

    /// The fault for this command, if any (recorded as injected).
    pub fn next(&mut self, command: &[u8]) -> Option<Fault> {
        let code = command_code(command);
        let index = self.seen;
        self.seen += 1;
        let fault = match &mut self.trigger {
            Trigger::OnCode(list) => {
                let i = list.iter().position(|(c, _, _)| c.contains(&code))?;
                if list[i].1 > 0 {
                    list[i].1 -= 1;
                    return None;
                }
                list.remove(i).2
            }
            Trigger::Random {
                rng,
                per_million,
                faults,
            } => {
                let draw = rng.next();
                if (draw % 1_000_000) as u32 >= *per_million || faults.is_empty() {
                    return None;
                }
                faults[((draw >> 32) % faults.len() as u64) as usize]
            }
        };
        self.injected.push(Injected {
            index,
            code,
            fault,
            applied: true,
        });
        Some(fault)
    }
}

/// SplitMix64: a tiny seeded generator (reproducibility matters here, not quality).
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A response of only a header with `rc`.
pub fn answer(rc: u32) -> Vec<u8> {
    let mut r = vec![0x80, 0x01, 0, 0, 0, 10];
    r.extend_from_slice(&rc.to_be_bytes());
    r
}

/// Handles a successful response of `code` carries before its parameters.
fn response_handles(code: u32) -> usize {
    match command_name(code) {
        Some(
            "CreatePrimary" | "Load" | "ContextLoad" | "StartAuthSession" | "CreateLoaded"
            | "LoadExternal" | "HashSequenceStart",
        ) => 1,
        _ => 0,
    }
}

/// (start, end) of `area` in a response to `code`; `None` when the response has no such
/// area (an error response, a response without handles or sessions).
pub fn area_range(code: u32, rsp: &[u8], area: Area) -> Option<(usize, usize)> {
    if area == Area::Header {
        return Some((0, rsp.len().min(10)));
    }
    if rsp.len() < 10 || rsp[6..10] != [0, 0, 0, 0] {
        return None;
    }
    let handles_end = 10 + 4 * response_handles(code);
    let sessions = rsp[0..2] == [0x80, 0x02];
    let (params_start, params_end) = if sessions {
        let b = rsp.get(handles_end..handles_end + 4)?;
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        (handles_end + 4, handles_end + 4 + n)
    } else {
        (handles_end, rsp.len())
    };
    let range = match area {
        Area::Header => (0, 10),
        Area::Handles => (10, handles_end),
        Area::Parameters => (params_start, params_end),
        Area::Sessions if sessions => (params_end, rsp.len()),
        Area::Sessions => return None,
    };
    (range.0 < range.1 && range.1 <= rsp.len()).then_some(range)
}

fn set_size(rsp: &mut [u8]) {
    let n = (rsp.len() as u32).to_be_bytes();
    if rsp.len() >= 6 {
        rsp[2..6].copy_from_slice(&n);
    }
}

/// Alters `rsp` (the TPM's response to `code`) as `fault` says; false when the response
/// has no such area, in which case it is left alone.
pub fn corrupt(code: u32, rsp: &mut Vec<u8>, fault: Fault) -> bool {
    match fault {
        Fault::Flip(area, offset) => {
            let Some((start, end)) = area_range(code, rsp, area) else {
                return false;
            };
            rsp[start + offset % (end - start)] ^= 0x01;
        }
        Fault::Truncate(area) => {
            let Some((start, end)) = area_range(code, rsp, area) else {
                return false;
            };
            rsp.truncate(start + (end - start) / 2);
            if area != Area::Header {
                set_size(rsp);
            }
        }
        Fault::Extend(area, n) => {
            let Some((_, end)) = area_range(code, rsp, area) else {
                return false;
            };
            let filler = vec![0xA5; n];
            rsp.splice(end..end, filler);
            set_size(rsp);
        }
        _ => return false,
    }
    true
}

/// swtpm's control channel command CMD_INIT (a power cycle), flag: delete volatile state.
const CMD_INIT: u32 = 2;
const STARTUP_CLEAR: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];
const SHUTDOWN_CLEAR: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x45, 0, 0];

fn exchange(s: &mut TcpStream, msg: &[u8], answer_len: usize) -> std::io::Result<Vec<u8>> {
    s.write_all(msg)?;
    let mut head = vec![0u8; answer_len];
    s.read_exact(&mut head)?;
    Ok(head)
}

fn tpm_command(port: u16, cmd: &[u8]) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let head = exchange(&mut s, cmd, 10)?;
    let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    let mut rest = vec![0u8; size.saturating_sub(10)];
    s.read_exact(&mut rest)
}

/// Restarts swtpm's TPM behind `port` (control channel on `port + 1`): TPM2_Shutdown(CLEAR)
/// first when `orderly`, then a power cycle and TPM2_Startup(CLEAR). Transient objects and
/// sessions are gone afterwards. No upstream data connection may be open meanwhile.
pub fn restart_tpm(port: u16, orderly: bool) -> std::io::Result<()> {
    if orderly {
        tpm_command(port, &SHUTDOWN_CLEAR)?;
    }
    let mut ctrl = TcpStream::connect(("127.0.0.1", port + 1))?;
    let mut msg = CMD_INIT.to_be_bytes().to_vec();
    msg.extend_from_slice(&1u32.to_be_bytes());
    let result = exchange(&mut ctrl, &msg, 4)?;
    if result != [0, 0, 0, 0] {
        return Err(std::io::Error::other(format!(
            "swtpm CMD_INIT answered {result:?}"
        )));
    }
    drop(ctrl);
    tpm_command(port, &STARTUP_CLEAR)
}

const TPM_ALG_RSAPSS: u16 = 0x0016;

/// OpenSSL's name of a TPM hash algorithm.
fn openssl_digest(alg: u16) -> Option<&'static str> {
    match alg {
        0x0004 => Some("sha1"),
        0x000B => Some("sha256"),
        0x000C => Some("sha384"),
        0x000D => Some("sha512"),
        _ => None,
    }
}

/// A TPM that signs RSA-PSS with the maximum salt, as many hardware TPMs do (swtpm uses
/// the digest length), for [`crate::WireTap::tamper_exchange`]: every successful TPM2_Sign
/// with scheme RSAPSS gets its signature replaced by one `openssl pkeyutl` makes with the
/// key's private half (`private_key`, PEM) and `rsa_pss_saltlen:max` over the digest the
/// command carried. The command's digest must be in clear and the response must carry no
/// HMAC over it: the client runs with its session off (`TPMKEY_SESSION=off`). Never
/// returns true, so it stays in place.
pub fn max_salt_pss(
    private_key: &std::path::Path,
) -> impl FnMut(&[u8], &mut Vec<u8>) -> bool + Send + 'static {
    let key = private_key.to_path_buf();
    move |cmd, rsp| {
        if command_code(cmd) == 0x15D {
            if let Some((at, sig)) = pss_sign_exchange(cmd, rsp) {
                let (digest, hash) = sig;
                let made = pss_max_salt_sign(&key, hash, digest);
                let len = usize::from(u16::from_be_bytes([rsp[at], rsp[at + 1]]));
                assert_eq!(made.len(), len, "max-salt signature of another length");
                rsp[at + 2..at + 2 + len].copy_from_slice(&made);
            }
        }
        false
    }
}

/// For a TPM2_Sign with scheme RSAPSS and its successful response: where the response's
/// signature TPM2B starts, and the command's digest and hash name.
fn pss_sign_exchange<'c>(cmd: &'c [u8], rsp: &[u8]) -> Option<(usize, (&'c [u8], &'static str))> {
    let params = crate::tpm_command::parameters_offset(cmd)?;
    let size = usize::from(u16::from_be_bytes([
        *cmd.get(params)?,
        *cmd.get(params + 1)?,
    ]));
    let digest = cmd.get(params + 2..params + 2 + size)?;
    let scheme = cmd.get(params + 2 + size..params + 6 + size)?;
    if scheme[0..2] != TPM_ALG_RSAPSS.to_be_bytes() {
        return None;
    }
    let hash = openssl_digest(u16::from_be_bytes([scheme[2], scheme[3]]))?;
    let (start, end) = area_range(0x15D, rsp, Area::Parameters)?;
    // TPMT_SIGNATURE: sigAlg, hash, TPM2B signature.
    let head = rsp.get(start..start + 6)?;
    let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
    (head[0..2] == TPM_ALG_RSAPSS.to_be_bytes() && start + 6 + len <= end)
        .then_some((start + 4, (digest, hash)))
}

fn pss_max_salt_sign(key: &std::path::Path, hash: &str, digest: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("openssl")
        .env_remove("OPENSSL_CONF")
        .env_remove("OPENSSL_MODULES")
        .args(["pkeyutl", "-sign", "-inkey"])
        .arg(key)
        .args(["-pkeyopt", &format!("digest:{hash}")])
        .args(["-pkeyopt", "rsa_padding_mode:pss"])
        .args(["-pkeyopt", "rsa_pss_saltlen:max"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl pkeyutl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(digest)
        .expect("digest to openssl");
    let out = child.wait_with_output().expect("openssl pkeyutl");
    assert!(
        out.status.success(),
        "openssl pkeyutl (max-salt PSS): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A successful Load response: header, handle, parameterSize, name, sessions.
    fn load_response() -> Vec<u8> {
        let mut r = vec![0x80, 0x02, 0, 0, 0, 0, 0, 0, 0, 0];
        r.extend_from_slice(&0x8000_0001u32.to_be_bytes());
        r.extend_from_slice(&6u32.to_be_bytes());
        r.extend_from_slice(&[0, 4, 1, 2, 3, 4]);
        r.extend_from_slice(&[0, 0, 1, 0, 2, 9, 9]);
        set_size(&mut r);
        r
    }

    #[test]
    fn areas_of_a_response_with_handles_and_sessions() {
        let r = load_response();
        assert_eq!(area_range(0x157, &r, Area::Header), Some((0, 10)));
        assert_eq!(area_range(0x157, &r, Area::Handles), Some((10, 14)));
        assert_eq!(area_range(0x157, &r, Area::Parameters), Some((18, 24)));
        assert_eq!(area_range(0x157, &r, Area::Sessions), Some((24, 31)));
        // Sign returns no handle; an error response has only a header.
        assert_eq!(area_range(0x15D, &r, Area::Handles), None);
        assert_eq!(area_range(0x157, &answer(0x922), Area::Parameters), None);
    }

    #[test]
    fn corruptions_keep_the_size_field_honest() {
        let mut r = load_response();
        assert!(corrupt(0x157, &mut r, Fault::Extend(Area::Parameters, 3)));
        assert_eq!(r.len(), 34);
        assert_eq!(&r[24..27], &[0xA5; 3]);
        assert_eq!(u32::from_be_bytes([r[2], r[3], r[4], r[5]]), 34);
        let mut r = load_response();
        assert!(corrupt(0x157, &mut r, Fault::Truncate(Area::Sessions)));
        assert_eq!(r.len(), 27);
        assert_eq!(u32::from_be_bytes([r[2], r[3], r[4], r[5]]), 27);
        let mut r = load_response();
        assert!(corrupt(0x157, &mut r, Fault::Flip(Area::Handles, 5)));
        assert_eq!(&r[10..14], &[0x80, 0x01, 0, 1]);
    }

    #[test]
    fn per_code_plans_fire_once_after_skipping() {
        let sign = [0x80, 0x02, 0, 0, 0, 10, 0, 0, 0x01, 0x5D];
        let mut plan = FaultPlan::on(0x15D, 1, Fault::Answer(TPM_RC_RETRY));
        assert_eq!(plan.next(&sign), None);
        assert_eq!(plan.next(&sign), Some(Fault::Answer(TPM_RC_RETRY)));
        assert_eq!(plan.next(&sign), None);
        assert!(!plan.pending());
        assert_eq!(plan.injected()[0].index, 1);
    }

    #[test]
    fn random_plans_are_reproducible() {
        let cmd = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x7B];
        let faults = vec![Fault::DropBeforeForward, Fault::Answer(TPM_RC_FAILURE)];
        let run = |seed| {
            let mut plan = FaultPlan::random(seed, 100_000, faults.clone());
            for _ in 0..1000 {
                plan.next(&cmd);
            }
            plan.injected().to_vec()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert!((50..150).contains(&a.len()), "{} faults", a.len());
    }
}
