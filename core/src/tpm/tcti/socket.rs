//! A TPM reached over a stream socket that carries plain TPM byte strings: a command goes
//! out as it is, the response comes back as it is (its size is in its header). tpm2-abrmd's
//! per-client socket and swtpm's server socket both speak so. Every read and write has the
//! connection's timeout, so a response cut short (a bus glitch, a peer that stalls) ends in
//! an error, never a wait.

use std::io::{Read, Write};

/// The TPM response header: tag, size, code.
const HEADER: usize = 10;

pub trait Stream: Read + Write + Send + std::fmt::Debug {}
impl<T: Read + Write + Send + std::fmt::Debug> Stream for T {}

type Connect = Box<dyn FnMut() -> Result<Box<dyn Stream>, String> + Send>;

pub struct Socket {
    /// The connection kept between commands; `None` after a failure (what is left on a
    /// broken stream is never read) and always for a connection per command.
    stream: Option<Box<dyn Stream>>,
    /// Who is at the other end, for messages ("tpm2-abrmd", "swtpm").
    peer: &'static str,
    /// For a connection per command: how to connect.
    connect: Option<Connect>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("peer", &self.peer).finish()
    }
}

impl Socket {
    /// One connection for the life of the socket; `stream` must already carry the read
    /// and write timeouts.
    pub fn new(stream: impl Stream + 'static, peer: &'static str) -> Socket {
        Socket {
            stream: Some(Box::new(stream)),
            peer,
            connect: None,
        }
    }

    /// A connection per command, closed after its response (swtpm serves one client at a
    /// time, so a connection held between commands would lock out every other process).
    pub fn per_command(
        peer: &'static str,
        connect: impl FnMut() -> Result<Box<dyn Stream>, String> + Send + 'static,
    ) -> Socket {
        Socket {
            stream: None,
            peer,
            connect: Some(Box::new(connect)),
        }
    }

    pub fn execute(&mut self, command: &[u8], max_response: usize) -> Result<Vec<u8>, String> {
        let mut stream = match (self.stream.take(), self.connect.as_mut()) {
            (Some(stream), _) => stream,
            (None, Some(connect)) => connect()?,
            (None, None) => return Err(format!("the connection to {} broke", self.peer)),
        };
        let response = exchange(stream.as_mut(), self.peer, command, max_response)?;
        if self.connect.is_none() {
            self.stream = Some(stream);
        }
        Ok(response)
    }
}

fn exchange(
    stream: &mut dyn Stream,
    peer: &str,
    command: &[u8],
    max_response: usize,
) -> Result<Vec<u8>, String> {
    stream
        .write_all(command)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending the command to {peer} failed: {}", describe(&e)))?;
    let receiving = |e: std::io::Error| {
        format!(
            "receiving the response from {peer} failed: {}",
            describe(&e)
        )
    };
    let mut response = vec![0u8; HEADER];
    stream.read_exact(&mut response).map_err(receiving)?;
    let size = u32::from_be_bytes([response[2], response[3], response[4], response[5]]) as usize;
    if !(HEADER..=max_response).contains(&size) {
        return Err(format!("{peer} sent a response of size {size}"));
    }
    response.resize(size, 0);
    stream
        .read_exact(&mut response[HEADER..])
        .map_err(receiving)?;
    Ok(response)
}

/// A timed-out read says so in words (the OS says "Resource temporarily unavailable").
fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "no answer within the timeout".into()
        }
        std::io::ErrorKind::UnexpectedEof => "the connection closed".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A stream that hands out `reply` and swallows what is written.
    #[derive(Debug)]
    struct Canned(Cursor<Vec<u8>>);
    impl Read for Canned {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl Write for Canned {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn exchange(reply: &[u8]) -> Result<Vec<u8>, String> {
        Socket::new(Canned(Cursor::new(reply.to_vec())), "swtpm").execute(&[0; 10], 4096)
    }

    #[test]
    fn whole_responses_pass_and_cut_or_oversized_ones_are_errors() {
        let ok = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0xAB, 0xCD];
        assert_eq!(exchange(&ok).unwrap(), ok);
        let cut_header = exchange(&ok[..7]).unwrap_err();
        assert!(cut_header.contains("the connection closed"), "{cut_header}");
        let cut_body = exchange(&ok[..11]).unwrap_err();
        assert!(cut_body.contains("from swtpm failed"), "{cut_body}");
        let huge = exchange(&[0x80, 0x01, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(huge.contains("size 65536"), "{huge}");
        let tiny = exchange(&[0x80, 0x01, 0, 0, 0, 4, 0, 0, 0, 0]).unwrap_err();
        assert!(tiny.contains("size 4"), "{tiny}");
    }
}
