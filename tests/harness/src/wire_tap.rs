//! A TCP proxy between the swtpm TCTI and swtpm that records every TPM command and
//! response and can alter one on the way: the tests' and the benchmark's view of the bus.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub type Mutator = Box<dyn FnMut(&mut Vec<u8>) -> bool + Send>;

#[derive(Default)]
struct Shared {
    log: Vec<(Vec<u8>, Vec<u8>)>,
    on_command: Option<Mutator>,
    on_response: Option<Mutator>,
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
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let shared = s2.clone();
                std::thread::spawn(move || {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                        return;
                    };
                    while let Some(mut cmd) = read_message(&mut client) {
                        let original = cmd.clone();
                        {
                            let mut sh = shared.lock().unwrap();
                            if let Some(m) = sh.on_command.as_mut() {
                                if m(&mut cmd) {
                                    sh.on_command = None;
                                }
                            }
                        }
                        if up.write_all(&cmd).is_err() {
                            return;
                        }
                        let Some(mut rsp) = read_message(&mut up) else {
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
                        }
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

    /// Alters the next command the mutator accepts (returns true for).
    pub fn tamper_command(&self, m: impl FnMut(&mut Vec<u8>) -> bool + Send + 'static) {
        self.shared.lock().unwrap().on_command = Some(Box::new(m));
    }

    pub fn tamper_response(&self, m: impl FnMut(&mut Vec<u8>) -> bool + Send + 'static) {
        self.shared.lock().unwrap().on_response = Some(Box::new(m));
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

pub fn command_code(cmd: &[u8]) -> u32 {
    u32::from_be_bytes([cmd[6], cmd[7], cmd[8], cmd[9]])
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
