//! A TCP proxy between the swtpm TCTI and swtpm that records every TPM command and
//! response and can alter one on the way: the tests' and the benchmark's view of the bus.
//!
//! With a [`Profile`] set, the tap is also a model of a slower TPM: every command holds
//! one lock shared by all connections (a TPM executes one command at a time) from the
//! moment it is forwarded until its service time has passed, sleeping for what swtpm did
//! not already take; then the response goes back. The tap's own work stays a copy and a
//! sleep per command.
//!
//! With a [`FaultPlan`] set, the tap injects faults ([`crate::fault`]) into the commands the
//! plan picks: it drops, stalls, corrupts, answers instead of the TPM, or restarts it.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::fault::{self, Fault, FaultPlan, Injected};
pub use crate::tpm_command::command_code;
use crate::tpm_model::Profile;

pub type Mutator = Box<dyn FnMut(&mut Vec<u8>) -> bool + Send>;
/// Alters a response knowing the command it answers (the command as forwarded).
pub type ExchangeMutator = Box<dyn FnMut(&[u8], &mut Vec<u8>) -> bool + Send>;

#[derive(Default)]
struct Shared {
    log: Vec<(Vec<u8>, Vec<u8>)>,
    on_command: Option<Mutator>,
    on_response: Option<Mutator>,
    on_exchange: Option<ExchangeMutator>,
    profile: Option<Arc<Profile>>,
    faults: Option<FaultPlan>,
    /// Faults of plans already replaced or stopped.
    injected: Vec<Injected>,
}

#[allow(missing_debug_implementations)]
pub struct WireTap {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

fn read_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 10];
    s.read_exact(&mut head).ok()?;
    let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    let mut msg = head.to_vec();
    msg.resize(size.max(10), 0);
    s.read_exact(&mut msg[10..]).ok()?;
    Some(msg)
}

/// Forwards one command to swtpm and reads its response.
///
/// Without a profile the client's connection keeps one upstream connection. With one, the
/// command holds `tpm` (one command at a time over all connections) from a fresh upstream
/// connection until its service time has passed, and closes that connection: swtpm serves
/// one connection at a time, so an upstream connection kept open by one client while
/// another holds the lock would deadlock the two.
fn execute(
    upstream_port: u16,
    kept: &mut Option<TcpStream>,
    cmd: &[u8],
    profile: Option<&Profile>,
    tpm: &Mutex<()>,
) -> Option<Vec<u8>> {
    let Some(profile) = profile else {
        if kept.is_none() {
            *kept = Some(TcpStream::connect(("127.0.0.1", upstream_port)).ok()?);
        }
        let up = kept.as_mut()?;
        up.write_all(cmd).ok()?;
        return read_message(up);
    };
    *kept = None;
    let service = profile.service_time(cmd);
    let _busy = tpm
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = Instant::now();
    let mut up = TcpStream::connect(("127.0.0.1", upstream_port)).ok()?;
    up.write_all(cmd).ok()?;
    let rsp = read_message(&mut up);
    drop(up);
    std::thread::sleep(service.saturating_sub(start.elapsed()));
    rsp
}

