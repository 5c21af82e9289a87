//! A unix-socket front for a [`crate::Swtpm`]: for clients in another network namespace,
//! where the swtpm's 127.0.0.1 port pair is out of reach but a socket path is not.
//!
//! The tpm2-tss swtpm TCTI takes `swtpm:path=P`: it sends TPM commands over the unix
//! socket `P` and control commands over `P.ctrl`. [`UnixBridge`] listens on both and
//! forwards every accepted connection to the TPM port and the control port of the swtpm,
//! bytes unchanged, one thread per direction, and passes each close on (swtpm serves one
//! control connection at a time).

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// Listens on a socket path and its `.ctrl` sibling, forwarding to a swtpm's port pair.
/// Dropping it stops accepting and removes both socket files; connections already open
/// go on until either side closes them.
#[derive(Debug)]
pub struct UnixBridge {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    acceptors: Vec<JoinHandle<()>>,
}

impl UnixBridge {
    /// Binds `path` (TPM commands, forwarded to 127.0.0.1:`port`) and `path.ctrl` (control
    /// channel, forwarded to `port + 1`). Panics if either cannot be bound.
    pub fn start(path: impl Into<PathBuf>, port: u16) -> UnixBridge {
        let path = path.into();
        let stop = Arc::new(AtomicBool::new(false));
        let ctrl_port = port
            .checked_add(1)
            .unwrap_or_else(|| panic!("tpmkey-testenv: no control port after {port}"));
        let acceptors = [(path.clone(), port), (ctrl_path(&path), ctrl_port)]
            .into_iter()
            .map(|(socket, upstream)| {
                let listener = UnixListener::bind(&socket).unwrap_or_else(|e| {
                    panic!("tpmkey-testenv: cannot bind {}: {e}", socket.display())
                });
                let stop = stop.clone();
                thread::spawn(move || accept(&listener, upstream, &stop))
            })
            .collect();
        UnixBridge {
            path,
            stop,
            acceptors,
        }
    }

    /// The TCTI configuration string that reaches the swtpm through this bridge.
    pub fn tcti(&self) -> String {
        format!("swtpm:path={}", self.path.display())
    }

    /// The TPM command socket (the control socket is this path with `.ctrl` appended).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for socket in [self.path.clone(), ctrl_path(&self.path)] {
            // Wakes the acceptor, which sees the stop flag and returns.
            let _ = UnixStream::connect(&socket);
            let _ = std::fs::remove_file(&socket);
        }
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
    }
}

fn ctrl_path(path: &Path) -> PathBuf {
    let mut ctrl = path.as_os_str().to_owned();
    ctrl.push(".ctrl");
    PathBuf::from(ctrl)
}

fn accept(listener: &UnixListener, upstream: u16, stop: &AtomicBool) {
    for client in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        // An unreachable swtpm: the client sees its connection closed.
        let Ok(tpm) = TcpStream::connect(("127.0.0.1", upstream)) else {
            continue;
        };
        let _ = forward(client, tpm);
    }
}

/// A connection that can be split into two handles and shut down: TCP or unix.
pub(crate) trait Duplex: io::Read + io::Write + Send + Sized + 'static {
    fn split(&self) -> io::Result<Self>;
    fn close(&self);
}

impl Duplex for TcpStream {
    fn split(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Duplex for UnixStream {
    fn split(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// Copies both ways between `a` and `b` on two threads; a close on either side is passed on.
pub(crate) fn forward<A: Duplex, B: Duplex>(a: A, b: B) -> io::Result<()> {
    let (mut a_in, mut b_out) = (a.split()?, b.split()?);
    let (mut a_out, mut b_in) = (a, b);
    thread::spawn(move || {
        let _ = io::copy(&mut a_in, &mut b_out);
        b_out.close();
    });
    thread::spawn(move || {
        let _ = io::copy(&mut b_in, &mut a_out);
        a_out.close();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{Read, Write};

    use super::*;
    use crate::{Swtpm, TpmEndpoint};

    /// Sends CMD_GET_CAPABILITY of the swtpm control protocol (a 4-byte code) and returns
    /// the 8-byte answer (result code, capability bits).
    fn get_capability(mut stream: impl Read + Write) -> [u8; 8] {
        stream.write_all(&1u32.to_be_bytes()).unwrap();
        let mut answer = [0u8; 8];
        stream.read_exact(&mut answer).unwrap();
        answer
    }

    /// tpm2-tools reach the swtpm through the command socket; a control command gets the
    /// same answer through the `.ctrl` socket as on the control port; the sockets are gone
    /// after drop.
    #[test]
    fn swtpm_answers_through_both_unix_sockets() {
        let tpm = Swtpm::start();
        let dir = crate::process::TempDir::new("bridge");
        let socket = dir.path().join("tpm.sock");
        let bridge = UnixBridge::start(&socket, tpm.port());
        assert_eq!(bridge.tcti(), format!("swtpm:path={}", socket.display()));
        for _ in 0..2 {
            let out = crate::run(
                std::process::Command::new("tpm2_getrandom")
                    .args(["--hex", "16"])
                    .env("TPM2TOOLS_TCTI", bridge.tcti()),
            );
            assert_eq!(out.stdout.len(), 32, "{out:?}");
        }
        let direct = get_capability(TcpStream::connect(("127.0.0.1", tpm.ctrl_port())).unwrap());
        let bridged = get_capability(UnixStream::connect(ctrl_path(&socket)).unwrap());
        assert_eq!(bridged, direct);
        assert_eq!(direct[..4], [0, 0, 0, 0], "TPM_SUCCESS");
        drop(bridge);
        assert!(!socket.exists());
        assert!(!ctrl_path(&socket).exists());
        let direct = tpm.tpm2_tools_ok(["getrandom", "--hex", "4"]);
        assert_eq!(direct.stdout.len(), 8);
    }
}