impl WireTap {
    pub fn start(upstream_port: u16) -> WireTap {
        // The swtpm TCTI talks to port P and its control channel on P + 1.
        let (listener, control) = loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let p = l.local_addr().unwrap().port();
            if p < u16::MAX {
                if let Ok(c) = TcpListener::bind(("127.0.0.1", p + 1)) {
                    break (l, c);
                }
            }
        };
        let port = listener.local_addr().unwrap().port();
        crate::pins::forget_port(port);
        std::thread::spawn(move || {
            for client in control.incoming() {
                let Ok(client) = client else { return };
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream_port + 1)) else {
                    continue;
                };
                // swtpm serves one control connection at a time: pass every close on.
                crate::unix_bridge::forward(client, up).unwrap();
            }
        });
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s2 = shared.clone();
        let tpm = Arc::new(Mutex::new(()));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let shared = s2.clone();
                let tpm = tpm.clone();
                std::thread::spawn(move || {
                    let mut up = None;
                    while let Some(mut cmd) = read_message(&mut client) {
                        let original = cmd.clone();
                        let (profile, fault) = {
                            let mut sh = shared.lock().unwrap();
                            if let Some(m) = sh.on_command.as_mut() {
                                if m(&mut cmd) {
                                    sh.on_command = None;
                                }
                            }
                            let fault = sh.faults.as_mut().and_then(|p| p.next(&cmd));
                            (sh.profile.clone(), fault)
                        };
                        match fault {
                            Some(Fault::DropBeforeForward) => return,
                            Some(Fault::Answer(rc)) => {
                                let rsp = fault::answer(rc);
                                shared.lock().unwrap().log.push((original, rsp.clone()));
                                if client.write_all(&rsp).is_err() {
                                    return;
                                }
                                continue;
                            }
                            Some(Fault::Restart { orderly }) => {
                                up = None;
                                if let Err(e) = fault::restart_tpm(upstream_port, orderly) {
                                    panic!("wire tap: restarting the TPM failed: {e}");
                                }
                            }
                            _ => {}
                        }
                        let Some(mut rsp) =
                            execute(upstream_port, &mut up, &cmd, profile.as_deref(), &tpm)
                        else {
                            return;
                        };
                        {
                            let mut sh = shared.lock().unwrap();
                            sh.log.push((original, rsp.clone()));
                            if let Some(m) = sh.on_response.as_mut() {
                                if m(&mut rsp) {
                                    sh.on_response = None;
                                }
                            }
                            if let Some(m) = sh.on_exchange.as_mut() {
                                if m(&cmd, &mut rsp) {
                                    sh.on_exchange = None;
                                }
                            }
                        }
                        match fault {
                            Some(Fault::DropAfterForward) => return,
                            Some(Fault::Delay(d)) => std::thread::sleep(d),
                            Some(Fault::Restart { .. }) => {}
                            Some(f) if !fault::corrupt(command_code(&cmd), &mut rsp, f) => {
                                if let Some(p) = shared.lock().unwrap().faults.as_mut() {
                                    p.not_applied();
                                }
                            }
                            Some(_) => {}
                            None => {}
                        }
                        // A response cut inside its header leaves the connection open, as
                        // a bus glitch would: the client must give up at its timeout.
                        if client.write_all(&rsp).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        WireTap { port, shared }
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Models a slower TPM from now on (`None`, or a profile whose times are all zero:
    /// swtpm as it is). Commands already in flight keep the model they started with.
    pub fn set_profile(&self, profile: Option<Profile>) {
        let profile = profile.filter(|p| !p.is_zero()).map(Arc::new);
        self.shared.lock().unwrap().profile = profile;
    }

    /// The profile in force, if any.
    pub fn profile(&self) -> Option<Arc<Profile>> {
        self.shared.lock().unwrap().profile.clone()
    }

    /// Alters the next command the mutator accepts (returns true for).
    pub fn tamper_command(&self, m: impl FnMut(&mut Vec<u8>) -> bool + Send + 'static) {
        self.shared.lock().unwrap().on_command = Some(Box::new(m));
    }

    pub fn tamper_response(&self, m: impl FnMut(&mut Vec<u8>) -> bool + Send + 'static) {
        self.shared.lock().unwrap().on_response = Some(Box::new(m));
    }

    /// Alters responses seeing the command each answers, until the mutator returns true
    /// (one that never does models a TPM that always behaves so, e.g.
    /// [`crate::fault::max_salt_pss`]).
    pub fn tamper_exchange(&self, m: impl FnMut(&[u8], &mut Vec<u8>) -> bool + Send + 'static) {
        self.shared.lock().unwrap().on_exchange = Some(Box::new(m));
    }

    /// Injects faults as `plan` says from now on (the faults of a previous plan are kept
    /// for [`WireTap::injected`]).
    pub fn inject(&self, plan: FaultPlan) {
        let mut sh = self.shared.lock().unwrap();
        if let Some(old) = sh.faults.replace(plan) {
            sh.injected.extend_from_slice(old.injected());
        }
    }

    /// Stops injecting; returns every fault injected since the tap started.
    pub fn stop_injecting(&self) -> Vec<Injected> {
        let mut sh = self.shared.lock().unwrap();
        if let Some(old) = sh.faults.take() {
            sh.injected.extend_from_slice(old.injected());
        }
        sh.injected.clone()
    }

    /// Every fault injected so far (the current plan's included).
    pub fn injected(&self) -> Vec<Injected> {
        let sh = self.shared.lock().unwrap();
        let mut all = sh.injected.clone();
        if let Some(p) = sh.faults.as_ref() {
            all.extend_from_slice(p.injected());
        }
        all
    }

    /// Whether the current plan still has faults to inject.
    pub fn faults_pending(&self) -> bool {
        let sh = self.shared.lock().unwrap();
        sh.faults.as_ref().is_some_and(FaultPlan::pending)
    }

    /// Number of commands seen so far (without taking the log).
    pub fn count(&self) -> usize {
        self.shared.lock().unwrap().log.len()
    }

    pub fn take_log(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        std::mem::take(&mut self.shared.lock().unwrap().log)
    }

    /// Command codes sent since the last `take_log`.
    pub fn take_codes(&self) -> Vec<u32> {
        self.take_log()
            .iter()
            .map(|(c, _)| command_code(c))
            .collect()
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
